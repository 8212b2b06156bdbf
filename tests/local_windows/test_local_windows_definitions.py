"""`schedule.window_timezone` in definitions: it needs `schedule.window` (CC312, with its line
and column), takes `contact` or `campaign`, and is in the JSON Schema and the stored spec."""

from __future__ import annotations

from pathlib import Path

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


SCHEDULES = {
    "one-off": "  send: immediately\n  window_timezone: contact\n",
    "date-triggered": "  cron: \"0 9 * * *\"\n  window_timezone: contact\n",
    "event-triggered": "  window_timezone: contact\n",
}


def test_window_timezone_without_a_window_is_an_error_at_its_line(cli, write_yaml):
    expected = []
    for ctype, schedule in SCHEDULES.items():
        text = CAMPAIGN.format(ctype=ctype, schedule=schedule).replace(
            "name: local", f"name: {ctype}")
        extra = "trigger: {event: signup}\n" if ctype == "event-triggered" else ""
        write_yaml(f"{ctype}.yaml", text + extra)
        expected.append((f"{ctype}.yaml", text.splitlines().index("  window_timezone: contact")
                         + 1))
    result = cli("validate", "--format", "json", str(write_yaml.folder))
    assert result.exit_code == 1, result
    errors = result.json["errors"]
    assert sorted((Path(e["file"]).name, e["line"], e["col"], e["code"]) for e in errors) == [
        (name, line, 20, "CC312") for name, line in sorted(expected)]
    assert all("schedule.window_timezone needs schedule.window" in e["message"] for e in errors)


def test_window_timezone_values(cli, tmp_path):
    def text(name: str, value: str) -> str:
        return CAMPAIGN.format(ctype="one-off", schedule="  send: immediately\n"
                               f"  window: \"09:00-17:00\"\n  window_timezone: {value}\n"
                               ).replace("name: local", f"name: {name}")

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(text("a", "contact") + "---\n" + text("b", "campaign"))
    assert cli("validate", str(good)).exit_code == 0
    bad.write_text(text("c", "recipient"))
    result = cli("validate", "--format", "json", str(bad))
    (error,) = result.json["errors"]
    assert error["code"] == "CC108" and "contact, campaign" in error["message"]


def test_schema_describes_window_timezone(cli):
    schema = cli("schema").json
    text = str(schema["$defs"]["Campaign"])
    assert "window_timezone" in text and "'contact'" in text
