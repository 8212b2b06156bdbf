"""History is history: clear and remove-profile never change past statistics or launch results;
`stats.entered` counts every entry, restart re-entries included."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

JOURNEY = """\
kind: Scenario
name: journey
reentry: {mode}
launch: {launch}
steps:
  - id: hello
    send: {{subject: "Hi", body: "Hello"}}
  - id: later
    wait: 1d
"""

FIVE = ({"id": "ann"}, {"id": "bob"}, {"id": "cid"}, {"id": "dan"}, {"id": "eve"})


def _setup(scn, mode="once", launch="{type: manual}"):
    scn.contacts(*FIVE)
    scn.apply(JOURNEY.format(mode=mode, launch=launch))
    scn.activate("journey")


def _results(scn) -> list[dict]:
    keys = ("id", "targeted", "success", "failure", "abandoned", "other", "inside")
    return [{k: row[k] for k in keys} for row in scn.launches()]


def test_clear_keeps_past_statistics_and_launch_results(scn):
    _setup(scn)
    scn.ok("start", "scenario", "journey", "--all", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    scn.tick(at(td(days=1, minutes=1)))  # all five complete
    stats = scn.stats("journey", at(td(days=1, minutes=2)))
    assert (stats["entered"], stats["completed"]) == (5, 5)
    results = _results(scn)
    assert results == [{"id": 1, "targeted": 5, "success": 5, "failure": 0, "abandoned": 0,
                        "other": 0, "inside": 0}]
    scn.ok("clear", "scenario", "journey", "--now", at(td(days=1, minutes=3)))
    again = scn.stats("journey", at(td(days=1, minutes=2)))
    assert again == stats
    assert _results(scn) == results
    assert scn.profiles("journey") == []
    # Cleared `once` contacts may enter again: a new entry, counted on top of the old ones.
    scn.ok("start", "scenario", "journey", "--contact", "ann", "--yes",
           "--now", at(td(days=1, minutes=5)))
    assert scn.stats("journey", at(td(days=1, minutes=6)))["entered"] == 6
    assert [p["contact"] for p in scn.profiles("journey")] == ["ann"]


def test_a_stopped_launch_stays_abandoned_after_clear(scn):
    _setup(scn)
    scn.ok("start", "scenario", "journey", "--contact", "ann", "--yes", "--now", at())
    scn.ok("start", "scenario", "journey", "--contact", "bob", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    scn.ok("stop", "launch", "2", "--now", at(td(minutes=2)))
    before = _results(scn)
    assert [(r["abandoned"], r["other"], r["inside"]) for r in before] == [(0, 0, 1), (1, 0, 0)]
    scn.ok("clear", "scenario", "journey", "--now", at(td(minutes=3)))
    after = _results(scn)
    assert after[1] == before[1]
    # A profile still inside when cleared leaves its launch as abandoned, not "not entered".
    assert (after[0]["abandoned"], after[0]["other"], after[0]["inside"]) == (1, 0, 0)
    assert scn.stats("journey", at(td(minutes=4)))["entered"] == 2


def test_remove_profile_keeps_statistics_and_counts_the_profile_abandoned(scn):
    _setup(scn)
    scn.ok("start", "scenario", "journey", "--all", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    scn.ok("remove-profile", "scenario", "journey", "bob", "--now", at(td(minutes=2)))
    scn.tick(at(td(days=1, minutes=1)))
    stats = scn.stats("journey", at(td(days=1, minutes=2)))
    assert (stats["entered"], stats["completed"], stats["active"]) == (5, 4, 0)
    assert _results(scn) == [{"id": 1, "targeted": 5, "success": 4, "failure": 0,
                              "abandoned": 1, "other": 0, "inside": 0}]
    assert "bob" not in [p["contact"] for p in scn.profiles("journey")]
    # The removed profile's first message went out before the removal and stays counted.
    sent = scn.rows("SELECT count(*) AS n FROM queue_items WHERE status = 'sent'")[0]["n"]
    assert sent == 5


def test_entered_counts_restart_reentries(scn):
    _setup(scn, mode="restart", launch="{type: event, event: poke}")
    scn.event("poke", "ann", at())
    scn.tick(at(td(minutes=1)))
    scn.event("poke", "ann", at(td(hours=2)))
    scn.tick(at(td(hours=2, minutes=1)))
    profiles = scn.profiles("journey", now=at(td(hours=3)))
    assert len(profiles) == 1 and profiles[0]["entered_at"] == at(td(hours=2, minutes=1))
    assert scn.stats("journey", at(td(hours=3)))["entered"] == 2
    # Only entries inside the period count: the first entry is older than 1h.
    assert scn.stats("journey", at(td(hours=3)), since="1h")["entered"] == 1


def test_a_manual_launch_keeps_the_operators_note_in_the_execution_log(scn):
    _setup(scn)
    scn.ok("start", "scenario", "journey", "--contact", "ann", "--yes", "--now", at(),
           "--note", "ticket 4411: ann asked again")
    entries = scn.ok("-o", "json", "log", "--scenario", "journey").json
    created = [e for e in entries if e["event"] == "Launch Created"]
    assert len(created) == 1 and "note: ticket 4411: ann asked again" in created[0]["details"]
