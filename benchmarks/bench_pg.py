"""Benchmark: campctl on PostgreSQL beside SQLite (design §4.6), in one run.

    python benchmarks/bench_pg.py [--items 20000] [--seconds 10] [--records 2000]
    CAMPCTL_BENCH_PG_URL=postgresql://... python benchmarks/bench_pg.py   # an existing database

PostgreSQL runs in a DURABLE throw-away cluster of its own (`benchmarks/pgcluster.py`: fsync and
synchronous_commit at their defaults), or in the database of CAMPCTL_BENCH_PG_URL, which is
emptied (its current schema is dropped). The CI cluster runs with fsync off: figures taken on it
say nothing about a commit's cost.

Each pass starts from the same arranged state in both stores: `--items` contacts and one queued
run with `--items` queue items for a webhook channel (`connections: 1`) aimed at a no-delay sink
on 127.0.0.1 (a separate process that notes every Idempotency-Key it receives). Rows are loaded
with executemany (SQLite) or COPY (PostgreSQL), then ANALYZE. It prints:

1. claims: 1, 2 and 4 processes claiming the whole queue in batches of 50 (the webhook batch),
   each claim one transaction as the engine's; items/s per store, against a floor measured in
   the same run (one UPDATE claiming every row).
2. deliveries: 1, 2 and 4 `campctl tick` processes delivering to the sink together for
   `--seconds` (`--max-seconds`); messages/s per store (sent over wall time, process starts
   included), against the floor of the sink itself (POSTs from one keep-alive connection, no
   database); the sink must have received every sent item's message id exactly once.
3. the per-message record cost: `--records` record transactions as the engine's (mark the
   message sent and the next one as going), synchronous, with `synchronous_commit = off`, and
   k at a time (records async, one durable commit marking the next k), against the floor of
   one durable single-row UPDATE per transaction, raw.
4. bloat (PostgreSQL): the whole queue delivered by the engine in this process, then the queue
   table's n_tup_upd, n_tup_hot_upd, n_dead_tup, heap and index sizes, the claim statement's
   p50/p99 at 0, 50 and 95% of the run, and the time of a manual VACUUM.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pgcluster import pg_database  # noqa: E402

from campctl.store.db import Database, open_state  # noqa: E402

T0 = "2027-03-01T09:00:00Z"
CHANNEL = "hook"
CLAIM_BATCH = 50  # the webhook channel's batch (connections: 1)
SPEC = {
    "campaign": "bench", "stage": "main", "code": "bench", "timezone": "UTC", "channel": CHANNEL,
    "message_type": "promotional", "audience": {"all": True}, "include_opted_out": False,
    "message": {"subject": "Hello {{ first_name }}",
                "body": "Dear {{ first_name }},\nyour plan {{ plan }} ends on {{ term_end }}.\n"},
    "window": None, "campaign_version": 1,
}
# Children run as an installed package does (pip writes .pyc files at install).
CHILD_ENV = {k: v for k, v in os.environ.items()
             if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("CAMPCTL_")}
CHILD_ENV["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


# --- the sink ------------------------------------------------------------------------------
def _serve(ports: Any) -> None:
    """In a child process: a webhook receiver on 127.0.0.1 answering at once. It notes each
    request's Idempotency-Key; GET /ids returns them (in arrival order), POST /reset forgets."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    keys: list[str] = []
    lock = threading.Lock()

    class Hook(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/reset":
                with lock:
                    keys.clear()
            else:
                with lock:
                    keys.append(self.headers.get("Idempotency-Key") or "")
            self._answer(b"{}")

        def do_GET(self) -> None:
            with lock:
                body = json.dumps(keys).encode()
            self._answer(body)

        def _answer(self, body: bytes) -> None:
            # Headers and body in one write: a separate body write would wait for the
            # client's delayed ACK of the headers (Nagle), 40 ms a message.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self._headers_buffer.append(b"\r\n" + body)
            self.flush_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    ports.put(server.server_address[1])
    server.serve_forever()


class Sink:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        self.process = context.Process(target=_serve, args=(ports,), daemon=True)
        self.process.start()
        self.port = int(ports.get(timeout=60))
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def _request(self, method: str, path: str) -> bytes:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=b"{}" if method == "POST" else None)
            return conn.getresponse().read()
        finally:
            conn.close()

    def reset(self) -> None:
        self._request("POST", "/reset")

    def keys(self) -> list[str]:
        return list(json.loads(self._request("GET", "/ids")))

    def floor(self, count: int) -> float:
        """Seconds for `count` POSTs over one keep-alive connection (no database at all)."""
        import http.client
        import socket

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        quickack = getattr(socket, "TCP_QUICKACK", None)
        body = json.dumps({"subject": "Hello Name1", "body": "Dear Name1,\n" * 3}).encode()
        started = time.perf_counter()
        for i in range(count):
            conn.request("POST", "/hook", body=body, headers={
                "Content-Type": "application/json", "Idempotency-Key": f"floor-{i}"})
            if quickack is not None:  # as the webhook channel does (Linux)
                conn.sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
            conn.getresponse().read()
        seconds = time.perf_counter() - started
        conn.close()
        self.reset()
        return seconds

    def close(self) -> None:
        self.process.terminate()
        self.process.join()


# --- arranging a state ---------------------------------------------------------------------------
def empty_pg(url: str) -> None:
    """Drop the database's current schema (the benchmark's own database) and make it again."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        row = conn.execute("SELECT coalesce(current_schema(), 'public')").fetchone()
        assert row is not None
        name = psycopg.sql.Identifier(row[0]).as_string(conn)
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")


def arrange(state: str, items: int, sink_url: str) -> float:
    """A fresh state at `state` (a path or a URL) holding `items` contacts and one queued run
    with an item for each, for the webhook channel; returns the seconds it took."""
    started = time.perf_counter()
    pg = state.startswith("postgresql")
    if pg:
        empty_pg(state)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(state + suffix).unlink(missing_ok=True)
    db = open_state(state, create=True)
    try:
        contacts = [(f"c{i}", f"c{i}@example.com",
                     json.dumps({"first_name": f"Name{i}", "plan": "premium",
                                 "term_end": "2027-04-01"}), T0, T0)
                    for i in range(1, items + 1)]
        with db.atomic():
            db.execute("INSERT INTO objects (kind, name, version, spec, created_at, updated_at)"
                       " VALUES ('Channel', ?, 1, ?, ?, ?)",
                       (CHANNEL, json.dumps({"type": "webhook", "url": sink_url}), T0, T0))
            run = int(db.scalar(
                "INSERT INTO runs (campaign, stage, status, spec, built_at, created_at,"
                " updated_at) VALUES ('bench', 'main', 'queued', ?, ?, ?, ?) RETURNING id",
                (json.dumps(SPEC), T0, T0, T0)))
            queue = [(f"r{run}-{i}", run, i, CHANNEL, "promotional", T0)
                     for i in range(1, items + 1)]
            contact_cols = "external_id, email, attrs, created_at, updated_at"
            queue_cols = "message_id, run_id, contact_id, channel, message_type, created_at"
            if pg:
                cur = db.pgconn.cursor()  # type: ignore[attr-defined]
                with cur.copy(f"COPY contacts ({contact_cols}) FROM STDIN") as copy:
                    for row in contacts:
                        copy.write_row(row)
                with cur.copy(f"COPY queue_items ({queue_cols}) FROM STDIN") as copy:
                    for row in queue:
                        copy.write_row(row)
                cur.close()
            else:
                db.executemany(f"INSERT INTO contacts ({contact_cols}) VALUES (?, ?, ?, ?, ?)",
                               contacts)
                db.executemany(f"INSERT INTO queue_items ({queue_cols})"
                               " VALUES (?, ?, ?, ?, ?, ?)", queue)
        db.execute("ANALYZE")
    finally:
        db.close()
    return time.perf_counter() - started


def store_name(state: str) -> str:
    return "PostgreSQL" if state.startswith("postgresql") else "SQLite"


# --- 1. claims -----------------------------------------------------------------------------------
def _atomic(db: Database) -> Any:
    """The claim transaction as the delivery path takes it (shared, once the store has it)."""
    if "shared" in inspect.signature(db.atomic).parameters:
        return db.atomic(shared=True)  # type: ignore[call-arg]
    return db.atomic()


def _claimer(state: str, barrier: Any, results: Any, index: int) -> None:
    """In a child process: claim batches of the queue until none is left."""
    from campctl.store import delivery
    from campctl.timeutil import parse_instant

    now = parse_instant(T0)
    db = open_state(state, create=False)
    scope = delivery.DueScope((1,), False, now)
    until = parse_instant("2027-03-01T09:05:00Z")
    claimed = claims = 0
    try:
        barrier.wait(timeout=120)
        started = time.perf_counter()
        while True:
            with _atomic(db):
                ids = delivery.claim(db, scope, channel=CHANNEL, until=until,
                                     token=f"w{index}-{claims}", limit=CLAIM_BATCH)
            if not ids:
                break
            claims += 1
            claimed += len(ids)
        results.put((index, claimed, claims, time.perf_counter() - started))
    finally:
        db.close()


def claim_pass(state: str, processes: int) -> tuple[int, float]:
    """(items claimed, wall seconds) of `processes` processes claiming the whole queue."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = [context.Process(target=_claimer, args=(state, barrier, results, i))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    got = [results.get(timeout=1800) for _ in workers]
    wall = time.perf_counter() - started
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise SystemExit(f"a claim worker failed (exit {worker.exitcode})")
    return sum(g[1] for g in got), wall


def claim_floor(state: str) -> float:
    """Seconds of one UPDATE claiming every queued row (no batches, no scope)."""
    db = open_state(state, create=False)
    try:
        started = time.perf_counter()
        with db.atomic():
            db.execute("UPDATE queue_items SET claimed_until = ?, claim_token = 'floor'"
                       " WHERE status = 'queued' AND claimed_until IS NULL",
                       ("2027-03-01T09:05:00Z",))
        return time.perf_counter() - started
    finally:
        db.close()


# --- 2. deliveries -------------------------------------------------------------------------------
def tick_pass(state: str, processes: int, seconds: float, sink: Sink) -> tuple[int, float]:
    """(messages sent, wall seconds) of `processes` `campctl tick` processes delivering for
    `seconds` (`--max-seconds`) together; checks that the sink received each sent item's
    message id exactly once."""
    sink.reset()
    cmd = [sys.executable, "-m", "campctl", "--state", state, "--now", T0, "-o", "json",
           "tick", "--max-seconds", str(seconds)]
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=CHILD_ENV) for _ in range(processes)]
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - started
    sent = 0
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise SystemExit(f"campctl tick failed ({proc.returncode}): {err.decode()}")
        sent += int(json.loads(out)["sent"])
    db = open_state(state, create=False)
    try:
        expected = [r[0] for r in db.query(
            "SELECT message_id FROM queue_items WHERE status = 'sent' ORDER BY id")]
    finally:
        db.close()
    received = sink.keys()
    duplicates = len(received) - len(set(received))
    missing = set(expected) - set(received)
    extra = set(received) - set(expected)
    if sent != len(expected) or duplicates or missing or extra or not sent:
        raise SystemExit(f"{store_name(state)}, {processes} process(es): ticks said {sent} "
                         f"sent, {len(expected)} marked sent, the sink got {len(received)} "
                         f"({duplicates} duplicates, {len(missing)} missing, {len(extra)} "
                         "not marked sent)")
    return sent, wall


# --- 3. the record cost --------------------------------------------------------------------------
def record_costs(state: str, count: int, window: int) -> dict[str, float]:
    """Seconds per record transaction: floor, sync, async and k at a time (PostgreSQL)."""
    from campctl.store import delivery
    from campctl.timeutil import parse_instant

    pg = state.startswith("postgresql")
    now = parse_instant(T0)
    db = open_state(state, create=False)
    out: dict[str, float] = {}
    try:
        ids = [int(r[0]) for r in db.query("SELECT id FROM queue_items WHERE status = 'queued'"
                                           " ORDER BY id")]
        variants = ["sync", "async", "window"] if pg else ["sync"]
        need = (len(variants) + 1) * (count + window + 1)
        if len(ids) < need:
            raise SystemExit(f"--records {count} needs {need} items; raise --items")
        with db.atomic():
            db.execute("UPDATE queue_items SET claimed_until = ?, claim_token = 'rec'"
                       " WHERE status = 'queued'", ("2027-03-01T09:05:00Z",))
        chunks = iter([ids[i * (count + window + 1):(i + 1) * (count + window + 1)]
                       for i in range(len(variants) + 1)])

        out["floor"] = _raw_commits(state, next(chunks)[:count])

        def one(item: int, following: int | None, *, sync: bool, mark: bool) -> None:
            with db.atomic(wait_ms=50):
                if not sync:
                    db.execute("SET LOCAL synchronous_commit = off")
                delivery.mark_sent(db, token="rec", ids=[item], now=now)
                if mark and following is not None:
                    delivery.begin_hand_over(db, token="rec", item_id=following)

        for variant in variants:
            chunk = next(chunks)
            started = time.perf_counter()
            if variant == "window":
                for start in range(0, count, window):
                    with db.atomic(wait_ms=50):  # durable: marks the next k as going
                        for item in chunk[start + 1:start + 1 + window]:
                            delivery.begin_hand_over(db, token="rec", item_id=item)
                    for item in chunk[start:min(start + window, count)]:
                        one(item, None, sync=False, mark=False)
            else:
                for i in range(count):
                    one(chunk[i], chunk[i + 1], sync=variant == "sync", mark=True)
            out[variant] = (time.perf_counter() - started) / count
    finally:
        db.close()
    return out


def _raw_commits(state: str, ids: list[int]) -> float:
    """The floor: seconds per single-row UPDATE committed on its own by the driver alone (no
    campctl, no lock), with the store's durability: PostgreSQL's default synchronous commit,
    SQLite's WAL with synchronous = NORMAL as campctl opens it."""
    sql = "UPDATE queue_items SET attempts = attempts + 1 WHERE id = {}"
    if state.startswith("postgresql"):
        import psycopg

        with psycopg.connect(state, autocommit=True) as pg:
            started = time.perf_counter()
            for item in ids:
                pg.execute(sql.format("%s"), (item,))
            return (time.perf_counter() - started) / len(ids)
    import sqlite3

    conn = sqlite3.connect(state, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        started = time.perf_counter()
        for item in ids:
            conn.execute(sql.format("?"), (item,))
        return (time.perf_counter() - started) / len(ids)
    finally:
        conn.close()


# --- 4. bloat ------------------------------------------------------------------------------------
def _queue_stats(db: Database) -> dict[str, int]:
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = db.one(
        "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup, n_live_tup,"
        " autovacuum_count, pg_relation_size('queue_items') AS heap,"
        " pg_indexes_size('queue_items') AS indexes"
        " FROM pg_stat_user_tables WHERE relname = 'queue_items'")
    assert row is not None
    return {k: int(row[k] or 0) for k in row.keys()}


@contextmanager
def timed_claims(total: int, samples: list[tuple[float, float]]) -> Iterator[None]:
    """Wrap store.delivery.claim: note (share of the queue claimed before, seconds) per claim."""
    from campctl.store import delivery

    original: Callable[..., list[int]] = delivery.claim
    done = [0]

    def claim(*args: Any, **kwargs: Any) -> list[int]:
        started = time.perf_counter()
        ids = original(*args, **kwargs)
        samples.append((done[0] / total, time.perf_counter() - started))
        done[0] += len(ids)
        return ids

    delivery.claim = claim  # type: ignore[assignment]
    try:
        yield
    finally:
        delivery.claim = original  # type: ignore[assignment]


def bloat(state: str, items: int) -> dict[str, Any]:
    """Deliver the whole queue in this process (the engine's path, as one tick); table figures."""
    from campctl.engine.context import TickContext
    from campctl.engine.delivery import deliver_due
    from campctl.timeutil import parse_instant

    db = open_state(state, create=False)
    try:
        before = _queue_stats(db)
        samples: list[tuple[float, float]] = []
        started = time.perf_counter()
        with timed_claims(items, samples):
            report = deliver_due(TickContext(db, parse_instant(T0), {}), run_ids=[1],
                                 scenario_items=False)
        seconds = time.perf_counter() - started
        if report.sent != items:
            raise SystemExit(f"bloat pass: {report.sent} of {items} sent ({report.errors})")
        after = _queue_stats(db)
        started = time.perf_counter()
        db.execute("VACUUM queue_items")
        vacuum = time.perf_counter() - started
        vacuumed = _queue_stats(db)
    finally:
        db.close()
    claims: dict[int, tuple[float, float, int]] = {}
    for at in (0, 50, 95):
        taken = sorted(s for share, s in samples if at / 100 <= share < at / 100 + 0.05)
        if taken:
            claims[at] = (statistics.median(taken),
                          taken[min(len(taken) - 1, math.ceil(len(taken) * 0.99) - 1)],
                          len(taken))
    return {"before": before, "after": after, "vacuumed": vacuumed, "vacuum": vacuum,
            "seconds": seconds, "claims": claims}


# --- the run -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000,
                        help="contacts and queue items of the arranged state (100000 for the "
                             "figures in docs/performance.md)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long each delivery pass runs (tick --max-seconds)")
    parser.add_argument("--records", type=int, default=None,
                        help="record transactions per variant (default: 2000, fewer for "
                             "small --items)")
    parser.add_argument("--window", type=int, default=16,
                        help="k: hand-over marks per durable commit in the k-at-a-time variant")
    parser.add_argument("--processes", default="1,2,4", help="comma-separated process counts")
    args = parser.parse_args(argv)
    items = args.items
    floor_posts = max(1, min(2000, items))
    records = args.records or max(1, min(2000, items // 5 - 2 * args.window))
    processes = [int(p) for p in args.processes.split(",") if p.strip()]
    out = io.StringIO()

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.write(line + "\n")

    sink = Sink()
    try:
        with pg_database() as url, tempfile.TemporaryDirectory() as tmp:
            stores = [str(Path(tmp) / "bench.db"), url]
            say(f"campctl on PostgreSQL beside SQLite: {items:,} contacts and queue items, "
                f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
            import psycopg

            with psycopg.connect(url) as conn:
                settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                            for name in ("server_version", "fsync", "synchronous_commit")}
            say(f"PostgreSQL {settings['server_version'].split()[0]}, fsync="
                f"{settings['fsync']}, synchronous_commit={settings['synchronous_commit']}")

            say("\n1. claims (batches of 50, one transaction each, the whole queue):")
            for state in stores:
                arranged = arrange(state, items, sink.url)
                floor = claim_floor(state)
                say(f"  {store_name(state):10}  arranged in {arranged:.1f}s; floor (one UPDATE "
                    f"claiming every row): {items / floor:,.0f} items/s")
                for k in processes:
                    arrange(state, items, sink.url)
                    claimed, wall = claim_pass(state, k)
                    if claimed != items:
                        raise SystemExit(f"{k} claimers took {claimed} of {items} items")
                    say(f"    {k} process(es): {claimed / wall:8,.0f} items/s = "
                        f"{claimed / CLAIM_BATCH / wall:6,.0f} claims/s "
                        f"({wall / floor:.1f}x the floor's time)")

            floor = floor_posts / sink.floor(floor_posts)
            say(f"\n2. deliveries (`campctl tick --max-seconds {args.seconds:g}` processes, "
                "webhook sink on 127.0.0.1, connections: 1):")
            say(f"  floor (the sink alone, {floor_posts:,} POSTs on one keep-alive "
                f"connection): {floor:,.0f} messages/s")
            for state in stores:
                for k in processes:
                    arrange(state, items, sink.url)
                    sent, wall = tick_pass(state, k, args.seconds, sink)
                    rate = sent / wall
                    drained = "; the whole queue" if sent == items else ""
                    say(f"  {store_name(state):10}  {k} process(es): {rate:7,.0f} messages/s "
                        f"({sent:,} in {wall:.1f}s{drained}; {floor / rate:.1f}x the floor's "
                        "time); every id once")

            say(f"\n3. the per-message record cost ({records:,} record transactions each; "
                f"k = {args.window}):")
            costs: dict[str, dict[str, float]] = {}
            for state in stores:
                arrange(state, items, sink.url)
                costs[state] = record_costs(state, records, args.window)
                labels = {"floor": "floor: 1-row UPDATE per commit, driver alone",
                          "sync": "synchronous (today)",
                          "async": "synchronous_commit = off",
                          "window": f"async records, marks {args.window} at a time"}
                for variant, seconds in costs[state].items():
                    ratio = "" if variant == "floor" else (
                        f" ({seconds / costs[state]['floor']:.2f}x the floor)")
                    say(f"  {store_name(state):10}  {labels[variant]:45} "
                        f"{seconds * 1000:6.2f} ms = {1 / seconds:7,.0f}/s{ratio}")

            say(f"\n4. bloat: the whole queue ({items:,}) delivered by the engine in one "
                "process (PostgreSQL):")
            arrange(url, items, sink.url)
            sink.reset()
            found = bloat(url, items)
            received = sink.keys()
            if len(received) != items or len(set(received)) != items:
                raise SystemExit(f"bloat pass: the sink got {len(received)} ids, "
                                 f"{len(set(received))} distinct, of {items}")
            before, after, vacuumed = found["before"], found["after"], found["vacuumed"]
            updates = after["n_tup_upd"] - before["n_tup_upd"]
            hot = after["n_tup_hot_upd"] - before["n_tup_hot_upd"]
            say(f"  delivered {items:,} in {found['seconds']:.1f}s "
                f"({items / found['seconds']:,.0f} messages/s); every id once")
            say(f"  n_tup_upd {updates:,} ({updates / items:.1f} per message), n_tup_hot_upd "
                f"{hot:,} ({hot / max(updates, 1):.0%} HOT), n_dead_tup {after['n_dead_tup']:,}, "
                f"autovacuum runs {after['autovacuum_count'] - before['autovacuum_count']}")
            say(f"  heap {before['heap'] / 2**20:.1f} -> {after['heap'] / 2**20:.1f} MB, "
                f"indexes {before['indexes'] / 2**20:.1f} -> {after['indexes'] / 2**20:.1f} MB")
            for at, (p50, p99, n) in found["claims"].items():
                say(f"  claim statement at {at:2}% of the run: p50 {p50 * 1000:.2f} ms, "
                    f"p99 {p99 * 1000:.2f} ms ({n} claims)")
            say(f"  manual VACUUM queue_items: {found['vacuum']:.2f}s; then n_dead_tup "
                f"{vacuumed['n_dead_tup']:,}, heap {vacuumed['heap'] / 2**20:.1f} MB")
    finally:
        sink.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
