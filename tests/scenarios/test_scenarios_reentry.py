"""Re-entry modes: the same contact captured three times at different points of its journey."""

from __future__ import annotations

from datetime import timedelta as td

import pytest
from scenario_support import at

TWO_SENDS = """\
kind: Scenario
name: drip
reentry: {mode}
launch: {{type: event, event: poke}}
steps:
  - id: a
    send: {{subject: "A", body: "first"}}
  - id: w1
    wait: 1d
  - id: b
    send: {{subject: "B", body: "second"}}
  - id: w2
    wait: 1d
"""

# Captures: at entry (T0), while waiting after b (1d1h), and after the first journey ended (5d).
CAPTURES = {td(0), td(days=1, hours=1), td(days=5)}
TICKS = [td(0), td(days=1), td(days=1, hours=1), td(days=2), td(days=2, hours=1),
         td(days=3, hours=1), td(days=5), td(days=6), td(days=7)]

EXPECTED = {
    # mode: (messages as (step, offset), profiles as (status, entered offset, exited offset))
    "once": (
        [("a", td(0)), ("b", td(days=1))],
        [("completed", td(0), td(days=2))],
    ),
    "after_exit": (
        [("a", td(0)), ("b", td(days=1)), ("a", td(days=5)), ("b", td(days=6))],
        [("completed", td(0), td(days=2)), ("completed", td(days=5), td(days=7))],
    ),
    "restart": (
        # the second capture sends the profile back to a: a again, and b a day after that
        [("a", td(0)), ("b", td(days=1)), ("a", td(days=1, hours=1)),
         ("b", td(days=2, hours=1)), ("a", td(days=5)), ("b", td(days=6))],
        [("completed", td(days=1, hours=1), td(days=3, hours=1)),
         ("completed", td(days=5), td(days=7))],
    ),
    "parallel": (
        [("a", td(0)), ("b", td(days=1)), ("a", td(days=1, hours=1)),
         ("b", td(days=2, hours=1)), ("a", td(days=5)), ("b", td(days=6))],
        [("completed", td(0), td(days=2)),
         ("completed", td(days=1, hours=1), td(days=3, hours=1)),
         ("completed", td(days=5), td(days=7))],
    ),
}


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_reentry_mode_with_three_captures(scn, mode):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(TWO_SENDS.format(mode=mode), now=at(-td(hours=1)))
    scn.activate("drip", now=at(-td(hours=1)))
    for offset in TICKS:
        if offset in CAPTURES:
            scn.event("poke", "ann", at(offset))
        scn.tick(at(offset))
        if offset == td(days=1, hours=1):
            # positions right after the second capture
            inside = [(p["step"], p["status"]) for p in scn.profiles("drip", now=at(offset))
                      if p["status"] in ("active", "waiting")]
            assert inside == {"once": [("w2", "waiting")], "after_exit": [("w2", "waiting")],
                              "restart": [("w1", "waiting")],
                              "parallel": [("w2", "waiting"), ("w1", "waiting")]}[mode]
    messages, profiles = EXPECTED[mode]
    assert [(m[0], m[1], m[2]) for m in scn.messages("drip")] == [
        ("ann", step, at(offset)) for step, offset in messages]
    got = [(p["status"], p["entered_at"], p["exited_at"]) for p in scn.profiles("drip")]
    assert got == [(status, at(entered), at(exited)) for status, entered, exited in profiles]
    # bob was never captured; every message id is distinct
    assert all(p["contact"] == "ann" for p in scn.profiles("drip"))
    ids = [r["message_id"] for r in scn.rows("SELECT message_id FROM queue_items")]
    assert len(set(ids)) == len(messages)
