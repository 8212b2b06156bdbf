"""Run lifecycle across run control, DST, the demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_support import is_pg, query_rows, state_exists

from .campaign_texts import campaign


@pytest.mark.parametrize("include_sent,expected", [(False, 3), (True, 5)])
def test_restarted_run_skips_contacts_already_sent(launch, tick, cli, rows, include_sent,
                                                   expected):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n"),
           at="2027-03-01T08:00:00Z", contacts=5)
    assert tick("2027-03-01T08:00:00Z", "--max-messages", "2")["sent"] == 2
    stop = cli("--now", "2027-03-01T08:01:00Z", "stop", "run", "1", "--note", "wrong subject")
    assert stop.exit_code == 0, stop
    args = ["--now", "2027-03-01T08:02:00Z", "restart", "run", "1", "--note", "fixed"]
    if include_sent:
        args.append("--include-sent")
    assert cli(*args).exit_code == 0
    report = tick("2027-03-01T08:03:00Z")
    assert (report["built"], report["sent"]) == (expected, expected)
    statuses = rows("SELECT id, status, restart_of FROM runs ORDER BY id")
    assert statuses == [{"id": 1, "status": "skipped", "restart_of": None},
                        {"id": 2, "status": "completed", "restart_of": 1}]
    per_contact = rows("SELECT contact, count(*) AS n FROM outbox GROUP BY contact")
    assert len(per_contact) == 5
    assert max(r["n"] for r in per_contact) == (2 if include_sent else 1)


def test_paused_run_is_left_alone_until_resumed(launch, tick, cli, rows):
    launch(campaign("type: one-off\nschedule: {send: {at: \"2027-03-01T10:00\"}}\n"),
           at="2027-03-01T08:00:00Z")
    tick("2027-03-01T08:00:00Z")
    assert cli("--now", "2027-03-01T09:00:00Z", "pause", "run", "1").exit_code == 0
    assert tick("2027-03-01T10:00:00Z")["sent"] == 0
    dry = cli("--now", "2027-03-01T10:01:00Z", "tick", "--dry-run")
    assert "paused, nothing is sent until 'campctl resume run 1'" in dry.stdout, dry
    assert cli("--now", "2027-03-01T10:05:00Z", "resume", "run", "1").exit_code == 0
    assert tick("2027-03-01T10:06:00Z")["sent"] == 3
    assert rows("SELECT status FROM runs") == [{"status": "completed"}]


def test_failed_channel_fails_the_run_and_notifies(launch, tick, rows):
    # Nothing listens on port 9: every POST fails; with max_attempts 1 the run fails.
    text = campaign("type: one-off\nchannel: dead\nschedule: {send: immediately}\n") + (
        "---\nkind: Channel\nname: dead\ntype: webhook\nurl: http://127.0.0.1:9/x\n"
        "max_attempts: 1\n")
    launch(text, at="2027-03-01T08:00:00Z")
    for minute in range(0, 30, 5):
        tick(f"2027-03-01T08:{minute:02d}:00Z")
    assert rows("SELECT status FROM runs") == [{"status": "failed"}]
    notes = rows("SELECT kind, object FROM notifications")
    assert {"kind": "run-failed", "object": "run/1"} in notes


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(zone=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Sydney"]),
       year=st.integers(2027, 2030), hour=st.sampled_from([1, 2, 3]))
def test_daily_campaign_fires_once_per_local_day_across_dst(tmp_path_factory, zone, year,
                                                           hour):
    """Ticks every hour through the spring and autumn changes of `zone`."""
    from campctl.engine.tick import tick as run_tick
    from campctl.store.db import open_db
    from campctl.timeutil import zone as tz

    db = open_db(tmp_path_factory.mktemp("dst") / "s.db", create=True)
    spec = {"type": "date-triggered", "timezone": zone, "audience": {"all": True},
            "message": {"subject": "s", "body": "b"},
            "schedule": {"cron": f"30 {hour} * * *", "catchup": "all"}}
    _insert_launched_campaign(db, spec, launched=datetime(year, 1, 1, tzinfo=UTC))
    for month in (3, 4, 10, 11) if zone != "Australia/Sydney" else (4, 10):
        for day_start in range(1, 29, 7):
            start = datetime(year, month, day_start, tzinfo=UTC)
            now = start
            while now < start + timedelta(days=7):
                run_tick(db, now=now, environ={})
                now += timedelta(minutes=60)
    fired = list(_occurrences(db))
    days = [datetime.fromisoformat(f.replace("Z", "+00:00")).astimezone(tz(zone)).date()
            for f in fired]
    assert len(days) == len(set(days)), fired  # never twice on a local day
    expected = [days[0] + timedelta(days=n) for n in range((days[-1] - days[0]).days + 1)]
    assert days == expected  # and on every local day, in order
    db.close()


def _insert_launched_campaign(db, spec, *, launched):
    from campctl.store import objects as object_store
    from campctl.timeutil import to_db

    with db.atomic():
        object_store.insert_object(db, object_store.NewVersion("Campaign", "dst", 1, spec),
                                   status="approved", now=launched)
        db.conn.execute("UPDATE objects SET launched_at = ? WHERE name = 'dst'",
                        (to_db(launched),))


def _occurrences(db):
    return [r[0] for r in db.conn.execute(
        "SELECT scheduled_at FROM occurrences WHERE status = 'fired' ORDER BY scheduled_at")]


def test_demo_runs_quickly_and_keeps_state_when_asked(cli, tmp_path, state):
    import time

    target = state if is_pg(state) else tmp_path / "demo.db"
    started = time.monotonic()
    # Five days from NOW (Monday 09:00 UTC): past flash-friday's Friday and its stale deadline.
    result = cli("--state", str(target), "-o", "json", "demo", "--days", "5")
    assert result.exit_code == 0, result
    assert time.monotonic() - started < 600  # a guard against a runaway loop, not a speed target
    data = result.json
    assert data["delivered"] > 0 and data["runs"] and data["instances"]
    assert {"runs", "instances", "scenarios", "messages"} <= set(data)
    assert state_exists(target)
    # channels were rerouted: nothing was handed to a network channel
    kinds = {json.loads(r["spec"]).get("type") for r in query_rows(
        target, "SELECT spec FROM objects WHERE kind = 'Channel'")}
    assert kinds <= {"outbox"}
    # plans/caps.yaml: the frequency cap holds new-collection (priority 20) behind member-day
    # (90) and welcome-back (50), logged per run.
    runs = {r["campaign"]: r for r in cli("--state", str(target), "get", "runs", "-o",
                                          "json").json}
    assert runs["new-collection"]["capped"] > 0 and runs["member-day"]["capped"] == 0
    assert query_rows(target, "SELECT count(*) AS n FROM exec_log"
                              " WHERE event = 'Messages Capped'")[0]["n"] > 0
    _assert_issue16_sections(data, target)


def _assert_issue16_sections(data, target):
    """The demo's sections for issue 16's items, checked against the rows of its state."""
    vips = 23  # the sample audience's VIP group (store-opening, flash-friday)
    resumed = {r["campaign"]: r for r in data["resume"]}
    skip, send = resumed["store-opening"], resumed["flash-friday"]
    assert (skip["policy"], skip["missed"], skip["cancelled"]) == ("skip", vips - 2, vips - 2)
    assert (send["policy"], send["cancelled"], send["released"]) == ("send", 0, vips - 2)
    # resumed with --missed send, yet past stale_after 8h: every message cancelled as stale
    assert data["stale"] == {"total": vips - 2, "runs": [
        {"run": send["run"], "campaign": "flash-friday", "stale": vips - 2}]}
    [stale] = query_rows(target, "SELECT count(*) AS n FROM queue_items WHERE run_id = ? AND "
                                 "last_error = 'stale'", (send["run"],))
    assert stale["n"] == vips - 2
    retry = data["retry"]
    assert (retry["failed"], retry["queued"], retry["sent"]) == (5, 5, 5)
    [row] = query_rows(target, "SELECT restart_of FROM runs WHERE id = ?", (retry["new_run"],))
    assert row["restart_of"] == retry["run"]
    why = {o["name"]: o for o in data["why"]["objects"]}
    assert data["why"]["contact"] == "C0160" and data["why"]["answers"] > len(why)
    assert why["flash-friday"]["reason"].endswith("cancelled: stale")
    assert why["store-opening"]["reason"].endswith("cancelled: missed")
    assert why["referral-codes"]["verdict"] == "got"
    assert f"r{retry['new_run']}-" in why["referral-codes"]["reason"]
    assert data["doctor"]["healthy"] is True, data["doctor"]
    assert data["doctor"]["checks"] >= 10 and data["doctor"]["findings"] == []
    sim = data["simulate"]
    assert sim["simulated_days"] == 2 and sim["ticks"] > 0 and sim["days"]
    assert sim["totals"]["sent"] == sum(d["sent"] for d in sim["days"]) > 0
    assert any(f"describe run {retry['run']}" in line for line in data["try_next"])


@pytest.mark.sqlite_only("the table renders the same numbers the JSON test checks on both")
def test_demo_table_shows_a_section_per_operation(cli, tmp_path):
    result = cli("--state", str(tmp_path / "demo.db"), "demo", "--days", "5")
    assert result.exit_code == 0, result
    for title in ("Stale (stale_after): 21 messages cancelled", "Resume of the runs the demo",
                  "Retry (--failed-only): run ", "had 5 failures", "queued 5 and sent 5",
                  "Why, for contact C0160", "cancelled: stale", "cancelled: missed",
                  "Doctor: healthy", "Simulate --days 2 from", "try next:"):
        assert title in result.stdout, result.stdout
    cells = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert any(c.endswith(" store-opening skip 21 0 21") for c in cells), result.stdout


def test_template_failures_fail_messages_not_the_run(launch, tick, rows):
    text = ("kind: Campaign\nname: promo\ntimezone: UTC\naudience: {all: true}\n"
            "message: {subject: \"Hi {{ missing_field }}\", body: \"x\"}\n"
            "type: one-off\nschedule: {send: immediately}\n")
    launch(text, at="2027-03-01T08:00:00Z")
    report = tick("2027-03-01T08:00:00Z")
    assert (report["sent"], report["failed"]) == (0, 3)
    assert rows("SELECT status FROM runs") == [{"status": "completed"}]
    assert rows("SELECT count(*) AS n FROM notifications")[0]["n"] == 0
