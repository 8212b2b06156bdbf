"""Plan instances end to end through the CLI and the tick: transitions, control, snapshot."""

from __future__ import annotations

import pytest

T0 = "2027-03-01T09:00:00Z"


def minute(n: int) -> str:
    """09:00 + n minutes on 2027-03-01, UTC."""
    return f"2027-03-01T{9 + n // 60:02d}:{n % 60:02d}:00Z"


def _ready(world, *, contacts=3, rate=None, **plan):
    world.contacts(contacts)
    world.campaign(channel="slow" if rate else "outbox", rate=rate)
    world.approve("campaign", "spring-sale")
    world.plan(**plan)
    world.approve("plan", "spring-launch")


def _stages(world, instance_id: int) -> list[dict]:
    return world.rows("SELECT s.*, r.status AS run_status, r.finished_at AS run_finished_at "
                      "FROM stage_instances s LEFT JOIN runs r ON r.id = s.run_id "
                      "WHERE s.instance_id = ? ORDER BY position", (instance_id,))


def _start(world, now: str = T0) -> dict:
    return world.ok("-o", "json", "start", "plan", "spring-launch", now=now).json


def test_manual_start_creates_instance_with_stages_and_log(world):
    _ready(world)
    started = _start(world)
    assert started["name"] == "spring-launch-20270301T0900"
    assert started["status"] == "running"
    assert [(s["stage"], s["status"]) for s in started["stages"]] == [
        ("teaser", "started"), ("main", "not-started")]
    listed = world.instances()
    assert set(listed[0]) >= {"id", "name", "plan", "status", "started_at", "finished_at",
                              "stages"}
    assert set(listed[0]["stages"][0]) >= {"campaign", "stage", "status", "started_at",
                                           "ended_at", "run"}
    assert listed[0]["started_at"] == T0
    events = [e["event"] for e in world.log(plan="spring-launch")]
    assert events == ["Instance Created", "Stage Instance Created", "Activity Created"]
    history = world.rows("SELECT kind, name, action, actor FROM history WHERE kind = 'instance'")
    assert history == [{"kind": "instance", "name": str(started["id"]), "action": "start",
                        "actor": "tester"}]
    # One instance at a time: a second start is refused and names the running one.
    again = world.cli("start", "plan", "spring-launch")
    assert again.exit_code == 1, again
    assert f"instance spring-launch-20270301T0900 (id {started['id']}) is still running" in \
        again.stderr
    world.ok("pause", "instance", str(started["id"]))
    paused = world.cli("pause", "instance", str(started["id"]))
    assert paused.exit_code == 1 and "it is paused; allowed:" in paused.stderr, paused
    assert "'campctl resume instance" in paused.stderr


def test_two_stages_complete_end_to_end(world):
    _ready(world)
    started = _start(world)
    world.tick(minute(1))
    world.tick(minute(2))
    [instance] = world.instances()
    assert instance["status"] == "completed", instance
    assert instance["finished_at"] is not None
    assert [s["status"] for s in instance["stages"]] == ["completed", "completed"]
    sent = world.outbox()
    assert len(sent) == 6
    subjects = {(m["stage"], m["subject"]) for m in sent}
    assert subjects == {("teaser", "Teaser v1"), ("main", "v1")}
    events = [e["event"] for e in world.log(plan="spring-launch")]
    for needed in ("Instance Created", "Stage Instance Created", "Activity Created",
                   "Queue Items Created", "Delivery Started", "Messages Sent",
                   "Stage Completed", "Instance Completed"):
        assert needed in events, (needed, events)
    described = world.ok("-o", "json", "describe", "instance", str(started["id"])).json
    assert described["stages"][0]["completed"] is True
    assert described["stages"][0]["has_errors"] is False
    assert described["stages"][0]["activity_finished_at"] is not None
    assert "3 sent" in described["stages"][0]["run_log"]
    assert described["log"][0]["event"] == "Instance Created"
    table = world.ok("describe", "instance", str(started["id"]))
    assert "Campaign stage instances" in table.stdout and "Execution log" in table.stdout


@pytest.mark.parametrize("transition", ["completed", "sent"])
def test_transition_with_slow_channel(world, transition):
    """10 messages per stage, a channel that sends 4 a minute: `completed` starts the second
    stage as soon as the first is built; `sent` waits until every message went out."""
    _ready(world, contacts=10, rate="4/m", transition=transition)
    started = _start(world)
    seen = []
    for n in range(1, 12):
        world.tick(minute(n))
        stages = _stages(world, started["id"])
        first_sent = world.sent(stages[0]["run_id"])
        seen.append((n, first_sent, stages[1]["status"]))
        if stages[1]["status"] != "not-started":
            break
    n, first_sent, _ = seen[-1]
    stages = _stages(world, started["id"])
    if transition == "completed":
        assert n == 1, seen  # built at the first tick: the next stage starts at once
        assert first_sent < 10, seen
        assert stages[0]["status"] == "completed"
        assert stages[0]["run_status"] in ("queued", "sending")
    else:
        assert n >= 3, seen  # 10 messages at 4 a minute need three ticks
        assert first_sent == 10, seen
        assert stages[0]["run_status"] == "completed"
        assert all(status == "not-started" for _, sent, status in seen[:-1]), seen
    assert stages[1]["started_at"] == minute(n)
    # Both variants run to completion.
    for extra in range(n + 1, n + 12):
        world.tick(minute(extra))
        if world.instances()[0]["status"] == "completed":
            break
    assert world.instances()[0]["status"] == "completed"
    assert len(world.received) == 20


def test_empty_audience_stage_completes_at_once(world):
    _ready(world, contacts=0, transition="sent")
    _start(world)
    world.tick(minute(1))
    world.tick(minute(2))
    [instance] = world.instances()
    assert instance["status"] == "completed", instance
    assert world.outbox() == []


def test_paused_instance_builds_but_sends_nothing_until_resumed(world):
    _ready(world)
    started = _start(world)
    world.ok("pause", "instance", str(started["id"]), "--note", "hold on", now=minute(0))
    assert world.instances()[0]["status"] == "paused"
    world.tick(minute(1))
    world.tick(minute(2))
    stages = _stages(world, started["id"])
    # transition completed: each stage completes once built, even while delivery is held; the
    # instance stays paused until its messages have gone out.
    assert [s["status"] for s in stages] == ["completed", "completed"]
    assert world.rows("SELECT count(*) AS n FROM queue_items")[0]["n"] == 6
    assert world.outbox() == []
    assert world.instances()[0]["status"] == "paused"
    world.ok("resume", "instance", str(started["id"]), now=minute(3))
    world.tick(minute(3))
    world.tick(minute(4))
    assert len(world.outbox()) == 6
    assert world.instances()[0]["status"] == "completed"
    events = [e["event"] for e in world.log(plan="spring-launch")]
    assert "Delivery Paused" in events and "Delivery Resumed" in events
    actions = [h["action"] for h in world.rows(
        "SELECT action FROM history WHERE kind = 'instance' ORDER BY id")]
    assert actions == ["start", "pause", "resume", "complete"]
    shown = world.ok("-o", "json", "history", "instance", str(started["id"])).json
    assert [(h["action"], h["note"]) for h in shown][1] == ("pause", "hold on")
    assert world.ok("history", "instance", str(started["id"])).stdout.count("tester") >= 3


def test_sent_transition_waits_while_paused(world):
    _ready(world, transition="sent")
    started = _start(world)
    world.ok("pause", "instance", str(started["id"]))
    for n in (1, 2, 3):
        world.tick(minute(n))
    stages = _stages(world, started["id"])
    assert [s["status"] for s in stages] == ["running", "not-started"]
    world.ok("resume", "instance", str(started["id"]), now=minute(4))
    world.tick(minute(4))
    assert _stages(world, started["id"])[1]["status"] != "not-started"


@pytest.mark.parametrize("how", ["instance", "plan"])
def test_stop_cancels_the_rest(world, how):
    _ready(world, contacts=10, rate="4/m", transition="sent")
    started = _start(world)
    world.tick(minute(1))
    assert len(world.received) == 4
    if how == "instance":
        world.ok("stop", "instance", str(started["id"]), "--note", "wrong audience",
                 now=minute(1))
    else:
        world.ok("stop", "plan", "spring-launch", "--current", "--note", "wrong audience",
                 now=minute(1))
    [instance] = world.instances()
    assert instance["status"] == "cancelled"
    assert [s["status"] for s in instance["stages"]] == ["cancelled", "cancelled"]
    run = world.rows("SELECT status FROM runs")
    assert run == [{"status": "stopped"}]
    items = world.rows("SELECT status, count(*) AS n FROM queue_items GROUP BY status")
    assert {r["status"]: r["n"] for r in items} == {"sent": 4, "cancelled": 6}
    world.tick(minute(2))
    world.tick(minute(3))
    assert len(world.received) == 4
    events = [e["event"] for e in world.log(plan="spring-launch")]
    assert events.count("Stage Cancelled") == 2 and "Instance Cancelled" in events
    note = world.rows("SELECT note FROM history WHERE kind = 'instance' AND action = 'stop'")
    assert note == [{"note": "wrong audience"}]
    # Nothing left to stop.
    again = world.cli("stop", "instance", str(started["id"]))
    assert again.exit_code == 1 and "it is cancelled" in again.stderr, again
    current = world.cli("stop", "plan", "spring-launch", "--current")
    assert current.exit_code == 1, current
    # The plan itself keeps its status.
    assert world.ok("-o", "json", "get", "plans").json[0]["status"] == "approved"


def test_snapshot_keeps_running_instance_and_next_instance_uses_new_definition(world):
    world.contacts(3)
    world.campaign(name="teasers", code="TZ", subject="t1", rate="1/m", channel="slow")
    world.campaign(name="spring-sale", subject="v1")
    world.approve("campaign", "teasers")
    world.approve("campaign", "spring-sale")
    world.plan(transition="sent", stages=(("teasers", "teaser"), ("spring-sale", "main")))
    world.approve("plan", "spring-launch")
    first = _start(world)
    world.tick(minute(1))
    # While the first stage (campaign teasers) is still sending, spring-sale is edited.
    world.ok("revise", "campaign", "spring-sale", now=minute(1))
    world.campaign(name="spring-sale", subject="v2")
    world.approve("campaign", "spring-sale", now=minute(1))
    for n in range(2, 10):
        world.tick(minute(n))
        if world.instances()[0]["status"] == "completed":
            break
    assert world.instances()[0]["status"] == "completed"
    main = {m["subject"] for m in world.outbox() if m["stage"] == "main"}
    assert main == {"v1"}
    snapshot = world.ok("-o", "json", "describe", "instance", str(first["id"])).json["snapshot"]
    assert snapshot["stages"][1]["spec"]["message"]["subject"] == "v1"
    second = _start(world, now=minute(20))
    assert second["name"] == "spring-launch-20270301T0920"
    for n in range(21, 30):
        world.tick(minute(n))
        if world.instances()[-1]["status"] == "completed":
            break
    assert world.instances()[-1]["status"] == "completed"
    latest = {m["subject"] for m in world.outbox() if m["stage"] == "main"}
    assert latest == {"v1", "v2"}


def test_instance_name_gets_a_suffix_on_collision(world):
    _ready(world, contacts=1)
    first = _start(world)
    world.ok("stop", "instance", str(first["id"]))
    second = _start(world, now="2027-03-01T09:00:40Z")
    assert (first["name"], second["name"]) == ("spring-launch-20270301T0900",
                                               "spring-launch-20270301T0900-2")


def test_failed_run_fails_the_instance_and_cancels_later_stages(world):
    _ready(world, contacts=2, rate="100/m")
    world.hook_status[0] = 400  # permanent refusal: every message fails
    started = _start(world)
    world.tick(minute(1))
    [instance] = world.instances()
    assert instance["status"] == "failed", instance
    assert [s["status"] for s in instance["stages"]] == ["cancelled", "cancelled"]
    assert instance["stages"][0]["has_errors"] is True
    described = world.ok("-o", "json", "describe", "instance", str(started["id"])).json
    assert "failed" in described["error"]
    events = [e["event"] for e in world.log(plan="spring-launch")]
    assert "Instance Failed" in events
    kinds = [n["kind"] for n in world.rows("SELECT kind FROM notifications")]
    assert "instance-failed" in kinds


def test_stage_follows_restarted_run_and_skipped_run_lets_the_plan_carry_on(world):
    _ready(world, contacts=4, rate="2/m", transition="sent")
    started = _start(world)
    world.tick(minute(1))
    first_run = _stages(world, started["id"])[0]["run_id"]
    world.ok("stop", "run", str(first_run), "--note", "bad copy", now=minute(1))
    world.tick(minute(2))
    # A stopped run holds the stage: the operator decides (restart or skip).
    stages = _stages(world, started["id"])
    assert [s["status"] for s in stages] == ["running", "not-started"]
    assert world.instances()[0]["status"] == "running"
    world.ok("restart", "run", str(first_run), "--note", "fixed", now=minute(2))
    for n in range(3, 8):
        world.tick(minute(n))
        stages = _stages(world, started["id"])
        if stages[1]["status"] != "not-started":
            break
    assert stages[0]["run_id"] != first_run
    assert stages[0]["status"] == "completed" and stages[1]["status"] != "not-started"
    assert world.sent(stages[0]["run_id"]) == 2  # the two already sent are not sent again
    second_run = stages[1]["run_id"]
    world.ok("stop", "run", str(second_run), "--note", "enough", now=minute(n))
    world.ok("skip", "run", str(second_run), "--note", "enough", now=minute(n))
    world.tick(minute(n + 1))
    [instance] = world.instances()
    assert instance["status"] == "completed", instance
    stage_log = world.log("Stage Completed", plan="spring-launch")
    assert f"run {second_run} skipped" in stage_log[-1]["details"]

