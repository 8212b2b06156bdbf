"""The sending phase pinned to exact figures and texts: back-off steps, rate windows, the pass
clock, dry-run and rate notes, the reasons an item fails or is cancelled before any hand-over,
the webhook's recipient, and the channel test message."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from campctl.channels import Message
from campctl.engine.context import Budget, TickContext
from campctl.engine.delivery import (
    DeliveryReport,
    Notice,
    SendResult,
    _Clock,
    _json,
    _sent_at,
    _window,
    backoff,
    deliver_due,
    send_notification,
    send_test,
)
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")


def test_backoff_doubles_from_one_minute_and_stops_at_one_hour():
    assert [backoff(n) for n in (-3, 0, 1, 5)] == [
        timedelta(minutes=1), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=32)]
    assert backoff(6) == timedelta(hours=1)  # 64 minutes, capped
    assert backoff(20) == backoff(21) == backoff(500) == timedelta(hours=1)


@pytest.mark.parametrize(("at", "seconds", "start", "left"), [
    (datetime(2027, 3, 1, 9, 0, 7, tzinfo=UTC), 60, datetime(2027, 3, 1, 9, 0, tzinfo=UTC), 53),
    (datetime(2027, 3, 1, 9, 0, tzinfo=UTC), 60, datetime(2027, 3, 1, 9, 0, tzinfo=UTC), 60),
    (datetime(2027, 3, 1, 9, 59, 30, tzinfo=UTC), 3600, datetime(2027, 3, 1, 9, 0, tzinfo=UTC),
     30),
    (datetime(2027, 3, 1, 9, 0, 0, 250000, tzinfo=UTC), 1,
     datetime(2027, 3, 1, 9, 0, tzinfo=UTC), 0.75),
])
def test_rate_window_start_and_time_left(at, seconds, start, left):
    assert _window(at, seconds) == (start, pytest.approx(left))
    assert _window(at, seconds)[0].tzinfo is not None


def test_pass_clock_moves_with_elapsed_time_never_backwards():
    ticks = iter([10.0, 12.5, 9.0])
    clock = _Clock(NOW, lambda: next(ticks))
    assert clock.now() == NOW + timedelta(seconds=2.5)
    assert clock.now() == NOW


def test_report_and_send_result_json():
    report = DeliveryReport(sent=1, failed=2, retried=3, cancelled=4, waiting_rate=5,
                            errors=["e"], notes=["n"])
    assert report.as_json() == {"sent": 1, "failed": 2, "retried": 3, "cancelled": 4,
                                "waiting_rate": 5}
    assert DeliveryReport().as_json() == {"sent": 0, "failed": 0, "retried": 0, "cancelled": 0,
                                          "waiting_rate": 0}
    assert SendResult("c", "t", "m", False, "why").as_json() == {
        "channel": "c", "to": "t", "message_id": "m", "status": "failed", "reason": "why"}
    assert SendResult("c", "t", "m", True).as_json()["status"] == "sent"


def test_stored_json_and_sent_at_fallbacks():
    assert _json(None, {"d": 1}) == {"d": 1}
    assert _json("", []) == []
    assert _json("{bad", "x") == "x"
    assert _json('{"a": 2}', None) == {"a": 2}
    assert _sent_at([], NOW) == NOW

    message = Message("m", "t", "s", "b", {"sent_at": "2027-03-01T10:00:00Z"})
    assert _sent_at([(None, message)], NOW) == parse_instant("2027-03-01T10:00:00Z")


def test_dry_run_notes_rate_and_unusable_channel(arrange, db):
    ids = arrange.contacts(3)
    arrange.channel("slow", {"type": "outbox", "rate": "2/m"})
    run = arrange.run(channel="slow")
    arrange.items(run, ids, channel="slow")
    bad = arrange.run(channel="nowhere")
    arrange.items(bad, ids, channel="nowhere")
    dry = deliver_due(TickContext(db, NOW, {}, dry_run=True), run_ids=[run, bad],
                      scenario_items=False)
    assert dry.as_json() == {"sent": 2, "failed": 3, "retried": 0, "cancelled": 0,
                             "waiting_rate": 1}
    assert sorted(dry.notes) == ["channel nowhere is not usable: 3 item(s) would fail",
                                 "channel slow: 1 item(s) would wait for the rate limit 2/m",
                                 "channel slow: 2 message(s) would be sent"]
    capped = deliver_due(TickContext(db, NOW, {}, budget=Budget(max_messages=1), dry_run=True),
                         run_ids=[run], scenario_items=False)
    assert (capped.sent, capped.waiting_rate, capped.notes) == (
        1, 0, ["channel slow: 1 message(s) would be sent"])
    real = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (real.sent, real.waiting_rate, real.notes) == (
        2, 1, ["channel slow: 1 item(s) wait for the rate limit 2/m"])
    assert arrange.statuses(run) == {"sent": 2, "queued": 1}
    later = deliver_due(TickContext(db, NOW + timedelta(minutes=1), {}, dry_run=True),
                        run_ids=[run], scenario_items=False)
    assert (later.sent, later.waiting_rate) == (1, 0)


def test_items_whose_source_is_gone_fail_with_the_reason(arrange, db):
    c = arrange.contact("ann", "a@example.com")
    arrange.scenario("welcome", {"reentry": "once", "launch": {"type": "manual"}, "steps": [
        {"id": "hold", "wait": "1d"}, {"id": "bare", "send": "text"}]})
    for step in ("hold", "bare", "gone"):
        arrange.items(None, [c], scenario="welcome", step=step)
    arrange.items(None, [c], scenario="removed", step="x")
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[], scenario_items=True)
    assert (report.sent, report.failed) == (0, 4)
    errors = {r["message_id"]: r["last_error"]
              for r in arrange.rows("SELECT message_id, last_error FROM queue_items")}
    assert errors == {
        f"m-welcome-hold-{c}": "step hold of scenario welcome sends nothing",
        f"m-welcome-bare-{c}": "step bare of scenario welcome sends nothing",
        f"m-welcome-gone-{c}": "scenario welcome has no step 'gone' any more",
        f"m-removed-x-{c}": "scenario removed no longer exists",
    }


def test_cancel_reasons_opted_out_and_erased(arrange, db):
    out = arrange.contact("out", "o@example.com", opt_out=("promotional",))
    gone = arrange.contact("gone", "g@example.com")
    run = arrange.run(subject="Hi", body="B")
    arrange.items(run, [out, gone])
    arrange.conn.sqlite_pragma("foreign_keys = OFF")  # queue_items has no foreign key anyway
    arrange.conn.execute("DELETE FROM contacts WHERE id = ?", (gone,))
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (report.sent, report.cancelled) == (0, 2)
    assert {r["contact_id"]: r["last_error"] for r in arrange.rows(
        "SELECT contact_id, last_error FROM queue_items")} == {
        out: "contact opted out of promotional", gone: "contact was erased"}


def test_webhook_recipient_is_the_email_or_else_the_phone(arrange, db, http_server):
    arrange.channel("hook", {"type": "webhook", "url": http_server.url, "connections": 1})
    phone = arrange.contact("ph", None, phone="+33100")
    mail = arrange.contact("ml", "m@example.com", phone="+33200")
    run = arrange.run(channel="hook", subject="Hi {{ id }}", body="B")
    arrange.items(run, [phone, mail], channel="hook")
    http_server.script = [(200, 0.0), (500, 0.0)]
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (report.sent, report.retried) == (1, 1)
    assert [(r["body"]["contact"], r["body"]["to"]) for r in http_server.requests] == [
        ("ph", "+33100"), ("ml", "m@example.com")]
    retried = arrange.rows("SELECT attempts, next_attempt_at, last_error FROM queue_items"
                           " WHERE contact_id = ?", (mail,))
    assert retried == [{"attempts": 1, "next_attempt_at": "2027-03-01T09:01:00Z",
                        "last_error": 'HTTP 500: {"error": "nope"}'}]


def test_channel_test_message_id_subject_and_body(arrange, db):
    with pytest.raises(Exception, match="no channel named 'nope'; see 'campctl get channels'"):
        send_test(db, "nope", "a@b", now=NOW, environ={})
    result = send_test(db, "outbox", "a@b", now=NOW, environ={})
    digest = hashlib.sha256(b"outbox\x1fa@b\x1f2027-03-01T09:00:00Z").hexdigest()[:16]
    assert result == SendResult("outbox", "a@b", f"test-{digest}", True, None)
    assert arrange.rows("SELECT message_id, recipient, subject, body, sent_at, run_id FROM outbox"
                        ) == [{"message_id": f"test-{digest}", "recipient": "a@b",
                               "subject": "campctl test message (outbox)",
                               "body": "This is a test message sent by campctl through channel"
                                       " outbox at 2027-03-01T09:00:00Z.\n",
                               "sent_at": "2027-03-01T09:00:00Z", "run_id": None}]


def test_notification_without_message_id_gets_a_digest_of_its_content(arrange, db):
    result = send_notification(db, "outbox", Notice("ops@x", "S", "B"), now=NOW, environ={})
    digest = hashlib.sha256(b"outbox\x1fops@x\x1fS\x1fB\x1f2027-03-01T09:00:00Z"
                            ).hexdigest()[:16]
    assert result == SendResult("outbox", "ops@x", f"notify-{digest}", True, None)
    missing = send_notification(db, "nowhere", Notice("ops@x", "S", "B", message_id="notify-7"),
                                now=NOW, environ={})
    assert missing == SendResult("nowhere", "ops@x", "notify-7", False,
                                 "channel 'nowhere' is not defined; apply a Channel named"
                                 " nowhere or use 'outbox'")


def test_dry_run_sums_over_channels_and_respects_the_cap(arrange, db):
    ids = arrange.contacts(3)
    for name, rate, count in (("a", "2/m", 2), ("b", "1/m", 2), ("c", "1/m", 3)):
        arrange.channel(name, {"type": "outbox", "rate": rate})
        arrange.items(arrange.run(channel=name), ids[:count], channel=name)
    for name, count in (("x1", 1), ("x2", 2)):
        arrange.items(arrange.run(channel=name), ids[:count], channel=name)
    runs = [r["id"] for r in arrange.rows("SELECT id FROM runs")]
    dry = deliver_due(TickContext(db, NOW, {}, dry_run=True), run_ids=runs, scenario_items=False)
    assert dry.as_json() == {"sent": 4, "failed": 3, "retried": 0, "cancelled": 0,
                             "waiting_rate": 3}
    assert dry.notes == ["channel a: 2 message(s) would be sent",
                         "channel b: 1 item(s) would wait for the rate limit 1/m",
                         "channel b: 1 message(s) would be sent",
                         "channel c: 2 item(s) would wait for the rate limit 1/m",
                         "channel c: 1 message(s) would be sent",
                         "channel x1 is not usable: 1 item(s) would fail",
                         "channel x2 is not usable: 2 item(s) would fail"]
    capped = deliver_due(TickContext(db, NOW, {}, budget=Budget(max_messages=2), dry_run=True),
                         run_ids=runs, scenario_items=False)
    assert (capped.sent, capped.waiting_rate) == (2, 0)
    assert capped.notes[:3] == ["channel a: 2 message(s) would be sent",
                                "channel b: 0 message(s) would be sent",
                                "channel c: 0 message(s) would be sent"]


def test_dry_run_counts_scenario_items(arrange, db):
    c = arrange.contact("ann", "a@example.com")
    arrange.scenario("welcome", {"reentry": "once", "launch": {"type": "manual"},
                                 "steps": [{"id": "hi", "send": {"subject": "S", "body": "B"}}]})
    arrange.items(None, [c], scenario="welcome", step="hi")
    dry = deliver_due(TickContext(db, NOW, {}, dry_run=True), run_ids=[], scenario_items=True)
    assert (dry.sent, dry.notes) == (1, ["channel outbox: 1 message(s) would be sent"])


def test_channel_test_through_an_unusable_channel(arrange, db, http_server):
    arrange.channel("hook", {"type": "webhook", "url": http_server.url,
                             "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}})
    result = send_test(db, "hook", "x", now=NOW, environ={})
    digest = hashlib.sha256(b"hook\x1fx\x1f2027-03-01T09:00:00Z").hexdigest()[:16]
    assert result == SendResult(
        "hook", "x", f"test-{digest}", False,
        "environment variable HOOK_TOKEN is not set (needed by channel hook header"
        " Authorization); export it where campctl runs")
    assert http_server.requests == []


def test_channel_test_through_a_channel_that_cannot_open(arrange, db):
    arrange.channel("odd", {"type": "pigeon"})
    digest = hashlib.sha256(b"odd\x1fx\x1f2027-03-01T09:00:00Z").hexdigest()[:16]
    assert send_test(db, "odd", "x", now=NOW, environ={}) == SendResult(
        "odd", "x", f"test-{digest}", False,
        "channel odd: unknown type 'pigeon'; use one of outbox, smtp, webhook")
