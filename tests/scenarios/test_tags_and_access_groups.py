"""Tags (`get ... --tag`) and access groups (who may change, activate and launch a campaign,
plan or scenario; refused with exit 1 otherwise, or bypassed with a recorded reason)."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

SCENARIOS = """\
kind: Scenario
name: onboarding
tags: [welcome, q1]
access_groups: [alice, bob]
launch: {type: manual}
steps:
  - id: hello
    send: {subject: "Hi", body: "Welcome"}
---
kind: Scenario
name: winback
tags: [q1]
launch: {type: manual}
steps:
  - id: hello
    send: {subject: "Hi", body: "Come back"}
"""

CAMPAIGN = """\
kind: Campaign
name: spring
tags: [q1]
access_groups: [alice]
timezone: UTC
closes_at: 2027-06-30T23:59
type: one-off
message: {subject: "Spring", body: "Hello"}
audience: {all: true}
schedule: {queue: immediately, send: immediately}
"""


def _apply(scn, text: str, user: str, *extra: str):
    scn._n += 1
    path = scn.write_yaml(f"acl{scn._n}.yaml", text)
    return scn.cli("apply", path, "--as", user, "--now", at(), *extra)


def test_get_by_tag(scn):
    scn.contacts({"id": "a"})
    assert _apply(scn, SCENARIOS, "alice").exit_code == 0
    assert _apply(scn, CAMPAIGN, "alice").exit_code == 0
    names = [r["name"] for r in scn.ok("get", "scenarios", "--tag", "welcome", "-o", "json").json]
    assert names == ["onboarding"]
    both = scn.ok("get", "scenarios", "--tag", "q1", "-o", "json").json
    assert [(r["name"], r["tags"]) for r in both] == [("onboarding", ["q1", "welcome"]),
                                                      ("winback", ["q1"])]
    assert scn.ok("get", "scenarios", "--tag", "q1", "--tag", "welcome", "-o",
                  "json").json[0]["access_groups"] == ["alice", "bob"]
    assert [r["name"] for r in scn.ok("get", "campaigns", "--tag", "q1", "-o", "json").json] \
        == ["spring"]
    assert scn.ok("get", "scenarios", "--tag", "nope", "-o", "json").json == []
    assert "TAGS" in scn.ok("get", "scenarios", "--tag", "q1").stdout
    assert scn.cli("get", "segments", "--tag", "q1").exit_code == 2


def test_access_groups_refuse_others_and_record_a_bypass(scn):
    scn.contacts({"id": "a"})
    assert _apply(scn, SCENARIOS, "alice").exit_code == 0
    changed = SCENARIOS.replace('body: "Welcome"', 'body: "Welcome!"')

    # carol is not in onboarding's access groups: she may not change, activate or launch it.
    refused = _apply(scn, changed, "carol")
    assert refused.exit_code == 1 and "carol may not apply scenario onboarding" in refused.stderr
    assert scn.rows("SELECT version FROM objects WHERE name = 'onboarding'") == [{"version": 1}]
    dry = _apply(scn, changed, "carol", "--dry-run")
    assert dry.exit_code == 1 and "carol may not apply" in dry.stderr
    activate = scn.cli("activate", "scenario", "onboarding", "--as", "carol", "--now", at())
    assert activate.exit_code == 1 and "alice, bob" in activate.stderr
    # winback has no access groups: open to everyone.
    scn.ok("activate", "scenario", "winback", "--as", "carol", "--now", at())

    scn.ok("activate", "scenario", "onboarding", "--as", "bob", "--now", at())
    launch = scn.cli("start", "scenario", "onboarding", "--all", "--yes", "--as", "carol",
                     "--now", at())
    assert launch.exit_code == 1 and "may not launch" in launch.stderr
    assert scn.rows("SELECT count(*) AS n FROM scenario_launches")[0]["n"] == 0
    # Stopping stays open to everyone.
    scn.ok("deactivate", "scenario", "onboarding", "--as", "carol", "--now", at(td(minutes=1)))

    # A bypass goes through and is recorded in the object's history.
    scn.ok("activate", "scenario", "onboarding", "--as", "carol", "--override-access",
           "alice is on leave", "--now", at(td(minutes=2)))
    history = scn.ok("history", "scenario", "onboarding", "-o", "json").json
    bypass = [h for h in history if h["action"] == "access-override"]
    assert len(bypass) == 1 and bypass[0]["actor"] == "carol"
    assert "activate outside access_groups (alice, bob): alice is on leave" in bypass[0]["note"]
    assert _apply(scn, changed, "carol", "--override-access", "hotfix").exit_code == 0
    assert scn.rows("SELECT version FROM objects WHERE name = 'onboarding'") == [{"version": 2}]


def test_access_groups_guard_campaign_verbs(scn):
    scn.contacts({"id": "a"})
    assert _apply(scn, CAMPAIGN, "alice").exit_code == 0
    submit = scn.cli("submit", "campaign", "spring", "--as", "bob", "--now", at())
    assert submit.exit_code == 1 and "bob may not submit campaign spring" in submit.stderr
    scn.ok("submit", "campaign", "spring", "--as", "alice", "--now", at())
    scn.ok("approve", "campaign", "spring", "--as", "alice", "--now", at())
    start = scn.cli("start", "campaign", "spring", "--as", "bob", "--now", at())
    assert start.exit_code == 1
    delete = scn.cli("delete", "campaign", "spring", "--as", "bob", "--now", at())
    assert delete.exit_code == 1
    scn.ok("start", "campaign", "spring", "--as", "alice", "--now", at())


def test_bad_access_groups_are_refused_by_validate(scn, write_yaml):
    bad = SCENARIOS.replace("access_groups: [alice, bob]", "access_groups: ['not a user!']")
    result = scn.cli("validate", write_yaml("bad.yaml", bad))
    assert result.exit_code == 1 and "invalid user name" in (result.stdout + result.stderr)
