"""A campaign's closes_at holds whatever drives its runs: plan stages, restarts, delivery."""

from __future__ import annotations

T0 = "2027-03-01T09:00:00Z"
# closes_at "2027-03-01T11:00" in Europe/Paris is 10:00 UTC.
CLOSES = "2027-03-01T11:00"
CLOSED_AT = "2027-03-01T10:00:00Z"
AFTER_CLOSE = "2027-03-01T23:00:00Z"


def minute(n: int) -> str:
    return f"2027-03-01T{9 + n // 60:02d}:{n % 60:02d}:00Z"


def _ready(world, *, contacts=10, rate="2/m", transition="sent", closes_at=CLOSES):
    world.contacts(contacts)
    world.campaign(channel="slow", rate=rate, closes_at=closes_at)
    world.approve("campaign", "spring-sale")
    world.plan(transition=transition)
    world.approve("plan", "spring-launch")
    return world.ok("-o", "json", "start", "plan", "spring-launch", now=T0).json


def _stages(world, instance_id: int) -> list[dict]:
    return world.rows("SELECT s.status, s.run_id, r.status AS run_status FROM stage_instances s"
                      " LEFT JOIN runs r ON r.id = s.run_id WHERE s.instance_id = ?"
                      " ORDER BY s.position", (instance_id,))


def test_plan_only_campaign_closes_mid_stage_and_no_later_stage_starts(world):
    """Every stage runs in plans, so the campaign is never launched: its close must still
    cancel the queued messages, and the next stage must not start a new run."""
    started = _ready(world)
    world.tick(minute(1))
    sent_before = len(world.received)
    assert sent_before == 2
    world.tick(AFTER_CLOSE)
    world.tick("2027-03-01T23:01:00Z")
    assert len(world.received) == sent_before  # nothing handed over after the close
    runs = world.rows("SELECT id, status FROM runs")
    assert len(runs) == 1, runs  # no later stage started a run
    items = world.rows("SELECT status, count(*) AS n FROM queue_items GROUP BY status")
    assert {r["status"]: r["n"] for r in items} == {"sent": 2, "cancelled": 8}
    closed = world.log("Campaign Closed")
    assert closed and all(r["campaign"] == "spring-sale" for r in closed)
    [instance] = world.instances()
    assert instance["status"] == "cancelled", instance
    assert [s["status"] for s in instance["stages"]] == ["cancelled", "cancelled"]
    cancelled = world.log("Stage Cancelled", plan="spring-launch")
    assert cancelled and "spring-sale closed" in cancelled[0]["details"], cancelled
    kinds = {n["kind"]: n for n in world.rows("SELECT kind, object, note FROM notifications")}
    assert "instance-cancelled" in kinds, kinds
    assert "spring-sale closed" in kinds["instance-cancelled"]["note"]
    assert kinds["instance-cancelled"]["object"] == f"instance/{started['id']}"


def _two_campaigns(world, *, closes_at=CLOSES):
    """Stage 1 in campaign teasers (open till June, 1 message a minute), stage 2 in
    spring-sale (closes at 10:00 UTC unless told otherwise)."""
    world.contacts(3)
    world.campaign(name="teasers", code="TZ", channel="slow", rate="1/m")
    world.campaign(name="spring-sale", closes_at=closes_at)
    world.approve("campaign", "teasers")
    world.approve("campaign", "spring-sale")
    world.plan(transition="sent", stages=(("teasers", "teaser"), ("spring-sale", "main")))
    world.approve("plan", "spring-launch")
    return world.ok("-o", "json", "start", "plan", "spring-launch", now=T0).json


def test_a_stage_that_would_start_after_its_campaign_closed_is_cancelled(world):
    started = _two_campaigns(world)
    for now in (minute(1), CLOSED_AT, "2027-03-01T10:01:00Z", "2027-03-01T10:02:00Z"):
        world.tick(now)
    assert len(world.received) == 3  # stage 1 (teasers, still open) went out in full
    runs = world.rows("SELECT campaign FROM runs")
    assert runs == [{"campaign": "teasers"}]  # stage 2 started no run of spring-sale
    stages = _stages(world, started["id"])
    assert [s["status"] for s in stages] == ["completed", "cancelled"]
    [instance] = world.instances()
    assert instance["status"] == "cancelled"
    row = world.log("Stage Cancelled", plan="spring-launch")[-1]
    assert row["stage"] == "main" and "closed at 2027-03-01T10:00:00Z" in row["details"], row
    [note] = world.rows("SELECT kind, note FROM notifications")
    assert note["kind"] == "instance-cancelled" and "cannot start" in note["note"], note
    assert [h["action"] for h in world.rows(
        "SELECT action FROM history WHERE kind = 'instance' ORDER BY id")] == ["start", "cancel"]


def test_a_stage_of_a_stopped_campaign_does_not_start(world):
    started = _two_campaigns(world, closes_at="2027-06-30T23:59")
    world.tick(minute(1))
    world.ok("stop", "campaign", "spring-sale", "--note", "pulled", now=minute(1))
    for n in range(2, 6):
        world.tick(minute(n))
    assert world.rows("SELECT campaign FROM runs") == [{"campaign": "teasers"}]
    assert [m["campaign"] for m in world.received] == ["teasers"] * 3
    stages = _stages(world, started["id"])
    assert [s["status"] for s in stages] == ["completed", "cancelled"]
    row = world.log("Stage Cancelled", plan="spring-launch")[-1]
    assert "campaign spring-sale is stopped" in row["details"], row


def test_restart_after_the_close_is_refused(world):
    started = _ready(world)
    world.tick(minute(1))
    run = _stages(world, started["id"])[0]["run_id"]
    world.ok("stop", "run", str(run), "--note", "typo", now=minute(2))
    result = world.cli("--now", AFTER_CLOSE, "restart", "run", str(run), "--note", "fixed")
    assert result.exit_code == 1, result
    assert "spring-sale closed at 2027-03-01T10:00:00Z" in result.stderr
    assert len(world.rows("SELECT id FROM runs")) == 1


def test_start_campaign_after_its_close_says_it_is_closed(world):
    world.contacts(1)
    world.campaign(closes_at=CLOSES, main_controlled="false")
    world.approve("campaign", "spring-sale")
    result = world.cli("--now", AFTER_CLOSE, "start", "campaign", "spring-sale")
    assert result.exit_code == 1, result
    assert "spring-sale closed at 2027-03-01T10:00:00Z" in result.stderr
    # Launched before the close, or stopped since: the answer is still that it is closed.
    world.ok("start", "campaign", "spring-sale", now=T0)
    again = world.cli("--now", AFTER_CLOSE, "start", "campaign", "spring-sale")
    assert again.exit_code == 1 and "closed at 2027-03-01T10:00:00Z" in again.stderr, again
    world.ok("stop", "campaign", "spring-sale", now=minute(5))
    stopped = world.cli("--now", AFTER_CLOSE, "start", "campaign", "spring-sale")
    assert stopped.exit_code == 1 and "closed at 2027-03-01T10:00:00Z" in stopped.stderr, stopped


def test_send_at_the_closing_instant_is_refused_by_validate(world):
    text = """\
kind: Campaign
name: late
timezone: Europe/Paris
closes_at: 2027-06-30T23:59
audience: {all: true}
message: {body: hi}
type: one-off
schedule:
  send: {at: 2027-06-30T23:59}
"""
    result = world.cli("validate", str(world.write_yaml("late.yaml", text)))
    assert result.exit_code == 1, result
    assert "schedule.send.at (2027-06-30T23:59) is at closes_at" in result.stdout + result.stderr


def test_delivery_never_claims_an_item_after_the_close(world, state):
    """Defence in depth at the claim: even when nothing has closed the campaign's runs yet (a
    late pass, a restart), delivery hands over nothing once closes_at has passed."""
    from campctl.engine.context import TickContext
    from campctl.engine.delivery import deliver_due
    from campctl.store.db import open_state
    from campctl.timeutil import from_db

    started = _ready(world)
    world.tick(minute(1))
    run = _stages(world, started["id"])[0]["run_id"]
    db = open_state(state, create=False)
    try:
        report = deliver_due(TickContext(db, from_db(CLOSED_AT), {}), run_ids=[run],
                             scenario_items=False)
    finally:
        db.close()
    assert report.sent == 0
    assert len(world.received) == 2
    assert world.sent(run) == 2


WINDOWED = """\
kind: Campaign
name: spring-sale
timezone: Europe/Paris
closes_at: "2027-03-01T12:00"
audience: {all: true}
message: {subject: "Hi", body: "Hello {{ id }}"}
type: one-off
schedule:
  queue: immediately
  send: immediately
  window: "08:00-09:00"
stages:
  - {name: teaser, controlled_by_plan: true}
  - {name: main, controlled_by_plan: true}
"""


def test_messages_held_for_a_window_that_opens_after_the_close_never_go_out(world):
    """The run is built at 10:00 Paris and held for the next 08:00-09:00 window, which opens
    the day after the 12:00 close: the close cancels them; the window changes nothing."""
    world.contacts(3)
    world.ok("apply", str(world.write_yaml("windowed.yaml", WINDOWED)))
    world.approve("campaign", "spring-sale")
    world.plan(transition="completed")
    world.approve("plan", "spring-launch")
    world.ok("start", "plan", "spring-launch", now=T0)
    world.tick(minute(1))
    assert world.rows("SELECT count(*) AS n FROM queue_items WHERE status = 'queued'") \
        == [{"n": 3}]
    for now in ("2027-03-01T11:01:00Z", "2027-03-02T07:05:00Z", "2027-03-02T07:30:00Z"):
        world.tick(now)
    assert world.outbox() == []
    assert world.rows("SELECT status, count(*) AS n FROM queue_items GROUP BY status") == [
        {"status": "cancelled", "n": 3}]
    assert world.log("Campaign Closed")[0]["at"] == "2027-03-01T11:01:00Z"
    assert world.instances()[0]["status"] == "cancelled"
