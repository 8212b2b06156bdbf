"""Each check of the model test fires on the violation it guards (planted in a bare episode),
and stays quiet on the allowed case next to it: once the engine is fixed, a check that could
never fire would pass for the wrong reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from model_support import (
    FLASH_CLOSES,
    T0,
    Arrival,
    Episode,
    Snapshot,
    Step,
    check_closing,
    check_counts,
    check_event_time,
    check_history,
    check_message_ids,
    check_no_true_duplicates,
    check_pause,
    check_queued_items_live,
    check_stopping,
    iso,
)


def run_row(rid: int, status: str = "sending", **extra: object) -> dict:
    row = {"id": rid, "campaign": "flash", "stage": "main", "status": status,
           "queue_at": iso(T0), "scheduled_at": iso(T0), "built_at": iso(T0),
           "instance_id": None, "restart_of": None, "paused_from": None, "created_at": iso(T0)}
    row.update(extra)
    return row


def item(key: str, run: int | None, contact: int, status: str = "sent", **extra: object) -> dict:
    row = {"message_id": key, "run_id": run, "profile_id": None, "scenario": None,
           "step": None, "contact_id": contact, "channel": "hook", "status": status,
           "created_at": iso(T0), "claimed_until": None}
    row.update(extra)
    return row


def arrival(key: str, step: int, now=T0, run: int | None = 1, contact: str = "c1",
            campaign: str = "flash", **body: object) -> Arrival:
    return Arrival(key, "hook", {"message_id": key, "run": run, "campaign": campaign,
                                 "contact": contact, "subject": "s", **body}, step, now)


@pytest.fixture
def episode(tmp_path: Path) -> Episode:
    ep = Episode(tmp_path, 0, 0)
    ep.step, ep.now = 2, T0
    ep._current = Step(2, "act_tick")
    ep.step_ticked = True
    ep.snap = Snapshot(runs={1: run_row(1)}, items={}, profiles={}, instances={},
                       contacts={1: "c1", 2: "c2"}, events={})
    ep.figures = {"runs": {}, "launches": {}, "stats": {}, "steps": {}}
    return ep


def fired(ep: Episode, check: str) -> bool:
    return bool(ep.violations.get(check))


def test_closing_fires_after_closes_at_only(episode: Episode) -> None:
    check_closing(episode, [arrival("r1-c1", 2, now=FLASH_CLOSES)], None, {})
    assert not fired(episode, "check_closing")
    check_closing(episode, [arrival("r1-c2", 2, now=FLASH_CLOSES + timedelta(minutes=1))],
                  None, {})
    assert fired(episode, "check_closing")


def test_stopping_fires_for_an_arrival_after_stop_run(episode: Episode) -> None:
    episode.model.run_stopped[1] = 2
    check_stopping(episode, [arrival("r1-c1", 2)], None, {})
    assert not fired(episode, "check_stopping")
    check_stopping(episode, [arrival("r1-c2", 3)], None, {})
    assert fired(episode, "check_stopping")


def test_stopping_fires_for_a_new_run_of_a_stopped_campaign(episode: Episode) -> None:
    before = episode.snap
    assert before is not None
    episode.model.campaign_stopped["flash"] = (1, 1)
    episode.snap = Snapshot(runs={1: run_row(1), 2: run_row(2, restart_of=1),
                                  3: run_row(3, stage="teaser", instance_id=1)},
                            items={}, profiles={}, instances={}, contacts={}, events={})
    check_stopping(episode, [], before, {})
    assert [v for v in episode.violations["check_stopping"] if "run 3" in v]
    assert not [v for v in episode.violations["check_stopping"] if "run 2 " in v]


def test_queued_item_on_an_ended_run_fires_once_its_claim_is_over(episode: Episode) -> None:
    claim = iso(T0 + timedelta(minutes=5))
    episode.snap.runs[1]["status"] = "stopped"  # type: ignore[union-attr]
    episode.snap.items = {"r1-c1": item("r1-c1", 1, 1, "queued", claimed_until=claim)}  # type: ignore[union-attr]
    check_queued_items_live(episode, [], None, {})
    assert not fired(episode, "check_queued_items_live")
    episode.now = T0 + timedelta(minutes=6)
    check_queued_items_live(episode, [], None, {})
    assert fired(episode, "check_queued_items_live")


def test_message_id_twice_fires_unless_a_kill_had_it_in_flight(episode: Episode) -> None:
    first, again = arrival("r1-c1", 1), arrival("r1-c1", 2)
    episode.model.kills.append((1, "r1-c1"))
    episode.arrivals = [first, again]
    check_message_ids(episode, [again], None, {})
    assert not fired(episode, "check_message_ids")
    third = arrival("r1-c1", 3, contact="c2")
    episode.arrivals.append(third)
    check_message_ids(episode, [third], None, {})
    assert fired(episode, "check_message_ids")


def test_a_new_profile_whose_message_id_was_taken_fires(episode: Episode) -> None:
    old = item("scn-1-hello-0", None, 2, profile_id=1, scenario="tour", step="hello")
    bye = item("scn-1-bye-2", None, 1, profile_id=1, scenario="tour", step="bye",
               created_at=iso(T0 + timedelta(hours=2)))
    episode.snap.items = {"scn-1-hello-0": old, "scn-1-bye-2": bye}  # type: ignore[union-attr]
    episode.snap.profiles = {1: {  # type: ignore[union-attr]
        "id": 1, "scenario": "tour", "contact_id": 1, "step": "bye", "status": "completed",
        "entered_at": iso(T0 + timedelta(hours=1)), "launch_id": 2, "capture_key": "l:2",
        "visit": 2}}
    check_message_ids(episode, [], None, {})
    assert fired(episode, "check_message_ids")


def test_two_keys_for_one_contact_in_a_restart_chain_fire(episode: Episode) -> None:
    episode.snap.runs[2] = run_row(2, restart_of=1)  # type: ignore[union-attr]
    episode.snap.runs[3] = run_row(3)  # type: ignore[union-attr]
    episode.arrivals = [arrival("r1-c1", 1), arrival("r3-c1", 2, run=3)]
    check_no_true_duplicates(episode, episode.arrivals[1:], None, {})
    assert not fired(episode, "check_no_true_duplicates")
    episode.arrivals.append(arrival("r2-c1", 2, run=2))
    check_no_true_duplicates(episode, episode.arrivals[2:], None, {})
    assert fired(episode, "check_no_true_duplicates")


def test_pause_fires_for_delivery_and_for_a_held_build(episode: Episode) -> None:
    episode.model.run_paused[1] = 1
    check_pause(episode, [arrival("r1-c1", 2)], None, {})
    assert fired(episode, "check_pause")
    episode.violations.clear()
    episode.snap.runs[1].update(status="paused", built_at=None)  # type: ignore[union-attr]
    check_pause(episode, [], None, {})
    assert fired(episode, "check_pause")


def test_counts_fire_when_sent_differs_from_arrivals(episode: Episode) -> None:
    episode.arrivals = [arrival("r1-c1", 1)]
    episode.figures["runs"] = {1: {"campaign": "flash", "stage": "main", "status": "sending",
                                   "sent": 1}}
    episode.figures["steps"] = {"welcome": {}, "tour": {}}
    check_counts(episode, [], None, {})
    assert not fired(episode, "check_counts")
    episode.figures["runs"][1]["sent"] = 2
    check_counts(episode, [], None, {})
    assert fired(episode, "check_counts")


def test_history_fires_when_clear_lowers_past_figures(episode: Episode) -> None:
    episode.step_removed = True
    stats = {"welcome": {"entered": 3, "completed": 1}, "tour": {"entered": 0, "completed": 0}}
    steps = {"welcome": {}, "tour": {}}
    old = {"stats": stats, "steps": steps, "launches": {}}
    episode.figures = {"stats": {"welcome": {"entered": 0, "completed": 0},
                                 "tour": stats["tour"]}, "steps": steps, "launches": {}}
    check_history(episode, [], None, old)
    assert fired(episode, "check_history")


def test_event_time_fires_for_an_event_before_activation(episode: Episode) -> None:
    episode.model.active_since["welcome"] = T0
    episode.snap.events = {7: {"id": 7, "name": "signup", "at": iso(T0 - timedelta(days=1)),  # type: ignore[union-attr]
                               "recorded_at": iso(T0), "contact": "c1"}}
    episode.snap.profiles = {1: {  # type: ignore[union-attr]
        "id": 1, "scenario": "welcome", "contact_id": 1, "step": "w", "status": "waiting",
        "entered_at": iso(T0), "launch_id": None, "capture_key": "e:7", "visit": 1}}
    check_event_time(episode, [], None, {})
    assert fired(episode, "check_event_time")
    episode.violations.clear()
    episode.snap.events[7]["at"] = iso(T0)  # type: ignore[union-attr]
    check_event_time(episode, [], None, {})
    assert not fired(episode, "check_event_time")


def test_a_message_id_taken_by_another_scenario_fires(episode: Episode) -> None:
    at = iso(T0 + timedelta(hours=2))
    items = {"scn-1-hello-0": item("scn-1-hello-0", None, 1, profile_id=1, scenario="tour",
                                   step="hello", created_at=at),
             "scn-1-bye-2": item("scn-1-bye-2", None, 1, profile_id=1, scenario="welcome",
                                 step="bye", created_at=at)}
    episode.snap.items = items  # type: ignore[union-attr]
    episode.snap.profiles = {1: {  # type: ignore[union-attr]
        "id": 1, "scenario": "tour", "contact_id": 1, "step": "bye", "status": "completed",
        "entered_at": at, "launch_id": 1, "capture_key": "l:1", "visit": 2}}
    check_message_ids(episode, [], None, {})
    assert [v for v in episode.violations["check_message_ids"] if "'bye'" in v]
    assert not [v for v in episode.violations["check_message_ids"] if "'hello'" in v]
