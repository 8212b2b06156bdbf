"""Plan schedules through the tick: once, recurrent, catch-up, overlap, stopped plans."""

from __future__ import annotations

import pytest

DAILY = {"type": "recurrent", "cron": "0 9 * * *", "timezone": "Europe/Paris"}
# 09:00 in Paris is 08:00Z in March 2027 (before the switch to summer time on the 28th).
DAYS = {"mon": "01", "tue": "02", "wed": "03", "thu": "04", "fri": "05", "sat": "06", "sun": "07"}


def at(day: str, clock: str = "08:01") -> str:
    return f"2027-03-{DAYS[day]}T{clock}:00Z"


def _ready(world, *, schedule, contacts=3, rate=None, stages=(("spring-sale", "teaser"),),
           approve_at="2027-03-01T07:00:00Z", closes_at="2027-06-30T23:59"):
    world.contacts(contacts)
    world.campaign(channel="slow" if rate else "outbox", rate=rate, closes_at=closes_at)
    world.approve("campaign", "spring-sale", now=approve_at)
    world.plan(schedule=schedule, stages=stages)
    world.approve("plan", "spring-launch", now=approve_at)


def _names(world) -> list[str]:
    return [i["name"] for i in world.instances()]


def test_once_fires_at_its_local_time_only_while_approved(world):
    _ready(world, schedule={"type": "once", "at": "2027-03-02T10:00", "timezone": "Europe/Paris"})
    assert world.tick("2027-03-02T08:59:00Z")["fired"] == 0
    assert world.tick("2027-03-02T09:00:20Z")["fired"] == 1
    assert world.tick("2027-03-02T09:00:40Z")["fired"] == 0  # exactly once
    assert _names(world) == ["spring-launch-20270302T1000"]
    [instance] = world.instances()
    assert instance["status"] == "completed", instance


def test_scheduled_occurrence_refused_by_preconditions_is_logged(world):
    _ready(world, schedule={"type": "once", "at": "2027-03-02T10:00", "timezone": "Europe/Paris"})
    world.ok("revise", "campaign", "spring-sale")
    report = world.tick("2027-03-02T09:00:30Z")
    assert report["fired"] == 0
    assert world.rows("SELECT * FROM plan_instances") == []
    skipped = world.log("Occurrence Skipped", plan="spring-launch")
    assert len(skipped) == 1
    assert "precondition not met: campaign spring-sale is draft" in skipped[0]["details"]
    occurrences = world.rows("SELECT scheduled_at, status FROM occurrences WHERE kind = 'Plan'")
    assert occurrences == [{"scheduled_at": "2027-03-02T09:00:00Z", "status": "skipped"}]
    world.tick("2027-03-02T09:05:00Z")
    assert len(world.log("Occurrence Skipped", plan="spring-launch")) == 1


# (catchup, overlap, Thursday's tick time, instances expected, skipped occurrences expected)
WEEK_CASES = {
    "latest": ("latest", "skip", "08:01", ["mon", "tue", "thu", "fri", "sat", "sun"],
               [("wed", "catchup latest")]),
    "none-late": ("none", "skip", "08:30", ["mon", "tue", "fri", "sat", "sun"],
                  [("wed", "catchup none"), ("thu", "catchup none")]),
    "none-on-time": ("none", "skip", "08:01", ["mon", "tue", "thu", "fri", "sat", "sun"],
                     [("wed", "catchup none")]),
    "all-skip": ("all", "skip", "08:01", ["mon", "tue", "wed", "fri", "sat", "sun"],
                 [("thu", "overlap skip")]),
    "all-queue": ("all", "queue", "08:01", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                  []),
}


@pytest.mark.parametrize("case", list(WEEK_CASES))
def test_recurrent_week_with_a_day_without_ticks(world, case):
    catchup, overlap, thursday, expected, skipped = WEEK_CASES[case]
    _ready(world, schedule={**DAILY, "catchup": catchup, "overlap": overlap})
    for day in ("mon", "tue", "thu", "fri", "sat", "sun"):  # nothing ticks on Wednesday
        world.tick(at(day, thursday if day == "thu" else "08:01"))
    world.tick(at("sun", "08:40"))  # lets a queued last occurrence finish
    names = _names(world)
    assert names == [f"spring-launch-202703{DAYS[d]}T0900" for d in expected], names
    assert all(i["status"] == "completed" for i in world.instances()), world.instances()
    logged = world.log("Occurrence Skipped", plan="spring-launch")
    assert len(logged) == len(skipped), logged
    for row, (day, reason) in zip(logged, skipped, strict=True):
        assert f"2027-03-{DAYS[day]} 09:00 CET" in row["details"], row
        assert reason in row["details"], row
    occurrences = world.rows("SELECT scheduled_at, status FROM occurrences WHERE kind = 'Plan' "
                             "ORDER BY scheduled_at")
    assert len(occurrences) == 7  # every occurrence of the week is accounted for
    assert sum(o["status"] == "skipped" for o in occurrences) == len(skipped)


def test_overlap_skip_while_an_instance_is_paused(world):
    _ready(world, schedule=DAILY, contacts=3, rate="2/m")
    for clock in ("08:01", "08:02", "08:03"):
        world.tick(at("mon", clock))
    [monday] = world.instances()
    assert monday["status"] == "completed"
    world.tick(at("tue"))
    tuesday = world.instances()[-1]
    assert tuesday["status"] == "running"
    world.ok("pause", "instance", str(tuesday["id"]), now=at("tue", "08:02"))
    world.tick(at("wed"))
    assert len(world.instances()) == 2
    [skipped] = world.log("Occurrence Skipped", plan="spring-launch")
    assert "overlap skip: instance spring-launch-20270302T0900 is still running" in \
        skipped["details"]


def test_stopping_the_plan_lets_the_instance_finish_and_prevents_the_next(world):
    _ready(world, schedule=DAILY, contacts=6, rate="2/m")
    world.tick(at("mon"))
    [instance] = world.instances()
    assert instance["status"] == "running"
    world.ok("stop", "plan", "spring-launch", "--note", "campaign over", now=at("mon", "08:02"))
    for clock in ("08:02", "08:03", "08:04", "08:05"):
        world.tick(at("mon", clock))
    [instance] = world.instances()
    assert instance["status"] == "completed"
    assert len(world.received) == 6
    world.tick(at("tue"))
    world.tick(at("wed"))
    assert len(world.instances()) == 1
    assert world.rows("SELECT count(*) AS n FROM occurrences WHERE kind = 'Plan'")[0]["n"] == 1


def test_reapproved_plan_does_not_catch_up_the_stopped_days(world):
    _ready(world, schedule=DAILY)
    world.tick(at("mon"))
    world.ok("stop", "plan", "spring-launch", now=at("mon", "09:00"))
    world.ok("revise", "plan", "spring-launch", now=at("mon", "09:00"))
    world.approve("plan", "spring-launch", now=at("thu", "07:00"))
    world.tick(at("thu"))
    assert _names(world) == ["spring-launch-20270301T0900", "spring-launch-20270304T0900"]
    assert world.log("Occurrence Skipped", plan="spring-launch") == []


def test_ticks_at_the_same_time_fire_once(world):
    _ready(world, schedule=DAILY)
    first = world.tick(at("mon"))
    second = world.tick(at("mon"))
    assert (first["fired"], second["fired"]) == (1, 0)
    assert len(world.instances()) == 1


def test_dry_run_tick_fires_nothing(world):
    _ready(world, schedule=DAILY)
    result = world.cli("--now", at("mon"), "-o", "json", "tick", "--dry-run")
    assert result.exit_code == 0, result
    assert any("instance spring-launch-20270301T0900 created" in n for n in result.json["notes"])
    assert world.instances() == []
    assert world.rows("SELECT * FROM occurrences") == []
    assert world.tick(at("mon"))["fired"] == 1


def test_concurrent_ticks_start_one_instance_and_one_run_per_stage(world, state):
    import os
    import subprocess
    import sys

    _ready(world, schedule=DAILY, contacts=5,
           stages=(("spring-sale", "teaser"), ("spring-sale", "main")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    for clock in ("08:01", "08:02"):
        procs = [subprocess.Popen([sys.executable, "-m", "campctl", "--state", str(state),
                                   "--now", at("mon", clock), "tick"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(4)]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
    [instance] = world.instances()
    assert instance["status"] == "completed", instance
    assert world.rows("SELECT count(*) AS n FROM runs")[0]["n"] == 2
    assert world.rows("SELECT count(*) AS n FROM occurrences WHERE kind = 'Plan'")[0]["n"] == 1
    assert len(world.outbox()) == 10
    assert len(world.log("Instance Created")) == 1
    assert len(world.log("Stage Completed")) == 2


@pytest.mark.parametrize("host_tz", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_recurrent_plan_across_dst_fires_once_per_local_slot(world, monkeypatch, host_tz):
    import time as _time

    monkeypatch.setenv("TZ", host_tz)
    _time.tzset()
    try:
        _ready(world, schedule={"type": "recurrent", "cron": "30 2 * * *",
                                "timezone": "Europe/Paris"},
               approve_at="2027-03-27T00:00:00Z", closes_at="2027-12-31T23:59")
        # Spring forward on 2027-03-28: 02:30 does not exist and fires at 03:00 CEST.
        for moment in ("2027-03-27T01:31:00Z", "2027-03-28T00:31:00Z", "2027-03-28T01:01:00Z",
                       "2027-03-28T01:31:00Z", "2027-03-29T00:31:00Z"):
            world.tick(moment)
        assert _names(world) == ["spring-launch-20270327T0230", "spring-launch-20270328T0300",
                                 "spring-launch-20270329T0230"]
        # Fall back on 2027-10-31: 02:30 happens twice and fires once, at the first.
        for moment in ("2027-10-31T00:31:00Z", "2027-10-31T01:31:00Z", "2027-10-31T02:31:00Z"):
            world.tick(moment)
        autumn = [i for i in world.instances() if i["name"].startswith("spring-launch-202710")]
        assert [(i["name"], i["scheduled_at"]) for i in autumn] == [
            ("spring-launch-20271031T0230", "2027-10-31T00:30:00Z")]
    finally:
        monkeypatch.delenv("TZ")
        _time.tzset()
