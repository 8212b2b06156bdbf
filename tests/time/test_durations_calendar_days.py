"""Durations in days and weeks are calendar days in the object's timezone ("same time
tomorrow"), across DST changes; seconds, minutes and hours are elapsed time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campctl.timeutil import parse_duration, shift


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.mark.parametrize(("start", "duration", "expected"), [
    # Europe/Paris springs forward on 28 March 2027: 09:00 CET → 09:00 CEST is 23 h.
    ("2027-03-27T08:00:00Z", "1d", "2027-03-28T07:00:00Z"),
    ("2027-03-27T08:00:00Z", "24h", "2027-03-28T08:00:00Z"),
    ("2027-03-24T08:00:00Z", "1w", "2027-03-31T07:00:00Z"),
    # Falls back on 31 October 2027: 09:00 CEST → 09:00 CET is 25 h.
    ("2027-10-30T07:00:00Z", "1d", "2027-10-31T08:00:00Z"),
    ("2027-10-30T07:00:00Z", "2d", "2027-11-01T08:00:00Z"),
    # 02:30 does not exist on 28 March: the first instant after the gap (03:00 CEST).
    ("2027-03-27T01:30:00Z", "1d", "2027-03-28T01:00:00Z"),
    # 02:30 happens twice on 31 October: the first reading (CEST).
    ("2027-10-30T00:30:00Z", "1d", "2027-10-31T00:30:00Z"),
    ("2027-03-27T08:00:00Z", "90m", "2027-03-27T09:30:00Z"),
])
def test_shift_forward_in_paris(start, duration, expected):
    assert shift(_utc(start), duration, "Europe/Paris") == _utc(expected)


def test_shift_back_and_utc():
    # A send at 09:00 CEST on 28 March, built one day before: 09:00 CET on the 27th.
    assert shift(_utc("2027-03-28T07:00:00Z"), "1d", "Europe/Paris", back=True) == \
        _utc("2027-03-27T08:00:00Z")
    # In UTC a day is always 24 h.
    assert shift(_utc("2027-03-27T08:00:00Z"), "1d", "UTC") == _utc("2027-03-28T08:00:00Z")


def test_look_backs_stay_elapsed_time():
    assert parse_duration("1d").total_seconds() == 86400
    assert parse_duration("1w").total_seconds() == 7 * 86400


@pytest.mark.parametrize("text", ["99999999w", "99999999999999999999999d", "3661d"])
def test_absurd_durations_are_refused_not_crashed(text):
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)
    with pytest.raises(ValueError, match="too long"):
        shift(_utc("2027-03-27T08:00:00Z"), text, "Europe/Paris")


def test_validate_names_a_duration_that_is_too_long(cli, write_yaml):
    path = write_yaml("s.yaml", "kind: Scenario\nname: s\nlaunch: {type: manual}\n"
                                "steps:\n  - {id: a, wait: 99999999999999999999w}\n")
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    assert "is too long: at most 3650d" in result.stdout + result.stderr
    assert "internal error" not in result.stderr


SCENARIO = """\
kind: Scenario
name: nudge
timezone: Europe/Paris
launch: {type: manual}
steps:
  - id: wait-a-day
    wait: 1d
  - id: reminder
    send: {subject: "Reminder", body: "Hello {{ first_name }}"}
"""


def test_scenario_wait_1d_is_the_same_local_time_tomorrow(cli, write_yaml, rows, tmp_path):
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email,first_name\nann,ann@example.org,Ann\n")
    now = "2027-03-27T08:00:00Z"  # Saturday 09:00 in Paris, the day before DST starts
    for args in (("contacts", "import", str(csv)), ("apply", str(write_yaml("s.yaml", SCENARIO))),
                 ("activate", "scenario", "nudge"),
                 ("start", "scenario", "nudge", "--all", "--yes"), ("tick",)):
        result = cli("--now", now, *args)
        assert result.exit_code == 0, (args, result)
    wake = rows("SELECT wake_at FROM scenario_profiles WHERE scenario = 'nudge'")
    assert wake == [{"wake_at": "2027-03-28T07:00:00Z"}]  # Sunday 09:00 CEST, 23 h later
    assert cli("--now", "2027-03-28T06:59:00Z", "tick").exit_code == 0
    assert rows("SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    assert cli("--now", "2027-03-28T07:00:00Z", "tick").exit_code == 0
    sent = rows("SELECT sent_at FROM outbox")
    assert sent == [{"sent_at": "2027-03-28T07:00:00Z"}]


def test_before_send_1d_counts_back_a_calendar_day(cli, write_yaml, tmp_path):
    text = """\
kind: Campaign
name: promo
timezone: Europe/Paris
audience: {all: true}
message: {subject: "Hi", body: "Hello"}
type: one-off
schedule:
  queue: {before_send: 1d}
  send: {at: "2027-03-28T09:00"}
"""
    now = "2027-03-20T08:00:00Z"
    for args in (("apply", str(write_yaml("c.yaml", text))), ("submit", "campaign", "promo"),
                 ("approve", "campaign", "promo")):
        assert cli("--now", now, *args).exit_code == 0, args
    result = cli("--now", now, "-o", "json", "preview", "campaign", "promo")
    assert result.exit_code == 0, result
    assert [(r["phase"], r["utc"]) for r in result.json] == [
        ("queue", "2027-03-27T08:00:00Z"),  # Saturday 09:00 CET
        ("send", "2027-03-28T07:00:00Z"),   # Sunday 09:00 CEST
    ]
