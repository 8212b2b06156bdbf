"""A journey with a wait and a branch driven through time: paths, message times, stats, steps."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at
from store_support import execute_sql

JOURNEY = """\
kind: Scenario
name: onboarding
reentry: once
launch: {type: event, event: signed_up}
steps:
  - id: welcome
    send: {message_type: transactional, subject: "Welcome {{ first_name }}", body: "Hi"}
  - id: pause-3d
    wait: 3d
  - id: bought
    if: {event: purchased, within: 3d}
    then: thanks
    else: nudge
  - id: nudge
    send: {subject: "Still thinking?", body: "Come back"}
    next: end
  - id: thanks
    send: {subject: "Thanks", body: "Enjoy"}
"""


def test_journey_through_time_takes_each_path(scn):
    scn.contacts({"id": "ann", "first_name": "Ann"}, {"id": "bob", "first_name": "Bob"},
                 {"id": "cid", "first_name": "Cid"}, {"id": "dan", "first_name": "Dan"})
    scn.apply(JOURNEY)
    scn.activate("onboarding")
    # An event before activation is not captured.
    scn.tick(at())
    scn.event("signed_up", "ann", at(td(minutes=1)))
    scn.event("signed_up", "bob", at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))

    assert scn.messages("onboarding") == [
        ("ann", "welcome", at(td(minutes=2)), scn.messages("onboarding")[0][3]),
        ("bob", "welcome", at(td(minutes=2)), scn.messages("onboarding")[1][3]),
    ]
    profiles = scn.profiles("onboarding")
    assert [(p["contact"], p["step"], p["status"], p["wake_at"]) for p in profiles] == [
        ("ann", "pause-3d", "waiting", at(td(days=3, minutes=2))),
        ("bob", "pause-3d", "waiting", at(td(days=3, minutes=2))),
    ]
    stats = scn.stats("onboarding", at(td(minutes=2)))
    assert stats["entered"] == 2 and stats["completed"] == 0 and stats["errors"] == 0
    assert stats["active"] == 2 and stats["by_step"] == {"pause-3d": 2}

    # Day 1: ann buys, cid signs up; dan bought something but never signed up.
    scn.event("purchased", "ann", at(td(days=1)))
    scn.event("purchased", "dan", at(td(days=1)))
    scn.event("signed_up", "cid", at(td(days=1)))
    scn.tick(at(td(days=1, minutes=1)))
    assert [m[:3] for m in scn.messages("onboarding")][2:] == [
        ("cid", "welcome", at(td(days=1, minutes=1)))]
    # Nothing wakes early, ticking again at the same time changes nothing.
    before = scn.rows("SELECT * FROM scenario_profiles ORDER BY id")
    scn.tick(at(td(days=1, minutes=1)))
    scn.tick(at(td(days=3, minutes=1)))
    assert scn.rows("SELECT * FROM scenario_profiles ORDER BY id") == before

    # Day 3: ann and bob wake; ann bought within 3d → thanks, bob did not → nudge.
    scn.tick(at(td(days=3, minutes=2)))
    assert sorted(m[:3] for m in scn.messages("onboarding")[3:]) == [
        ("ann", "thanks", at(td(days=3, minutes=2))),
        ("bob", "nudge", at(td(days=3, minutes=2))),
    ]
    by_contact = {p["contact"]: p for p in scn.profiles("onboarding")}
    assert by_contact["ann"]["status"] == "completed" and by_contact["ann"]["step"] == "thanks"
    assert by_contact["bob"]["status"] == "completed" and by_contact["bob"]["step"] == "nudge"
    assert by_contact["ann"]["exited_at"] == at(td(days=3, minutes=2))
    assert by_contact["cid"]["status"] == "waiting"
    assert scn.profiles("onboarding", "--step", "pause-3d") == [by_contact["cid"]]
    stats = scn.stats("onboarding", at(td(days=3, minutes=2)))
    assert (stats["entered"], stats["completed"], stats["errors"], stats["active"]) == (3, 2, 0, 1)
    assert stats["by_step"] == {"pause-3d": 1}
    # A shorter period counts only what happened in it.
    recent = scn.stats("onboarding", at(td(days=3, minutes=2)), since="1d")
    assert (recent["entered"], recent["completed"]) == (0, 2)

    # Day 4: cid wakes with no purchase → nudge; the scenario is empty.
    scn.tick(at(td(days=4, minutes=1)))
    assert [m[:3] for m in scn.messages("onboarding")][5:] == [
        ("cid", "nudge", at(td(days=4, minutes=1)))]
    stats = scn.stats("onboarding", at(td(days=4, minutes=1)))
    assert (stats["entered"], stats["completed"], stats["active"], stats["by_step"]) == (
        3, 3, 0, {})
    # Message ids are unique and deterministic per (profile, step, visit).
    ids = [r["message_id"] for r in scn.rows("SELECT message_id FROM queue_items")]
    assert len(ids) == len(set(ids)) == 6


def test_purchase_before_entry_does_not_count(scn):
    scn.contacts({"id": "ann", "first_name": "Ann"})
    scn.apply(JOURNEY)
    scn.activate("onboarding")
    scn.tick(at())
    scn.event("purchased", "ann", at(td(minutes=1)))
    scn.event("signed_up", "ann", at(td(minutes=2)))
    scn.tick(at(td(minutes=2)))
    scn.tick(at(td(days=3, minutes=2)))
    assert [m[1] for m in scn.messages("onboarding")] == ["welcome", "nudge"]


def test_describe_shows_profiles_per_step(scn):
    scn.contacts({"id": "ann", "first_name": "Ann"}, {"id": "bob", "first_name": "Bob"})
    scn.apply(JOURNEY)
    scn.activate("onboarding")
    scn.tick(at())
    scn.event("signed_up", "ann", at(td(minutes=1)))
    scn.event("signed_up", "bob", at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))
    described = scn.ok("describe", "scenario", "onboarding", "-o", "json").json
    steps = {row["step"]: row for row in described["steps"]}
    assert list(steps) == ["welcome", "pause-3d", "bought", "nudge", "thanks"]
    assert steps["pause-3d"]["waiting"] == 2 and steps["welcome"]["active"] == 0
    assert steps["bought"]["next"] == "then thanks / else nudge"
    table = scn.ok("describe", "scenario", "onboarding").stdout
    assert "pause-3d" in table and "2 inside" in table


def test_loop_without_wait_is_refused_and_never_spins(scn, state):
    """`apply` rejects such loops; a spec that slipped past it must still not spin in a tick."""
    import json

    scn.contacts({"id": "ann"})
    spec = {"launch": {"type": "manual"}, "steps": [
        {"id": "a", "send": {"subject": "x", "body": "y"}},
        {"id": "b", "if": {"event": "never", "within": "1d"}, "then": "a", "else": "a"}]}
    execute_sql(state, "INSERT INTO objects (kind, name, version, spec, status, created_at, "
                "updated_at) VALUES ('Scenario', 'spin', 1, ?, 'active', ?, ?)",
                (json.dumps(spec), at(), at()))
    execute_sql(state, "INSERT INTO scenario_profiles (scenario, contact_id, step, status, "
                "entered_at, updated_at) VALUES ('spin', 1, 'a', 'active', ?, ?)", (at(), at()))
    result = scn.cli("start", "scenario", "spin", "--all", "--yes")
    assert result.exit_code == 1, result
    assert "loop without a wait" in result.stderr
    assert scn.rows("SELECT count(*) AS n FROM scenario_launches")[0]["n"] == 0
    scn.tick(at(td(minutes=1)))
    profile = scn.profiles("spin")[0]
    assert profile["status"] == "error" and "loop" in profile["error"]
    assert scn.messages("spin") == []
    stats = scn.stats("spin", at(td(minutes=1)))
    assert stats["errors"] == 1 and stats["active"] == 0


def test_branch_on_contact_attributes(scn):
    scn.contacts({"id": "ann", "plan": "premium", "groups": ["vip"]},
                 {"id": "bob", "plan": "basic"}, {"id": "cid", "plan": "basic", "groups": ["vip"]})
    scn.apply("""\
        kind: Scenario
        name: tiers
        launch: {type: manual}
        steps:
          - id: which
            if: {rules: [{attr: plan, op: eq, value: premium}, {group: vip}], match: any}
            then: gold
            else: plain
          - id: gold
            send: {subject: "Gold", body: "for you"}
            next: end
          - id: plain
            send: {subject: "Plain", body: "for you"}
        """)
    scn.activate("tiers")
    scn.ok("start", "scenario", "tiers", "--all", "--yes")
    scn.tick(at(td(minutes=1)))
    assert sorted(m[:2] for m in scn.messages("tiers")) == [
        ("ann", "gold"), ("bob", "plain"), ("cid", "gold")]
    assert {p["status"] for p in scn.profiles("tiers")} == {"completed"}


def test_status_and_dry_run_show_scenarios(scn):
    scn.contacts({"id": "ann", "first_name": "Ann"}, {"id": "bob", "first_name": "Bob"})
    scn.apply(JOURNEY)
    scn.activate("onboarding")
    scn.tick(at())
    scn.event("signed_up", "ann", at(td(minutes=1)))
    scn.event("signed_up", "bob", at(td(minutes=1)))
    dry = scn.ok("tick", "--dry-run", "-o", "json", "--now", at(td(minutes=2))).json
    assert any("scenario onboarding" in note for note in dry["notes"])
    assert scn.profiles("onboarding") == []  # a dry run writes nothing
    scn.tick(at(td(minutes=2)))
    status = scn.ok("status", "-o", "json", "--now", at(td(minutes=3))).json
    row = next(s for s in status["scenarios"] if s["name"] == "onboarding")
    assert row["profiles_active"] == 2 and row["by_step"] == {"pause-3d": 2}
    assert "pause-3d: 2" in scn.ok("status", "--now", at(td(minutes=3))).stdout
