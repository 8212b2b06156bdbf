"""`dst:` through the CLI on both stores: time travel with `--now` across the 2027 transitions
of Europe/Paris, America/New_York and Australia/Sydney, for each policy, on a date-triggered
campaign, a cron-batched event campaign, a recurrent plan and a scheduled scenario."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from campctl.timeutil import iso_z
from tests.time.test_time_dst_policy import CRON, POLICIES, TRANSITIONS, expected

DEFS = """\
kind: Campaign
name: daily
timezone: {tz}
closes_at: 2030-01-01T00:00
type: date-triggered
message: {{subject: "Hi", body: "b"}}
audience: {{all: true}}
schedule:
  cron: "{cron}"
  {dst}
---
kind: Campaign
name: batch
timezone: {tz}
closes_at: 2030-01-01T00:00
type: event-triggered
trigger: {{event: signup}}
message: {{subject: "Hi", body: "b"}}
audience: {{all: true}}
schedule:
  queue_every: "{cron}"
  {dst}
---
kind: Campaign
name: staged
timezone: {tz}
type: one-off
message: {{subject: "Hi", body: "b"}}
audience: {{all: true}}
stages: [{{name: main, controlled_by_plan: true}}]
---
kind: Plan
name: nightly
schedule:
  type: recurrent
  cron: "{cron}"
  timezone: {tz}
  overlap: queue
  {dst}
stages: [{{campaign: staged, stage: main}}]
---
kind: Scenario
name: journey
reentry: parallel
launch:
  type: schedule
  cron: "{cron}"
  timezone: {tz}
  audience: {{all: true}}
  {dst}
steps:
  - {{id: hello, send: {{body: "hi"}}}}
"""
KINDS = [("Campaign", "daily"), ("Campaign", "batch"), ("Plan", "nightly"),
         ("Scenario", "journey")]
PREVIEWS = [("campaign", "daily"), ("campaign", "batch"), ("plan", "nightly"),
            ("scenario", "journey")]


def _local(day: date, hour: int, tz: str) -> datetime:
    return datetime.combine(day, time(hour, 0), ZoneInfo(tz)).astimezone(UTC)


@pytest.fixture
def setup(cli, tmp_path, write_yaml):
    def make(tz: str, policy, launch: str) -> None:
        csv = tmp_path / "contacts.csv"
        csv.write_text("id,email\nc1,a@example.com\n")
        dst = f"dst: {{gap: {policy.gap}, fold: {policy.fold}}}" if policy else ""
        path = write_yaml("d.yaml", DEFS.format(tz=tz, cron=CRON, dst=dst))
        steps = [("init",), ("contacts", "import", str(csv)), ("apply", str(path))]
        for kind, name in (("campaign", "daily"), ("campaign", "batch"), ("campaign", "staged"),
                           ("plan", "nightly")):
            steps += [("submit", kind, name), ("approve", kind, name, "--as", "b")]
        steps += [("start", "campaign", "daily"), ("start", "campaign", "batch"),
                  ("activate", "scenario", "journey")]
        for step in steps:
            result = cli("--now", launch, *step)
            assert result.exit_code == 0, (step, result)

    return make


def _tick(cli, moment: datetime) -> None:
    result = cli("--now", iso_z(moment), "tick", "-o", "json")
    assert result.exit_code == 0, result


def _occurrences(rows, start: datetime, end: datetime) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for row in rows("SELECT kind, name, scheduled_at FROM occurrences WHERE status <> 'skipped' "
                    "AND scheduled_at > ? AND scheduled_at <= ? ORDER BY scheduled_at",
                    (iso_z(start), iso_z(end))):
        found.setdefault((row["kind"], row["name"]), []).append(row["scheduled_at"])
    return found


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{p.gap}-{p.fold}")
@pytest.mark.parametrize(("tz", "spring", "fall"), TRANSITIONS, ids=[t[0] for t in TRANSITIONS])
def test_every_cron_fires_by_its_policy_across_both_transitions(cli, rows, setup, tz, spring,
                                                                 fall, policy):
    setup(tz, policy, "2027-03-01T00:00:00Z")
    for day in sorted((spring, fall)):
        want = expected(tz, day, policy)
        day_start, noon = _local(day, 0, tz), _local(day, 12, tz)
        _tick(cli, day_start)  # catches up the days nobody ticked (catchup: latest)
        # preview lists the day's occurrences with their marks, for every kind
        for kind, name in PREVIEWS:
            shown = cli("--now", iso_z(day_start), "-o", "json", "preview", kind, name,
                        "--next", str(len(want)))
            assert shown.exit_code == 0, shown
            got = [(r["utc"], r["dst"]) for r in shown.json if r.get("phase") != "send"]
            assert got == [(iso_z(m), mark) for m, mark in want], (kind, name, day)
        status = cli("--now", iso_z(day_start), "-o", "json", "status").json
        marks = {(o["kind"], o["name"]): (o["next_due_at"], o["dst"])
                 for o in status["next_occurrences"]}
        assert marks[("Plan", "nightly")] == (iso_z(want[0][0]), want[0][1])
        assert [p["next_dst"] for p in status["plans"]] == [want[0][1]]
        # a tick at each instant, and a few more: each occurrence fires once, at its instant
        for moment, _ in want:
            _tick(cli, moment)
            _tick(cli, moment)
        _tick(cli, noon)
        fired = _occurrences(rows, day_start, noon)
        for key in KINDS:
            assert fired.get(key) == [iso_z(m) for m, _ in want], (key, day, fired)


def test_a_schedule_without_dst_keeps_todays_behaviour(cli, rows, setup):
    tz, spring, fall = TRANSITIONS[0]
    setup(tz, None, "2027-03-01T00:00:00Z")
    for day in (spring, fall):
        day_start, noon = _local(day, 0, tz), _local(day, 12, tz)
        _tick(cli, day_start)
        default = [iso_z(m) for m, _ in expected(tz, day, POLICIES[0])]
        for moment in [*default, iso_z(noon)]:
            result = cli("--now", moment, "tick")
            assert result.exit_code == 0, result
        fired = _occurrences(rows, day_start, noon)
        assert all(fired.get(key) == default for key in KINDS), fired


def test_preview_table_marks_the_moved_and_doubled_occurrences(cli, setup):
    tz, spring, fall = TRANSITIONS[0]
    setup(tz, POLICIES[1], "2027-03-01T00:00:00Z")  # shift, twice
    table = cli("--now", iso_z(_local(spring, 0, tz)), "preview", "plan", "nightly",
                "--next", "3")
    assert table.exit_code == 0, table
    assert "DST" in table.stdout and "shifted (gap)" in table.stdout, table.stdout
    table = cli("--now", iso_z(_local(fall, 0, tz)), "preview", "scenario", "journey",
                "--next", "3")
    assert table.stdout.count("repeated (fold)") == 2, table.stdout
    first = expected(tz, fall, POLICIES[1])[0][0]  # 01:30, then 02:30 twice
    _tick(cli, first)  # the tick keeps each schedule's next instant
    status = cli("--now", iso_z(first), "status")
    assert "(repeated, DST)" in status.stdout, status.stdout
    plain = cli("--now", "2027-06-01T00:00:00Z", "preview", "plan", "nightly")
    assert "DST" not in plain.stdout  # no column when nothing is marked


BAD = """\
kind: Plan
name: nightly
schedule:
  type: recurrent
  cron: "30 2 * * *"
  timezone: Europe/Paris
  dst: {gap: later, fold: thrice, when: x}
stages: [{campaign: staged, stage: main}]
---
kind: Campaign
name: batch
timezone: Europe/Paris
type: event-triggered
trigger: {event: signup}
message: {body: "b"}
audience: {all: true}
schedule:
  dst: {fold: twice}
---
kind: Campaign
name: once
type: one-off
message: {body: "b"}
audience: {all: true}
schedule:
  send: immediately
  dst: {fold: twice}
"""


def test_validate_names_each_bad_dst_value_with_its_line_and_column(cli, write_yaml):
    path = write_yaml("bad.yaml", BAD)
    result = cli("-o", "json", "validate", str(path))
    assert result.exit_code == 1, result
    errors = {(e["line"], e["col"], e["code"]): e["message"] for e in result.json["errors"]}
    assert "schedule.dst.gap: must be one of shift, skip, got 'later'" in errors[(7, 14, "CC108")]
    assert "schedule.dst.fold: must be one of once, twice" in errors[(7, 27, "CC108")]
    assert any("when" in m for (line, _, _), m in errors.items() if line == 7)
    assert "schedule.dst applies only to a cron queue_every" in errors[(18, 8, "CC111")]
    assert any(line == 27 and "dst" in m and "one-off" in m
               for (line, _, _), m in errors.items()), errors


def test_schema_documents_dst_on_every_cron(cli):
    schema = cli("schema").json
    defs = schema["$defs"]
    text = str(defs)
    assert text.count("'dst'") >= 4  # date and event campaigns, recurrent plans, scenarios
    assert "'enum': ['shift', 'skip']" in text and "'enum': ['once', 'twice']" in text
