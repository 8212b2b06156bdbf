"""Every numeric, duration, date and cron field of a definition is bounded at validation: one
located error line and exit 1, never a definition that fails later at every tick."""

from __future__ import annotations

import pytest

HUGE = "9" * 5000

CAMPAIGN = """kind: Campaign
name: {name}
type: date-triggered
timezone: UTC
closes_at: {closes_at}
audience: {{all: true}}
message: {{body: hi}}
schedule:
  cron: "{cron}"
"""
CHANNEL = """kind: Channel
name: mail
type: smtp
host: localhost
from: shop@example.com
port: {port}
max_attempts: {max_attempts}
timeout: {timeout}
rate: {rate}
"""
SEGMENT = """kind: Segment
name: seg
limit_percent: {limit}
rules:
  - {{attr: score, op: {op}, value: {value}}}
"""
SCENARIO = """kind: Scenario
name: loop
launch: {{type: schedule, cron: "{cron}", timezone: UTC, audience: {{all: true}}}}
steps:
  - id: ping
    send: {{body: hi}}
  - id: pause
    wait: {wait}
    next: {next}
"""
GOOD_CAMPAIGN = {"name": "c", "closes_at": "2027-06-01T00:00", "cron": "0 9 * * *"}
GOOD_CHANNEL = {"port": 25, "max_attempts": 3, "timeout": 10, "rate": "10/s"}
GOOD_SEGMENT = {"limit": 50, "op": "eq", "value": 1}
# A list is good for op in, and one value for op eq: each case starts from a valid document.
GOOD_SCENARIO = {"cron": "0 9 * * *", "wait": "1d", "next": "ping"}

CASES = [
    (CAMPAIGN, GOOD_CAMPAIGN, "closes_at", "0999-01-01T00:00", "year from 2000 to 2999"),
    (CAMPAIGN, GOOD_CAMPAIGN, "closes_at", "1999-12-31T23:59", "year from 2000 to 2999"),
    (CAMPAIGN, GOOD_CAMPAIGN, "closes_at", "3000-01-01T00:00", "year from 2000 to 2999"),
    (CAMPAIGN, GOOD_CAMPAIGN, "closes_at", "9999-12-31T23:59+01:00", "year from 2000 to 2999"),
    (CAMPAIGN, GOOD_CAMPAIGN, "cron", "*/99999 * * * *", "cron step /99999 in the minute"),
    (CAMPAIGN, GOOD_CAMPAIGN, "cron", "0 1-23/25 * * *", "in the hour field"),
    (CAMPAIGN, GOOD_CAMPAIGN, "cron", f"0 0 */{HUGE} * *", "day-of-month field"),
    (CAMPAIGN, GOOD_CAMPAIGN, "name", "12", "expected a name (a string), got '12'"),
    (CAMPAIGN, GOOD_CAMPAIGN, "name", "0755", "quote it"),
    (CAMPAIGN, GOOD_CAMPAIGN, "name", "true", "quote it"),
    (CHANNEL, GOOD_CHANNEL, "max_attempts", HUGE, "out of range"),
    (CHANNEL, GOOD_CHANNEL, "max_attempts", "99999999999999999999", "must be at most 100"),
    (CHANNEL, GOOD_CHANNEL, "port", "-" + HUGE, "out of range"),
    (CHANNEL, GOOD_CHANNEL, "timeout", "1e999", "out of range"),
    (CHANNEL, GOOD_CHANNEL, "rate", HUGE + "/s", "N from 1 to 999999"),
    (SEGMENT, GOOD_SEGMENT, "limit", "1e999", "out of range"),
    (SEGMENT, GOOD_SEGMENT, "value", "99999999999999999999", "out of range"),
    (SEGMENT, GOOD_SEGMENT, "value", "-1e999", "out of range"),
    (SEGMENT, {**GOOD_SEGMENT, "op": "in", "value": "[1]"}, "value", "[1, 99999999999999999999]",
     "out of range"),
    (SEGMENT, {**GOOD_SEGMENT, "op": "within_days"}, "value", "1000000000", "at most 36500"),
    (SCENARIO, GOOD_SCENARIO, "wait", "1000000w", "too long: at most 3650d"),
    (SCENARIO, GOOD_SCENARIO, "wait", HUGE + "s", "too long"),
    (SCENARIO, GOOD_SCENARIO, "wait", "0s", "positive duration"),
    (SCENARIO, GOOD_SCENARIO, "cron", "0 0 * */13 *", "month field"),
    (SCENARIO, GOOD_SCENARIO, "next", "12", "expected a name (a string)"),
]


@pytest.mark.parametrize(("template", "good", "key", "bad", "message"), CASES,
                         ids=[f"{c[2]}={c[3][:20]}" for c in CASES])
def test_an_out_of_bounds_value_is_one_located_error(cli, tmp_path, template, good, key, bad,
                                                      message):
    path = tmp_path / "defs.yaml"
    path.write_text(template.format(**good))
    fine = cli("validate", str(path))
    assert fine.exit_code == 0, fine
    path.write_text(template.format(**{**good, key: bad}))
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    assert message in result.stdout, result
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
    assert all(len(line) < 400 for line in result.stdout.splitlines()), result
    applied = cli("apply", str(path))
    assert applied.exit_code == 1 and "nothing was applied" in applied.stderr, applied


@pytest.mark.parametrize(("template", "values"), [
    (CAMPAIGN, {**GOOD_CAMPAIGN, "closes_at": "2999-12-31T23:59", "cron": "*/60 * * * 0/7"}),
    (CAMPAIGN, {**GOOD_CAMPAIGN, "closes_at": "2000-01-01T00:00"}),
    (CHANNEL, {"port": 65535, "max_attempts": 100, "timeout": 3600, "rate": "999999/s"}),
    (SEGMENT, {"limit": 100, "op": "eq", "value": str((1 << 63) - 1)}),
    (SEGMENT, {"limit": 100, "op": "older_than_days", "value": 36500}),
    (SCENARIO, {"cron": "0 */24 */31 */12 *", "wait": "3650d", "next": "ping"}),
    (SCENARIO, {"cron": "0 9 * * *", "wait": "0s", "next": "end"}),
])
def test_values_at_the_bounds_are_valid(cli, tmp_path, template, values):
    path = tmp_path / "defs.yaml"
    path.write_text(template.format(**values))
    result = cli("validate", str(path))
    assert result.exit_code == 0, result


def test_the_longest_wait_runs_through_ticks(cli, tmp_path):
    path = tmp_path / "journey.yaml"
    path.write_text(SCENARIO.format(cron="0 9 * * *", wait="3650d", next="ping")
                    .replace("type: schedule, cron: \"0 9 * * *\", timezone: UTC, "
                             "audience: {all: true}", "type: manual"))
    assert cli("apply", str(path)).exit_code == 0
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id,email\na,a@example.com\n")
    assert cli("contacts", "import", str(contacts)).exit_code == 0
    assert cli("activate", "scenario", "loop").exit_code == 0
    started = cli("start", "scenario", "loop", "--all", "--yes")
    assert started.exit_code == 0, started
    for now in ("2027-03-01T09:01:00Z", "2027-03-02T09:01:00Z", "2999-12-31T23:00:00Z"):
        ticked = cli("--now", now, "tick")
        assert ticked.exit_code == 0, ticked
