"""`preview campaign` labels each instant (queue, send, or both) and shows the first send of a
delayed send schedule or a closed sending window."""

from __future__ import annotations

from .campaign_texts import EVENT, campaign


def _preview(cli, now: str, count: int = 5) -> list[tuple[str, str]]:
    result = cli("--now", now, "-o", "json", "preview", "campaign", "promo", "--next", str(count))
    assert result.exit_code == 0, result
    return [(row["phase"], row["utc"]) for row in result.json]


def test_one_off_queue_now_send_tomorrow(launch, cli):
    launch(campaign("type: one-off\nschedule:\n  send: {at: \"2027-03-02T08:00\"}\n",
                    tz="Europe/Paris"), at="2027-03-01T10:00:00Z")
    assert _preview(cli, "2027-03-01T10:00:00Z") == [("queue", "2027-03-01T10:00:00Z"),
                                                     ("send", "2027-03-02T07:00:00Z")]
    # Once built, only the send is still ahead.
    assert _preview(cli, "2027-03-01T11:00:00Z") == [("send", "2027-03-02T07:00:00Z")]


def test_one_off_both_immediately_is_one_step(launch, cli):
    launch(campaign("type: one-off\nschedule: {queue: immediately, send: immediately}\n"),
           at="2027-03-01T10:00:00Z")
    assert _preview(cli, "2027-03-01T10:00:00Z") == [("queue and send", "2027-03-01T10:00:00Z")]


def test_one_off_window_moves_the_first_send(launch, cli):
    launch(campaign("type: one-off\nschedule: {send: immediately, window: \"12:00-17:00\"}\n"),
           at="2027-03-01T07:00:00Z")
    assert _preview(cli, "2027-03-01T07:00:00Z") == [("queue", "2027-03-01T07:00:00Z"),
                                                     ("send", "2027-03-01T12:00:00Z")]


def test_date_triggered_delayed_send_start_shows_the_first_send(launch, cli):
    # Recurrence daily at 14:00 from launch (April 4, noon); sending starts April 5, 10:00.
    launch(campaign("type: date-triggered\nschedule:\n  cron: \"0 14 * * *\"\n"
                    "  send_start: {at: \"2027-04-05T10:00\"}\n"),
           at="2027-04-04T12:00:00Z")
    assert _preview(cli, "2027-04-04T12:00:00Z", 4) == [
        ("queue", "2027-04-04T14:00:00Z"),
        ("send", "2027-04-05T10:00:00Z"),
        ("queue and send", "2027-04-05T14:00:00Z"),
        ("queue and send", "2027-04-06T14:00:00Z"),
    ]


def test_held_builds_share_one_send_step(launch, cli):
    launch(campaign("type: date-triggered\nschedule:\n  cron: \"0 14 * * *\"\n"
                    "  send_start: {at: \"2027-03-03T10:00\"}\n"),
           at="2027-03-01T12:00:00Z")
    result = cli("--now", "2027-03-01T12:00:00Z", "-o", "json", "preview", "campaign", "promo")
    assert result.exit_code == 0, result
    assert [(r["phase"], r["utc"], r["held_until"]) for r in result.json] == [
        ("queue", "2027-03-01T14:00:00Z", "2027-03-03T10:00:00Z"),
        ("queue", "2027-03-02T14:00:00Z", "2027-03-03T10:00:00Z"),
        ("send", "2027-03-03T10:00:00Z", None),
        ("queue and send", "2027-03-03T14:00:00Z", None),
        ("queue and send", "2027-03-04T14:00:00Z", None),
    ]


def test_event_on_event_shows_when_the_schedules_go_live(launch, cli):
    launch(campaign(EVENT + "schedule:\n  queue_start: {at: \"2027-03-04T12:00\"}\n"
                    "  send_start: {at: \"2027-03-05T09:00\"}\n"), at="2027-03-01T08:00:00Z")
    assert _preview(cli, "2027-03-01T08:00:00Z") == [("queue start", "2027-03-04T12:00:00Z"),
                                                     ("send start", "2027-03-05T09:00:00Z")]


def test_event_batches_in_a_window(launch, cli):
    launch(campaign(EVENT + "schedule: {queue_every: \"0 8 * * 5\", window: \"17:00-22:00\"}\n"),
           at="2027-03-01T08:00:00Z")
    assert _preview(cli, "2027-03-01T08:00:00Z", 3) == [("queue", "2027-03-05T08:00:00Z"),
                                                        ("send", "2027-03-05T17:00:00Z"),
                                                        ("queue", "2027-03-12T08:00:00Z")]


def test_table_has_a_phase_column(launch, cli):
    launch(campaign("type: one-off\nschedule:\n  send: {at: \"2027-03-02T08:00\"}\n"),
           at="2027-03-01T10:00:00Z")
    table = cli("--now", "2027-03-01T10:00:00Z", "preview", "campaign", "promo")
    assert table.exit_code == 0, table
    assert "PHASE" in table.stdout
    assert "queue" in table.stdout and "send" in table.stdout
