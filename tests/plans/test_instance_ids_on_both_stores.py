"""Plan instance ids are SQLite's numbers on PostgreSQL too, when names collide.

A second instance started in the same minute is named `NAME-2`; taking that name must not spend
an id on PostgreSQL (a conflicting INSERT advances its sequence), since instance ids are shown
and used by every verb (`stop instance 2`)."""

from __future__ import annotations

T0 = "2027-03-01T09:00:00Z"


def test_instances_started_in_one_minute_get_consecutive_ids(world):
    world.contacts(2)
    world.campaign()
    world.approve("campaign", "spring-sale")
    world.plan()
    world.approve("plan", "spring-launch")
    started = []
    for _ in range(3):
        started.append(world.ok("-o", "json", "start", "plan", "spring-launch", now=T0).json)
        world.ok("stop", "instance", str(started[-1]["id"]), "--note", "again", now=T0)
    assert [(s["id"], s["name"]) for s in started] == [
        (1, "spring-launch-20270301T0900"), (2, "spring-launch-20270301T0900-2"),
        (3, "spring-launch-20270301T0900-3")]
    assert [r["id"] for r in world.rows("SELECT id FROM plan_instances ORDER BY id")] == [1, 2, 3]
