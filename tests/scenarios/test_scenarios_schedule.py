"""Scheduled capture: the segment (with limit_percent) recomputed at each cron occurrence, catch-up
recorded, and nothing after deactivate_after."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

DEFS = """\
kind: Segment
name: premium-half
rules:
  - {attr: plan, op: eq, value: premium}
limit_percent: 50
---
kind: Scenario
name: term-ending
reentry: after_exit
launch:
  type: schedule
  cron: "0 10 * * *"
  timezone: Europe/Paris
  audience: {segment: premium-half}
  deactivate_after: "2027-03-03T12:00"
steps:
  - id: remind
    send: {subject: "Your term ends", body: "Renew now"}
"""


def _captured(scn, scheduled_at: str) -> set[str]:
    occurrence = scn.rows("SELECT id FROM occurrences WHERE kind = 'Scenario' AND "
                          "scheduled_at = ?", (scheduled_at,))[0]["id"]
    return {r["contact"] for r in scn.rows(
        "SELECT c.external_id AS contact FROM scenario_profiles p JOIN contacts c "
        "ON c.id = p.contact_id WHERE p.capture_key = ?", (f"o:{occurrence}",))}


def test_schedule_capture_with_limit_percent_and_deactivate_after(scn):
    premium = [{"id": f"p{i:02d}", "plan": "premium"} for i in range(40)]
    basic = [{"id": f"b{i:02d}", "plan": "basic"} for i in range(10)]
    scn.contacts(*premium, *basic)
    scn.apply(DEFS, now=at(-td(hours=1)))
    scn.activate("term-ending", now=at(-td(hours=1)))

    # 10:00 Paris on 1 March is 09:00Z.
    scn.tick(at())
    first = _captured(scn, at())
    assert 5 <= len(first) <= 35 and all(c.startswith("p") for c in first)
    scn.tick(at())  # the same occurrence never fires twice
    assert len(scn.profiles("term-ending")) == len(first)
    assert {m[0] for m in scn.messages("term-ending")} == first

    # Nothing ticks on 2 March: that occurrence is skipped (catch-up latest), 3 March fires.
    scn.tick(at(td(days=2, minutes=5)))
    occurrences = scn.rows("SELECT scheduled_at, status, reason FROM occurrences "
                           "WHERE kind = 'Scenario' ORDER BY scheduled_at")
    assert [(o["scheduled_at"], o["status"]) for o in occurrences] == [
        (at(), "fired"), (at(td(days=1)), "skipped"), (at(td(days=2)), "fired")]
    assert "catchup" in occurrences[1]["reason"]
    skipped = scn.rows("SELECT scenario, details FROM exec_log WHERE event = 'Occurrence Skipped'")
    assert skipped and skipped[0]["scenario"] == "term-ending"
    third = _captured(scn, at(td(days=2)))
    assert 5 <= len(third) <= 35 and all(c.startswith("p") for c in third)
    # the sample is per occurrence: recomputed, not a copy of the first one
    assert third != first

    # After deactivate_after (3 March 12:00 Paris) no occurrence fires, however long we tick.
    before = len(scn.profiles("term-ending"))
    for day in (3, 4, 10):
        scn.tick(at(td(days=day, minutes=1)))
    assert len(scn.profiles("term-ending")) == before
    assert len(scn.rows("SELECT 1 FROM occurrences WHERE kind = 'Scenario'")) == 3
    state = scn.rows("SELECT next_due_at FROM schedule_state WHERE kind = 'Scenario'")
    assert state == [{"next_due_at": None}]
    stats = scn.stats("term-ending", at(td(days=10)), since="30d")
    assert stats["entered"] == len(first) + len(third) == stats["completed"]
