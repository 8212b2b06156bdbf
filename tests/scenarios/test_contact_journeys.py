"""`contacts show ID` lists the contact's scenario journeys, recent messages and runs."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

DEFS = """\
kind: Scenario
name: onboarding
launch: {type: event, event: signed_up}
steps:
  - id: welcome
    send: {subject: "Hi {{ event.plan }}", body: "Welcome"}
  - id: pause
    wait: 3d
  - id: nudge
    send: {subject: "Still there?", body: "..."}
---
kind: Campaign
name: spring
timezone: UTC
closes_at: 2027-06-30T23:59
type: one-off
message: {subject: "Spring", body: "Hello"}
audience: {all: true}
schedule: {queue: immediately, send: immediately}
"""


def test_contact_show_lists_journeys_messages_and_runs(scn):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(DEFS)
    scn.activate("onboarding")
    for verb in ("submit", "approve", "start"):
        scn.ok(verb, "campaign", "spring", "--now", at())
    scn.ok("events", "emit", "signed_up", "--contact", "ann", "--data", '{"plan": "pro"}',
           "--now", at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))

    shown = scn.ok("contacts", "show", "ann", "-o", "json", "--now", at(td(minutes=3))).json
    assert shown["id"] == "ann"
    [journey] = shown["journeys"]
    assert (journey["scenario"], journey["step"], journey["status"]) == \
        ("onboarding", "pause", "waiting")
    assert journey["wake_at"] == at(td(days=3, minutes=2))
    assert journey["data"] == {"plan": "pro"}
    assert {(m["campaign"], m["scenario"], m["status"]) for m in shown["recent_messages"]} == \
        {("spring", None, "sent"), (None, "onboarding", "sent")}
    assert [(r["campaign"], r["message_status"]) for r in shown["runs"]] == [("spring", "sent")]

    other = scn.ok("contacts", "show", "bob", "-o", "json").json
    assert other["journeys"] == [] and len(other["recent_messages"]) == 1
    table = scn.ok("contacts", "show", "ann", "--now", at(td(minutes=3))).stdout
    assert "scenario journeys" in table and "onboarding" in table and "pause" in table
    assert scn.cli("contacts", "show", "nobody").exit_code == 3
