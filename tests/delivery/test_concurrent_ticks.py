"""Several `campctl tick` processes delivering one run at once, on both stores (issue 15 §4.5).

Each process stands for a host: a real `python -m campctl tick` against the same state, counted
at a webhook sink on 127.0.0.1. On SQLite the write lock takes turns; on PostgreSQL the ticks
claim side by side (FOR UPDATE SKIP LOCKED under the shared SERIAL lock). Either way: every
message exactly once, a pause holds across processes, and a channel's rate across all of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_AT = "2027-03-01T09:00:00Z"
SEND_AT = "2027-03-01T09:30:00Z"


def ok(result):
    assert result.exit_code == 0, result
    return result


def arrange(cli, write_yaml, tmp_path, url: str, n: int, *, rate: str | None = None,
            connections: int = 1) -> int:
    """A campaign of `n` contacts through channel `hook`, built at BUILD_AT and due at SEND_AT;
    returns the run id."""
    channel = {"rate": rate} if rate else {}
    extra = "".join(f"\n{k}: {v}" for k, v in channel.items())
    write_yaml("defs.yaml", textwrap.dedent(f"""\
        kind: Channel
        name: hook
        type: webhook
        url: {url}
        timeout: 10
        connections: {connections}""") + extra + textwrap.dedent("""
        ---
        kind: Campaign
        name: crowd
        timezone: UTC
        closes_at: 2027-04-30T23:59
        channel: hook
        message_type: promotional
        audience: {all: true}
        message:
          subject: "Hello {{ first_name }}"
          body: "Hi {{ first_name }}."
        type: one-off
        schedule:
          send: {at: 2027-03-01T09:30}
        """))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id,email,first_name\n" + "".join(
        f"c{i},c{i}@example.com,N{i}\n" for i in range(n)))
    ok(cli("init"))
    ok(cli("apply", str(write_yaml.folder)))
    ok(cli("contacts", "import", str(contacts)))
    for verb in ("submit", "approve", "start"):
        ok(cli("--now", BUILD_AT, verb, "campaign", "crowd"))
    built = ok(cli("--now", BUILD_AT, "tick"))
    assert "sent 0" in built.stdout + built.stderr, built
    runs = ok(cli("get", "runs", "-o", "json")).json
    assert len(runs) == 1, runs
    return int(runs[0]["id"])


def tick(state, now: str, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env["CAMPCTL_USER"] = "tester"
    # Correctness, not lock waits: on a loaded machine a tick may wait long for another's batch.
    env["CAMPCTL_BUSY_TIMEOUT"] = "120000"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "campctl", "--state", str(state), "--now", now, "tick", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(procs: list[subprocess.Popen]) -> None:
    """Wait for every process (their pipes closed), then check each exited 0."""
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out, err)


def keys(http_server) -> list[str]:
    with http_server.lock:
        return [r["headers"]["Idempotency-Key"] for r in http_server.requests]


def statuses(rows, run: int) -> dict[str, int]:
    return {r["status"]: r["n"] for r in rows(
        "SELECT status, count(*) AS n FROM queue_items WHERE run_id = ? GROUP BY status", (run,))}


def test_three_ticks_hand_each_message_over_exactly_once(cli, rows, state, write_yaml, tmp_path,
                                                         http_server):
    run = arrange(cli, write_yaml, tmp_path, http_server.url, 150)
    http_server.script = [(200, 0.005)] * 150  # slow enough that the three ticks overlap
    finish([tick(state, SEND_AT) for _ in range(3)])
    sent = keys(http_server)
    assert len(sent) == len(set(sent)) == 150
    assert statuses(rows, run) == {"sent": 150}
    assert {r["message_id"] for r in rows(
        "SELECT message_id FROM queue_items WHERE run_id = ?", (run,))} == set(sent)


def test_a_pause_while_two_ticks_deliver_holds_then_resume_sends_the_rest_once(
        cli, rows, state, write_yaml, tmp_path, http_server):
    run = arrange(cli, write_yaml, tmp_path, http_server.url, 200)
    http_server.script = [(200, 0.02)] * 200
    procs = [tick(state, SEND_AT) for _ in range(2)]
    for _ in range(3000):  # bounded by count: until the ticks are handing over
        if len(keys(http_server)) >= 5 or any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    paused = cli("--now", SEND_AT, "pause", "run", str(run))
    at_pause = len(keys(http_server))
    finish(procs)
    assert paused.exit_code == 0, paused
    # Nothing reached the sink after the pause committed: the gate made it wait for the
    # messages in flight, and the shared lock kept new ones from starting.
    assert len(keys(http_server)) == at_pause < 200
    held = statuses(rows, run)
    assert held.get("sent", 0) == at_pause and held["queued"] == 200 - at_pause, held
    # Given back whole: no claim left, and no mark of a message that never left (PostgreSQL
    # marks 16 ahead; those are taken back before the pause proceeds).
    assert rows("SELECT count(*) AS n FROM queue_items WHERE claim_token IS NOT NULL"
                " OR handover_begun = 1") == [{"n": 0}]
    # Resumed: every remaining message goes, none twice.
    ok(cli("--now", SEND_AT, "resume", "run", str(run)))
    finish([tick(state, "2027-03-01T09:31:00Z") for _ in range(2)])
    sent = keys(http_server)
    assert len(sent) == len(set(sent)) == 200
    assert statuses(rows, run) == {"sent": 200}


def test_a_rate_holds_across_three_ticks(cli, rows, state, write_yaml, tmp_path, http_server):
    run = arrange(cli, write_yaml, tmp_path, http_server.url, 20, rate="7/h")
    finish([tick(state, SEND_AT) for _ in range(3)])
    finish([tick(state, "2027-03-01T10:05:00Z") for _ in range(3)])
    sent = keys(http_server)
    assert len(sent) == len(set(sent)) == 14
    # Counted by the recorded (virtual) times: 7 in each hour window, whatever the processes.
    windows = Counter(r["sent_at"][:13] for r in rows(
        "SELECT sent_at FROM queue_items WHERE run_id = ? AND status = 'sent'", (run,)))
    assert windows == {"2027-03-01T09": 7, "2027-03-01T10": 7}, windows
    assert statuses(rows, run) == {"sent": 14, "queued": 6}
