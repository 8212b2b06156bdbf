"""get / describe / delete / history for every definition kind."""

from __future__ import annotations

import pytest
from objects_defs import NOW, execute

KEYS = {
    "plans": {"name", "status", "schedule_type", "transition", "next_occurrence", "version"},
    "campaigns": {"name", "code", "status", "type", "closes_at", "next_occurrence", "version"},
    "scenarios": {"name", "active", "launch_type", "reentry", "profiles_active"},
    "segments": {"name", "version"},
    "channels": {"name", "version"},
}


@pytest.mark.parametrize("plural", list(KEYS))
def test_get_lists_with_the_json_keys(cli, fresh_copy, plural):
    result = cli("get", plural, "-o", "json")
    assert result.exit_code == 0, result
    assert len(result.json) == 1
    assert KEYS[plural] <= set(result.json[0])
    table = cli("get", plural)
    assert table.exit_code == 0, table
    assert result.json[0]["name"] in table.stdout
    singular = cli("get", plural[:-1], "-o", "json")
    assert singular.exit_code == 0 and singular.json == result.json


def test_get_values(cli, fresh_copy):
    assert cli("get", "campaigns", "-o", "json").json == [{
        "name": "spring-sale", "code": "SPR-27", "status": "draft", "type": "one-off",
        "closes_at": "2027-06-30T21:59:00Z", "next_occurrence": None, "version": 1,
        "launched_at": None, "timezone": "Europe/Paris", "priority": 50, "tags": [],
        "access_groups": None}]
    plan = cli("get", "plans", "spring-launch", "-o", "json").json
    assert {k: plan[k] for k in KEYS["plans"]} == {
        "name": "spring-launch", "status": "draft", "schedule_type": "manual",
        "transition": "completed", "next_occurrence": None, "version": 1}
    scenario = cli("get", "scenario/onboarding", "-o", "json").json
    assert {k: scenario[k] for k in KEYS["scenarios"]} == {
        "name": "onboarding", "active": False, "launch_type": "event", "reentry": "once",
        "profiles_active": 0}
    table = cli("get", "campaigns")
    assert "CEST" in table.stdout  # closes_at shown in the campaign's zone


def test_profiles_active_counts_profiles_inside(cli, fresh_copy, state):
    for status in ("active", "waiting", "frozen", "completed", "exited"):
        execute(state, "INSERT INTO scenario_profiles (scenario, contact_id, step, status, "
                       "entered_at, updated_at) VALUES ('onboarding', 1, 'welcome', ?, ?, ?)",
                (status, NOW, NOW))
    assert cli("get", "scenarios", "-o", "json").json[0]["profiles_active"] == 3


def test_next_occurrence_of_an_approved_recurrent_plan(cli, write_yaml):
    pytest.importorskip("campctl.engine.cron")
    path = write_yaml("p.yaml", """\
kind: Campaign
name: weekly
timezone: Europe/Paris
closes_at: "2027-12-31T00:00"
audience: {all: true}
message: {subject: "s", body: "b"}
type: one-off
schedule: {send: immediately}
stages:
  - {name: main, controlled_by_plan: true}
---
kind: Plan
name: daily
schedule: {type: recurrent, cron: "0 9 * * *", timezone: Europe/Paris}
stages:
  - {campaign: weekly, stage: main}
""")
    assert cli("apply", path).exit_code == 0
    for verb, kind in (("submit", "campaign"), ("approve", "campaign"), ("submit", "plan")):
        assert cli(verb, kind, "weekly" if kind == "campaign" else "daily").exit_code == 0
    assert cli("get", "plans", "daily", "-o", "json").json["next_occurrence"] is None
    assert cli("approve", "plan", "daily").exit_code == 0
    # NOW is 10:00 in Paris: the next 09:00 local is tomorrow, 08:00 UTC.
    got = cli("get", "plans", "daily", "-o", "json").json
    assert got["next_occurrence"] == "2027-03-02T08:00:00Z"


def test_get_unknown_and_missing_state(cli, fresh_copy, tmp_path):
    missing = cli("get", "plans", "nope")
    assert missing.exit_code == 3, missing
    assert missing.stderr == "error: no plan named 'nope' (see 'campctl get plans')\n"
    no_file = cli("--state", tmp_path / "none.db", "get", "campaigns")
    assert no_file.exit_code == 4 and "campctl init" in no_file.stderr
    assert cli("get", "widgets").exit_code == 2


def test_get_empty_listing(cli, state):
    assert cli("init").exit_code == 0
    assert cli("get", "plans", "-o", "json").json == []
    assert "no plans" in cli("get", "plans").stdout


@pytest.mark.parametrize("kind,name", [("plan", "spring-launch"), ("campaign", "spring-sale"),
                                       ("scenario", "onboarding"), ("segment", "vips"),
                                       ("channel", "mail")])
def test_describe_every_kind(cli, fresh_copy, kind, name):
    result = cli("describe", kind, name, "-o", "json")
    assert result.exit_code == 0, result
    body = result.json
    assert body["kind"] == kind and body["name"] == name and body["version"] == 1
    assert isinstance(body["spec"], dict) and body["history"][0]["action"] == "created"
    table = cli("describe", f"{kind}/{name}")
    assert table.exit_code == 0, table
    assert "spec:" in table.stdout and name in table.stdout
    assert cli("describe", kind, "ghost").exit_code == 3


def test_describe_shows_references(cli, fresh_copy):
    body = cli("describe", "segment", "vips", "-o", "json").json
    assert body["referenced_by"] == ["campaign/spring-sale"]
    assert body["description"] == "Customers in the VIP group"
    channel = cli("describe", "channel", "mail", "-o", "json").json
    assert channel["referenced_by"] == ["campaign/spring-sale", "scenario/onboarding"]


def test_delete_refused_while_referenced(cli, fresh_copy, rows):
    for kind, name, user in (("segment", "vips", "campaign/spring-sale"),
                             ("channel", "mail", "campaign/spring-sale"),
                             ("campaign", "spring-sale", "plan/spring-launch")):
        result = cli("delete", kind, name)
        assert result.exit_code == 1, result
        assert f"referenced by {user}" in result.stderr
    assert len(rows("SELECT * FROM objects")) == 5


def test_delete_channel_used_for_notifications_refused(cli, fresh_copy):
    assert cli("delete", "scenario", "onboarding").exit_code == 0
    assert cli("config", "set", "notify_channel", "mail").exit_code == 0
    for name in ("spring-launch",):
        assert cli("delete", "plan", name).exit_code == 0
    assert cli("delete", "campaign", "spring-sale").exit_code == 0
    result = cli("delete", "channel", "mail")
    assert result.exit_code == 1 and "notify_channel" in result.stderr


def test_delete_refused_while_active(cli, fresh_copy, state):
    execute(state, "INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at) "
                   "VALUES ('spring-sale', 'main', 'queued', '{}', ?, ?)", (NOW, NOW))
    execute(state, "INSERT INTO plan_instances (name, plan, status, started_at, plan_version, "
                   "snapshot) VALUES ('x', 'spring-launch', 'running', ?, 1, '{}')", (NOW,))
    execute(state, "INSERT INTO scenario_profiles (scenario, contact_id, step, status, "
                   "entered_at, updated_at) VALUES ('onboarding', 1, 'welcome', 'frozen', ?, ?)",
            (NOW, NOW))
    plan = cli("delete", "plan", "spring-launch")
    assert plan.exit_code == 1 and "instance" in plan.stderr, plan
    scenario = cli("delete", "scenario", "onboarding")
    assert scenario.exit_code == 1 and "profile" in scenario.stderr, scenario
    execute(state, "UPDATE plan_instances SET status = 'completed'")
    assert cli("delete", "plan", "spring-launch").exit_code == 0
    campaign = cli("delete", "campaign", "spring-sale")
    assert campaign.exit_code == 1 and "active run" in campaign.stderr, campaign


def test_delete_keeps_history_and_versions(cli, fresh_copy, rows):
    result = cli("delete", "plan/spring-launch", "--note", "obsolete", "--as", "dave")
    assert result.exit_code == 0, result
    assert result.stdout == "plan/spring-launch deleted\n"
    assert cli("get", "plans", "spring-launch").exit_code == 3
    assert cli("delete", "plan", "spring-launch").exit_code == 3
    history = cli("history", "plan", "spring-launch", "-o", "json")
    assert history.exit_code == 0, history
    assert [(h["action"], h["actor"], h["note"]) for h in history.json] == [
        ("created", "tester", None), ("deleted", "dave", "obsolete")]
    assert rows("SELECT version FROM object_versions WHERE name = 'spring-launch'") == [
        {"version": 1}]
    assert cli("history", "plan", "never-existed").exit_code == 3


def test_delete_json(cli, fresh_copy):
    result = cli("delete", "scenario", "onboarding", "-o", "json")
    assert result.json == {"kind": "scenario", "name": "onboarding", "action": "deleted"}
