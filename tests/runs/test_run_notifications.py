"""Operator notifications: recorded with each stop/restart/skip, listed, delivered when set."""

from __future__ import annotations

import pytest
from store_support import execute_sql

from campctl.engine.run_control import deliver_pending_notifications, notify_run
from campctl.store.db import open_state
from campctl.timeutil import parse_instant


def test_notifications_listing_json_and_since(cli, make_run):
    a = make_run("sending")
    b = make_run("failed")
    assert cli("--now", "2027-03-01T06:00:00Z", "stop", "run", str(a), "--note", "early"
               ).exit_code == 0
    assert cli("skip", "run", str(b), "--note", "not needed").exit_code == 0
    result = cli("notifications", "-o", "json")
    assert result.exit_code == 0, result
    assert [{k: n[k] for k in ("at", "kind", "object", "note")} for n in result.json] == [
        {"at": "2027-03-01T06:00:00Z", "kind": "run-stopped", "object": f"run/{a}",
         "note": "early"},
        {"at": "2027-03-01T09:00:00Z", "kind": "run-skipped", "object": f"run/{b}",
         "note": "not needed"},
    ]
    recent = cli("notifications", "--since", "1h", "-o", "json")
    assert [n["object"] for n in recent.json] == [f"run/{b}"]
    assert cli("notifications", "--since", "soon").exit_code == 2
    assert "run-skipped" in cli("notifications").stdout


def test_pause_and_resume_do_not_notify(cli, make_run, rows):
    run_id = make_run("queued")
    assert cli("pause", "run", str(run_id)).exit_code == 0
    assert cli("resume", "run", str(run_id)).exit_code == 0
    assert rows("SELECT * FROM notifications") == []


def test_notify_run_for_engine_failures(cli, state, make_run, rows):
    run_id = make_run("failed")
    db = open_state(state, create=False)
    try:
        with db.atomic():
            notify_run(db, run_id, "failed", "channel unreachable", "campctl",
                       parse_instant("2027-03-01T09:00:00Z"))
            notify_run(db, run_id=run_id, kind="run-failed", note="again", actor="campctl",
                       now=parse_instant("2027-03-01T09:01:00Z"))
    finally:
        db.close()
    assert [(r["kind"], r["object"]) for r in rows("SELECT kind, object FROM notifications")] == [
        ("run-failed", f"run/{run_id}"), ("run-failed", f"run/{run_id}")]


def test_without_notify_settings_nothing_is_delivered(cli, make_run, rows):
    run_id = make_run("sending")
    assert cli("stop", "run", str(run_id), "--note", "x").exit_code == 0
    assert rows("SELECT delivered_at, attempts FROM notifications") == [
        {"delivered_at": None, "attempts": 0}]


def _delivery_available() -> bool:
    try:
        from campctl.engine.delivery import send_notification  # noqa: F401
    except ImportError:
        return False
    return True


needs_delivery = pytest.mark.skipif(not _delivery_available(),
                                    reason="engine.delivery.send_notification not present")


@needs_delivery
def test_notification_delivered_to_the_outbox_channel(cli, make_run, rows):
    run_id = make_run("sending", items=("queued",))
    assert cli("config", "set", "notify_channel", "outbox").exit_code == 0
    assert cli("config", "set", "notify_to", "ops@example.com").exit_code == 0
    result = cli("stop", "run", str(run_id), "--note", "wrong audience")
    assert result.exit_code == 0, result
    notes = rows("SELECT delivered_at, delivery_error, attempts FROM notifications")
    assert notes == [{"delivered_at": "2027-03-01T09:00:00Z", "delivery_error": None,
                      "attempts": 1}]
    sent = rows("SELECT message_id, subject, body FROM outbox WHERE message_id LIKE 'notify-%'")
    assert len(sent) == 1
    assert f"run {run_id}" in sent[0]["subject"] and "stopped" in sent[0]["subject"]
    assert "wrong audience" in sent[0]["body"]
    listed = cli("notifications", "-o", "json").json
    assert listed[0]["delivered_at"] == "2027-03-01T09:00:00Z"


@needs_delivery
def test_failed_delivery_is_recorded_and_retried_later(cli, make_run, rows, state):
    run_id = make_run("failed")
    assert cli("config", "set", "notify_channel", "no-such-channel").exit_code == 0
    assert cli("config", "set", "notify_to", "ops@example.com").exit_code == 0
    result = cli("skip", "run", str(run_id), "--note", "x")
    assert result.exit_code == 0, result  # the skip happened; delivery is retried later
    assert "not delivered" in result.stderr
    first = rows("SELECT delivered_at, delivery_error, attempts FROM notifications")[0]
    assert first["delivered_at"] is None and first["delivery_error"] and first["attempts"] == 1
    # Fix the setting; a retry before the back-off does nothing, after it delivers.
    execute_sql(state, "UPDATE config SET value = 'outbox' WHERE key = 'notify_channel'")
    db = open_state(state, create=False)
    try:
        early = deliver_pending_notifications(db, now=parse_instant("2027-03-01T09:00:30Z"),
                                              environ={})
        assert early.delivered == 0
        later = deliver_pending_notifications(db, now=parse_instant("2027-03-01T09:02:00Z"),
                                              environ={})
        assert later.delivered == 1
        again = deliver_pending_notifications(db, now=parse_instant("2027-03-01T09:10:00Z"),
                                              environ={})
        assert again.delivered == 0
    finally:
        db.close()
    done = rows("SELECT delivered_at, delivery_error, attempts FROM notifications")[0]
    assert done == {"delivered_at": "2027-03-01T09:02:00Z", "delivery_error": None,
                    "attempts": 2}
    assert len(rows("SELECT * FROM outbox WHERE message_id LIKE 'notify-%'")) == 1


@needs_delivery
def test_a_no_op_tick_retries_pending_notifications(cli, make_run, rows, state):
    run_id = make_run("stopped")
    assert cli("config", "set", "notify_channel", "missing-channel").exit_code == 0
    assert cli("config", "set", "notify_to", "ops@example.com").exit_code == 0
    assert cli("skip", "run", str(run_id), "--note", "x").exit_code == 0
    assert cli("config", "set", "notify_channel", "outbox").exit_code == 0
    tick = cli("--now", "2027-03-01T09:05:00Z", "tick")
    assert tick.exit_code == 0, tick
    assert rows("SELECT delivered_at FROM notifications") == [
        {"delivered_at": "2027-03-01T09:05:00Z"}]
