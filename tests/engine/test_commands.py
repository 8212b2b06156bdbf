"""daemon, status, preview, log and events through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from .campaign_texts import campaign

NO_HANG = 300  # seconds: a guard against a hung process, never a pass/fail budget


def test_daemon_ticks_and_exits_0_on_sigterm(launch, state, rows):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n"), at="2027-03-01T08:00:00Z")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "campctl", "--state", str(state), "--now", "2027-03-01T08:00:00Z",
         "daemon", "--interval", "1s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env)
    try:
        # Two ticks' lines, however long a loaded machine takes for them, then the signal.
        first = [proc.stdout.readline(), proc.stdout.readline()]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=NO_HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [line for line in [*first, *out.splitlines()] if line.startswith("tick ")]
    assert len(lines) >= 2, out  # one line per tick without a terminal
    assert "sent 3" in lines[0]
    assert "stopped by signal" in err
    assert len(rows("SELECT * FROM outbox")) == 3


def test_daemon_with_tick_limit_prints_json_lines(launch, cli):
    launch(campaign("type: date-triggered\nschedule: {cron: \"*/1 * * * *\"}\n"),
           at="2027-03-01T08:00:00Z")
    result = cli("--now", "2027-03-01T08:00:00Z", "-o", "json", "daemon", "--interval", "1m",
                 "--ticks", "1")
    assert result.exit_code == 0, result
    assert json.loads(result.stdout.splitlines()[0])["fired"] == 1


def test_preview_campaign_local_and_utc(launch, cli):
    launch(campaign("type: date-triggered\nschedule: {cron: \"0 9 * * *\"}\n",
                    tz="Europe/Paris"), at="2027-03-26T08:00:00Z")
    result = cli("--now", "2027-03-26T10:00:00Z", "-o", "json", "preview", "campaign", "promo",
                 "--next", "3")
    assert result.exit_code == 0, result
    # across the DST change of 28 March 2027: 09:00 local is 08:00Z, then 07:00Z
    assert [r["utc"] for r in result.json] == ["2027-03-27T08:00:00Z", "2027-03-28T07:00:00Z",
                                               "2027-03-29T07:00:00Z"]
    assert result.json[0]["local"].startswith("2027-03-27T09:00:00+01:00")
    table = cli("--now", "2027-03-26T10:00:00Z", "preview", "campaign", "promo")
    assert table.exit_code == 0 and "2027-03-27" in table.stdout
    missing = cli("preview", "campaign", "nope")
    assert missing.exit_code == 3, missing


def test_status_json_lists_campaigns_runs_and_next(launch, tick, cli):
    launch(campaign("type: date-triggered\nschedule: {window: \"20:00-21:00\"}\n"),
           at="2027-03-01T08:00:00Z")
    tick("2027-03-01T09:00:00Z")
    result = cli("--now", "2027-03-01T09:30:00Z", "-o", "json", "status")
    assert result.exit_code == 0, result
    data = result.json
    assert data["campaigns"][0]["name"] == "promo"
    assert data["campaigns"][0]["next_occurrence"] == "2027-03-02T09:00:00Z"
    assert data["runs"][0]["queued"] == 3 and data["runs"][0]["status"] == "queued"
    assert {"plans", "instances", "scenarios", "next_occurrences"} <= set(data)
    assert cli("--now", "2027-03-01T09:30:00Z", "status").exit_code == 0


def test_log_filters_and_since(launch, tick, cli):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n"), at="2027-03-01T08:00:00Z")
    tick("2027-03-01T08:00:00Z")
    result = cli("--now", "2027-03-01T09:00:00Z", "-o", "json", "log", "--run", "1")
    assert result.exit_code == 0, result
    events = [r["event"] for r in result.json]
    assert events[:3] == ["Activity Created", "Queue Items Created", "Delivery Started"]
    assert "Run Completed" in events
    assert set(result.json[0]) >= {"at", "event", "plan", "instance", "campaign", "stage",
                                   "run", "details"}
    recent = cli("--now", "2027-03-01T09:00:00Z", "-o", "json", "log", "--since", "30m")
    assert recent.json == []
    assert cli("log", "--since", "soon").exit_code == 2


def test_events_emit_unknown_contact_and_bad_data(launch, cli):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n"), at="2027-03-01T08:00:00Z",
           start=False)
    assert cli("events", "emit", "signup", "--contact", "nobody").exit_code == 3
    assert cli("events", "emit", "signup", "--contact", "c001", "--data", "{oops").exit_code == 2
    ok = cli("-o", "json", "events", "emit", "signup", "--contact", "c001", "--data", '{"a": 1}')
    assert ok.exit_code == 0, ok
    assert ok.json["event"] == "signup"


def test_events_import_reports_bad_lines_and_keeps_good_ones(launch, cli, rows, tmp_path):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n"), at="2027-03-01T08:00:00Z",
           start=False)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([
        '{"event": "signup", "contact": "c001"}',
        'not json',
        '{"event": "signup", "contact": "ghost"}',
        '{"event": "signup", "contact": "c002", "at": "2027-02-28T10:00:00Z", "data": {"x": 1}}',
        '{"contact": "c003"}',
    ]) + "\n")
    result = cli("-o", "json", "events", "import", str(path))
    assert result.exit_code == 0, result  # like contacts import: rejected lines are reported
    assert result.json["imported"] == 2
    assert [e["line"] for e in result.json["errors"]] == [2, 3, 5]
    stored = rows("SELECT at FROM events ORDER BY id")
    assert [e["at"] for e in stored] == ["2027-03-01T09:00:00Z", "2027-02-28T10:00:00Z"]
    missing = cli("events", "import", str(tmp_path / "missing.jsonl"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr, missing  # as contacts


def test_log_follow_prints_new_entries_and_stops_on_sigint(launch, state, tick):
    launch(campaign("type: one-off\nschedule: {send: {at: \"2027-03-01T09:00\"}}\n"),
           at="2027-03-01T08:00:00Z")
    tick("2027-03-01T08:00:00Z")  # builds the queue: an entry for the follower to start with
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "campctl", "--state", str(state), "-o", "json", "log",
         "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # The entries already there come first: once one is printed, the follower is running,
        # and what the next tick writes is new to it.
        seen = [proc.stdout.readline()]
        assert json.loads(seen[0])["event"], seen
        tick("2027-03-01T09:00:00Z")
        while '"Run Completed"' not in seen[-1] and seen[-1]:
            seen.append(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=NO_HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in [*seen, *out.splitlines()] if line.strip()]
    assert "Queue Items Created" in events and "Run Completed" in events


def test_stopped_campaign_fires_no_more_and_relaunch_starts_again(launch, tick, cli, rows):
    launch(campaign("type: date-triggered\n"), at="2027-03-01T08:00:00Z")
    assert tick("2027-03-01T09:00:00Z")["fired"] == 1
    assert cli("--now", "2027-03-01T10:00:00Z", "stop", "campaign", "promo").exit_code == 0
    assert tick("2027-03-02T09:00:00Z")["fired"] == 0
    for verb in ("revise", "submit", "approve", "start"):
        result = cli("--now", "2027-03-02T10:00:00Z", verb, "campaign", "promo")
        assert result.exit_code == 0, result
    # The occurrence of 2 March 09:00 was before the new launch: it does not fire late.
    assert tick("2027-03-02T10:01:00Z")["fired"] == 0
    assert tick("2027-03-03T09:00:00Z")["fired"] == 1
    assert [r["scheduled_at"] for r in rows("SELECT scheduled_at FROM runs ORDER BY id")] == [
        "2027-03-01T09:00:00Z", "2027-03-03T09:00:00Z"]


def test_preview_plan_and_scenario_schedules(cli):
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "plans"
    assert cli("apply", str(examples)).exit_code == 0
    now = "2027-03-01T09:00:00Z"
    weekly = cli("--now", now, "-o", "json", "preview", "plan", "weekly-digest", "--next", "2")
    assert [r["utc"] for r in weekly.json] == ["2027-03-08T07:00:00Z", "2027-03-15T07:00:00Z"]
    once = cli("--now", now, "-o", "json", "preview", "plan", "easter-push")
    assert once.json == [{"local": "2027-03-04T10:00:00+01:00", "utc": "2027-03-04T09:00:00Z",
                          "dst": None}]
    manual = cli("--now", now, "-o", "json", "preview", "plan", "spring-launch")
    assert manual.json == []
    scenario = cli("--now", now, "-o", "json", "preview", "scenario", "winback", "--next", "1")
    assert scenario.json[0]["utc"] == "2027-03-02T09:00:00Z"
