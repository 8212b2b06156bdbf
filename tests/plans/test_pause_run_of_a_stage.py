"""`pause run` on a plan stage's run holds its delivery, never its building."""

from __future__ import annotations

T0 = "2027-03-01T09:00:00Z"


def minute(n: int) -> str:
    return f"2027-03-01T{9 + n // 60:02d}:{n % 60:02d}:00Z"


def test_a_paused_stage_run_builds_and_the_plan_moves_on_but_nothing_goes_out(world):
    world.contacts(3)
    world.campaign(channel="slow", rate="100/m")
    world.approve("campaign", "spring-sale")
    world.plan(transition="completed")
    world.approve("plan", "spring-launch")
    started = world.ok("-o", "json", "start", "plan", "spring-launch", now=T0).json
    teaser_run = started["stages"][0]["run"]
    world.ok("pause", "run", str(teaser_run), "--note", "copy check", now=T0)
    world.tick(minute(1))
    world.tick(minute(2))
    run = world.rows("SELECT status, built_at FROM runs WHERE id = ?", (teaser_run,))[0]
    assert run["status"] == "paused" and run["built_at"] == minute(1), run
    items = world.rows("SELECT status FROM queue_items WHERE run_id = ?", (teaser_run,))
    assert [i["status"] for i in items] == ["queued"] * 3
    [instance] = world.instances()
    # transition completed: the built stage completes and the next one runs as usual.
    assert [s["status"] for s in instance["stages"]] == ["completed", "completed"], instance
    assert {m["stage"] for m in world.received} == {"main"}
    assert instance["status"] == "running"  # waits for the paused run's delivery
    world.ok("resume", "run", str(teaser_run), now=minute(3))
    world.tick(minute(3))
    world.tick(minute(4))
    assert sorted(m["stage"] for m in world.received) == ["main"] * 3 + ["teaser"] * 3
    assert world.instances()[0]["status"] == "completed"
