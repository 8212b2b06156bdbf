"""Benchmark: campctl on PostgreSQL beside SQLite (design §4.6), in one run.

    python benchmarks/bench_pg.py [--items 20000] [--seconds 10] [--records 2000]
    python benchmarks/bench_pg.py --items 100000 --only claims,bloat      # some parts only
    CAMPCTL_BENCH_PG_URL=postgresql://... python benchmarks/bench_pg.py   # an existing database

PostgreSQL runs in a DURABLE throw-away cluster of its own (`benchmarks/pgcluster.py`: fsync and
synchronous_commit at their defaults), or in the database of CAMPCTL_BENCH_PG_URL, which is
emptied (its current schema is dropped). The CI cluster runs with fsync off: figures taken on it
say nothing about a commit's cost.

Each pass starts from the same arranged state in both stores: `--items` contacts and one queued
run with `--items` queue items for a webhook channel (`connections: 1`) aimed at a no-delay sink
on 127.0.0.1 (a separate process that notes every Idempotency-Key it receives). Rows are loaded
with executemany (SQLite) or COPY (PostgreSQL), then ANALYZE (PostgreSQL only: campctl never
analyzes a state file, and SQLite's statistics change the claim's plan). It prints:

1. claims: 1, 2 and 4 processes claiming the whole queue in batches of 50 (the webhook batch),
   each claim one transaction as the engine's, then one transaction marking the batch sent (no
   rendering, no channel); items/s per store, against a floor measured in the same run (one
   UPDATE claiming every row).
2. deliveries: 1, 2 and 4 `campctl tick` processes delivering to the sink together for
   `--seconds` (`--max-seconds`); messages/s per store (sent over wall time, process starts
   included), against the floor of the sink itself (POSTs from one keep-alive connection, no
   database); the sink must have received every sent item's message id exactly once.
3. the per-message record cost: `--records` record transactions as the engine's (mark the
   message sent and the next one as going), synchronous, with `synchronous_commit = off`, and
   k at a time (records async, one durable commit marking the next k), against the floor of
   one single-row UPDATE per commit by the driver alone; the variants alternate in rounds.
4. bloat (PostgreSQL): the whole queue delivered by the engine in this process, then the queue
   table's n_tup_upd, n_tup_hot_upd, n_dead_tup, heap and index sizes, the claim statement's
   p50/p99 at 0, 50 and 95% of the run, and the time of a manual VACUUM.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
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
ROUNDS = 10  # the record variants alternate in this many rounds
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
                       (CHANNEL, json.dumps({"type": "webhook", "url": sink_url,
                                             "connections": 1}), T0, T0))
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
        if pg:  # campctl never runs ANALYZE on a state file: the claim's plan depends on it
            db.execute("ANALYZE")
    finally:
        db.close()
    return time.perf_counter() - started


def store_name(state: str) -> str:
    return "PostgreSQL" if state.startswith("postgresql") else "SQLite"


# --- 1. claims -----------------------------------------------------------------------------------
def _atomic(db: Database, wait_ms: int | None = None) -> Any:
    """A transaction as the delivery path takes it: shared, once the store offers that (the
    reader/writer SERIAL of design §4.5), else exclusive as in phase 1."""
    if "shared" in inspect.signature(db.atomic).parameters:
        return db.atomic(wait_ms=wait_ms, shared=True)  # type: ignore[call-arg]
    return db.atomic(wait_ms=wait_ms)


def _claimer(state: str, barrier: Any, results: Any, index: int) -> None:
    """In a child process: claim batches of the queue until none is left, each batch then
    marked sent in a second transaction (no rendering, no channel). A transaction that waited
    longer than the busy timeout for the lock is tried again, and counted."""
    from campctl.errors import StateLocked
    from campctl.store import delivery
    from campctl.timeutil import parse_instant

    now = parse_instant(T0)
    db = open_state(state, create=False)
    scope = delivery.DueScope((1,), False, now)
    until = parse_instant("2027-03-01T09:05:00Z")
    claimed = claims = locked = 0

    def retried(work: Callable[[], Any]) -> Any:
        nonlocal locked
        while True:
            try:
                with _atomic(db):
                    return work()
            except StateLocked:
                locked += 1

    try:
        barrier.wait(timeout=120)
        started = time.perf_counter()
        while True:
            token = f"w{index}-{claims}"
            ids = retried(functools.partial(delivery.claim, db, scope, channel=CHANNEL,
                                            until=until, token=token, limit=CLAIM_BATCH))
            if not ids:
                break
            # Claimed items leave the queue as a delivery's would: a claim that left them
            # queued would make every later claim step over all of them (quadratic).
            retried(functools.partial(delivery.mark_sent, db, token=token, ids=ids, now=now))
            claims += 1
            claimed += len(ids)
        results.put((index, claimed, locked, time.perf_counter() - started))
    except BaseException as exc:
        results.put((index, -1, f"{type(exc).__name__}: {exc}", 0.0))
        raise
    finally:
        db.close()


def claim_pass(state: str, processes: int) -> tuple[int, int, float]:
    """(items claimed, lock timeouts retried, wall seconds) of `processes` processes claiming
    the whole queue."""
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
    failed = [g[2] for g in got if g[1] < 0]
    if failed:
        raise SystemExit(f"a claim worker failed: {failed[0]}")
    return sum(g[1] for g in got), sum(g[2] for g in got), wall


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
    raw = _raw_connection(state)
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

        floor_ids = next(chunks)[:count]

        def one(item: int, following: int | None, *, sync: bool, mark: bool) -> None:
            with _atomic(db, wait_ms=50):
                if not sync:
                    db.execute("SET LOCAL synchronous_commit = off")
                delivery.mark_sent(db, token="rec", ids=[item], now=now)
                if mark and following is not None:
                    delivery.begin_hand_over(db, token="rec", item_id=following)

        if pg:  # no checkpoint's full-page images inside one variant's time only
            with contextlib.suppress(Exception):  # CHECKPOINT needs pg_checkpoint rights
                db.execute("CHECKPOINT")
        chunk_of = {"floor": floor_ids, **{variant: next(chunks) for variant in variants}}
        variants = ["floor", *variants]
        spent = dict.fromkeys(variants, 0.0)
        # Rounds alternating the variants: a change of load (or a checkpoint) falls on all.
        step = max(window, math.ceil(count / ROUNDS / window) * window)
        for low in range(0, count, step):
            high = min(low + step, count)
            for variant in variants:
                chunk = chunk_of[variant]
                started = time.perf_counter()
                if variant == "floor":
                    _raw_commits(raw, chunk[low:high])
                elif variant == "window":
                    for start in range(low, high, window):
                        with _atomic(db, wait_ms=50):  # durable: marks the next k as going
                            for item in chunk[start + 1:start + 1 + window]:
                                delivery.begin_hand_over(db, token="rec", item_id=item)
                        for item in chunk[start:min(start + window, high)]:
                            one(item, None, sync=False, mark=False)
                else:
                    for i in range(low, high):
                        one(chunk[i], chunk[i + 1], sync=variant == "sync", mark=True)
                spent[variant] += time.perf_counter() - started
        out.update({variant: seconds / count for variant, seconds in spent.items()})
    finally:
        raw.close()
        db.close()
    return out


def _raw_connection(state: str) -> Any:
    """The floor's connection: the driver alone in autocommit mode (no campctl, no lock), with
    the store's durability: PostgreSQL's default synchronous commit, SQLite's WAL with
    synchronous = NORMAL as campctl opens it."""
    if state.startswith("postgresql"):
        import psycopg

        return psycopg.connect(state, autocommit=True)
    import sqlite3

    conn = sqlite3.connect(state, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _raw_commits(raw: Any, ids: list[int]) -> None:
    """The floor: one single-row UPDATE committed on its own per id."""
    mark = "?" if type(raw).__module__.startswith("sqlite3") else "%s"
    for item in ids:
        raw.execute(f"UPDATE queue_items SET attempts = attempts + 1 WHERE id = {mark}", (item,))


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


@contextlib.contextmanager
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


def claims(stores: list[str], items: int, processes: list[int], sink: Sink,
           say: Callable[[str], None]) -> None:
    say("\n1. claims (the whole queue in batches of 50: a claim transaction, then one marking "
        "the batch sent):")
    for state in stores:
        arranged = arrange(state, items, sink.url)
        floor = claim_floor(state)
        say(f"  {store_name(state):10}  arranged in {arranged:.1f}s; floor (one UPDATE "
            f"claiming every row): {items / floor:,.0f} items/s")
        for k in processes:
            arrange(state, items, sink.url)
            claimed, locked, wall = claim_pass(state, k)
            if claimed != items:
                raise SystemExit(f"{k} claimers took {claimed} of {items} items")
            waits = f"; {locked} lock waits over the busy timeout, retried" if locked else ""
            say(f"    {k} process(es): {claimed / wall:8,.0f} items/s = "
                f"{claimed / CLAIM_BATCH / wall:6,.0f} claims/s "
                f"({wall / floor:.1f}x the floor's time{waits})")


def deliveries(stores: list[str], items: int, processes: list[int], seconds: float,
               sink: Sink, say: Callable[[str], None]) -> None:
    floor_posts = max(1, min(2000, items))
    floor = floor_posts / sink.floor(floor_posts)
    say(f"\n2. deliveries (`campctl tick --max-seconds {seconds:g}` processes, "
        "webhook sink on 127.0.0.1, connections: 1):")
    say(f"  floor (the sink alone, {floor_posts:,} POSTs on one keep-alive "
        f"connection): {floor:,.0f} messages/s")
    for state in stores:
        for k in processes:
            arrange(state, items, sink.url)
            sent, wall = tick_pass(state, k, seconds, sink)
            rate = sent / wall
            drained = "; the whole queue" if sent == items else ""
            say(f"  {store_name(state):10}  {k} process(es): {rate:7,.0f} messages/s "
                f"({sent:,} in {wall:.1f}s{drained}; {floor / rate:.1f}x the floor's "
                "time); every id once")


def records_part(stores: list[str], items: int, records: int, window: int, sink: Sink,
                 say: Callable[[str], None]) -> None:
    say(f"\n3. the per-message record cost ({records:,} record transactions each; "
        f"k = {window}):")
    costs: dict[str, dict[str, float]] = {}
    for state in stores:
        arrange(state, items, sink.url)
        costs[state] = record_costs(state, records, window)
        labels = {"floor": "floor: 1-row UPDATE per commit, driver alone",
                  "sync": "synchronous (today)",
                  "async": "synchronous_commit = off",
                  "window": f"async records, marks {window} at a time"}
        for variant, seconds in costs[state].items():
            ratio = "" if variant == "floor" else (
                f" ({seconds / costs[state]['floor']:.2f}x the floor)")
            say(f"  {store_name(state):10}  {labels[variant]:45} "
                f"{seconds * 1000:6.2f} ms = {1 / seconds:7,.0f}/s{ratio}")


def bloat_part(url: str, items: int, sink: Sink, say: Callable[[str], None]) -> None:
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
    parser.add_argument("--only", default="claims,deliveries,records,bloat",
                        help="the parts to run, comma-separated (default: all four)")
    args = parser.parse_args(argv)
    items = args.items
    records = args.records or max(1, min(2000, items // 5 - 2 * args.window))
    processes = [int(p) for p in args.processes.split(",") if p.strip()]
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - {"claims", "deliveries", "records", "bloat"}
    if unknown:
        parser.error(f"--only: no part {', '.join(sorted(unknown))}")

    def say(line: str = "") -> None:
        print(line, flush=True)

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

            if "claims" in parts:
                claims(stores, items, processes, sink, say)
            if "deliveries" in parts:
                deliveries(stores, items, processes, args.seconds, sink, say)
            if "records" in parts:
                records_part(stores, items, records, args.window, sink, say)
            if "bloat" in parts:
                bloat_part(url, items, sink, say)
    finally:
        sink.close()
    return 0



if __name__ == "__main__":
    raise SystemExit(main())
