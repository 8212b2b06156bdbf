"""`stale_after` on a scenario send step: a message not handed over within the deadline after its
profile reached the step is cancelled as `stale` (logged once per step and tick, shown per step by
describe scenario); one still within it goes. On both stores."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

WELCOME = """\
kind: Scenario
name: welcome
reentry: once
launch: {type: manual}
steps:
  - id: hello
    send: {subject: "Hi", body: "Hello", stale_after: 1h}
  - id: later
    wait: 1d
  - id: again
    send: {subject: "Still there?", body: "Hello again"}
"""


def _sent(scn) -> list[tuple[str, str]]:
    return sorted((r["step"], r["contact"]) for r in scn.rows(
        "SELECT step, contact FROM outbox WHERE scenario IS NOT NULL"))


def test_a_scenario_message_past_its_deadline_is_cancelled_as_stale(scn):
    scn.contacts({"id": "ann"}, {"id": "bob"}, {"id": "cid"})
    scn.apply(WELCOME)
    scn.activate("welcome")
    scn.ok("start", "scenario", "welcome", "--all", "--yes", "--now", at())
    scn.ok("tick", "--max-messages", "1", "--now", at(td(minutes=1)))
    assert len(_sent(scn)) == 1
    scn.tick(at(td(hours=3)))  # the host was down: the other two are stale
    assert len(_sent(scn)) == 1
    items = scn.rows("SELECT status, last_error FROM queue_items WHERE status <> 'sent'")
    assert items == [{"status": "cancelled", "last_error": "stale"}] * 2
    log = scn.rows("SELECT scenario, details FROM exec_log"
                   " WHERE event = 'Stale Messages Cancelled'")
    assert len(log) == 1 and log[0]["scenario"] == "welcome"
    assert log[0]["details"].startswith("step hello: 2 messages queued before"), log
    described = scn.ok("describe", "scenario", "welcome", "-o", "json",
                       "--now", at(td(hours=3))).json
    steps = {s["step"]: s for s in described["steps"]}
    assert (steps["hello"]["sent"], steps["hello"]["stale"]) == (1, 2)
    # The journey goes on: a step without stale_after sends a day later, however late.
    scn.tick(at(td(days=3)))
    assert [c for step, c in _sent(scn) if step == "again"] == ["ann", "bob", "cid"]


def test_a_scenario_message_within_its_deadline_goes(scn):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(WELCOME)
    scn.activate("welcome")
    scn.ok("start", "scenario", "welcome", "--all", "--yes", "--now", at())
    scn.ok("tick", "--max-messages", "1", "--now", at(td(minutes=1)))
    scn.tick(at(td(minutes=50)))
    assert [c for step, c in _sent(scn) if step == "hello"] == ["ann", "bob"]
    assert scn.rows("SELECT count(*) AS n FROM queue_items WHERE last_error = 'stale'") == [
        {"n": 0}]
