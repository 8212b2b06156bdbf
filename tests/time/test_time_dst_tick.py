"""DST through the real tick: a daily date-triggered campaign runs once per local day."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from campctl.timeutil import iso_z, parse_instant

CAMPAIGN = """\
kind: Campaign
name: daily
timezone: {tz}
closes_at: 2030-01-01T00:00
type: date-triggered
message: {{subject: "Hi", body: "b"}}
audience: {{all: true}}
schedule:
  start: immediately
  cron: "{cron}"
  catchup: all
"""


@pytest.fixture
def daily(cli, tmp_path, write_yaml):
    def make(tz: str, cron: str, launch: str) -> None:
        csv = tmp_path / "contacts.csv"
        csv.write_text("id,email\nc1,a@example.com\n")
        steps = [("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("d.yaml", CAMPAIGN.format(tz=tz, cron=cron)))),
                 ("submit", "campaign", "daily"), ("approve", "campaign", "daily", "--as", "b"),
                 ("start", "campaign", "daily")]
        for step in steps:
            result = cli("--now", launch, *step)
            assert result.exit_code == 0, (step, result)

    return make


def tick_fired(cli, now: str) -> int:
    result = cli("--now", now, "tick", "-o", "json")
    assert result.exit_code == 0, result
    return result.json["fired"]


def run_times(cli) -> list[str]:
    return sorted(r["scheduled_at"] for r in cli("get", "runs", "-o", "json").json)


def test_spring_forward_fires_once_right_after_the_gap(cli, daily):
    daily("America/New_York", "30 2 * * *", "2024-03-09T12:00:00Z")
    assert tick_fired(cli, "2024-03-10T06:59:00Z") == 0  # 01:59 EST
    assert tick_fired(cli, "2024-03-10T07:00:00Z") == 1  # 03:00 EDT, first instant after the gap
    assert tick_fired(cli, "2024-03-10T07:30:00Z") == 0  # 03:30 EDT: nothing more that day
    assert tick_fired(cli, "2024-03-11T06:30:00Z") == 1  # 02:30 EDT next day
    assert run_times(cli) == ["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"]


def test_fall_back_fires_once_at_the_first_occurrence(cli, daily):
    daily("America/New_York", "30 1 * * *", "2024-11-02T12:00:00Z")
    assert tick_fired(cli, "2024-11-03T05:30:00Z") == 1  # 01:30 EDT
    assert tick_fired(cli, "2024-11-03T06:30:00Z") == 0  # 01:30 EST, the repeat: no second run
    assert tick_fired(cli, "2024-11-04T06:30:00Z") == 1
    assert run_times(cli) == ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"]


@pytest.mark.parametrize("tz", ["Europe/Paris", "Australia/Sydney"])
def test_one_run_per_local_day_across_a_transition_month(cli, daily, tz):
    # A tick every 6 hours through the month of each zone's transitions.
    launch = "2024-10-01T00:00:00Z"
    daily(tz, "30 2 * * *", launch)
    now = parse_instant(launch)
    end = parse_instant("2024-11-01T00:00:00Z")
    while now <= end:
        tick_fired(cli, iso_z(now))
        now += timedelta(hours=6)
    days = [parse_instant(t).astimezone(ZoneInfo(tz)).date() for t in run_times(cli)]
    assert len(days) == len(set(days)) == 31
