"""A channel's `connections: N`: several SMTP sessions / HTTP connections at once, against real
servers on 127.0.0.1, with the same exactly-once record per message, the rate held across the
connections, an exact --max-messages, and a pause that cuts delivery after the messages in
flight."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from campctl.engine.context import Budget, TickContext
from campctl.engine.delivery import deliver_due
from campctl.store.db import open_state
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")


class Concurrency:
    """Counts requests being served at the same time (the most seen in `peak`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


class Hook:
    """A webhook receiver that takes `delay` seconds per request; records each key and when
    it arrived."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.seen = Concurrency()
        self.arrivals: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def keys(self) -> list[str]:
        with self.lock:
            return [key for key, _ in self.arrivals]


@pytest.fixture
def hook():
    receiver = Hook(delay=0.05)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            receiver.seen.enter()
            try:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.arrivals.append((self.headers["Idempotency-Key"], time.time()))
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            finally:
                receiver.seen.leave()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow_smtp():
    """An aiosmtpd server taking 50 ms at DATA; records message ids and concurrent sessions."""
    from aiosmtpd.controller import Controller

    from delivery.conftest import _free_port

    class Handler:
        def __init__(self) -> None:
            self.seen = Concurrency()
            self.message_ids: list[str] = []
            self.sessions: set[int] = set()

        async def handle_DATA(self, server, session, envelope):
            from email import message_from_bytes

            self.seen.enter()
            try:
                await asyncio.sleep(0.05)
                self.message_ids.append(message_from_bytes(envelope.content)["Message-ID"])
                self.sessions.add(id(session))
            finally:
                self.seen.leave()
            return "250 Message accepted"

    handler = Handler()
    handler.port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


def _queue(arrange, channel: str, spec: dict, n: int) -> int:
    arrange.channel(channel, spec)
    ids = arrange.contacts(n)
    run = arrange.run(channel=channel)
    arrange.items(run, ids, channel=channel)
    return run


def test_smtp_uses_several_sessions_at_once_and_sends_each_message_once(arrange, db, slow_smtp):
    run = _queue(arrange, "mail", {"type": "smtp", "host": "127.0.0.1", "port": slow_smtp.port,
                                   "from": "news@example.com", "connections": 4}, 24)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (report.sent, report.failed, report.retried) == (24, 0, 0), report
    assert slow_smtp.seen.peak > 1  # the server saw simultaneous sessions
    assert 1 < len(slow_smtp.sessions) <= 4
    assert len(slow_smtp.message_ids) == len(set(slow_smtp.message_ids)) == 24
    assert arrange.statuses(run) == {"sent": 24}


def test_webhook_uses_several_connections_and_records_each_message_once(arrange, db, hook):
    run = _queue(arrange, "hook", {"type": "webhook", "url": hook.url, "connections": 8}, 40)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.sent == 40, report
    assert 1 < hook.seen.peak <= 8
    keys = hook.keys()
    assert len(keys) == len(set(keys)) == 40
    rows = arrange.rows("SELECT message_id, status, attempts, handover_begun, claim_token"
                        " FROM queue_items")
    assert {r["message_id"] for r in rows} == set(keys)
    assert {(r["status"], r["attempts"], r["handover_begun"], r["claim_token"])
            for r in rows} == {("sent", 1, 0, None)}


def test_max_messages_is_exact_over_several_connections(arrange, db, hook):
    run = _queue(arrange, "hook", {"type": "webhook", "url": hook.url, "connections": 8}, 30)
    report = deliver_due(TickContext(db, NOW, {}, budget=Budget(max_messages=11)), run_ids=[run],
                         scenario_items=False)
    assert report.sent == 11 and len(hook.keys()) == 11
    assert arrange.statuses(run) == {"sent": 11, "queued": 19}


def test_the_rate_holds_across_connections(arrange, db, hook):
    """5/s over 4 connections: each one-second window hands over 5 messages, no more; the pass
    clock moves only through the (recorded) sleeps, so the windows are exact."""
    run = _queue(arrange, "hook", {"type": "webhook", "url": hook.url, "connections": 4,
                                   "rate": "5/s"}, 12)
    fake = {"t": 0.0}
    arrived_at_sleep: list[int] = []

    def sleep(seconds: float) -> None:
        arrived_at_sleep.append(len(hook.keys()))
        fake["t"] += seconds

    report = deliver_due(TickContext(db, NOW, {}, monotonic=lambda: fake["t"], sleep=sleep),
                         run_ids=[run], scenario_items=False)
    assert report.sent == 12
    assert arrived_at_sleep == [5, 10]
    assert hook.seen.peak > 1
    windows = arrange.rows("SELECT window_start, sent FROM channel_sends ORDER BY 1")
    assert [w["sent"] for w in windows] == [5, 5, 2]


def test_a_pause_cuts_delivery_after_the_messages_in_flight(arrange, state, hook):
    """While a tick hands a run over 4 connections, a pause returns once the messages in flight
    are handed over: nothing arrives after it, every message that arrived is recorded sent,
    and after a resume the rest goes, each message once."""
    from campctl.engine.run_control import RunVerb, apply_run_verb

    run = _queue(arrange, "hook", {"type": "webhook", "url": hook.url, "connections": 4}, 120)
    outcome: dict = {}

    def tick() -> None:
        handle = open_state(state, create=False)
        try:
            outcome["report"] = deliver_due(TickContext(handle, NOW, {}), run_ids=[run],
                                            scenario_items=False)
        finally:
            handle.close()

    worker = threading.Thread(target=tick)
    worker.start()
    operator = open_state(state, create=False)
    try:
        while len(hook.keys()) < 8 and worker.is_alive():
            time.sleep(0.005)
        apply_run_verb(operator, run, RunVerb("pause", "test"), now=NOW)
        returned = time.time()
        worker.join(timeout=60)
        assert not worker.is_alive()
        late = [key for key, at in hook.arrivals if at > returned]
        assert late == []
        arrived = hook.keys()
        assert 8 <= len(arrived) < 120
        sent = {r["message_id"] for r in arrange.rows(
            "SELECT message_id FROM queue_items WHERE status = 'sent'")}
        assert sent == set(arrived)
        assert outcome["report"].sent == len(arrived)
        assert arrange.statuses(run) == {"sent": len(arrived), "queued": 120 - len(arrived)}

        apply_run_verb(operator, run, RunVerb("resume", "test"), now=NOW)
        rest = deliver_due(TickContext(operator, NOW + timedelta(minutes=1), {}), run_ids=[run],
                           scenario_items=False)
        assert rest.sent == 120 - len(arrived)
    finally:
        operator.close()
    assert Counter(hook.keys()).most_common(1)[0][1] == 1 and len(hook.keys()) == 120
    assert arrange.statuses(run) == {"sent": 120}


def test_a_channel_bug_on_one_connection_retries_what_is_left(arrange, db, hook, monkeypatch):
    """An exception inside the channel fails only its own message and what had not started;
    the other connections' messages are recorded with their real outcome."""
    from campctl.channels.webhook import WebhookChannel

    real = WebhookChannel._post
    calls = {"n": 0}
    lock = threading.Lock()

    def flaky(self, *args, **kwargs):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 3:
            raise RuntimeError("boom")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(WebhookChannel, "_post", flaky)
    run = _queue(arrange, "hook", {"type": "webhook", "url": hook.url, "connections": 4}, 20)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.errors == ["channel hook failed: RuntimeError: boom"]
    arrived = hook.keys()
    assert report.sent == len(arrived) and report.retried == 20 - len(arrived)
    sent = {r["message_id"] for r in arrange.rows(
        "SELECT message_id FROM queue_items WHERE status = 'sent'")}
    assert sent == set(arrived)
    retried = arrange.rows("SELECT last_error FROM queue_items WHERE status = 'queued'")
    assert {r["last_error"] for r in retried} == {"channel hook failed: RuntimeError: boom"}


@pytest.mark.parametrize("value", [0, 65, "4", True])
def test_connections_out_of_bounds_make_the_channel_unusable(arrange, db, value):
    run = _queue(arrange, "hook", {"type": "webhook", "url": "http://127.0.0.1:9/",
                                   "connections": value}, 1)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.errors == ["channel hook: connections must be a whole number from 1 to 64"]
    assert json.dumps(report.as_json()) and report.failed == 1
