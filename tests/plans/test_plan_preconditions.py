"""Preconditions of plan starts: each refusal through the CLI, with its exit code and message."""

from __future__ import annotations


def _ready(world, contacts=0, **plan):
    if contacts:
        world.contacts(contacts)
    world.campaign()
    world.approve("campaign", "spring-sale")
    world.plan(**plan)


def test_start_refused_while_plan_is_draft(world):
    _ready(world)
    result = world.cli("start", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "cannot start plan spring-launch: it is draft" in result.stderr
    assert "submit plan spring-launch" in result.stderr
    assert world.rows("SELECT * FROM plan_instances") == []


def test_start_of_unknown_plan_exits_3(world):
    result = world.cli("start", "plan", "nope")
    assert result.exit_code == 3, result
    assert result.stderr.startswith("error: no plan named 'nope'")


def test_start_refused_for_scheduled_plan(world):
    _ready(world, schedule={"type": "once", "at": "2027-03-02T10:00",
                            "timezone": "Europe/Paris"})
    world.approve("plan", "spring-launch")
    result = world.cli("start", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "schedule type is once" in result.stderr
    assert "only for schedule type manual" in result.stderr


def test_start_refused_when_a_campaign_is_no_longer_approved(world):
    _ready(world)
    world.approve("plan", "spring-launch")
    world.ok("revise", "campaign", "spring-sale")
    result = world.cli("start", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "campaign spring-sale is draft, not approved" in result.stderr
    assert world.rows("SELECT * FROM plan_instances") == []


def test_start_refused_after_the_campaign_closed(world):
    _ready(world)
    world.approve("plan", "spring-launch")
    result = world.cli("--now", "2027-07-01T00:00:00Z", "start", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "campaign spring-sale closed at" in result.stderr
    assert "closes_at is not in the future" in result.stderr


def test_start_refused_when_a_stage_is_no_longer_controlled_by_plan(world):
    _ready(world)
    world.approve("plan", "spring-launch")
    world.ok("revise", "campaign", "spring-sale")
    world.campaign(main_controlled="false")
    world.approve("campaign", "spring-sale")
    result = world.cli("start", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "stage 'main' of campaign spring-sale is not controlled_by_plan: true" in result.stderr


def test_instance_verbs_refused_on_unknown_or_finished_instances(world):
    for verb in ("pause", "resume", "stop", "describe"):
        result = world.cli(verb, "instance", "42")
        assert result.exit_code == 3, (verb, result)
        assert "no plan instance '42'" in result.stderr
    bad = world.cli("get", "instances", "--plan", "nope")
    assert bad.exit_code == 3, bad


def test_start_refused_for_stopped_plan_names_revise(world):
    _ready(world)
    world.approve("plan", "spring-launch")
    world.ok("stop", "plan", "spring-launch")
    result = world.cli("start", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "it is stopped" in result.stderr and "campctl revise plan spring-launch" in \
        result.stderr
