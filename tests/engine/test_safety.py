"""Exactly-once under concurrency, kills, repeated ticks and a clock stepped back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
from store_support import is_pg, table_names, write_marks

from .campaign_texts import campaign


def _dump(rows, state) -> dict:
    if is_pg(state):
        tables = table_names(state)
    else:  # sqlite_sequence included
        tables = [r["name"] for r in rows("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: rows(f"SELECT * FROM {t}") for t in tables}


def _spawn(state, now: str, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "campctl", "--state", str(state), "--now", now, "tick", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_eight_concurrent_ticks_fire_once_and_send_once(launch, state, rows, webhook):
    text = "".join(
        campaign("type: date-triggered\nchannel: hook\nschedule: {cron: \"0 9 * * *\"}\n",
                 name=f"daily-{i}") + "---\n" for i in range(3)
    ) + campaign("type: one-off\nchannel: hook\nschedule: {send: immediately}\n",
                 name="once") + (
        f"---\nkind: Channel\nname: hook\ntype: webhook\nurl: {webhook.url}\n")
    launch(text, at="2027-03-01T08:00:00Z", contacts=40)
    procs = [_spawn(state, "2027-03-01T09:00:00Z") for _ in range(8)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    # one run per occurrence: 3 date-triggered occurrences + 1 one-off launch
    assert len(rows("SELECT id FROM runs")) == 4
    occ = rows("SELECT kind, name, scheduled_at, count(*) AS n FROM occurrences "
               "GROUP BY kind, name, scheduled_at")
    assert all(o["n"] == 1 for o in occ) and len(occ) == 4
    items = rows("SELECT message_id, status FROM queue_items")
    assert len(items) == 160 and {i["status"] for i in items} == {"sent"}
    assert sorted(webhook.keys) == sorted(i["message_id"] for i in items)


def test_eight_concurrent_outbox_ticks_one_record_per_item(launch, state, rows):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n"),
           at="2027-03-01T08:00:00Z", contacts=200)
    procs = [_spawn(state, "2027-03-01T08:00:00Z") for _ in range(8)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert len(rows("SELECT id FROM runs")) == 1
    per_item = rows("SELECT q.message_id, count(o.message_id) AS n FROM queue_items q "
                    "LEFT JOIN outbox o ON o.message_id = q.message_id GROUP BY q.message_id")
    assert len(per_item) == 200 and all(r["n"] == 1 for r in per_item)


@pytest.mark.parametrize("phase", ["building", "delivering"])
def test_sigkill_mid_tick_loses_nothing(launch, state, rows, tick, phase):
    count = 6000
    if phase == "building":
        launch(campaign("type: one-off\nschedule: {send: immediately}\n"),
               at="2027-03-01T08:00:00Z", contacts=count)
        at = "2027-03-01T08:00:00Z"
    else:
        launch(campaign("type: one-off\nschedule:\n  send: {at: \"2027-03-01T10:00\"}\n"),
               at="2027-03-01T08:00:00Z", contacts=count)
        tick("2027-03-01T08:00:00Z")  # built and held
        assert len(rows("SELECT id FROM queue_items")) == count
        at = "2027-03-01T10:00:00Z"
    kills = 0
    for delay in (0.25, 0.4, 0.55, 0.7, 0.85, 1.0):
        proc = _spawn(state, at)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    # Items claimed by a killed tick wait for their 5-minute lease, then go out once.
    base = datetime.fromisoformat(at.replace("Z", "+00:00"))
    for minutes in (0, 6, 12, 18):
        tick((base + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    per_contact = rows("SELECT contact, count(*) AS n FROM outbox GROUP BY contact")
    assert len(per_contact) == count and all(r["n"] == 1 for r in per_contact)
    assert rows("SELECT DISTINCT status FROM queue_items") == [{"status": "sent"}]
    assert rows("SELECT status FROM runs") == [{"status": "completed"}]
    if not is_pg(state):  # PostgreSQL has no file to damage: its WAL recovers each kill
        assert rows("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    assert kills >= 1  # at least one tick really died mid-way


def test_tick_twice_at_the_same_now_writes_nothing(launch, tick, rows, state):
    launch(campaign("type: date-triggered\nschedule: {window: \"12:00-17:00\"}\n")
           + "---\n" + campaign("type: event-triggered\ntrigger: {event: signup}\n",
                                name="welcome"), at="2027-03-01T08:00:00Z")
    first = tick("2027-03-01T09:00:00Z")
    assert first["built"] == 3
    before = _dump(rows, state)
    content = write_marks(state)
    second = tick("2027-03-01T09:00:00Z")
    assert (second["fired"], second["built"], second["sent"]) == (0, 0, 0)
    assert _dump(rows, state) == before
    assert write_marks(state) == content  # not one page changed


def test_clock_stepped_back_creates_no_runs_and_resends_nothing(launch, tick, rows):
    launch(campaign("type: date-triggered\n"), at="2027-03-01T08:00:00Z")
    tick("2027-03-01T09:00:00Z")
    tick("2027-03-02T09:00:00Z")
    runs, sent = len(rows("SELECT id FROM runs")), len(rows("SELECT * FROM outbox"))
    assert (runs, sent) == (2, 6)
    for back in ("2027-03-01T09:00:00Z", "2027-03-01T12:00:00Z", "2027-03-02T08:59:00Z",
                 "2027-03-02T09:00:00Z"):
        report = tick(back)
        assert (report["fired"], report["sent"]) == (0, 0), back
    assert len(rows("SELECT id FROM runs")) == runs
    assert len(rows("SELECT * FROM outbox")) == sent


def test_dry_run_writes_nothing_and_explains(launch, cli, rows, state):
    launch(campaign("type: one-off\nschedule: {send: {at: \"2027-03-02T08:00\"}}\n"),
           at="2027-03-01T08:00:00Z")
    before = _dump(rows, state)
    result = cli("--now", "2027-03-01T08:00:00Z", "tick", "--dry-run")
    assert result.exit_code == 0, result
    assert "nothing was written" in result.stdout
    assert "launched" in result.stdout and "built 3 messages" in result.stdout
    assert "held until its send schedule" in result.stdout
    assert _dump(rows, state) == before
    as_json = cli("--now", "2027-03-01T08:00:00Z", "-o", "json", "tick", "--dry-run").json
    assert as_json["fired"] == 1 and as_json["built"] == 3 and as_json["dry_run"] is True


@pytest.mark.sqlite_only("the fast no-op tick probes a SQLite file; PostgreSQL takes the full tick")
def test_no_op_tick_takes_the_fast_path_without_heavy_imports(launch, tick, state):
    launch(campaign("type: date-triggered\n"), at="2027-03-01T08:00:00Z")
    tick("2027-03-01T08:00:00Z")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    code = ("import sys; from campctl.__main__ import main; "
            f"rc = main(['--state', {str(state)!r}, '--now', '2027-03-01T08:30:00Z', 'tick']); "
            "heavy = [m for m in ('typer', 'rich', 'jinja2', 'yaml', 'croniter', 'sqlite_utils')"
            " if m in sys.modules]; print(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip().endswith("0 []"), out
    assert "nothing due" in out.stdout
    # at 09:00 the occurrence is due: the full path runs and fires it
    assert tick("2027-03-01T09:00:00Z")["fired"] == 1
