"""Benchmark: deliver N queue items through the outbox (with rendering) vs. the raw SQL floor;
with --network, a channel's `connections: 8` against `connections: 1` over a slow server.

    python benchmarks/bench_delivery.py [--items 200000] [--keep PATH]
    python benchmarks/bench_delivery.py --network [--messages 400] [--delay 0.02] [--server smtp]

Arranges contacts, a run and its queue items directly in a fresh state file, then times
`engine.delivery.deliver_due` (claim in batches, render subject and body per contact, outbox
row + mark sent per batch) against one `UPDATE … SET status = 'sent'` over the same number of
rows (the floor: no claiming, no rendering, no outbox). Prints items/s, the ratio and peak RSS.

--network starts a loopback receiver that takes `--delay` seconds per message (a webhook
receiver, or an aiosmtpd SMTP server with --server smtp), and delivers the same number of
messages through a channel with `connections: 1` and with `connections: 8` (one pass each, a
fresh state file each). Prints messages/s of both and the ratio (target: at least 6x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campctl.engine.context import TickContext
from campctl.engine.delivery import deliver_due
from campctl.store.db import open_db
from campctl.timeutil import parse_instant

T0 = "2027-03-01T09:00:00Z"
SPEC = {
    "campaign": "bench", "stage": "main", "code": "bench", "timezone": "UTC", "channel": "outbox",
    "message_type": "promotional", "audience": {"all": True}, "include_opted_out": False,
    "message": {"subject": "Hello {{ first_name }}",
                "body": "Dear {{ first_name }},\nyour plan {{ plan }} ends on {{ term_end }}.\n"
                        "Contact id {{ id }}; groups: {{ groups|join(', ') }}.\n"},
    "window": None, "campaign_version": 1,
}


def arrange(path: Path, items: int) -> tuple[int, int]:
    open_db(path, create=True).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -200000")
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO contacts (external_id, email, attrs, created_at, updated_at)"
        " SELECT 'c' || i, 'c' || i || '@example.com',"
        " json_object('first_name', 'Name' || i, 'plan', 'premium', 'term_end', '2027-04-01'),"
        " ?, ? FROM n", (items, T0, T0))
    conn.execute("INSERT INTO contact_groups SELECT 'vip', id FROM contacts WHERE id % 10 = 0")
    runs = []
    for _ in range(2):
        cur = conn.execute(
            "INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at)"
            " VALUES ('bench', 'main', 'queued', ?, ?, ?)", (json.dumps(SPEC), T0, T0))
        run = cur.lastrowid
        runs.append(run)
        conn.execute(
            "INSERT INTO queue_items (message_id, run_id, contact_id, channel, message_type,"
            " created_at) SELECT 'r' || ? || '-' || id, ?, id, 'outbox', 'promotional', ?"
            " FROM contacts", (run, run, T0))
    conn.execute("COMMIT")
    conn.close()
    return runs[0], runs[1]


def _serve(kind: str, delay: float, ports) -> None:
    """In a child process (as a real server is): a receiver on 127.0.0.1 taking `delay`
    seconds per message, a webhook receiver or an aiosmtpd SMTP server; puts its port."""
    if kind == "smtp":
        import socket

        from aiosmtpd.controller import Controller

        class Smtp:
            async def handle_DATA(self, server, session, envelope):
                await asyncio.sleep(delay)
                return "250 Message accepted"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        Controller(Smtp(), hostname="127.0.0.1", port=port).start()
        ports.put(port)
        threading.Event().wait()
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Hook(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    ports.put(server.server_address[1])
    server.serve_forever()


def _network_pass(folder: Path, spec: dict, messages: int, connections: int) -> float:
    """Seconds one pass takes to deliver `messages` queue items through `spec`."""
    path = folder / f"net-{connections}.db"
    run, _ = arrange(path, messages)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO objects (kind, name, version, spec, created_at, updated_at)"
                 " VALUES ('Channel', 'net', 1, ?, ?, ?)",
                 (json.dumps({**spec, "connections": connections}), T0, T0))
    conn.execute("UPDATE queue_items SET channel = 'net'")
    conn.close()
    db = open_db(path, create=False)
    started = time.perf_counter()
    report = deliver_due(TickContext(db, parse_instant(T0), {}), run_ids=[run],
                         scenario_items=False)
    seconds = time.perf_counter() - started
    db.close()
    assert report.sent == messages and not report.errors, report
    return seconds


def network(messages: int, delay: float, server_kind: str) -> int:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process holding SQLite
    ports = context.Queue()
    server = context.Process(target=_serve, args=(server_kind, delay, ports), daemon=True)
    server.start()
    port = ports.get(timeout=60)
    spec = ({"type": "smtp", "host": "127.0.0.1", "port": port, "from": "bench@example.com"}
            if server_kind == "smtp" else
            {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook"})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one = _network_pass(Path(tmp), spec, messages, 1)
            eight = _network_pass(Path(tmp), spec, messages, 8)
    finally:
        server.terminate()
        server.join()
    print(f"{server_kind} receiver taking {delay * 1000:.0f} ms a message, {messages} messages:")
    print(f"  connections: 1  {one:.2f}s = {messages / one:,.0f} messages/s")
    print(f"  connections: 8  {eight:.2f}s = {messages / eight:,.0f} messages/s")
    print(f"ratio 8 connections / 1 connection: {one / eight:.1f}x (target >= 6x)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--keep", help="write the state file here instead of a temp dir")
    parser.add_argument("--network", action="store_true",
                        help="compare connections: 8 with connections: 1 over a slow server")
    parser.add_argument("--messages", type=int, default=400, help="messages per --network pass")
    parser.add_argument("--delay", type=float, default=0.02,
                        help="seconds the --network receiver takes per message")
    parser.add_argument("--server", choices=("webhook", "smtp"), default="webhook",
                        help="the --network receiver (smtp needs aiosmtpd)")
    args = parser.parse_args()
    if args.network:
        return network(args.messages, args.delay, args.server)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.db"
        started = time.perf_counter()
        delivered_run, floor_run = arrange(path, args.items)
        print(f"arranged {args.items} contacts and 2 x {args.items} queue items in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr)

        db = open_db(path, create=False)
        started = time.perf_counter()
        report = deliver_due(TickContext(db, parse_instant(T0), {}), run_ids=[delivered_run],
                             scenario_items=False)
        deliver_s = time.perf_counter() - started
        assert report.sent == args.items, report

        started = time.perf_counter()
        with db.atomic():
            db.execute("UPDATE queue_items SET status = 'sent', sent_at = ? WHERE run_id = ?"
                       " AND status = 'queued'", (T0, floor_run))
        floor_s = time.perf_counter() - started
        outbox = db.scalar("SELECT count(*) FROM outbox")
        db.close()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"deliver {args.items} via outbox (render + outbox row + mark sent): "
          f"{deliver_s:.2f}s = {args.items / deliver_s:,.0f} items/s ({outbox} outbox rows)")
    print(f"raw floor (one UPDATE marking {args.items} rows sent): {floor_s:.2f}s = "
          f"{args.items / floor_s:,.0f} rows/s")
    print(f"ratio delivery / floor: {deliver_s / floor_s:.1f}x")
    print(f"peak RSS: {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
