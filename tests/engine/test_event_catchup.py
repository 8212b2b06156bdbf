"""`catchup` on an event campaign's cron `queue_every`: what validate accepts is what the engine
does after downtime, and no contact gets more messages because ticks were missed."""

from __future__ import annotations

import pytest

from .campaign_texts import EVENT, campaign, emit, sent_at


def daily(policy: str) -> str:
    return EVENT + f"schedule: {{queue_every: \"0 8 * * *\", catchup: {policy}}}\n"


@pytest.mark.parametrize("policy", ["latest", "all", "none"])
def test_validate_accepts_catchup_with_a_cron_queue_every(cli, write_yaml, policy):
    path = write_yaml("c.yaml", campaign(daily(policy)))
    result = cli("validate", str(path))
    assert result.exit_code == 0, result


@pytest.mark.parametrize("schedule", ["{catchup: all}",
                                      "{queue_every: on_event, catchup: latest}"])
def test_validate_refuses_catchup_without_a_cron(cli, write_yaml, schedule):
    path = write_yaml("c.yaml", campaign(EVENT + f"schedule: {schedule}\n"))
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    assert "schedule.catchup applies only to a cron queue_every" in result.stdout + result.stderr


def _downtime(launch, cli, tick, policy: str) -> dict:
    """Events on Monday and Tuesday; no tick from Monday 08:00 until Thursday 09:00."""
    launch(campaign(daily(policy)), at="2027-03-01T07:00:00Z")
    assert tick("2027-03-01T08:00:00Z")["built"] == 0
    emit(cli, "2027-03-01T10:00:00Z", "c001")
    emit(cli, "2027-03-02T10:00:00Z", "c002")  # recorded by another process: ticks are down
    return tick("2027-03-04T09:00:00Z")


@pytest.mark.parametrize("policy", ["latest", "all"])
def test_missed_batches_build_once_with_every_waiting_event(launch, cli, tick, runs, outbox,
                                                            rows, policy):
    report = _downtime(launch, cli, tick, policy)
    assert (report["built"], report["sent"]) == (2, 2)
    assert len(runs()) == 1  # one batch, not one per missed day
    assert sorted(m["contact"] for m in outbox()) == ["c001", "c002"]
    fired = rows("SELECT scheduled_at FROM occurrences WHERE name = 'promo' AND "
                 "status = 'fired'")
    skipped = rows("SELECT scheduled_at FROM occurrences WHERE name = 'promo' AND "
                   "status = 'skipped'")
    if policy == "latest":
        assert [r["scheduled_at"] for r in fired] == ["2027-03-04T08:00:00Z"]
        assert len(skipped) == 2  # Tuesday's and Wednesday's 08:00, on record
    else:
        assert [r["scheduled_at"] for r in fired] == ["2027-03-02T08:00:00Z"]
        assert skipped == []
    # Ticking again at the same instant changes nothing.
    again = tick("2027-03-04T09:00:00Z")
    assert (again["built"], again["sent"]) == (0, 0)
    assert len(outbox()) == 2


def test_catchup_none_keeps_events_for_the_next_occurrence(launch, cli, tick, runs, outbox,
                                                           rows):
    report = _downtime(launch, cli, tick, "none")
    assert (report["built"], report["sent"]) == (0, 0)
    assert report["skipped"] == 3
    assert runs() == []
    report = tick("2027-03-05T08:00:00Z")  # Friday's occurrence, on time
    assert (report["built"], report["sent"]) == (2, 2)
    assert sent_at(outbox) == ["2027-03-05T08:00:00Z"]


def test_a_quiet_occurrence_is_never_reported_as_missed(launch, cli, tick, runs, rows):
    # Default catchup (latest), ticks on time: Monday's 08:00 finds no event.
    launch(campaign(EVENT + "schedule: {queue_every: \"0 8 * * *\"}\n"),
           at="2027-03-01T07:00:00Z")
    assert tick("2027-03-01T08:00:00Z")["fired"] == 0
    emit(cli, "2027-03-01T10:00:00Z", "c001")
    report = tick("2027-03-02T08:00:00Z")
    assert (report["fired"], report["skipped"], report["built"]) == (1, 0, 1)
    occurrences = rows("SELECT scheduled_at, status FROM occurrences WHERE name = 'promo' "
                       "ORDER BY scheduled_at")
    assert occurrences == [{"scheduled_at": "2027-03-01T08:00:00Z", "status": "empty"},
                           {"scheduled_at": "2027-03-02T08:00:00Z", "status": "fired"}]
    assert rows("SELECT * FROM exec_log WHERE event = 'Occurrence Skipped'") == []
    assert len(runs()) == 1
