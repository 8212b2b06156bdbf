"""`resume instance ID --missed skip [--dry-run]`: the policy applies to the instance's runs."""

from __future__ import annotations

T0 = "2027-03-01T09:00:00Z"


def minute(n: int) -> str:
    return f"2027-03-01T{9 + n // 60:02d}:{n % 60:02d}:00Z"


def _ready_and_paused(world) -> int:
    world.contacts(3)
    world.campaign()
    world.approve("campaign", "spring-sale")
    world.plan()
    world.approve("plan", "spring-launch")
    started = world.ok("-o", "json", "start", "plan", "spring-launch").json
    world.ok("pause", "instance", str(started["id"]), "--note", "hold on", now=minute(0))
    world.tick(minute(1))
    world.tick(minute(2))  # both stages built while paused: 6 messages held
    assert world.rows("SELECT count(*) AS n FROM queue_items WHERE status = 'queued'")[0]["n"] == 6
    return started["id"]


def test_skip_cancels_what_the_instance_missed_and_dry_run_writes_nothing(world):
    instance = _ready_and_paused(world)
    before = world.rows("SELECT id, status, last_error FROM queue_items ORDER BY id")
    shown = world.ok("-o", "json", "resume", "instance", str(instance), "--missed", "skip",
                     "--dry-run", now=minute(3)).json
    assert shown["status"] == "paused" and shown["dry_run"] is True
    assert (shown["missed"]["missed"], shown["missed"]["cancelled"]) == (6, 6)
    assert [r["missed"] for r in shown["missed"]["runs"]] == [3, 3]
    assert world.rows("SELECT id, status, last_error FROM queue_items ORDER BY id") == before
    assert world.instances()[0]["status"] == "paused"

    done = world.ok("-o", "json", "resume", "instance", str(instance), "--missed", "skip",
                    now=minute(3)).json
    assert done["status"] == "running" and done["missed"]["cancelled"] == 6
    world.tick(minute(4))
    world.tick(minute(5))
    assert world.outbox() == []
    runs = {r["id"]: r for r in world.ok("-o", "json", "get", "runs").json}
    assert [r["cancelled"] for r in runs.values()] == [3, 3]
    events = [e["event"] for e in world.log(event="Missed Messages Cancelled")]
    assert len(events) == 2


def test_send_releases_everything(world):
    instance = _ready_and_paused(world)
    done = world.ok("-o", "json", "resume", "instance", str(instance), now=minute(3)).json
    assert done["missed"]["policy"] == "send" and done["missed"]["cancelled"] == 0
    world.tick(minute(4))
    world.tick(minute(5))
    assert len(world.outbox()) == 6


def test_a_running_instance_is_refused_even_in_a_dry_run(world):
    world.contacts(1)
    world.campaign()
    world.approve("campaign", "spring-sale")
    world.plan()
    world.approve("plan", "spring-launch")
    started = world.ok("-o", "json", "start", "plan", "spring-launch").json
    refused = world.cli("resume", "instance", str(started["id"]), "--missed", "skip",
                        "--dry-run")
    assert refused.exit_code == 1 and "it is running" in refused.stderr, refused
    missing = world.cli("resume", "instance", "77", "--dry-run")
    assert missing.exit_code == 3, missing
