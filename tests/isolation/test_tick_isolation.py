"""One bad object never stops the rest: a campaign, run, plan instance or scenario whose stored
definition breaks the engine is set aside with its reason, and every other object goes on,
tick after tick."""

from __future__ import annotations

import json

from .conftest import T0, campaign

DAILY = "type: date-triggered\nschedule: {cron: \"0 9 * * *\"}\n"


def daily(name: str) -> str:
    return (f"kind: Campaign\nname: {name}\ntimezone: UTC\naudience: {{all: true}}\n{DAILY}"
            "message: {subject: \"Hi\", body: \"Hello {{ first_name }}\"}\n")


def sent_by(rows, name: str) -> int:
    return len(rows("SELECT 1 FROM outbox WHERE campaign = ?", (name,)))


def test_a_campaign_that_breaks_the_engine_is_retried_and_the_others_deliver_every_day(
        launch, edit_spec, cli, rows):
    launch(daily("healthy") + "---\n" + daily("broken"))
    # Passed validation once; now its stored schedule makes the engine raise.
    edit_spec("Campaign", "broken", lambda spec: spec["schedule"].update(cron="61 * * * *"))
    for day in (1, 2, 3):
        result = cli("--now", f"2027-03-0{day}T09:00:00Z", "-o", "json", "tick")
        assert result.exit_code == 0, result
        assert result.json["failed_objects"] == 1
        assert result.json["object_failures"][0]["object"] == "campaign/broken"
        assert "61 * * * *" in result.json["object_failures"][0]["reason"]
        assert "warning: campaign broken:" in result.stderr
        assert sent_by(rows, "healthy") == 3 * day
    assert sent_by(rows, "broken") == 0
    assert rows("SELECT count FROM object_failures") == [{"count": 3}]
    # Told once, not once a tick.
    logged = rows("SELECT campaign, details FROM exec_log WHERE event = 'Processing Failed'")
    assert len(logged) == 1 and logged[0]["campaign"] == "broken"
    notes = rows("SELECT kind, object FROM notifications")
    assert notes == [{"kind": "campaign-failed", "object": "campaign/broken"}]
    # Repaired (here by hand, as it was broken): the next tick processes it and says so.
    edit_spec("Campaign", "broken", lambda spec: spec["schedule"].update(cron="0 9 * * *"))
    result = cli("--now", "2027-03-04T09:00:00Z", "-o", "json", "tick")
    assert result.exit_code == 0 and result.json["failed_objects"] == 0, result
    assert sent_by(rows, "broken") == 3 and sent_by(rows, "healthy") == 12
    assert rows("SELECT * FROM object_failures") == []
    assert [r["campaign"] for r in rows(
        "SELECT campaign FROM exec_log WHERE event = 'Processing Recovered'")] == ["broken"]


def test_the_summary_line_counts_failed_objects(launch, edit_spec, cli):
    launch(daily("healthy") + "---\n" + daily("broken"))
    edit_spec("Campaign", "broken", lambda spec: spec.update(timezone="Mars/Olympus"))
    result = cli("--now", "2027-03-01T09:00:00Z", "tick")
    assert result.exit_code == 0, result
    assert result.stdout.strip().endswith("failed objects 1")
    assert "sent 3" in result.stdout
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        line for line in result.stderr.splitlines() if "campaign broken" in line]


def test_a_run_whose_snapshot_breaks_delivery_fails_alone(launch, edit_run_spec, cli, rows):
    launch(campaign("healthy") + "---\n" + campaign("broken").replace(
        "schedule: {send: immediately}", "schedule: {send: {at: \"2027-03-01T10:00\"}}"))
    first = cli("--now", T0, "-o", "json", "tick")
    assert first.exit_code == 0 and first.json["sent"] == 3, first
    # The held run's stored snapshot now carries a window the engine cannot read.
    edit_run_spec("broken", lambda spec: spec.update(window="bogus"))
    result = cli("--now", "2027-03-01T10:00:00Z", "-o", "json", "tick")
    assert result.exit_code == 0, result
    assert result.json["object_failures"][0]["object"].startswith("run/")
    run = rows("SELECT id, status, error FROM runs WHERE campaign = 'broken'")[0]
    assert run["status"] == "failed" and "bogus" in run["error"]
    assert {r["status"] for r in rows(
        "SELECT status FROM queue_items WHERE run_id = ?", (run["id"],))} == {"cancelled"}
    assert rows("SELECT event FROM exec_log WHERE run_id = ? AND event = 'Run Failed'",
                (run["id"],))
    assert rows("SELECT action, to_status FROM history WHERE kind = 'run' AND name = ?",
                (str(run["id"]),)) == [{"action": "fail", "to_status": "failed"}]
    assert rows("SELECT kind FROM notifications WHERE object = ?", (f"run/{run['id']}",)) == [
        {"kind": "run-failed"}]
    # The failure is final for the run: the next tick has nothing to say about it.
    again = cli("--now", "2027-03-01T10:01:00Z", "-o", "json", "tick")
    assert again.exit_code == 0 and again.json["failed_objects"] == 0, again


def test_a_dry_run_isolates_too_and_writes_nothing(launch, edit_spec, cli, rows):
    launch(daily("healthy") + "---\n" + daily("broken"))
    edit_spec("Campaign", "broken", lambda spec: spec["schedule"].update(cron="61 * * * *"))
    result = cli("--now", "2027-03-01T09:00:00Z", "-o", "json", "tick", "--dry-run")
    assert result.exit_code == 0, result
    assert result.json["failed_objects"] == 1 and result.json["sent"] == 3
    assert rows("SELECT * FROM object_failures") == []
    assert rows("SELECT * FROM outbox") == []


def test_json_of_a_no_op_tick_has_the_same_keys(cli, run_subprocess, launch):
    launch(daily("healthy"))
    fast = run_subprocess("--now", "2027-03-01T08:30:00Z", "-o", "json", "tick")
    full = cli("--now", "2027-03-01T08:30:00Z", "-o", "json", "tick", "--max-messages", "5")
    assert fast.exit_code == full.exit_code == 0
    assert json.loads(fast.stdout).keys() == full.json.keys()
    assert json.loads(fast.stdout)["failed_objects"] == 0


def test_a_run_whose_snapshot_is_not_json_is_never_built_nor_sent(launch, sql, cli, rows):
    launch(campaign("healthy") + "---\n" + campaign("broken").replace(
        "schedule: {send: immediately}", "schedule: {send: {at: \"2027-03-01T10:00\"}}"),
           start=False)
    for name in ("healthy", "broken"):
        assert cli("--now", T0, "start", "campaign", name).exit_code == 0
    # Both runs exist; the broken one's snapshot is garbage before it is built.
    assert cli("--now", T0, "-o", "json", "tick", "--max-messages", "1").exit_code == 0
    sql("UPDATE runs SET spec = 'not json' WHERE campaign = 'broken'")
    sql("UPDATE runs SET status = 'scheduled', built_at = NULL WHERE campaign = 'broken'")
    sql("DELETE FROM queue_items WHERE run_id IN (SELECT id FROM runs WHERE campaign = 'broken')")
    result = cli("--now", "2027-03-01T10:00:00Z", "-o", "json", "tick")
    assert result.exit_code == 0, result
    run = rows("SELECT status, error FROM runs WHERE campaign = 'broken'")[0]
    assert run["status"] == "failed" and "not valid JSON" in run["error"]
    assert rows("SELECT 1 FROM queue_items q JOIN runs r ON r.id = q.run_id"
                " WHERE r.campaign = 'broken'") == []
    assert len(rows("SELECT 1 FROM outbox WHERE campaign = 'healthy'")) == 3
    assert rows("SELECT 1 FROM outbox WHERE campaign IS NULL OR campaign = 'broken'") == []


def test_a_message_that_cannot_be_prepared_fails_alone_in_its_batch(launch, edit_run_spec, cli,
                                                                    rows):
    launch(campaign("healthy") + "---\n" + campaign("broken"), start=False)
    for name in ("broken", "healthy"):
        assert cli("--now", T0, "start", "campaign", name).exit_code == 0
    # Build both (nothing delivered yet), then break the stored message of one run.
    assert cli("--now", T0, "tick", "--max-messages", "1").exit_code == 0
    edit_run_spec("broken", lambda spec: spec.update(message=[1, 2]))
    result = cli("--now", "2027-03-01T08:01:00Z", "-o", "json", "tick")
    assert result.exit_code == 0, result
    items = rows("SELECT r.campaign, q.status, q.last_error FROM queue_items q"
                 " JOIN runs r ON r.id = q.run_id ORDER BY r.campaign, q.id")
    broken = [i for i in items if i["campaign"] == "broken"]
    healthy = [i for i in items if i["campaign"] == "healthy"]
    assert {i["status"] for i in healthy} == {"sent"} and len(healthy) == 3
    # The one delivered before the edit is sent; the others fail with the reason.
    failed = [i for i in broken if i["status"] == "failed"]
    assert failed and all("message could not be prepared" in i["last_error"] for i in failed)


def test_a_scenario_whose_definition_cannot_be_read_waits_and_the_rest_goes_on(
        launch, sql, cli, rows):
    journey = ("kind: Scenario\nname: journey\nlaunch: {type: event, event: signup}\nsteps:\n"
               "  - id: pause\n    wait: 1d\n"
               "  - id: hi\n    send: {subject: \"Hi\", body: \"x\"}\n")
    launch(journey + "---\n" + campaign("healthy"), start=False)
    assert cli("--now", T0, "activate", "scenario", "journey").exit_code == 0
    assert cli("--now", T0, "events", "emit", "signup", "--contact", "c1").exit_code == 0
    assert cli("--now", T0, "tick").exit_code == 0
    sql("UPDATE objects SET spec = '{broken' WHERE kind = 'Scenario' AND name = 'journey'")
    assert cli("--now", T0, "start", "campaign", "healthy").exit_code == 0
    result = cli("--now", "2027-03-02T09:00:00Z", "-o", "json", "tick")
    assert result.exit_code == 0, result
    assert {f["object"] for f in result.json["object_failures"]} == {"scenario/journey"}
    assert "not valid JSON" in result.json["object_failures"][0]["reason"]
    assert len(rows("SELECT 1 FROM outbox WHERE campaign = 'healthy'")) == 3
    # Its profile is left where it was, for when the definition is readable again.
    assert rows("SELECT status, step FROM scenario_profiles") == [
        {"status": "waiting", "step": "pause"}]


def test_a_plan_that_breaks_the_engine_is_retried_and_the_others_go_on(launch, edit_spec, cli,
                                                                       rows):
    plan = ("kind: Campaign\nname: staged\ntimezone: UTC\ncloses_at: \"2027-12-31T00:00\"\n"
            "audience: {all: true}\nmessage: {subject: \"Hi\", body: \"x\"}\ntype: one-off\n"
            "stages:\n  - name: main\n    controlled_by_plan: true\n---\n"
            "kind: Plan\nname: weekly\nschedule: {type: recurrent, cron: \"0 9 * * *\", "
            "timezone: UTC}\nstages:\n  - {campaign: staged, stage: main}\n")
    launch(plan + "---\n" + daily("healthy"))
    for verb in ("submit", "approve"):
        assert cli("--now", T0, verb, "plan", "weekly").exit_code == 0
    edit_spec("Plan", "weekly", lambda spec: spec["schedule"].update(catchup="sometimes"))
    for day in (1, 2):
        result = cli("--now", f"2027-03-0{day}T09:00:00Z", "-o", "json", "tick")
        assert result.exit_code == 0, result
        assert [f["object"] for f in result.json["object_failures"]] == ["plan/weekly"]
    assert len(rows("SELECT 1 FROM outbox WHERE campaign = 'healthy'")) == 6
    assert rows("SELECT kind, name, count FROM object_failures") == [
        {"kind": "Plan", "name": "weekly", "count": 2}]
    assert rows("SELECT plan FROM exec_log WHERE event = 'Processing Failed'") == [
        {"plan": "weekly"}]


def test_status_lists_what_keeps_failing_until_it_goes_through(launch, edit_spec, cli):
    launch(daily("healthy") + "---\n" + daily("broken"))
    edit_spec("Campaign", "broken", lambda spec: spec["schedule"].update(cron="61 * * * *"))
    assert cli("--now", "2027-03-01T09:00:00Z", "tick").exit_code == 0
    data = cli("--now", "2027-03-01T09:05:00Z", "-o", "json", "status").json
    assert [(f["kind"], f["name"], f["ticks"]) for f in data["failing"]] == [
        ("Campaign", "broken", 1)]
    table = cli("--now", "2027-03-01T09:05:00Z", "status")
    assert "Failing" in table.stdout and "broken" in table.stdout
    edit_spec("Campaign", "broken", lambda spec: spec["schedule"].update(cron="0 9 * * *"))
    assert cli("--now", "2027-03-02T09:00:00Z", "tick").exit_code == 0
    assert cli("--now", "2027-03-02T09:05:00Z", "-o", "json", "status").json["failing"] == []


def test_a_channel_whose_definition_cannot_be_read_does_not_stop_the_others(launch, sql, cli,
                                                                           rows):
    later = "schedule: {send: {at: \"2027-03-01T10:00\"}}"
    launch("kind: Channel\nname: bad\ntype: webhook\nurl: http://127.0.0.1:9/hook\n---\n"
           + campaign("via-bad", extra="channel: bad\n").replace(
               "schedule: {send: immediately}", later) + "---\n"
           + campaign("healthy").replace("schedule: {send: immediately}", later))
    assert cli("--now", T0, "tick").exit_code == 0  # both built, held until 10:00
    sql("UPDATE objects SET spec = '{oops' WHERE kind = 'Channel' AND name = 'bad'")
    result = cli("--now", "2027-03-01T10:00:00Z", "-o", "json", "tick")
    assert result.exit_code == 0, result
    assert len(rows("SELECT 1 FROM outbox WHERE campaign = 'healthy'")) == 3
    assert "channel bad cannot be opened" in result.stderr
    assert {r["status"] for r in rows("SELECT q.status FROM queue_items q JOIN runs r"
                                      " ON r.id = q.run_id WHERE r.campaign = 'via-bad'")} == {
        "failed"}


def test_the_daemon_warns_about_each_object_set_aside(launch, edit_spec, cli, rows):
    launch(daily("healthy") + "---\n" + daily("broken"))
    edit_spec("Campaign", "broken", lambda spec: spec["schedule"].update(cron="61 * * * *"))
    result = cli("--now", "2027-03-01T09:00:00Z", "daemon", "--ticks", "1")
    assert result.exit_code == 0, result
    assert "warning: campaign broken:" in result.stderr
    assert "failed objects 1" in result.stdout
    assert len(rows("SELECT 1 FROM outbox WHERE campaign = 'healthy'")) == 3
