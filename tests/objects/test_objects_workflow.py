"""Business statuses, four_eyes, plan preconditions, launch, scenario activation."""

from __future__ import annotations

import json

import pytest
from objects_defs import NOW, execute

from campctl.models import BUSINESS_TRANSITIONS, BUSINESS_VERBS, SCENARIO_TRANSITIONS

# How to bring an object from draft to each status.
PATH_TO = {
    "draft": [],
    "pending-approval": ["submit"],
    "approved": ["submit", "approve"],
    "denied": ["submit", "deny"],
    "stopped": ["submit", "approve", "stop"],
}
OBJECTS = {"campaign": "spring-sale", "plan": "spring-launch"}


def _status(rows, name):
    return rows("SELECT status FROM objects WHERE name = ?", (name,))[0]["status"]


def _bring(cli, kind, status):
    if kind == "plan":
        for verb in PATH_TO["approved"]:
            assert cli(verb, "campaign", "spring-sale").exit_code == 0
    for verb in PATH_TO[status]:
        result = cli(verb, kind, OBJECTS[kind])
        assert result.exit_code == 0, result


@pytest.mark.parametrize("kind", ["campaign", "plan"])
@pytest.mark.parametrize("status", list(PATH_TO))
@pytest.mark.parametrize("verb", BUSINESS_VERBS)
def test_business_transition_matrix(cli, fresh_copy, rows, kind, status, verb):
    name = OBJECTS[kind]
    _bring(cli, kind, status)
    assert _status(rows, name) == status
    history_before = rows("SELECT count(*) AS n FROM history")[0]["n"]
    result = cli(verb, kind, name, "--note", f"{verb} it", "--as", "bob",
                 "--now", "2027-03-02T10:00:00Z")
    allowed = BUSINESS_TRANSITIONS[status]
    if verb in allowed:
        assert result.exit_code == 0, result
        assert _status(rows, name) == allowed[verb]
        last = rows("SELECT * FROM history ORDER BY id DESC LIMIT 1")[0]
        assert (last["kind"], last["name"], last["action"], last["actor"], last["at"],
                last["from_status"], last["to_status"], last["note"]) == (
            kind.capitalize(), name, verb, "bob", "2027-03-02T10:00:00Z", status,
            allowed[verb], f"{verb} it")
    else:
        assert result.exit_code == 1, result
        assert result.stderr.startswith(f"error: cannot {verb} {kind} {name}: it is {status}")
        for other in allowed:
            assert f"campctl {other} {kind} {name}" in result.stderr
        assert _status(rows, name) == status
        assert rows("SELECT count(*) AS n FROM history")[0]["n"] == history_before


@pytest.mark.parametrize("status", ["inactive", "active"])
@pytest.mark.parametrize("verb", ["activate", "deactivate"])
def test_scenario_transition_matrix(cli, fresh_copy, rows, status, verb):
    if status == "active":
        assert cli("activate", "scenario", "onboarding").exit_code == 0
    result = cli(verb, "scenario", "onboarding", "--note", "why")
    allowed = SCENARIO_TRANSITIONS[status]
    if verb in allowed:
        assert result.exit_code == 0, result
        assert _status(rows, "onboarding") == allowed[verb]
        last = rows("SELECT action, note, from_status, to_status FROM history "
                    "ORDER BY id DESC LIMIT 1")[0]
        assert last == {"action": verb, "note": "why", "from_status": status,
                        "to_status": allowed[verb]}
    else:
        assert result.exit_code == 1, result
        assert f"it is {status}" in result.stderr
        assert _status(rows, "onboarding") == status


@pytest.mark.parametrize("command", [
    ["submit", "campaign", "nope"], ["approve", "plan", "nope"], ["deny", "campaign", "nope"],
    ["revise", "plan", "nope"], ["stop", "campaign", "nope"], ["stop", "plan", "nope"],
    ["start", "campaign", "nope"], ["activate", "scenario", "nope"],
    ["deactivate", "scenario", "nope"],
])
def test_unknown_objects_exit_3(cli, fresh_copy, command):
    result = cli(*command)
    assert result.exit_code == 3, result
    assert "no " in result.stderr and "'nope'" in result.stderr


def test_verbs_do_not_apply_to_other_kinds(cli, fresh_copy):
    assert cli("submit", "scenario", "onboarding").exit_code == 2
    assert cli("approve", "segment", "vips").exit_code == 2
    assert cli("activate", "campaign", "spring-sale").exit_code == 2


def test_json_output_of_a_transition(cli, fresh_copy):
    result = cli("submit", "campaign/spring-sale", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json == {"kind": "campaign", "name": "spring-sale", "action": "submitted",
                           "from_status": "draft", "to_status": "pending-approval"}


def test_revise_approved_campaign_refused_while_a_run_is_active(cli, fresh_copy, rows, state):
    _bring(cli, "campaign", "approved")
    execute(state, "INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at) "
                   "VALUES ('spring-sale', 'main', 'sending', '{}', ?, ?)", (NOW, NOW))
    result = cli("revise", "campaign", "spring-sale")
    assert result.exit_code == 1, result
    assert "active run" in result.stderr
    assert _status(rows, "spring-sale") == "approved"
    execute(state, "UPDATE runs SET status = 'completed'")
    assert cli("revise", "campaign", "spring-sale").exit_code == 0
    assert _status(rows, "spring-sale") == "draft"


def test_revise_approved_plan_refused_while_an_instance_runs(cli, fresh_copy, rows, state):
    _bring(cli, "plan", "approved")
    execute(state, "INSERT INTO plan_instances (name, plan, status, started_at, plan_version, "
                   "snapshot) VALUES ('spring-launch-x', 'spring-launch', 'paused', ?, 1, '{}')",
            (NOW,))
    result = cli("revise", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "instance" in result.stderr
    assert _status(rows, "spring-launch") == "approved"
    execute(state, "UPDATE plan_instances SET status = 'completed'")
    assert cli("revise", "plan", "spring-launch").exit_code == 0


def test_four_eyes_refuses_self_approval_and_records_an_override(cli, fresh_copy, rows):
    assert cli("config", "set", "four_eyes", "true").exit_code == 0
    assert cli("submit", "campaign", "spring-sale", "--as", "alice").exit_code == 0
    refused = cli("approve", "campaign", "spring-sale", "--as", "alice")
    assert refused.exit_code == 1, refused
    assert "four-eyes" in refused.stderr and "--override-four-eyes" in refused.stderr
    assert _status(rows, "spring-sale") == "pending-approval"
    no_note = cli("approve", "campaign", "spring-sale", "--as", "alice", "--override-four-eyes")
    assert no_note.exit_code == 2, no_note
    assert _status(rows, "spring-sale") == "pending-approval"
    override = cli("approve", "campaign", "spring-sale", "--as", "alice",
                   "--override-four-eyes", "--note", "bob is on leave")
    assert override.exit_code == 0, override
    last = rows("SELECT action, actor, note FROM history ORDER BY id DESC LIMIT 1")[0]
    assert last == {"action": "approve-override", "actor": "alice", "note": "bob is on leave"}


def test_four_eyes_lets_another_operator_approve(cli, fresh_copy, rows):
    assert cli("config", "set", "four_eyes", "true").exit_code == 0
    assert cli("submit", "plan", "spring-launch", "--as", "alice").exit_code == 1  # campaign draft
    assert cli("submit", "campaign", "spring-sale", "--as", "alice").exit_code == 0
    result = cli("approve", "campaign", "spring-sale", "--as", "bob")
    assert result.exit_code == 0, result
    assert rows("SELECT action FROM history ORDER BY id DESC LIMIT 1")[0]["action"] == "approve"


def test_without_four_eyes_the_submitter_may_approve(cli, fresh_copy):
    assert cli("submit", "campaign", "spring-sale", "--as", "alice").exit_code == 0
    assert cli("approve", "campaign", "spring-sale", "--as", "alice").exit_code == 0


def test_override_flag_only_with_approve(cli, fresh_copy):
    assert cli("submit", "campaign", "spring-sale", "--override-four-eyes").exit_code == 2


def test_plan_submit_refused_while_its_campaign_is_not_approved(cli, fresh_copy, rows):
    result = cli("submit", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "campaign spring-sale is draft, not approved" in result.stderr
    assert _status(rows, "spring-launch") == "draft"
    assert cli("submit", "campaign", "spring-sale").exit_code == 0
    pending = cli("submit", "plan", "spring-launch")
    assert pending.exit_code == 1 and "pending-approval, not approved" in pending.stderr


def test_plan_approve_refused_when_the_campaign_was_stopped_meanwhile(cli, fresh_copy, rows):
    _bring(cli, "campaign", "approved")
    assert cli("submit", "plan", "spring-launch").exit_code == 0
    assert cli("stop", "campaign", "spring-sale").exit_code == 0
    result = cli("approve", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "campaign spring-sale is stopped" in result.stderr
    assert _status(rows, "spring-launch") == "pending-approval"


def test_plan_refused_when_its_campaign_has_closed(cli, fresh_copy, rows):
    _bring(cli, "campaign", "approved")
    assert cli("submit", "plan", "spring-launch").exit_code == 0
    # closes_at 2027-06-30T23:59 Europe/Paris is 21:59 UTC
    late = cli("approve", "plan", "spring-launch", "--now", "2027-06-30T21:59:00Z")
    assert late.exit_code == 1, late
    assert "campaign spring-sale closed at 2027-06-30T21:59:00Z" in late.stderr
    just_in_time = cli("approve", "plan", "spring-launch", "--now", "2027-06-30T21:58:59Z")
    assert just_in_time.exit_code == 0, just_in_time


def test_campaign_submit_refused_after_its_closing_date(cli, fresh_copy):
    result = cli("submit", "campaign", "spring-sale", "--now", "2027-07-01T00:00:00Z")
    assert result.exit_code == 1, result
    assert "closes_at is not in the future" in result.stderr


def test_plan_blockers_name_missing_and_uncontrolled_stages(cli, fresh_copy, state):
    from datetime import UTC, datetime

    from campctl.definitions.models import Plan
    from campctl.engine.workflow import plan_blockers
    from campctl.store.db import open_state

    _bring(cli, "campaign", "approved")
    now = datetime(2027, 3, 1, 9, tzinfo=UTC)
    db = open_state(state, create=False)
    try:
        assert plan_blockers(
            db, Plan.from_spec({"stages": [{"campaign": "spring-sale", "stage": "teaser"}]}),
            now=now) == []
        problems = plan_blockers(db, Plan.from_spec({"stages": [
            {"campaign": "spring-sale", "stage": "nope"},
            {"campaign": "ghost", "stage": "main"},
        ]}), now=now)
        assert problems == ["campaign spring-sale has no stage 'nope'",
                            "campaign ghost (stage 2) does not exist"]
        spec = json.loads(db.execute("SELECT spec FROM objects WHERE name = 'spring-sale'")
                          .fetchone()[0])
        spec["stages"][0]["controlled_by_plan"] = False
        db.execute("UPDATE objects SET spec = ? WHERE name = 'spring-sale'", (json.dumps(spec),))
        assert plan_blockers(
            db, Plan.from_spec({"stages": [{"campaign": "spring-sale", "stage": "teaser"}]}),
            now=now) == [
            "stage 'teaser' of campaign spring-sale is not controlled_by_plan: true"]
        assert plan_blockers(db, Plan.from_spec({"stages": []}), now=now) == [
            "the plan has no stages"]
    finally:
        db.close()


def test_start_campaign_only_when_approved_and_stop_ends_the_launch(cli, fresh_copy, rows):
    draft = cli("start", "campaign", "spring-sale")
    assert draft.exit_code == 1, draft
    assert "only an approved campaign" in draft.stderr
    _bring(cli, "campaign", "approved")
    started = cli("start", "campaign", "spring-sale", "--note", "go", "--now",
                  "2027-03-02T07:00:00Z")
    assert started.exit_code == 0, started
    assert rows("SELECT launched_at FROM objects WHERE name='spring-sale'")[0]["launched_at"] == \
        "2027-03-02T07:00:00Z"
    got = cli("get", "campaigns", "spring-sale", "-o", "json").json
    assert got["launched_at"] == "2027-03-02T07:00:00Z"
    again = cli("start", "campaign", "spring-sale")
    assert again.exit_code == 1 and "already launched" in again.stderr
    stopped = cli("stop", "campaign", "spring-sale", "--note", "enough")
    assert stopped.exit_code == 0, stopped
    row = rows("SELECT status, launched_at FROM objects WHERE name='spring-sale'")[0]
    assert row == {"status": "stopped", "launched_at": None}
    actions = [(h["action"], h["note"]) for h in
               rows("SELECT action, note FROM history WHERE name='spring-sale' ORDER BY id")]
    assert actions[-2:] == [("start", "go"), ("stop", "enough")]
    assert cli("start", "campaign", "spring-sale").exit_code == 1


def test_stop_plan_and_stop_current_without_instance(cli, fresh_copy, rows):
    _bring(cli, "plan", "approved")
    current = cli("stop", "plan", "spring-launch", "--current")
    assert current.exit_code == 1, current  # nothing running (or not available yet)
    assert _status(rows, "spring-launch") == "approved"
    assert cli("stop", "plan", "spring-launch").exit_code == 0
    assert _status(rows, "spring-launch") == "stopped"


def test_deactivate_calls_nothing_harmful_and_records(cli, fresh_copy, rows):
    assert cli("activate", "scenario/onboarding", "--as", "carol").exit_code == 0
    assert cli("deactivate", "scenario", "onboarding").exit_code == 0
    got = cli("get", "scenarios", "-o", "json").json
    assert got[0]["active"] is False
    assert [h["action"] for h in rows("SELECT action FROM history WHERE name='onboarding' "
                                      "ORDER BY id")] == ["created", "activate", "deactivate"]
