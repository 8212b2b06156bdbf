"""Webhook channel against a real HTTP server on 127.0.0.1; concurrency and crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

from campctl.engine.context import TickContext
from campctl.engine.delivery import deliver_due
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")


def setup_run(arrange, url: str, n: int = 2, **extra) -> tuple[int, list[int]]:
    arrange.channel("hook", {"type": "webhook", "url": url, "timeout": 2, **extra})
    ids = arrange.contacts(n)
    run = arrange.run(channel="hook")
    arrange.items(run, ids, channel="hook")
    return run, ids


def test_webhook_2xx_posts_json_with_idempotency_key_and_secret_headers(arrange, db,
                                                                         http_server):
    run, ids = setup_run(arrange, http_server.url,
                         headers={"Authorization": "Bearer ${HOOK_TOKEN}", "X-Team": "crm"})
    report = deliver_due(TickContext(db, NOW, {"HOOK_TOKEN": "tok-123"}), run_ids=[run],
                         scenario_items=False)
    assert report.sent == 2
    # The two messages go over two connections at once: either may arrive first.
    first = next(r for r in http_server.requests if r["body"]["contact"] == "c0")
    assert first["path"] == "/hook"
    assert first["headers"]["Idempotency-Key"] == f"m-{run}--{ids[0]}"
    assert first["headers"]["Authorization"] == "Bearer tok-123"
    assert first["headers"]["X-Team"] == "crm"
    body = first["body"]
    assert body["message_id"] == f"m-{run}--{ids[0]}"
    assert (body["campaign"], body["stage"], body["run"], body["contact"]) == (
        "spring", "main", run, "c0")
    assert body["subject"] == "Hello N0" and body["to"] == "c0@example.com"
    assert body["sent_at"] == "2027-03-01T09:00:00Z"
    assert arrange.statuses(run) == {"sent": 2}


def test_webhook_missing_header_secret_is_retried(arrange, db, http_server):
    run, _ = setup_run(arrange, http_server.url, n=1,
                       headers={"Authorization": "Bearer ${HOOK_TOKEN}"})
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.retried == 1 and http_server.requests == []
    assert "HOOK_TOKEN is not set" in arrange.rows("SELECT last_error FROM queue_items")[0][
        "last_error"]


def test_webhook_429_and_5xx_are_retried_with_the_same_key(arrange, db, http_server):
    run, ids = setup_run(arrange, http_server.url, n=2)
    http_server.script = [(429, 0), (503, 0)]
    first = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (first.sent, first.retried) == (0, 2)
    errors = sorted(r["last_error"] for r in arrange.rows("SELECT last_error FROM queue_items"))
    assert errors[0].startswith("HTTP 429") and errors[1].startswith("HTTP 503")
    second = deliver_due(TickContext(db, NOW + timedelta(minutes=2), {}), run_ids=[run],
                         scenario_items=False)
    assert second.sent == 2
    keys = [r["headers"]["Idempotency-Key"] for r in http_server.requests]
    assert sorted(keys) == sorted([f"m-{run}--{c}" for c in ids] * 2)


def test_webhook_other_4xx_is_permanent(arrange, db, http_server):
    run, _ = setup_run(arrange, http_server.url, n=2)
    http_server.script = [(400, 0)]
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (report.sent, report.failed, report.retried) == (1, 1, 0)
    failed = arrange.rows("SELECT last_error FROM queue_items WHERE status = 'failed'")
    assert failed[0]["last_error"].startswith("HTTP 400")


def test_webhook_slower_than_timeout_is_retried(arrange, db, http_server):
    run, ids = setup_run(arrange, http_server.url, n=1, timeout=0.3)
    http_server.script = [(200, 4.0)]
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.retried == 1  # gave up before the 4 s answer: had it waited, it would be sent
    assert "no answer" in arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]
    again = deliver_due(TickContext(db, NOW + timedelta(minutes=2), {}), run_ids=[run],
                        scenario_items=False)
    assert again.sent == 1
    keys = [r["headers"]["Idempotency-Key"] for r in http_server.requests]
    assert keys == [f"m-{run}--{ids[0]}"] * 2


def test_webhook_unreachable_is_retried(arrange, db):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run, _ = setup_run(arrange, f"http://127.0.0.1:{port}/x", n=1)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.retried == 1
    assert "cannot reach" in arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]


DELIVER_SCRIPT = textwrap.dedent("""
    import sys
    from campctl.engine.context import TickContext
    from campctl.engine.delivery import deliver_due
    from campctl.store.db import open_state
    from campctl.timeutil import parse_instant
    db = open_state(sys.argv[1], create=False)
    report = deliver_due(TickContext(db, parse_instant(sys.argv[2]), {}),
                         run_ids=[int(sys.argv[3])], scenario_items=False,
                         batch_size=int(sys.argv[4]))
    print(report.sent)
""")


def _deliver_process(state, now: str, run: int, batch: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DELIVER_SCRIPT, str(state), now, str(run), str(batch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )


def test_two_processes_never_hand_over_the_same_item(arrange, http_server, state):
    run, _ = setup_run(arrange, http_server.url, n=120)
    http_server.script = [(200, 0.01)] * 120  # slow enough that the three senders overlap
    procs = [_deliver_process(state, "2027-03-01T09:00:00Z", run, 7) for _ in range(3)]
    totals = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        totals.append(int(out.strip()))
    keys = [r["headers"]["Idempotency-Key"] for r in http_server.requests]
    assert len(keys) == len(set(keys)) == 120
    assert sum(totals) == 120
    assert arrange.statuses(run) == {"sent": 120}


def test_crash_between_hand_over_and_record_resends_with_the_same_key(arrange, db,
                                                                      http_server, state):
    run, ids = setup_run(arrange, http_server.url, n=1, timeout=30)
    http_server.script = [(200, 10.0)]  # the server holds the answer; the sender dies meanwhile
    proc = _deliver_process(state, "2027-03-01T09:00:00Z", run, 10)
    while not http_server.requests and proc.poll() is None:
        time.sleep(0.02)
    assert http_server.requests, "the sender ended without reaching the server"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=300)  # reaps it and closes its pipes
    held = arrange.rows("SELECT status, claim_token, claimed_until FROM queue_items")[0]
    assert held["status"] == "queued" and held["claim_token"]
    # While the claim holds, nobody else sends it.
    assert deliver_due(TickContext(db, NOW + timedelta(minutes=1), {}), run_ids=[run],
                       scenario_items=False).sent == 0
    after = deliver_due(TickContext(db, NOW + timedelta(minutes=6), {}), run_ids=[run],
                        scenario_items=False)
    assert after.sent == 1
    keys = [r["headers"]["Idempotency-Key"] for r in http_server.requests]
    assert keys == [f"m-{run}--{ids[0]}"] * 2
