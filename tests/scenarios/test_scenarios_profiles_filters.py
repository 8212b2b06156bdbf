"""`profiles scenario` filters by contact and status, pages with --limit, and refuses an unknown
step, status or contact."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

DEFS = """\
kind: Scenario
name: onboarding
launch: {type: manual}
steps:
  - id: welcome
    send: {subject: "Hi", body: "Welcome"}
  - id: pause
    wait: 3d
"""


def _setup(scn):
    scn.contacts(*[{"id": f"c{i}"} for i in range(5)])
    scn.apply(DEFS)
    scn.activate("onboarding")
    scn.ok("start", "scenario", "onboarding", "--all", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))


def test_profiles_by_contact_status_and_limit(scn):
    _setup(scn)
    rows = scn.profiles("onboarding", "--contact", "c3")
    assert [(r["contact"], r["step"], r["status"]) for r in rows] == [("c3", "pause", "waiting")]
    assert len(scn.profiles("onboarding", "--status", "waiting")) == 5
    assert scn.profiles("onboarding", "--status", "completed") == []
    limited = scn.profiles("onboarding", "--limit", "2")
    assert [r["contact"] for r in limited] == ["c0", "c1"]
    assert len(scn.profiles("onboarding", "--limit", "0")) == 5
    table = scn.cli("profiles", "scenario", "onboarding", "--limit", "2", "--now", at())
    assert table.exit_code == 0
    assert "showing 2 of 5 profiles" in table.stderr


def test_unknown_step_status_or_contact_is_an_error(scn):
    _setup(scn)
    step = scn.cli("profiles", "scenario", "onboarding", "--step", "welcom", "--now", at())
    assert step.exit_code == 3 and "has no step 'welcom'" in step.stderr
    assert "welcome, pause" in step.stderr
    status = scn.cli("profiles", "scenario", "onboarding", "--status", "sleeping", "--now", at())
    assert status.exit_code == 2 and "unknown profile status" in status.stderr
    contact = scn.cli("profiles", "scenario", "onboarding", "--contact", "nobody", "--now", at())
    assert contact.exit_code == 3
    assert scn.profiles("onboarding", "--step", "welcome") == []
