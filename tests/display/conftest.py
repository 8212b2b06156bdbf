"""A state file with objects in three zones: Paris and New York campaigns, a Tokyo scenario."""

from __future__ import annotations

import re

import pytest

T0 = "2027-03-01T09:00:00Z"  # 10:00 CET, 04:00 EST, 18:00 JST
T1 = "2027-03-02T09:00:00Z"  # the scenario's first capture
UTC_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z")

DEFINITIONS = """\
kind: Campaign
name: paris
timezone: Europe/Paris
audience: {all: true}
message: {subject: "Bonjour {{ id }}", body: "x"}
type: one-off
schedule: {send: immediately}
---
kind: Campaign
name: newyork
timezone: America/New_York
audience: {all: true}
message: {subject: "Hello {{ id }}", body: "x"}
type: one-off
schedule: {send: immediately}
---
kind: Scenario
name: tokyo
reentry: once
launch: {type: schedule, cron: "0 18 * * *", timezone: Asia/Tokyo, audience: {all: true}}
steps:
  - id: hello
    send: {subject: "Konnichiwa", body: "x"}
  - id: later
    wait: 1w
"""


@pytest.fixture
def zoned(cli, write_yaml, tmp_path):
    """Three contacts; both campaigns launched at T0, the New York run stopped after one
    message (a notification), Paris sent; the scenario captured and sent at T1."""
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\nc1,c1@example.org\nc2,c2@example.org\nc3,c3@example.org\n")

    def ok(*args: str) -> None:
        result = cli("--now", T0, *args)
        assert result.exit_code == 0, result

    ok("contacts", "import", str(csv))
    ok("apply", str(write_yaml("defs.yaml", DEFINITIONS)))
    for name in ("paris", "newyork"):
        for verb in ("submit", "approve", "start"):
            ok(verb, "campaign", name)
    ok("activate", "scenario", "tokyo")
    ok("tick", "--max-messages", "1")
    ok("stop", "run", "1", "--note", "wrong audience")
    ok("tick")
    result = cli("--now", T1, "tick")
    assert result.exit_code == 0, result
    return ok
