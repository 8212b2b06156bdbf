"""Event time counts: capture only events dated while the scenario is active, no event from the
future, `within` inclusive at its boundary in scenario `if` steps and segment rules alike."""

from __future__ import annotations

import json
from datetime import timedelta as td

from scenario_support import at

ON_SIGNUP = """\
kind: Scenario
name: welcome
reentry: parallel
launch: {type: event, event: signed_up}
steps:
  - id: hello
    send: {subject: "Hi", body: "Hello"}
"""

BRANCH = """\
kind: Scenario
name: nudge
launch: {type: manual}
steps:
  - id: pause
    wait: 1h
  - id: bought
    if: {event: purchased, within: 1h}
    then: thanks
    else: remind
  - id: remind
    send: {subject: "Still thinking?", body: "..."}
    next: end
  - id: thanks
    send: {subject: "Thanks", body: "..."}
"""

BUYERS = """\
kind: Segment
name: buyers
rules:
  - {event: purchased, within: 1h}
"""


def _import(scn, tmp_path, rows: list[dict], now: str):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # The exit code for rejected lines is the import's own matter (tested with it).
    return scn.cli("events", "import", str(path), "-o", "json", "--now", now).json


def _captured(scn) -> list[str]:
    return sorted(p["contact"] for p in scn.profiles("welcome"))


def test_an_old_imported_event_does_not_start_a_journey(scn, tmp_path):
    scn.contacts({"id": "ann"}, {"id": "bob"}, {"id": "cid"})
    scn.apply(ON_SIGNUP)
    scn.activate("welcome", now=at())
    report = _import(scn, tmp_path, [
        {"event": "signed_up", "contact": "ann", "at": at(-td(days=30))},
        {"event": "signed_up", "contact": "bob", "at": at(td(minutes=30))},
        {"event": "signed_up", "contact": "cid", "at": at(-td(seconds=1))},
    ], now=at(td(hours=1)))
    assert report["imported"] == 3
    scn.tick(at(td(hours=1)))
    assert _captured(scn) == ["bob"]


def test_an_event_dated_while_the_scenario_was_inactive_does_not_capture(scn, tmp_path):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(ON_SIGNUP)
    scn.activate("welcome", now=at())
    scn.deactivate("welcome", now=at(td(hours=1)))
    scn.activate("welcome", now=at(td(hours=3)))
    _import(scn, tmp_path, [
        {"event": "signed_up", "contact": "ann", "at": at(td(hours=2))},
        {"event": "signed_up", "contact": "bob", "at": at(td(hours=3))},  # the instant itself
    ], now=at(td(hours=4)))
    scn.tick(at(td(hours=4)))
    assert _captured(scn) == ["bob"]


def test_an_event_from_the_future_is_refused_with_its_line(scn, tmp_path):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(ON_SIGNUP)
    scn.activate("welcome", now=at())
    report = _import(scn, tmp_path, [
        {"event": "signed_up", "contact": "ann", "at": at(td(days=30))},
        {"event": "signed_up", "contact": "bob", "at": at(td(hours=1))},
    ], now=at(td(hours=1)))
    assert (report["imported"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["line"] == 1
    assert "future" in report["errors"][0]["reason"]
    assert [r["contact_id"] for r in scn.rows("SELECT contact_id FROM events")] == [2]
    scn.tick(at(td(hours=1)))
    scn.tick(at(td(days=31)))
    assert _captured(scn) == ["bob"]


def test_within_includes_its_boundary_in_scenarios_and_segments(scn):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(BRANCH)
    scn.apply(BUYERS)
    scn.activate("nudge")
    scn.ok("start", "scenario", "nudge", "--all", "--yes", "--now", at())
    scn.event("purchased", "ann", at())  # exactly 1h before the branch is taken
    scn.event("purchased", "bob", at(-td(seconds=1)))  # before bob entered: never counts
    scn.tick(at())
    scn.tick(at(td(hours=1)))
    sent = {(m[0], m[1]) for m in scn.messages("nudge")}
    assert sent == {("ann", "thanks"), ("bob", "remind")}
    count = scn.ok("segment", "count", "buyers", "--now", at(td(hours=1)))
    assert count.stdout.strip() == "1"
    later = scn.ok("segment", "count", "buyers", "--now", at(td(hours=1, seconds=1)))
    assert later.stdout.strip() == "0"
