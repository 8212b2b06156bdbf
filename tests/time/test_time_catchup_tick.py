"""Catch-up through the real tick: every missed occurrence is either run or recorded as skipped."""

from __future__ import annotations

import time

import pytest
from store_support import query_rows

from campctl.engine.cron import count_fire_times
from campctl.timeutil import parse_instant

CAMPAIGN = """\
kind: Campaign
name: hourly
timezone: Europe/Paris
closes_at: 2028-12-31T23:59
type: date-triggered
message: {{subject: "Hi", body: "b"}}
audience: {{all: true}}
schedule:
  start: immediately
  cron: "0 * * * *"
  catchup: {policy}
"""
T0 = "2027-03-01T09:00:00Z"


@pytest.fixture
def hourly(cli, tmp_path, write_yaml):
    def make(policy: str) -> None:
        csv = tmp_path / "contacts.csv"
        csv.write_text("id,email\nc1,a@example.com\nc2,b@example.com\n")
        steps = [("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("h.yaml", CAMPAIGN.format(policy=policy)))),
                 ("submit", "campaign", "hourly"), ("approve", "campaign", "hourly", "--as", "b"),
                 ("start", "campaign", "hourly")]
        for step in steps:
            result = cli("--now", T0, *step)
            assert result.exit_code == 0, (step, result)
        first = cli("--now", T0, "tick")
        assert first.exit_code == 0, first

    return make


def occurrences(state, since: str) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list] = {}
    for row in query_rows(state, "SELECT status, scheduled_at, reason FROM occurrences"
                                 " WHERE scheduled_at > ? ORDER BY scheduled_at", (since,)):
        out.setdefault(row["status"], []).append((row["scheduled_at"], row["reason"]))
    return out


@pytest.mark.parametrize(("policy", "fired", "skipped"),
                         [("latest", 1, 71), ("all", 72, 0), ("none", 0, 72)])
def test_72_hours_without_ticks(cli, hourly, state, policy, fired, skipped):
    hourly(policy)
    # 72 slots (10:00 on day 1 ... 09:00 on day 4), the last one 30 minutes late.
    result = cli("--now", "2027-03-04T09:30:00Z", "tick", "-o", "json")
    assert result.exit_code == 0, result
    occ = occurrences(state, T0)
    assert len(occ.get("fired", [])) == fired
    assert len(occ.get("skipped", [])) == skipped
    assert all(reason for _, reason in occ.get("skipped", []))  # never a silent skip
    assert result.json["skipped"] == skipped
    if policy == "latest":
        assert occ["fired"] == [("2027-03-04T09:00:00Z", None)]
    if policy == "none":
        assert "late" in occ["skipped"][-1][1]


def test_catchup_none_still_fires_an_on_time_occurrence(cli, hourly, state):
    hourly("none")
    result = cli("--now", "2027-03-04T09:02:00Z", "tick", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["fired"] == 1 and result.json["skipped"] == 71


def test_ten_thousand_missed_slots_one_tick(cli, hourly, state):
    hourly("latest")
    later = "2028-04-21T01:00:00Z"  # T0 + 10,000 h
    missed = count_fire_times("0 * * * *", "Europe/Paris", after=parse_instant(T0),
                              until=parse_instant(later))
    assert missed == 9_999  # one repeated hour (October 2027) fires once
    start = time.perf_counter()
    result = cli("--now", later, "tick", "-o", "json")
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result
    assert result.json["fired"] == 1 and result.json["skipped"] == missed - 1
    # A guard against a runaway catch-up, not a speed target: the counts above are the proof.
    assert elapsed < 120, f"catch-up of 10,000 slots took {elapsed:.1f}s"
