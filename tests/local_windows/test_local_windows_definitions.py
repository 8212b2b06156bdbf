"""`schedule.window_timezone` in definitions: it needs `schedule.window` (CC312, with its line
and column), takes `contact` or `campaign`, and is in the JSON Schema and the stored spec."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.store_agnostic

CAMPAIGN = """\
kind: Campaign
name: local
type: {ctype}
message: {{subject: "Hi", body: "Hello"}}
audience: {{all: true}}
schedule:
{schedule}"""


@pytest.mark.parametrize("ctype, schedule", [
    ("one-off", "  send: immediately\n  window_timezone: contact\n"),
    ("date-triggered", "  cron: \"0 9 * * *\"\n  window_timezone: contact\n"),
    ("event-triggered", "  window_timezone: contact\n"),
])
def test_window_timezone_without_a_window_is_an_error_at_its_line(cli, write_yaml, ctype,
                                                                   schedule):
    extra = "trigger: {event: signup}\n" if ctype == "event-triggered" else ""
    path = write_yaml("c.yaml", CAMPAIGN.format(ctype=ctype, schedule=schedule) + extra)
    result = cli("validate", "--format", "json", str(path))
    assert result.exit_code == 1, result
    (error,) = result.json["errors"]
    line = 1 + CAMPAIGN.format(ctype=ctype, schedule=schedule).splitlines().index(
        "  window_timezone: contact")
    assert (error["code"], error["line"], error["col"]) == ("CC312", line, 20)
    assert "schedule.window_timezone needs schedule.window" in error["message"]


def test_window_timezone_values(cli, write_yaml):
    def text(value: str) -> str:
        return CAMPAIGN.format(ctype="one-off", schedule="  send: immediately\n"
                               f"  window: \"09:00-17:00\"\n  window_timezone: {value}\n")

    for value in ("contact", "campaign"):
        path = write_yaml(f"{value}.yaml", text(value))
        assert cli("validate", str(path)).exit_code == 0, value
    path = write_yaml("bad.yaml", text("recipient"))
    result = cli("validate", "--format", "json", str(path))
    (error,) = result.json["errors"]
    assert error["code"] == "CC108" and "contact, campaign" in error["message"]


def test_schema_describes_window_timezone(cli):
    schema = cli("schema").json
    text = str(schema["$defs"]["Campaign"])
    assert "window_timezone" in text and "'contact'" in text
