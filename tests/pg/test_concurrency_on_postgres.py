"""Concurrency on PostgreSQL (issue 15, design §4.5): the locks, checked between connections.

SERIAL is a reader/writer lock (the delivery path shares it, everything else takes it alone,
and a waiting exclusive request queues new shared ones behind it); claims skip the rows another
claim holds; a rated channel's claims take turns; records commit without waiting for the disk.
The processes-and-sink tests that run on both stores are in tests/delivery/test_concurrent_ticks.py.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta

import pytest

from campctl.errors import StateLocked
from campctl.store import delivery
from campctl.store.db import open_state
from campctl.timeutil import parse_instant

pytestmark = pytest.mark.pg

NOW = parse_instant("2027-03-01T09:00:00Z")


@pytest.fixture
def connect(cli, state):
    """connect(busy_ms) -> a PgDatabase on the initialised test database (closed at the end)."""
    assert cli("init").exit_code == 0
    opened = []

    def open_one(busy_ms: int = 300):
        db = open_state(state, create=False, busy_timeout_ms=busy_ms)
        opened.append(db)
        return db

    yield open_one
    for db in opened:
        db.close()


@contextlib.contextmanager
def held(db, **kwargs):
    """A transaction of `db` kept open on another thread until the block ends."""
    inside, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold():
        try:
            with db.atomic(**kwargs):
                inside.set()
                done.wait(30)
        except BaseException as exc:  # reported to the test
            failure.append(exc)
            inside.set()

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(30)
    try:
        yield failure
    finally:
        done.set()
        thread.join(30)
    assert not failure, failure


def test_shared_transactions_run_side_by_side(connect):
    a, b = connect(), connect()
    with held(a, shared=True), b.atomic(shared=True, wait_ms=100):
        assert b.scalar("SELECT 1") == 1


def test_an_exclusive_transaction_waits_for_shared_ones_and_the_other_way(connect):
    a, b = connect(), connect(busy_ms=200)
    with held(a, shared=True), pytest.raises(StateLocked):
        with b.atomic():
            pass
    with held(a), pytest.raises(StateLocked):
        with b.atomic(shared=True):
            pass
    with b.atomic(shared=True):  # both free again
        pass


def test_a_waiting_pause_is_not_starved_by_new_deliveries(connect):
    """A waiting exclusive request (a pause) keeps new shared ones (deliveries) out."""
    a, pause, late = connect(), connect(busy_ms=10_000), connect(busy_ms=200)
    got: list[float] = []

    def exclusive():
        with pause.atomic():
            got.append(time.monotonic())

    with held(a, shared=True):
        waiter = threading.Thread(target=exclusive)
        waiter.start()
        for _ in range(500):  # until the pause's request waits on the lock (bounded by count)
            if a.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND NOT granted") >= 1:
                break
            time.sleep(0.01)
        with pytest.raises(StateLocked):
            with late.atomic(shared=True):
                pass
        assert not got
    waiter.join(30)
    assert got, "the pause never got the lock"


def test_claims_of_one_rated_channel_take_turns_other_channels_do_not_wait(connect):
    a, b = connect(), connect(busy_ms=200)
    # Held from another thread: the same channel waits (here: gives up), another is free.
    inside, done = threading.Event(), threading.Event()

    def hold():
        with a.atomic(shared=True):
            delivery.serialize_claims(a, channel="hook")
            inside.set()
            done.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(30)
        with pytest.raises(StateLocked):
            with b.atomic(shared=True):
                delivery.serialize_claims(b, channel="hook")
        with b.atomic(shared=True):
            delivery.serialize_claims(b, channel="mail")
    finally:
        done.set()
        thread.join(30)


def _queue(state, n: int) -> int:
    """A sending run of `n` queued outbox items, arranged through the store's seam. (The first
    claim of a `queued` run moves it to `sending`: a second claim waits for that row until the
    first commits, as the UPDATE must.)"""
    db = open_state(state, create=False)
    try:
        with db.atomic():
            run = db.scalar(
                "INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at)"
                " VALUES ('c', 'main', 'sending', '{}', ?, ?) RETURNING id",
                ("2027-03-01T09:00:00Z", "2027-03-01T09:00:00Z"))
            for i in range(n):
                db.execute(
                    "INSERT INTO queue_items (run_id, contact_id, channel, message_type,"
                    " message_id, status, created_at) VALUES (?, ?, 'outbox', 'promotional',"
                    " ?, 'queued', ?)", (run, i + 1, f"m{i}", "2027-03-01T09:00:00Z"))
    finally:
        db.close()
    return int(run)


def test_two_claims_at_once_skip_each_others_rows(state, connect):
    a, b = connect(), connect()
    run = _queue(state, 30)
    scope = delivery.DueScope((run,), False, NOW)
    until = NOW + timedelta(minutes=5)
    with a.atomic(shared=True):
        first = delivery.claim(a, scope, channel="outbox", until=until, token="a", limit=10)
        # a's transaction is still open: b neither waits for its rows nor takes them.
        with b.atomic(shared=True, wait_ms=100):
            second = delivery.claim(b, scope, channel="outbox", until=until, token="b",
                                    limit=10)
    assert len(first) == len(second) == 10
    assert not set(first) & set(second)
    assert first == sorted(first) and first[0] < second[0]  # in id order (the claim index)


def test_records_commit_without_waiting_for_the_disk_marks_do(connect):
    db = connect()
    default = db.scalar("SELECT current_setting('synchronous_commit')")
    with db.atomic(shared=True, durable=False):
        assert db.scalar("SELECT current_setting('synchronous_commit')") == "off"
    with db.atomic(shared=True):
        assert db.scalar("SELECT current_setting('synchronous_commit')") == default
    assert db.handover_window == 16
