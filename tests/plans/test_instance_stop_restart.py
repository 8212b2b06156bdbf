"""Operator verbs across a plan instance and its runs: a stopped instance stays stopped, a
failed one resumes when its failed run is restarted, a stop marks the stages it cut."""

from __future__ import annotations

T0 = "2027-03-01T09:00:00Z"


def minute(n: int) -> str:
    return f"2027-03-01T{9 + n // 60:02d}:{n % 60:02d}:00Z"


def _start(world, *, contacts: int, rate: str, transition: str) -> dict:
    world.contacts(contacts)
    world.campaign(channel="slow", rate=rate)
    world.approve("campaign", "spring-sale")
    world.plan(transition=transition)
    world.approve("plan", "spring-launch")
    return world.ok("-o", "json", "start", "plan", "spring-launch", now=T0).json


def _stages(world, instance_id: int) -> list[dict]:
    return world.rows("SELECT s.status, s.run_id, r.status AS run_status FROM stage_instances s"
                      " LEFT JOIN runs r ON r.id = s.run_id WHERE s.instance_id = ?"
                      " ORDER BY s.position", (instance_id,))


def test_restart_or_skip_of_a_run_of_a_stopped_instance_is_refused(world):
    started = _start(world, contacts=4, rate="2/m", transition="sent")
    world.tick(minute(1))
    assert len(world.received) == 2
    run = _stages(world, started["id"])[0]["run_id"]
    world.ok("stop", "instance", str(started["id"]), "--note", "wrong list", now=minute(1))
    for verb in ("restart", "skip"):
        result = world.cli("--now", minute(2), verb, "run", str(run), "--note", "oops")
        assert result.exit_code == 1, result
        assert (f"plan instance spring-launch-20270301T0900 (id {started['id']}) is cancelled"
                in result.stderr), result
    for n in (2, 3, 4):
        world.tick(minute(n))
    assert len(world.received) == 2
    assert world.rows("SELECT id, status FROM runs") == [{"id": run, "status": "stopped"}]
    assert world.instances()[0]["status"] == "cancelled"


def test_restarting_the_failed_run_resumes_the_failed_instance(world):
    started = _start(world, contacts=2, rate="100/m", transition="completed")
    world.hook_status[0] = 400  # the receiver refuses: the first stage's run fails
    world.tick(minute(1))
    [instance] = world.instances()
    assert instance["status"] == "failed"
    failed_run = _stages(world, started["id"])[0]["run_id"]
    world.hook_status[0] = 200
    world.ok("restart", "run", str(failed_run), "--note", "receiver fixed", now=minute(2))
    [instance] = world.instances()
    assert instance["status"] == "running", instance
    assert instance["finished_at"] is None
    for n in (3, 4, 5):
        world.tick(minute(n))
    [instance] = world.instances()
    assert instance["status"] == "completed", instance
    stages = _stages(world, started["id"])
    assert [s["status"] for s in stages] == ["completed", "completed"]
    assert stages[0]["run_id"] != failed_run
    assert world.sent(stages[0]["run_id"]) == 2 and world.sent(stages[1]["run_id"]) == 2
    actions = [h["action"] for h in world.rows(
        "SELECT action FROM history WHERE kind = 'instance' ORDER BY id")]
    assert actions == ["start", "fail", "resume", "complete"]
    [resumed] = world.log("Instance Resumed", plan="spring-launch")
    assert f"run {failed_run} restarted as run {stages[0]['run_id']}" in resumed["details"]


def test_skipping_the_failed_run_lets_the_failed_instance_carry_on(world):
    started = _start(world, contacts=2, rate="100/m", transition="completed")
    world.hook_status[0] = 400
    world.tick(minute(1))
    failed_run = _stages(world, started["id"])[0]["run_id"]
    world.hook_status[0] = 200
    world.ok("skip", "run", str(failed_run), "--note", "teaser not needed", now=minute(2))
    for n in (3, 4, 5):
        world.tick(minute(n))
    [instance] = world.instances()
    assert instance["status"] == "completed", instance
    stages = _stages(world, started["id"])
    assert [s["status"] for s in stages] == ["completed", "completed"]
    assert world.sent(stages[1]["run_id"]) == 2


def test_stop_instance_marks_the_stages_it_cut_cancelled(world):
    """transition completed: both stages are built (completed) while their messages still go
    out slowly; the stop cuts both deliveries, so both stages read cancelled."""
    started = _start(world, contacts=10, rate="2/m", transition="completed")
    world.tick(minute(1))
    world.tick(minute(2))
    before = _stages(world, started["id"])
    assert [s["status"] for s in before] == ["completed", "completed"], before
    world.ok("stop", "instance", str(started["id"]), "--note", "wrong list", now=minute(2))
    after = _stages(world, started["id"])
    assert [(s["status"], s["run_status"]) for s in after] == [("cancelled", "stopped")] * 2
    stopped = world.log("Run Stopped", plan="spring-launch")
    assert sorted(r["run_id"] for r in stopped) == sorted(s["run_id"] for s in after)
    cancelled = world.log("Stage Cancelled", plan="spring-launch")
    assert sorted(r["stage"] for r in cancelled) == ["main", "teaser"]
    assert all("unsent" in r["details"] for r in cancelled), cancelled


def test_the_failed_instance_is_not_resumed_beside_a_newer_one(world):
    started = _start(world, contacts=2, rate="100/m", transition="completed")
    world.hook_status[0] = 400
    world.tick(minute(1))
    failed_run = _stages(world, started["id"])[0]["run_id"]
    newer = world.ok("-o", "json", "start", "plan", "spring-launch", now=minute(2)).json
    result = world.cli("--now", minute(3), "restart", "run", str(failed_run), "--note", "retry")
    assert result.exit_code == 1, result
    assert f"stop that one first ('campctl stop instance {newer['id']}" in result.stderr
    assert [i["status"] for i in world.instances()] == ["failed", "running"]
    world.ok("stop", "instance", str(newer["id"]), "--note", "make way", now=minute(3))
    world.hook_status[0] = 200
    world.ok("restart", "run", str(failed_run), "--note", "retry", now=minute(4))
    assert [i["status"] for i in world.instances()] == ["running", "cancelled"]
