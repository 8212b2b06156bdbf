"""`preview scenario` and the next occurrence of `status` end at `deactivate_after`."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

DEFS = """\
kind: Scenario
name: term-ending
launch:
  type: schedule
  cron: "0 10 * * *"
  timezone: Europe/Paris
  audience: {all: true}
  deactivate_after: "2027-03-03T12:00"
steps:
  - id: remind
    send: {subject: "Your term ends", body: "Renew now"}
"""


def test_preview_stops_at_deactivate_after(scn):
    scn.contacts({"id": "a"})
    scn.apply(DEFS, now=at(-td(hours=1)))
    moments = scn.ok("preview", "scenario", "term-ending", "--next", "10", "-o", "json",
                     "--now", at(-td(hours=1))).json
    # 1, 2 and 3 March at 10:00 Paris; 4 March is after the schedule's end.
    assert [m["utc"] for m in moments] == [at(), at(td(days=1)), at(td(days=2))]
    after_end = scn.ok("preview", "scenario", "term-ending", "-o", "json",
                       "--now", at(td(days=3))).json
    assert after_end == []


def test_status_next_occurrence_stops_at_deactivate_after(scn):
    scn.contacts({"id": "a"})
    scn.apply(DEFS, now=at(-td(hours=1)))
    # Activated after the last occurrence before the end: nothing is due any more.
    scn.activate("term-ending", now=at(td(days=2, hours=1)))
    status = scn.ok("status", "-o", "json", "--now", at(td(days=2, hours=1))).json
    assert [o for o in status["next_occurrences"] if o["name"] == "term-ending"] == []
    scn.deactivate("term-ending", now=at(td(days=2, hours=2)))
    scn.activate("term-ending", now=at(-td(hours=1)))
    status = scn.ok("status", "-o", "json", "--now", at(-td(hours=1))).json
    assert [o["next_due_at"] for o in status["next_occurrences"]
            if o["name"] == "term-ending"] == [at()]
