"""A plan instance or a scenario whose stored state breaks the engine is set aside alone; the
other objects of the tick go on."""

from __future__ import annotations

from .conftest import T0, campaign

STAGED = """kind: Campaign
name: staged
timezone: UTC
closes_at: "2027-12-31T00:00"
audience: {all: true}
message: {subject: "Hi", body: "Hello {{ first_name }}"}
type: one-off
schedule: {send: {at: "2027-03-01T10:00"}}
stages:
  - name: main
    controlled_by_plan: true
---
kind: Plan
name: launch
schedule: {type: manual}
stages:
  - {campaign: staged, stage: main}
"""


def ok(cli, *args):
    result = cli("--now", T0, *args)
    assert result.exit_code == 0, result
    return result


def test_an_instance_that_cannot_advance_fails_alone_with_its_run(launch, cli, sql, rows):
    launch(STAGED + "---\n" + campaign("healthy"), start=False)
    ok(cli, "start", "campaign", "healthy")
    for verb in ("submit", "approve"):
        ok(cli, verb, "plan", "launch")
    ok(cli, "start", "plan", "launch")
    (instance,) = rows("SELECT id FROM plan_instances")
    # Its stored snapshot no longer has the shape the engine reads.
    sql("UPDATE plan_instances SET snapshot = '[]' WHERE id = ?", (instance["id"],))
    result = cli("--now", T0, "-o", "json", "tick")
    assert result.exit_code == 0, result
    assert [f["object"] for f in result.json["object_failures"]] == [f"instance/{instance['id']}"]
    assert len(rows("SELECT 1 FROM outbox WHERE campaign = 'healthy'")) == 3
    status = rows("SELECT status, error FROM plan_instances")[0]
    assert status["status"] == "failed" and "AttributeError" in status["error"]
    run = rows("SELECT status, error FROM runs WHERE campaign = 'staged'")[0]
    assert run["status"] == "failed" and f"plan instance {instance['id']} failed" in run["error"]
    assert {r["status"] for r in rows("SELECT q.status FROM queue_items q JOIN runs r"
                                      " ON r.id = q.run_id WHERE r.campaign = 'staged'")} <= {
        "cancelled"}
    events = [r["event"] for r in rows("SELECT event FROM exec_log WHERE instance_id = ?",
                                       (instance["id"],))]
    assert "Instance Failed" in events
    assert {r["kind"] for r in rows("SELECT kind FROM notifications")} >= {"instance-failed"}
    # Nothing of the failed instance goes out when its send time comes.
    later = cli("--now", "2027-03-01T10:00:00Z", "-o", "json", "tick")
    assert later.exit_code == 0 and later.json["failed_objects"] == 0, later
    assert rows("SELECT 1 FROM outbox WHERE campaign = 'staged'") == []


JOURNEYS = """kind: Scenario
name: {name}
launch: {{type: event, event: signup}}
steps:
  - id: hello
    send: {{subject: "Hello", body: "Welcome {{{{ id }}}}"}}
  - id: pause
    wait: 1d
  - id: again
    send: {{subject: "Again", body: "Still there {{{{ id }}}}"}}
"""


def test_a_wait_that_cannot_be_computed_errors_its_profiles_and_the_rest_goes_on(
        launch, cli, edit_spec, rows):
    launch(JOURNEYS.format(name="broken") + "---\n" + JOURNEYS.format(name="healthy") + "---\n"
           + campaign("healthy"), start=False)
    for name in ("broken", "healthy"):
        ok(cli, "activate", "scenario", name)
    # A zone that passed validation once and is unknown now (a hand edit, an older tzdata):
    # the wait step cannot compute its wake-up time.
    edit_spec("Scenario", "broken", lambda spec: spec.update(timezone="Mars/Olympus_Mons"))
    ok(cli, "start", "campaign", "healthy")
    ok(cli, "events", "emit", "signup", "--contact", "c1")
    result = cli("--now", T0, "-o", "json", "tick")
    assert result.exit_code == 0, result
    assert [f["object"] for f in result.json["object_failures"]] == ["scenario/broken"]
    assert "step pause failed" in result.json["object_failures"][0]["reason"]
    assert "warning: scenario broken: step pause failed" in result.stderr
    profiles = {r["scenario"]: r for r in rows(
        "SELECT scenario, status, step, error FROM scenario_profiles")}
    assert profiles["broken"]["status"] == "error"
    assert "unknown timezone" in profiles["broken"]["error"]
    assert profiles["healthy"]["status"] == "waiting"
    sent = sorted((r["scenario"] or r["campaign"], r["subject"]) for r in rows(
        "SELECT scenario, campaign, subject FROM outbox"))
    # The step before the broken wait had queued its message; it goes out like the others.
    assert sent == [("broken", "Hello"), ("healthy", "Hello"), ("healthy", "Hi"),
                    ("healthy", "Hi"), ("healthy", "Hi")]
    assert rows("SELECT event FROM exec_log WHERE event = 'Profiles Failed'")
    assert rows("SELECT kind FROM notifications WHERE object = 'scenario/broken'")
    nxt = cli("--now", "2027-03-02T09:00:00Z", "-o", "json", "tick")
    assert nxt.exit_code == 0 and nxt.json["failed_objects"] == 0, nxt
    assert rows("SELECT subject FROM outbox WHERE scenario = 'healthy' ORDER BY subject") == [
        {"subject": "Again"}, {"subject": "Hello"}]


def test_a_scenario_whose_capture_fails_is_retried_and_the_others_go_on(
        launch, cli, edit_spec, rows):
    scheduled = ("kind: Scenario\nname: nightly\nlaunch: {type: schedule, cron: \"0 9 * * *\", "
                 "timezone: UTC, audience: {all: true}}\n"
                 "steps:\n  - id: hello\n    send: {subject: \"Night\", body: \"Hi\"}\n")
    launch(scheduled + "---\n" + campaign("healthy"), start=False)
    ok(cli, "activate", "scenario", "nightly")
    edit_spec("Scenario", "nightly", lambda spec: spec["launch"].update(timezone="Mars/Olympus"))
    ok(cli, "start", "campaign", "healthy")
    for day in ("2027-03-01T09:00:00Z", "2027-03-02T09:00:00Z"):
        result = cli("--now", day, "-o", "json", "tick")
        assert result.exit_code == 0, result
        assert [f["object"] for f in result.json["object_failures"]] == ["scenario/nightly"]
    assert len(rows("SELECT 1 FROM outbox WHERE campaign = 'healthy'")) == 3
    assert rows("SELECT kind, name, count FROM object_failures") == [
        {"kind": "Scenario capture", "name": "nightly", "count": 2}]
    assert len(rows("SELECT 1 FROM exec_log WHERE event = 'Processing Failed'")) == 1


def test_a_stored_definition_that_no_longer_parses_is_told_and_retried_not_skipped(
        launch, cli, edit_spec, rows):
    """A wait beyond today's bounds (stored before they existed, or by hand): the scenario's
    capture fails every tick with its reason, logged and notified once, never silently."""
    launch(JOURNEYS.format(name="broken") + "---\n" + JOURNEYS.format(name="healthy") + "---\n"
           + campaign("healthy"), start=False)
    for name in ("broken", "healthy"):
        ok(cli, "activate", "scenario", name)
    edit_spec("Scenario", "broken", lambda spec: spec["steps"][1].update(wait="1000000w"))
    ok(cli, "start", "campaign", "healthy")
    ok(cli, "events", "emit", "signup", "--contact", "c1")
    for at in (T0, "2027-03-01T08:05:00Z"):
        result = cli("--now", at, "-o", "json", "tick")
        assert result.exit_code == 0, result
        assert [f["object"] for f in result.json["object_failures"]] == ["scenario/broken"]
        assert "too long" in result.json["object_failures"][0]["reason"]
    assert rows("SELECT scenario FROM scenario_profiles") == [{"scenario": "healthy"}]
    assert len(rows("SELECT id FROM exec_log WHERE event = 'Processing Failed' "
                    "AND scenario = 'broken'")) == 1
    assert rows("SELECT kind FROM notifications WHERE object = 'scenario/broken'")
