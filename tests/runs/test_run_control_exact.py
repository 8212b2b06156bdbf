"""Run verbs and operator notifications, pinned to the exact text and times the operator sees:
refusal lines, execution-log details, the restart's history note, the resume target, the
notification's subject and body, and the retry back-off of an undeliverable notification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from store_support import execute_sql, handover_started, query_rows

from campctl.engine.run_control import (
    RunVerb,
    apply_run_verb,
    deliver_pending_notifications,
    notify_run,
    render_notification,
)
from campctl.store.db import open_state
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")


def test_refusals_name_the_verbs_allowed_now_or_the_final_status(cli, make_run):
    live = make_run("sending")
    done = make_run("skipped")
    assert cli("restart", "run", str(live), "--note", "x").stderr == (
        f"error: cannot restart run {live}: it is sending; only failed or stopped runs can be"
        " restarted; allowed on it now: pause, stop\n")
    assert cli("skip", "run", str(done), "--note", "x").stderr == (
        f"error: cannot skip run {done}: it is skipped; only failed or stopped runs can be"
        f" skipped; skipped is final, no verb applies (see 'campctl describe run {done}')\n")
    assert cli("resume", "run", str(live)).stderr == (
        f"error: cannot resume run {live}: it is sending; only paused runs can be resumed;"
        " allowed on it now: pause, stop\n")
    assert cli("stop", "run", str(done), "--note", "x").stderr == (
        f"error: cannot stop run {done}: it is skipped; only active runs can be stopped;"
        f" skipped is final, no verb applies (see 'campctl describe run {done}')\n")
    paused = make_run("paused", paused_from="sending")
    assert cli("pause", "run", str(paused)).stderr == (
        f"error: cannot pause run {paused}: it is paused; only active runs can be paused;"
        " allowed on it now: resume, stop\n")


def test_unknown_verb_is_a_programming_error(make_run, state):
    run_id = make_run("sending")
    db = open_state(state, create=False)
    try:
        with pytest.raises(ValueError, match="unknown run verb 'halt'"):
            apply_run_verb(db, run_id, RunVerb("halt", "t"), now=NOW)
    finally:
        db.close()


def test_stop_then_restart_log_details_history_and_the_new_run(cli, make_run, rows):
    run_id = make_run("sending", items=("sent", "queued", "queued"), instance_id=None,
                      queue_at="2027-03-01T10:00:00Z", send_at="2027-03-01T11:00:00Z")
    assert cli("stop", "run", str(run_id), "--note", "wrong").exit_code == 0
    assert cli("restart", "run", str(run_id), "--note", "again").exit_code == 0
    log = rows("SELECT event, campaign, stage, run_id, details FROM exec_log ORDER BY id")
    new_id = run_id + 1
    assert log == [
        {"event": "Run Stopped", "campaign": "spring-sale", "stage": "main", "run_id": run_id,
         "details": "wrong (2 items cancelled)"},
        {"event": "Run Restarted", "campaign": "spring-sale", "stage": "main", "run_id": run_id,
         "details": f"again (new run {new_id})"},
    ]
    created = rows("SELECT action, to_status, note, actor FROM history WHERE kind = 'run'"
                   " AND name = ?", (str(new_id),))
    assert created == [{"action": "create", "to_status": "scheduled", "actor": "tester",
                        "note": f"restart of run {run_id} (excluding contacts already sent):"
                                " again"}]
    new = rows("SELECT campaign, stage, status, scheduled_at, queue_at, send_at, restart_of,"
               " include_sent FROM runs WHERE id = ?", (new_id,))[0]
    assert new == {"campaign": "spring-sale", "stage": "main", "status": "scheduled",
                   "scheduled_at": "2027-03-01T09:00:00Z", "queue_at": "2027-03-01T10:00:00Z",
                   "send_at": "2027-03-01T11:00:00Z", "restart_of": run_id, "include_sent": 0}


def test_restart_without_note_including_sent(make_run, rows, state):
    run_id = make_run("failed")
    db = open_state(state, create=False)
    try:
        action = apply_run_verb(db, run_id, RunVerb("restart", "ops", include_sent=True), now=NOW)
    finally:
        db.close()
    assert (action.run_id, action.verb, action.from_status, action.to_status) == (
        run_id, "restart", "failed", "skipped")
    assert action.new_run_id == run_id + 1 and action.cancelled == 0
    assert action.notification_id == 1 and action.possibly_handed_over == 0
    assert rows("SELECT note FROM history WHERE name = ? AND action = 'create'",
                (str(run_id + 1),)) == [
        {"note": f"restart of run {run_id} (including contacts already sent)"}]
    assert rows("SELECT include_sent FROM runs WHERE id = ?", (run_id + 1,)) == [
        {"include_sent": 1}]
    assert rows("SELECT details FROM exec_log") == [{"details": f"(new run {run_id + 1})"}]


def test_stop_counts_the_items_in_doubt_in_the_log(make_run, rows, state):
    run_id = make_run("sending", items=("queued", "queued"))
    execute_sql(state, "UPDATE queue_items SET handover_begun = ?, claim_token = 'tok',"
                " claimed_until = '2027-03-01T09:05:00Z' WHERE id = 1", (handover_started(state),))
    db = open_state(state, create=False)
    try:
        action = apply_run_verb(db, run_id, RunVerb("stop", "ops"), now=NOW)
    finally:
        db.close()
    assert action.cancelled == 2 and action.possibly_handed_over == 1
    assert rows("SELECT details FROM exec_log") == [
        {"details": "(2 items cancelled) (1 possibly handed over before an interrupted"
                    " delivery: not sent again)"}]


def test_pause_and_resume_log_events_without_details(cli, make_run, rows):
    run_id = make_run("building")
    assert cli("pause", "run", str(run_id)).exit_code == 0
    assert rows("SELECT status, paused_from FROM runs") == [
        {"status": "paused", "paused_from": "building"}]
    assert cli("resume", "run", str(run_id)).exit_code == 0
    assert rows("SELECT event, details FROM exec_log ORDER BY id") == [
        {"event": "Delivery Paused", "details": None},
        {"event": "Delivery Resumed", "details": None}]


@pytest.mark.parametrize(("paused_from", "after"), [
    ("scheduled", "scheduled"), ("queued", "queued"), ("sending", "sending"),
    (None, "queued"), ("paused", "queued"), ("stopped", "queued")])
def test_resume_goes_back_to_an_active_status_only(make_run, rows, state, paused_from, after):
    run_id = make_run("paused", paused_from=paused_from)
    db = open_state(state, create=False)
    try:
        action = apply_run_verb(db, run_id, RunVerb("resume", "ops"), now=NOW)
    finally:
        db.close()
    assert action.to_status == after
    assert rows("SELECT status FROM runs") == [{"status": after}]


@pytest.mark.parametrize(("closes_at", "refused"), [
    ("2027-03-01T09:00:00Z", True), ("2027-03-01T08:59:59Z", True),
    ("2027-03-01T09:00:01Z", False), (None, False)])
def test_restart_refused_once_the_run_closing_date_is_reached(cli, make_run, closes_at, refused):
    run_id = make_run("stopped", closes_at=closes_at)
    result = cli("restart", "run", str(run_id), "--note", "x")
    if refused:
        assert result.exit_code == 1
        assert result.stderr == (f"error: cannot restart run {run_id}: campaign spring-sale"
                                 f" closed at {closes_at}\n")
    else:
        assert result.exit_code == 0, result


def test_notification_subject_and_body(cli, make_run, rows, state):
    run_id = make_run("sending")
    assert cli("stop", "run", str(run_id), "--note", "wrong").exit_code == 0
    execute_sql(state, "UPDATE runs SET error = 'smtp down' WHERE id = ?", (run_id,))
    db = open_state(state, create=False)
    try:
        [item] = rows("SELECT * FROM notifications")
        assert render_notification(db, item) == (
            f"[campctl] run {run_id} (spring-sale/main) stopped",
            f"run/{run_id} stopped at 2027-03-01T09:00:00Z\n"
            "campaign: spring-sale, stage: main, status now: stopped\n"
            "error: smtp down\n"
            "in the work list of: tester (campctl worklist --as tester)\n"
            "by: tester\nnote: wrong\n"
            f"details: campctl describe run {run_id}\n")
        other = {"object": "plan/p", "kind": "run-failed", "at": "X", "actor": None,
                 "note": None}
        assert render_notification(db, other) == ("[campctl] plan/p failed",
                                                   "plan/p failed at X\n")
        odd = {"object": "run/zz", "kind": "failed", "at": "X", "actor": "a", "note": "n"}
        assert render_notification(db, odd) == (
            "[campctl] run/zz failed",
            "run/zz failed at X\nby: a\nnote: n\ndetails: campctl describe run zz\n")
        missing = {"object": "run/99", "kind": "run-failed", "at": "X"}
        assert render_notification(db, missing) == (
            "[campctl] run/99 failed", "run/99 failed at X\ndetails: campctl describe run 99\n")
    finally:
        db.close()


def test_undeliverable_notification_backs_off_1_2_4_8_minutes_then_gives_up(cli, make_run,
                                                                           rows, state):
    run_id = make_run("failed")
    assert cli("config", "set", "notify_channel", "no-such-channel").exit_code == 0
    assert cli("config", "set", "notify_to", "ops@example.com").exit_code == 0
    assert cli("skip", "run", str(run_id), "--note", "x").exit_code == 0
    error = ("channel 'no-such-channel' is not defined; apply a Channel named no-such-channel"
             " or use 'outbox'")
    assert rows("SELECT attempts, claimed_until, delivery_error FROM notifications") == [
        {"attempts": 1, "claimed_until": "2027-03-01T09:01:00Z", "delivery_error": error}]
    db = open_state(state, create=False)
    try:
        for at, tried, attempts, until in [
            ("09:00:59", False, 1, "09:01:00"), ("09:01:00", True, 2, "09:03:00"),
            ("09:02:59", False, 2, "09:03:00"), ("09:03:00", True, 3, "09:07:00"),
            ("09:06:59", False, 3, "09:07:00"), ("09:07:00", True, 4, "09:15:00"),
            ("09:14:59", False, 4, "09:15:00"), ("09:15:00", True, 5, "09:31:00"),
            ("10:00:00", False, 5, "09:31:00"),
        ]:
            report = deliver_pending_notifications(
                db, now=parse_instant(f"2027-03-01T{at}Z"), environ={})
            assert (report.delivered, report.failed) == (0, int(tried)), at
            assert report.errors == ([f"notification 1: {error}"] if tried else []), at
            assert rows("SELECT attempts, claimed_until FROM notifications") == [
                {"attempts": attempts, "claimed_until": f"2027-03-01T{until}Z"}], at
    finally:
        db.close()


def test_delivery_takes_at_most_limit_and_needs_channel_and_address(cli, make_run, rows,
                                                                   state):
    ids = [make_run("failed") for _ in range(3)]
    for run_id in ids:
        assert cli("skip", "run", str(run_id), "--note", "x").exit_code == 0
    db = open_state(state, create=False)
    try:
        assert deliver_pending_notifications(db, now=NOW, environ={}).errors == []
        assert cli("config", "set", "notify_channel", "outbox").exit_code == 0
        # A channel but no address: only copies addressed to a user would go; none here.
        assert deliver_pending_notifications(db, now=NOW, environ={}).delivered == 0
        assert rows("SELECT attempts FROM notifications") == [{"attempts": 0}] * 3
        assert cli("config", "set", "notify_to", "ops@example.com").exit_code == 0
        first = deliver_pending_notifications(db, now=NOW, environ={}, limit=2)
        assert (first.delivered, first.failed) == (2, 0)
        assert [r["delivered_at"] is not None for r in
                rows("SELECT delivered_at FROM notifications ORDER BY id")] == [True, True, False]
        rest = deliver_pending_notifications(db, now=NOW, environ={})
        assert (rest.delivered, rest.failed) == (1, 0)
    finally:
        db.close()
    sent = rows("SELECT message_id, recipient FROM outbox ORDER BY message_id")
    assert [s["message_id"] for s in sent] == ["notify-1", "notify-2", "notify-3"]


def _instance(state, status: str) -> int:
    execute_sql(
        state,
        "INSERT INTO plan_instances (name, plan, status, started_at, plan_version, snapshot)"
        " VALUES (?, 'launch', ?, '2027-03-01T08:00:00Z', 1, '{}')", (f"launch-{status}", status))
    return int(query_rows(state, "SELECT id FROM plan_instances WHERE name = ?",
                          (f"launch-{status}",))[0]["id"])


@pytest.mark.parametrize("verb", ["skip", "restart"])
def test_no_verb_on_a_run_whose_plan_instance_ended(cli, make_run, rows, state, verb):
    instance = _instance(state, "cancelled")
    run_id = make_run("stopped", instance_id=instance)
    result = cli(verb, "run", str(run_id), "--note", "x")
    assert result.exit_code == 1, result
    assert result.stderr == (
        f"error: cannot {verb} run {run_id}: its plan instance launch-cancelled (id {instance})"
        " is cancelled, so no stage of it runs again (start a new instance: 'campctl start plan"
        " launch')\n")
    assert rows("SELECT status FROM runs") == [{"status": "stopped"}]


def test_stop_logs_the_run_plan_instance(cli, make_run, rows, state):
    instance = _instance(state, "running")
    run_id = make_run("sending", instance_id=instance)
    assert cli("stop", "run", str(run_id), "--note", "x").exit_code == 0
    assert rows("SELECT instance_id, run_id FROM exec_log") == [
        {"instance_id": instance, "run_id": run_id}]


def test_restart_refused_for_a_stopped_campaign_only(cli, make_run, state):
    execute_sql(state, "INSERT INTO objects (kind, name, version, spec, status, created_at,"
                " updated_at) VALUES ('Campaign', 'spring-sale', 1, '{}', 'stopped', ?, ?)",
                ("2027-03-01T08:00:00Z", "2027-03-01T08:00:00Z"))
    run_id = make_run("stopped")
    assert cli("restart", "run", str(run_id), "--note", "x").stderr == (
        f"error: cannot restart run {run_id}: campaign spring-sale is stopped, and no new run of"
        " it starts\n")
    assert cli("skip", "run", str(run_id), "--note", "x").exit_code == 0


def test_restart_keeps_the_run_closing_date_and_excludes_sent_by_default(make_run, rows, state):
    run_id = make_run("stopped", closes_at="2027-03-02T00:00:00Z")
    db = open_state(state, create=False)
    try:
        action = apply_run_verb(db, run_id, RunVerb("restart", "ops", note="n"), now=NOW)
    finally:
        db.close()
    assert rows("SELECT closes_at, include_sent FROM runs WHERE id = ?",
                (action.new_run_id,)) == [
        {"closes_at": "2027-03-02T00:00:00Z", "include_sent": 0}]


def test_other_notification_kinds_and_odd_objects(make_run, rows, state):
    run_id = make_run("failed")
    db = open_state(state, create=False)
    try:
        with db.atomic():
            notify_run(db, run_id, "paused", None, None, NOW)
        odd = {"object": f"run/{run_id}/x", "kind": "run-failed", "at": "X"}
        assert render_notification(db, odd) == (
            f"[campctl] run/{run_id}/x failed",
            f"run/{run_id}/x failed at X\ndetails: campctl describe run {run_id}/x\n")
    finally:
        db.close()
    assert rows("SELECT kind FROM notifications") == [{"kind": "run-paused"}]


def test_one_call_delivers_at_most_100_and_counts_each_failure(cli, make_run, rows, state):
    make_run("failed")
    execute_sql(state, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                " WHERE i < 101) INSERT INTO notifications (at, kind, object)"
                " SELECT '2027-03-01T08:00:00Z', 'run-failed', 'run/1' FROM n")
    assert cli("config", "set", "notify_channel", "no-such-channel").exit_code == 0
    assert cli("config", "set", "notify_to", "ops@example.com").exit_code == 0
    db = open_state(state, create=False)
    try:
        failed = deliver_pending_notifications(db, now=NOW, environ={}, limit=2)
        assert (failed.delivered, failed.failed, len(failed.errors or [])) == (0, 2, 2)
        assert cli("config", "set", "notify_channel", "outbox").exit_code == 0
        later = NOW + timedelta(minutes=1)
        first = deliver_pending_notifications(db, now=later, environ={})
        assert (first.delivered, first.failed) == (100, 0)
        rest = deliver_pending_notifications(db, now=later, environ={})
        assert (rest.delivered, rest.failed) == (1, 0)
    finally:
        db.close()
    assert rows("SELECT DISTINCT recipient FROM outbox") == [{"recipient": "ops@example.com"}]
