"""A refused submit, approve or start names every problem, each with a hint that fits it."""

from __future__ import annotations


def _two_campaign_plan(world) -> None:
    world.campaign(name="spring-sale")
    world.campaign(name="summer-sale", code="SUM-27")
    world.campaign(name="winter-sale", code="WIN-27", closes_at="2027-02-28T12:00")
    world.approve("campaign", "winter-sale", now="2027-02-01T09:00:00Z")
    world.plan(stages=(("spring-sale", "teaser"), ("spring-sale", "main"),
                       ("summer-sale", "main"), ("winter-sale", "main")))


def test_submit_lists_every_problem_once(world):
    _two_campaign_plan(world)
    world.approve("campaign", "summer-sale")
    world.ok("stop", "campaign", "summer-sale")
    result = world.cli("--now", world.now, "submit", "plan", "spring-launch")
    assert result.exit_code == 1, result
    line = result.stderr.strip()
    assert line.count("\n") == 0, line
    assert "more problem" not in line
    assert "cannot submit plan spring-launch: 3 problems: " in line
    # spring-sale holds two stages of the tree: named once
    assert line.count("campaign spring-sale is draft, not approved") == 1
    assert "'campctl submit campaign spring-sale'" in line
    assert "campaign summer-sale is stopped, not approved" in line
    assert "campctl revise campaign summer-sale" in line
    assert "campctl submit campaign summer-sale" not in line
    assert "campaign winter-sale closed at 2027-02-28T11:00:00Z" in line


def test_hint_for_a_pending_campaign_names_approve(world):
    world.campaign()
    world.plan()
    world.ok("submit", "campaign", "spring-sale")
    result = world.cli("--now", world.now, "submit", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "campaign spring-sale is pending-approval, not approved" in result.stderr
    assert "'campctl approve campaign spring-sale'" in result.stderr
    assert "problems:" not in result.stderr  # one problem: no count


def test_start_lists_closed_and_uncontrolled_together(world):
    world.campaign()
    world.plan()
    world.campaign(main_controlled="false")
    world.approve("campaign", "spring-sale")
    result = world.cli("--now", "2027-07-01T00:00:00Z", "submit", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "2 problems:" in result.stderr
    assert "campaign spring-sale closed at" in result.stderr
    assert "stage 'main' of campaign spring-sale is not controlled_by_plan: true" in result.stderr


def test_manual_start_lists_every_problem(world):
    world.campaign()
    world.campaign(name="summer-sale", code="SUM-27")
    world.approve("campaign", "spring-sale")
    world.approve("campaign", "summer-sale")
    world.plan(stages=(("spring-sale", "main"), ("summer-sale", "main")))
    world.approve("plan", "spring-launch")
    world.ok("stop", "campaign", "spring-sale")
    world.ok("stop", "campaign", "summer-sale")
    result = world.cli("--now", world.now, "start", "plan", "spring-launch")
    assert result.exit_code == 1, result
    assert "cannot start plan spring-launch: 2 problems:" in result.stderr
    for name in ("spring-sale", "summer-sale"):
        assert f"campaign {name} is stopped, not approved" in result.stderr
        assert f"'campctl revise campaign {name}'" in result.stderr
    assert world.rows("SELECT * FROM plan_instances") == []


def test_scheduled_occurrence_skip_names_every_problem(world):
    world.campaign()
    world.campaign(name="summer-sale", code="SUM-27")
    world.approve("campaign", "spring-sale")
    world.approve("campaign", "summer-sale")
    world.plan(stages=(("spring-sale", "main"), ("summer-sale", "main")),
               schedule={"type": "once", "at": "2027-03-02T10:00", "timezone": "Europe/Paris"})
    world.approve("plan", "spring-launch")
    world.ok("stop", "campaign", "spring-sale")
    world.ok("stop", "campaign", "summer-sale")
    world.tick("2027-03-02T09:01:00Z")
    skipped = world.log("Occurrence Skipped")
    assert len(skipped) == 1
    assert "spring-sale is stopped" in skipped[0]["details"]
    assert "summer-sale is stopped" in skipped[0]["details"]


def test_start_of_stopped_campaign_says_revise(world):
    world.campaign(name="summer-sale", code="SUM-27")
    world.approve("campaign", "summer-sale")
    world.ok("stop", "campaign", "summer-sale")
    result = world.cli("--now", world.now, "start", "campaign", "summer-sale")
    assert result.exit_code == 1, result
    assert "it is stopped" in result.stderr
    assert "'campctl revise campaign summer-sale'" in result.stderr
    assert "submit and approve it first" not in result.stderr


def test_describe_plan_lists_the_unmet_preconditions(world):
    world.campaign()
    world.campaign(name="summer-sale", code="SUM-27")
    world.approve("campaign", "summer-sale")
    world.ok("stop", "campaign", "summer-sale")
    world.plan(stages=(("spring-sale", "main"), ("summer-sale", "main")))
    data = world.ok("-o", "json", "describe", "plan", "spring-launch").json
    unmet = data["preconditions_unmet"]
    assert len(unmet) == 2
    assert unmet[0].startswith("campaign spring-sale is draft, not approved")
    assert unmet[1].startswith("campaign summer-sale is stopped, not approved")
    table = world.ok("describe", "plan", "spring-launch").stdout
    assert "preconditions_unmet" in table and "summer-sale is stopped" in table
    world.approve("campaign", "spring-sale")
    world.ok("revise", "campaign", "summer-sale")
    world.approve("campaign", "summer-sale")
    assert world.ok("-o", "json", "describe", "plan",
                    "spring-launch").json["preconditions_unmet"] == []
