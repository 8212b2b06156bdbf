"""Worked examples of campaign scheduling (one-off, date-triggered and event-triggered; queue and
send schedules, windows, catch-up, closing), each ticked through its timeline."""

from __future__ import annotations

import pytest

from .campaign_texts import EVENT, built_at, campaign, emit, sent_at

# --- one-off -----------------------------------------------------------------------------------

def test_one_off_default_builds_at_launch_and_holds_until_send(launch, tick, runs, outbox):
    # Launched Monday; send schedule Tuesday 08:00 (Europe/Paris = 07:00Z).
    launch(campaign("type: one-off\nschedule:\n  send: {at: \"2027-03-02T08:00\"}\n",
                    tz="Europe/Paris"), at="2027-03-01T10:00:00Z")
    assert tick("2027-03-01T10:00:00Z")["built"] == 3
    assert built_at(runs) == ["2027-03-01T10:00:00Z"]
    assert tick("2027-03-02T06:59:00Z")["sent"] == 0
    assert outbox() == []
    assert tick("2027-03-02T07:00:00Z")["sent"] == 3
    assert sent_at(outbox) == ["2027-03-02T07:00:00Z"]
    tick("2027-03-02T07:01:00Z")
    assert runs()[0]["status"] == "completed"


def test_one_off_both_immediately(launch, tick, runs, outbox):
    launch(campaign("type: one-off\nschedule: {queue: immediately, send: immediately}\n"),
           at="2027-03-01T10:00:00Z")
    report = tick("2027-03-01T10:00:00Z")
    assert (report["fired"], report["built"], report["sent"]) == (1, 3, 3)
    assert sent_at(outbox) == ["2027-03-01T10:00:00Z"]
    assert runs()[0]["status"] == "completed"


def test_one_off_delayed_queue_send_after_queue(launch, tick, runs, outbox):
    # Launched Monday; queue Wednesday 14:00; send after queueing.
    launch(campaign("type: one-off\nschedule:\n  queue: {at: \"2027-03-03T14:00\"}\n"
                    "  send: after_queue\n"), at="2027-03-01T09:00:00Z")
    for t in ("2027-03-01T09:00:00Z", "2027-03-02T14:00:00Z", "2027-03-03T13:59:00Z"):
        assert tick(t)["built"] == 0
    assert runs()[0]["status"] == "scheduled"
    report = tick("2027-03-03T14:00:00Z")
    assert (report["built"], report["sent"]) == (3, 3)
    assert built_at(runs) == ["2027-03-03T14:00:00Z"]
    assert sent_at(outbox) == ["2027-03-03T14:00:00Z"]


def test_one_off_derived_queue_six_hours_before_send(launch, tick, runs, outbox):
    # Launched Thursday; send Friday 18:00; queue six hours before it.
    launch(campaign("type: one-off\nschedule:\n  queue: {before_send: 6h}\n"
                    "  send: {at: \"2027-03-05T18:00\"}\n"), at="2027-03-04T09:00:00Z")
    assert tick("2027-03-04T09:00:00Z")["built"] == 0
    assert runs()[0]["queue_at"] == "2027-03-05T12:00:00Z"
    assert tick("2027-03-05T11:59:00Z")["built"] == 0
    assert tick("2027-03-05T12:00:00Z")["built"] == 3
    assert tick("2027-03-05T17:59:00Z")["sent"] == 0
    assert tick("2027-03-05T18:00:00Z")["sent"] == 3
    assert sent_at(outbox) == ["2027-03-05T18:00:00Z"]


def test_one_off_window_with_rate_carries_over_to_next_day(launch, tick, rows, webhook):
    text = campaign("type: one-off\nchannel: slow\nschedule: {queue: immediately, "
                    "send: immediately, window: \"12:00-17:00\"}\n") + (
        f"---\nkind: Channel\nname: slow\ntype: webhook\nurl: {webhook.url}\nrate: 2/h\n")
    launch(text, at="2027-03-01T07:00:00Z", contacts=14)
    report = tick("2027-03-01T07:00:00Z")
    assert (report["built"], report["sent"]) == (14, 0)
    assert tick("2027-03-01T11:59:00Z")["sent"] == 0
    # Tick every 30 minutes for two days.
    from datetime import UTC, datetime, timedelta

    at = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    while at < datetime(2027, 3, 2, 23, 0, tzinfo=UTC):
        tick(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        at += timedelta(minutes=30)
    items = rows("SELECT message_id, sent_at FROM queue_items WHERE status = 'sent'")
    times = sorted(i["sent_at"] for i in items)
    assert len(times) == 14
    assert sorted(webhook.keys) == sorted(i["message_id"] for i in items)  # each handed over once
    day1 = [t for t in times if t.startswith("2027-03-01")]
    day2 = [t for t in times if t.startswith("2027-03-02")]
    assert day1 and day2, times
    assert all("12:00:00Z" <= t[11:] < "17:00:00Z" for t in times), times


# --- date-triggered ----------------------------------------------------------------------------

def test_date_triggered_default_first_build_next_day_at_nine(launch, tick, runs, outbox):
    # Launched Monday 14:00; default recurrence daily 09:00.
    launch(campaign("type: date-triggered\n"), at="2027-03-01T14:00:00Z")
    assert tick("2027-03-01T14:00:00Z")["fired"] == 0
    assert tick("2027-03-02T08:59:00Z")["fired"] == 0
    report = tick("2027-03-02T09:00:00Z")
    assert (report["fired"], report["built"], report["sent"]) == (1, 3, 3)
    report = tick("2027-03-03T09:00:00Z")
    assert (report["fired"], report["built"], report["sent"]) == (1, 3, 3)
    assert [r["scheduled_at"] for r in runs()] == ["2027-03-02T09:00:00Z", "2027-03-03T09:00:00Z"]
    assert sent_at(outbox) == ["2027-03-02T09:00:00Z", "2027-03-03T09:00:00Z"]


def test_date_triggered_both_delayed(launch, tick, runs, outbox):
    # Launched April 1 09:00; start and send_start April 2 10:00; daily at noon.
    launch(campaign("type: date-triggered\nschedule:\n  start: {at: \"2027-04-02T10:00\"}\n"
                    "  send_start: {at: \"2027-04-02T10:00\"}\n  cron: \"0 12 * * *\"\n"),
           at="2027-04-01T09:00:00Z")
    assert tick("2027-04-01T12:00:00Z")["fired"] == 0  # nothing on April 1 at noon
    assert tick("2027-04-02T10:00:00Z")["fired"] == 0  # live, but no build at 10:00
    report = tick("2027-04-02T12:00:00Z")
    assert (report["fired"], report["sent"]) == (1, 3)
    assert tick("2027-04-03T12:00:00Z")["sent"] == 3
    assert sent_at(outbox) == ["2027-04-02T12:00:00Z", "2027-04-03T12:00:00Z"]


def test_date_triggered_delayed_send_holds_first_build(launch, tick, runs, outbox):
    # Launched April 4 noon; daily 14:00; send_start April 5 10:00.
    launch(campaign("type: date-triggered\nschedule:\n  cron: \"0 14 * * *\"\n"
                    "  send_start: {at: \"2027-04-05T10:00\"}\n"), at="2027-04-04T12:00:00Z")
    report = tick("2027-04-04T14:00:00Z")
    assert (report["fired"], report["built"], report["sent"]) == (1, 3, 0)
    assert tick("2027-04-05T09:59:00Z")["sent"] == 0
    assert tick("2027-04-05T10:00:00Z")["sent"] == 3   # the held messages go out at send_start
    report = tick("2027-04-05T14:00:00Z")
    assert (report["built"], report["sent"]) == (3, 3)
    assert sent_at(outbox) == ["2027-04-05T10:00:00Z", "2027-04-05T14:00:00Z"]


def test_date_triggered_window_holds_until_noon(launch, tick, runs, outbox):
    launch(campaign("type: date-triggered\nschedule: {window: \"12:00-17:00\"}\n"),
           at="2027-03-01T08:00:00Z")
    report = tick("2027-03-01T09:00:00Z")
    assert (report["built"], report["sent"]) == (3, 0)
    assert tick("2027-03-01T11:30:00Z")["sent"] == 0
    assert tick("2027-03-01T12:00:00Z")["sent"] == 3
    assert sent_at(outbox) == ["2027-03-01T12:00:00Z"]


# --- event-triggered ---------------------------------------------------------------------------

def test_event_default_builds_at_next_tick(launch, tick, cli, runs, outbox):
    launch(campaign(EVENT), at="2027-03-01T08:00:00Z")
    assert tick("2027-03-01T08:00:00Z")["fired"] == 0
    emit(cli, "2027-03-01T09:10:00Z", "c001")
    emit(cli, "2027-03-01T09:11:00Z", "c002")
    report = tick("2027-03-01T09:12:00Z")
    assert (report["fired"], report["built"], report["sent"]) == (1, 2, 2)
    assert tick("2027-03-01T09:13:00Z")["fired"] == 0
    emit(cli, "2027-03-01T10:00:00Z", "c003")
    assert tick("2027-03-01T10:01:00Z")["sent"] == 1
    assert [m["contact"] for m in outbox()] == ["c001", "c002", "c003"]


def test_event_weekly_batches_until_friday_eight(launch, tick, cli, runs, outbox):
    launch(campaign(EVENT + "schedule: {queue_every: \"0 8 * * 5\"}\n"),
           at="2027-03-01T08:00:00Z")
    for day, contact in (("01", "c001"), ("02", "c002"), ("04", "c003")):
        emit(cli, f"2027-03-{day}T12:00:00Z", contact)
        assert tick(f"2027-03-{day}T12:01:00Z")["built"] == 0
    report = tick("2027-03-05T08:00:00Z")  # Friday 08:00
    assert (report["fired"], report["built"], report["sent"]) == (1, 3, 3)
    assert len(runs()) == 1
    assert sent_at(outbox) == ["2027-03-05T08:00:00Z"]


def test_event_delayed_starts_ignore_earlier_events(launch, tick, cli, runs, outbox):
    # Launched Monday; queue and send start Thursday noon.
    launch(campaign(EVENT + "schedule:\n  queue_start: {at: \"2027-03-04T12:00\"}\n"
                    "  send_start: {at: \"2027-03-04T12:00\"}\n"), at="2027-03-01T08:00:00Z")
    emit(cli, "2027-03-02T10:00:00Z", "c001")
    assert tick("2027-03-02T10:01:00Z")["built"] == 0
    assert tick("2027-03-04T12:00:00Z")["built"] == 0  # Tuesday's event produces nothing
    emit(cli, "2027-03-04T13:00:00Z", "c002")
    report = tick("2027-03-04T13:01:00Z")
    assert (report["built"], report["sent"]) == (1, 1)
    assert [m["contact"] for m in outbox()] == ["c002"]


def test_event_window_holds_until_five_pm(launch, tick, cli, runs, outbox):
    launch(campaign(EVENT + "schedule: {window: \"17:00-22:00\"}\n"), at="2027-03-01T08:00:00Z")
    emit(cli, "2027-03-01T10:00:00Z", "c001")
    report = tick("2027-03-01T10:01:00Z")
    assert (report["built"], report["sent"]) == (1, 0)
    assert tick("2027-03-01T16:59:00Z")["sent"] == 0
    assert tick("2027-03-01T17:00:00Z")["sent"] == 1
    emit(cli, "2027-03-01T23:00:00Z", "c002")  # after the window: held until tomorrow 17:00
    assert tick("2027-03-01T23:01:00Z")["sent"] == 0
    assert tick("2027-03-02T17:00:00Z")["sent"] == 1
    assert sent_at(outbox) == ["2027-03-01T17:00:00Z", "2027-03-02T17:00:00Z"]


def test_window_wrapping_midnight(launch, tick, runs, outbox):
    launch(campaign("type: one-off\nschedule: {send: immediately, window: \"22:00-02:00\"}\n"),
           at="2027-03-01T12:00:00Z")
    assert tick("2027-03-01T12:00:00Z")["sent"] == 0
    assert tick("2027-03-01T21:59:00Z")["sent"] == 0
    assert tick("2027-03-02T01:00:00Z")["sent"] == 3


@pytest.mark.parametrize("catchup,fired,skipped", [("latest", 1, 2), ("all", 3, 0),
                                                    ("none", 0, 3)])
def test_date_triggered_catchup_after_downtime(launch, tick, runs, rows, catchup, fired,
                                               skipped):
    launch(campaign(f"type: date-triggered\nschedule: {{catchup: {catchup}}}\n"),
           at="2027-03-01T08:00:00Z")
    tick("2027-03-01T08:00:00Z")
    report = tick("2027-03-03T12:00:00Z")  # missed 1st, 2nd and 3rd at 09:00
    assert (report["fired"], report["skipped"]) == (fired, skipped)
    occ = rows("SELECT status, reason FROM occurrences WHERE kind = 'Campaign' "
               "AND status = 'skipped'")
    assert len(occ) == skipped and all(o["reason"] for o in occ)
    logged = rows("SELECT * FROM exec_log WHERE event = 'Occurrence Skipped'")
    assert len(logged) == skipped


def test_closes_at_cancels_queued_and_stops_new_runs(launch, tick, runs, rows):
    launch(campaign("type: date-triggered\ncloses_at: \"2027-03-01T15:00\"\n"
                    "schedule: {window: \"20:00-21:00\"}\n"), at="2027-03-01T08:00:00Z")
    assert tick("2027-03-01T09:00:00Z")["built"] == 3  # held until the window
    report = tick("2027-03-01T15:00:00Z")
    assert report["cancelled"] == 3
    assert tick("2027-03-03T09:00:00Z")["fired"] == 0
    assert len(runs()) == 1
    assert rows("SELECT status FROM queue_items") == [{"status": "cancelled"}] * 3


def test_controlled_stages_never_run_from_the_campaign_schedule(launch, tick, runs):
    launch(campaign("type: one-off\nschedule: {send: immediately}\nstages:\n"
                    "  - {name: teaser, controlled_by_plan: true}\n  - {name: main}\n"),
           at="2027-03-01T08:00:00Z")
    tick("2027-03-01T08:00:00Z")
    assert [r["stage"] for r in runs()] == ["main"]
