"""Activation: deactivate with and without keeping profiles, reactivation, clear, remove, clone."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

WAITER = """\
kind: Scenario
name: nurture
reentry: after_exit
keep_profiles_on_deactivate: {keep}
launch: {{type: event, event: joined}}
steps:
  - id: hello
    send: {{subject: "Hello", body: "hi"}}
  - id: wait-2d
    wait: 2d
  - id: follow-up
    send: {{subject: "Follow-up", body: "again"}}
"""


def _enter(scn, keep: str, *contacts: str):
    scn.contacts(*({"id": c} for c in ("ann", "bob", "cid")))
    scn.apply(WAITER.format(keep=keep))
    scn.activate("nurture")
    for contact in contacts:
        scn.event("joined", contact, at(td(minutes=1)))
    scn.tick(at(td(minutes=1)))


def test_deactivate_with_keep_freezes_and_reactivation_resumes(scn):
    _enter(scn, "true", "ann", "bob")
    scn.deactivate("nurture", at(td(days=1)))
    assert {(p["contact"], p["status"]) for p in scn.profiles("nurture")} == {
        ("ann", "frozen"), ("bob", "frozen")}
    # Frozen: the wait expires at day 2 but nothing moves, and no capture happens.
    scn.event("joined", "cid", at(td(days=2)))
    scn.tick(at(td(days=3)))
    assert [m[1] for m in scn.messages("nurture")] == ["hello", "hello"]
    assert scn.stats("nurture", at(td(days=3)))["by_step"] == {"wait-2d": 2}
    # Reactivated: the expired wait fires at the next tick; events while inactive are not caught.
    scn.activate("nurture", now=at(td(days=4)))
    assert {p["status"] for p in scn.profiles("nurture")} == {"waiting"}
    scn.tick(at(td(days=4, minutes=1)))
    assert [m[:3] for m in scn.messages("nurture")][2:] == [
        ("ann", "follow-up", at(td(days=4, minutes=1))),
        ("bob", "follow-up", at(td(days=4, minutes=1)))]
    assert {p["status"] for p in scn.profiles("nurture")} == {"completed"}
    assert "cid" not in {p["contact"] for p in scn.profiles("nurture")}


def test_deactivate_without_keep_exits_profiles(scn):
    _enter(scn, "false", "ann", "bob")
    scn.deactivate("nurture", at(td(days=1)))
    profiles = scn.profiles("nurture")
    assert {(p["contact"], p["status"], p["exited_at"]) for p in profiles} == {
        ("ann", "exited", at(td(days=1))), ("bob", "exited", at(td(days=1)))}
    # Messages not yet handed over are cancelled; none are queued any more.
    assert all(m[3] in ("sent", "cancelled") for m in scn.messages("nurture"))
    scn.activate("nurture", now=at(td(days=2)))
    scn.tick(at(td(days=5)))
    assert [m[1] for m in scn.messages("nurture")] == ["hello", "hello"]
    stats = scn.stats("nurture", at(td(days=5)))
    assert stats["active"] == 0 and stats["by_step"] == {}
    # after_exit: a contact that exited can be captured again.
    scn.event("joined", "ann", at(td(days=5, minutes=1)))
    scn.tick(at(td(days=5, minutes=2)))
    assert [(p["contact"], p["status"]) for p in scn.profiles("nurture", "--status", "waiting")] \
        == [("ann", "waiting")]


def test_clear_and_remove_profile(scn):
    _enter(scn, "false", "ann", "bob", "cid")
    removed = scn.ok("remove-profile", "scenario", "nurture", "bob", "-o", "json").json
    assert removed["removed"] == 1
    assert sorted(p["contact"] for p in scn.profiles("nurture")) == ["ann", "cid"]
    again = scn.cli("remove-profile", "scenario", "nurture", "bob")
    assert again.exit_code == 3 and again.stderr.startswith("error:"), again
    unknown = scn.cli("remove-profile", "scenario", "nurture", "zed")
    assert unknown.exit_code == 3, unknown
    # delete is refused while profiles are inside; clear removes them all.
    assert scn.cli("delete", "scenario", "nurture").exit_code == 1
    cleared = scn.ok("clear", "scenario", "nurture", "-o", "json").json
    assert cleared == {"scenario": "nurture", "removed": 2}
    assert scn.profiles("nurture") == []
    assert scn.rows("SELECT count(*) AS n FROM queue_items WHERE status = 'queued'")[0]["n"] == 0
    scn.tick(at(td(days=3)))
    assert len(scn.messages("nurture")) == 3  # only the three hellos
    history = scn.rows("SELECT action FROM history WHERE kind = 'Scenario' AND name = 'nurture' "
                    "ORDER BY id")
    assert [h["action"] for h in history][-2:] == ["remove-profile", "clear"]
    assert scn.cli("clear", "scenario", "nope").exit_code == 3


def test_clone_copies_definition_inactive_version_1(scn):
    _enter(scn, "true", "ann")
    result = scn.cli("clone", "scenario", "nurture", "nurture-b")
    assert result.exit_code == 0, result
    got = scn.ok("get", "scenarios", "-o", "json").json
    clone = next(s for s in got if s["name"] == "nurture-b")
    assert clone["active"] is False and clone["profiles_active"] == 0
    rows = scn.rows("SELECT kind, version, status, spec FROM objects WHERE name IN "
                    "('nurture', 'nurture-b') ORDER BY name")
    assert rows[0]["spec"] == rows[1]["spec"] and rows[1]["version"] == 1
    assert rows[1]["status"] == "inactive"
    assert scn.cli("clone", "scenario", "nurture", "nurture-b").exit_code == 1
    assert scn.cli("clone", "scenario", "nurture", "Bad_Name").exit_code == 2
    assert scn.cli("clone", "scenario", "missing", "x").exit_code == 3
