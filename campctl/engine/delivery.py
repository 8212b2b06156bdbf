"""The sending phase: claim due queue items, render, hand over outside any transaction, record.

A message handed to a channel is never handed over again, except after a crash between the
hand-over and the commit that records it: the claim then expires (`LEASE`) and the item goes
again with the same message id (SMTP Message-ID, webhook Idempotency-Key). A network channel
uses up to `connections` connections at once (threads that only talk to the server); claiming,
marking and recording stay on the calling thread, one commit per message as with one
connection, and the channel's `rate` is counted when items are claimed, whatever the number of
connections.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from campctl.channels import (
    BUILTIN_OUTBOX,
    PERMANENT,
    TRANSIENT,
    Channel,
    ChannelError,
    Message,
    NetworkChannel,
    Outcome,
    open_channel,
)
from campctl.channels.outbox import OutboxChannel
from campctl.definitions.models import Channel as ChannelDefinition
from campctl.definitions.models import ChannelModel
from campctl.engine.caps import CapRules
from campctl.engine.context import Budget, TickContext
from campctl.engine.stale import StaleSweep
from campctl.engine.templates import TemplateFailed, compile_message, contact_context
from campctl.errors import NotFound, StateLocked
from campctl.store import delivery as store
from campctl.store.db import Database
from campctl.store.runs import CLAIM_LEASE
from campctl.timeutil import from_db, to_db

# How long a claim holds an item. Longer than any batch takes; after a crash the item waits
# this long before another delivery may take it again.
LEASE = CLAIM_LEASE  # the store reads it back to tell when a claim was taken
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
RETRY_AFTER_MAX = timedelta(hours=1)  # the longest wait a receiver's Retry-After can impose
# Waits for a per-second rate window are slept through; longer windows end the delivery.
MAX_RATE_SLEEP = 1.0
# How long a hand-over waits for the write lock to record one sent message before it stops the
# batch (a pause waiting for this hand-over holds that lock).
RECORD_WAIT_MS = 50


@dataclass
class DeliveryReport:
    """What one delivery pass did (with dry_run: would do). `errors`: channel-level problems."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    waiting_rate: int = 0
    stale: int = 0  # of `cancelled`: their staleness deadline passed (engine/stale.py)
    capped: int = 0  # held by a frequency cap (deferred, or dropped: also in `cancelled`)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried,
                "cancelled": self.cancelled, "waiting_rate": self.waiting_rate}


def backoff(attempts_before: int) -> timedelta:
    """Delay before retry number `attempts_before + 1`: 1m, 2m, 4m, ... capped at 1h."""
    seconds = BACKOFF_BASE.total_seconds() * (2 ** min(max(attempts_before, 0), 20))
    return min(timedelta(seconds=seconds), BACKOFF_MAX)


def next_attempt(at: datetime, attempts_before: int,
                 retry_after: timedelta | datetime | None = None) -> datetime:
    """When a transiently failed item is tried again: after the usual backoff, or later when
    the receiver asked for it (Retry-After), but never more than RETRY_AFTER_MAX after `at`."""
    usual = at + backoff(attempts_before)
    if retry_after is None:
        return usual
    asked = at + retry_after if isinstance(retry_after, timedelta) else retry_after
    return max(usual, min(asked, at + RETRY_AFTER_MAX))


class _Clock:
    """`now` as given, moved forward by the real time this pass has taken (for rate windows,
    sent_at and backoff)."""

    def __init__(self, now: datetime, monotonic: Callable[[], float]) -> None:
        self.base = now
        self.monotonic = monotonic
        self.start = monotonic()

    def now(self) -> datetime:
        return self.base + timedelta(seconds=max(0.0, self.monotonic() - self.start))


class _Content:
    """Message sources for items, looked up once per run / scenario step in a pass."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.runs: dict[int, dict] = {}
        self.scenarios: dict[str, dict | None] = {}
        self._compiled: dict[int, tuple[dict, Any]] = {}

    def compiled(self, source: dict):
        """Compile once per run / scenario step in this pass (sources live in the caches above)."""
        found = self._compiled.get(id(source))
        if found is None or found[0] is not source:
            try:
                found = (source, compile_message(source))
            except TemplateFailed as exc:  # a syntax error fails every item: compile it once
                found = (source, exc)
            self._compiled[id(source)] = found
        if isinstance(found[1], TemplateFailed):
            raise TemplateFailed(found[1].reason)
        return found[1]

    def preload_runs(self, run_ids: Sequence[int]) -> None:
        self.runs.update(store.run_snapshots(self.db, run_ids))

    def for_item(self, row: dict) -> tuple[dict, bool, dict]:
        """(message {subject, body}, include_opted_out, record fields) or raise TemplateFailed."""
        if row["run_id"] is not None:
            run = self.runs.get(row["run_id"])
            if run is None:
                self.preload_runs([row["run_id"]])
                run = self.runs.get(row["run_id"])
            if run is None:
                raise TemplateFailed(f"run {row['run_id']} no longer exists")
            spec = run["spec"]
            return (spec.get("message") or {}, bool(spec.get("include_opted_out")),
                    {"run": row["run_id"], "campaign": run["campaign"], "stage": run["stage"],
                     "scenario": None, "step": None})
        name = row["scenario"]
        if name not in self.scenarios:
            from campctl.store.objects import get_record

            obj = get_record(self.db, "Scenario", name)
            self.scenarios[name] = obj.spec if obj else None
        spec = self.scenarios[name]
        if spec is None:
            raise TemplateFailed(f"scenario {name} no longer exists")
        for step in spec.get("steps") or []:
            if isinstance(step, dict) and step.get("id") == row["step"]:
                send = step.get("send")
                if not isinstance(send, dict):
                    raise TemplateFailed(f"step {row['step']} of scenario {name} sends nothing")
                return (send, bool(row.get("profile_include_opted_out")),
                        {"run": None, "campaign": None, "stage": None, "scenario": name,
                         "step": row["step"]})
        raise TemplateFailed(f"scenario {name} has no step {row['step']!r} any more")


def channel_definition(db: Database, name: str) -> ChannelModel | None:
    """The typed definition of the channel named `name` (None: not defined)."""
    from campctl.store.objects import get_record

    obj = get_record(db, "Channel", name)
    return None if obj is None else ChannelDefinition.from_spec(obj.spec)


def load_channel(db: Database, name: str, environ: Mapping[str, str]) -> Channel:
    """The named channel (a definition, or the built-in outbox); ChannelError if unusable."""
    return open_channel(name, channel_definition(db, name), environ, base_dir=db.base_dir)


def _window(clock_now: datetime, seconds: int) -> tuple[datetime, float]:
    """(start of the fixed rate window containing `clock_now`, seconds until it ends)."""
    epoch = clock_now.timestamp()
    start = math.floor(epoch / seconds) * seconds
    return datetime.fromtimestamp(start, UTC), start + seconds - epoch


# --- what a pass carries -------------------------------------------------------------------------
class _Item(NamedTuple):
    """A claimed item rendered into the message that goes for it."""

    row: dict
    message: Message


# A message handed over (or given up) whose outcome is still to be recorded.
_Tried = tuple[dict, Message, Outcome]


@dataclass(frozen=True)
class _Pass:
    """What every batch of one delivery pass shares."""

    db: Database
    scope: store.DueScope
    report: DeliveryReport
    content: _Content
    clock: _Clock
    deadline: float | None  # a `clock.monotonic()` value after which no new batch starts
    sleep: Callable[[float], None]
    stale: StaleSweep
    caps: CapRules


@dataclass
class _Target:
    """The channel a pass delivers through, or the reason it cannot be used (then every item
    fails with it). A network channel's further connections are opened on first use and kept
    for the pass, like the first one."""

    name: str
    channel: Channel | None
    problem: str | None = None
    spares: list[NetworkChannel] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        if self.channel is None:
            return 500
        if isinstance(self.channel, NetworkChannel):
            # As many messages per connection as one connection takes in a batch: a batch
            # lasts as long whatever `connections` says (well within LEASE).
            return self.channel.batch_size * self.channel.connections
        return self.channel.batch_size

    def sender(self, channel: NetworkChannel, count: int) -> _Inline | _Pool:
        """Up to `connections` senders for a batch of `count` messages."""
        width = min(channel.connections, count)
        if width <= 1:
            return _Inline(channel)
        while len(self.spares) < width - 1:
            self.spares.append(channel.another())
        return _Pool([channel, *self.spares[:width - 1]])

    def close(self) -> None:
        for channel in [self.channel, *self.spares]:
            if channel is not None:
                channel.close()


@dataclass
class _Batch:
    """One claimed batch: what goes, and what fails or is cancelled before any hand-over."""

    token: str  # names the claim; every outcome is recorded only while it still holds
    rows: list[dict]
    sent_at: str
    items: list[_Item] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    cancelled: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class _Verdicts:
    """Outcomes of items that were not sent: failed for good, to retry, cancelled."""

    failed: list[tuple[int, str]]
    retry: list[tuple[int, str, datetime]]
    cancelled: list[tuple[int, str]]


# --- the pass ------------------------------------------------------------------------------------
def deliver_due(ctx: TickContext, *, run_ids: Sequence[int], scenario_items: bool,
                batch_size: int | None = None,
                zones: Mapping[int, Sequence[str]] | None = None) -> DeliveryReport:
    """Deliver the due items of `run_ids` (and scenario items) at `ctx.now` within `ctx.budget`
    (a dry run only counts them): see the module docstring. Returns its own report; the tick
    adds it to `ctx.report`. `batch_size` overrides the channel's (tests). A run in `zones`
    (its window read in each contact's zone) delivers only its items of the zones given."""
    report = DeliveryReport()
    scope = store.DueScope(tuple(int(r) for r in run_ids), scenario_items, ctx.now,
                           tuple((int(r), tuple(z)) for r, z in sorted((zones or {}).items())
                                 if int(r) in set(run_ids)))
    if not scope.run_ids and not scenario_items:
        return report
    db = ctx.db
    work = _Pass(db, scope, report, _Content(db), _Clock(ctx.now, ctx.monotonic),
                 ctx.budget.deadline, ctx.sleep, StaleSweep(db, scope), CapRules(db, scope))
    work.content.preload_runs(scope.run_ids)
    taken = 0
    max_messages = ctx.budget.max_messages
    for name in store.due_channels(db, scope):
        target = _open(db, name, ctx.environ, report)
        remaining = None if max_messages is None else max_messages - taken
        if ctx.dry_run:
            taken += _dry_run_channel(work, target, remaining)
            continue
        try:
            got, done = _deliver_channel(work, target, remaining=remaining,
                                         batch_size=batch_size, budget=ctx.budget)
        finally:
            target.close()
        taken += got
        if done:
            break
    return report


def _open(db: Database, name: str, environ: Mapping[str, str],
          report: DeliveryReport) -> _Target:
    try:
        return _Target(name, load_channel(db, name, environ))
    except ChannelError as exc:
        problem = _unusable(db, name, environ, exc)
    except Exception as exc:  # a definition the engine cannot read: this channel only
        problem = " ".join(f"channel {name} cannot be opened: {type(exc).__name__}: "
                           f"{exc}".split())[:300]
    report.errors.append(problem)
    return _Target(name, None, problem)


def _deliver_channel(work: _Pass, target: _Target, *, remaining: int | None,
                     batch_size: int | None, budget: Budget) -> tuple[int, bool]:
    """Batches of one channel until none is due. Returns (items taken, whether the pass ends:
    a stop was requested, the deadline passed or `remaining` is used up)."""
    taken = 0
    while True:
        if budget.stopped():
            return taken, True
        if work.deadline is not None and work.clock.monotonic() >= work.deadline:
            return taken, True
        limit = batch_size or target.batch_size
        if remaining is not None:
            limit = min(limit, remaining - taken)
            if limit <= 0:
                return taken, True
        got = _one_batch(work, target, limit)
        if got is None:  # rate window full: it slept, try again
            continue
        if got == 0:
            return taken, False
        taken += got


def _one_batch(work: _Pass, target: _Target, limit: int) -> int | None:
    """Claim, render, hand over and record one batch. Returns the number of items taken, 0 when
    nothing is left, None after sleeping for a per-second rate window."""
    token = os.urandom(12).hex()  # names this claim; cheaper to import than uuid
    network = target.channel if isinstance(target.channel, NetworkChannel) else None
    handing_over = False
    try:
        with work.db.atomic(shared=True):
            rows = _claim(work, target, limit, token)
            if not isinstance(rows, list):
                return rows
            if network is not None:
                # Taken before the claim commits: a pause that commits after this claim waits
                # until the batch is handed over (see Database.wait_for_hand_overs).
                work.db.hand_over_begin()
                handing_over = True
        batch = _prepare(work, target, token, rows)
        if isinstance(target.channel, OutboxChannel):
            _record_outbox(work, target.channel, batch)
            return len(rows)
        tried: list[_Tried] = []
        untouched: list[int] = []
        if network is not None and batch.items:
            tried, untouched = _HandOver(work, target, network, batch).run()
        if handing_over:
            work.db.hand_over_end()  # handed over: a pause may commit now (before this records)
        _record(work, target.channel, batch, tried, untouched)
        return len(rows)
    finally:
        if handing_over:
            work.db.hand_over_end()


def _claim(work: _Pass, target: _Target, limit: int, token: str) -> list[dict] | int | None:
    """Inside the claim transaction: the claimed rows, or what `_one_batch` returns when the
    channel's rate window is full (0 or None, see `_rate_full`) or nothing is due (0)."""
    db = work.db
    at = work.clock.now()
    # Messages past their staleness deadline are cancelled in this transaction, never claimed.
    stale = work.stale.sweep(target.name, now=at)
    work.report.stale += stale
    work.report.cancelled += stale
    rate = target.channel.rate if target.channel is not None else None
    if rate:
        count, seconds = rate
        # Across hosts, one claim of this channel at a time counts and adds to its window.
        store.serialize_claims(db, channel=target.name)
        start, left = _window(at, seconds)
        room = count - store.rate_used(db, channel=target.name, window_start=start)
        if room <= 0:
            return _rate_full(work, target, left)
        limit = min(limit, room)
    if work.caps.active():
        # Frequency caps: items without a slot are held in this transaction, never claimed.
        # A batch held whole: the next due items may still have a slot (each round holds or
        # claims at least one item, so this ends).
        while True:
            before = (work.caps.capped, work.caps.dropped)
            ids = work.caps.claim(channel=target.name, limit=limit, until=at + LEASE,
                                  token=token, now=at)
            work.report.capped += work.caps.capped - before[0]
            work.report.cancelled += work.caps.dropped - before[1]
            if ids or work.caps.capped == before[0]:
                break
    else:
        ids = store.claim(db, work.scope, channel=target.name, until=at + LEASE, token=token,
                          limit=limit)
    if not ids:
        return 0
    if rate:
        store.rate_add(db, channel=target.name, window_start=start, count=len(ids),
                       prune_before=start - timedelta(days=1))
    return store.load_items(db, ids)


def _rate_full(work: _Pass, target: _Target, left: float) -> int | None:
    """The rate window is used up: sleep through a short one (None), or note how many items
    wait for it and end this channel (0)."""
    waiting = store.count_due(work.db, work.scope, channel=target.name)
    if waiting == 0:
        return 0
    fits = work.deadline is None or work.clock.monotonic() + left < work.deadline
    if left <= MAX_RATE_SLEEP and fits:
        work.sleep(left)
        return None
    assert target.channel is not None
    work.report.waiting_rate += waiting
    work.report.notes.append(f"channel {target.name}: {waiting} item(s) wait for the rate "
                             f"limit {target.channel.definition.rate}")
    return 0


# --- rendering -----------------------------------------------------------------------------------
def _prepare(work: _Pass, target: _Target, token: str, rows: list[dict]) -> _Batch:
    """Render the claimed rows into messages; sort out those that fail or are cancelled."""
    batch = _Batch(token, rows, to_db(work.clock.now()))
    for row in rows:
        if target.problem is not None:
            batch.failed.append((row["id"], target.problem))
            continue
        if row["contact_id"] is not None and row["contact_row"] is None:
            batch.cancelled.append((row["id"], "contact was erased"))
            continue
        try:
            message = _render(work.content, target, row, batch.sent_at)
        except TemplateFailed as exc:
            batch.failed.append((row["id"], exc.reason))
            continue
        except Exception as exc:  # a broken stored message fails its item, not the batch
            text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            batch.failed.append((row["id"], f"message could not be prepared: {text}"))
            continue
        if message is None:
            batch.cancelled.append((row["id"], f"contact opted out of {row['message_type']}"))
        else:
            batch.items.append(_Item(row, message))
    return batch


def _render(content: _Content, target: _Target, row: dict, sent_at: str) -> Message | None:
    """The message for one item (None: its contact opted out); TemplateFailed if it cannot be
    rendered."""
    source, include_opted_out, fields = content.for_item(row)
    if row["opted_out"] and not include_opted_out:
        return None
    context = contact_context(
        external_id=row["external_id"], email=row["email"], phone=row["phone"],
        attrs=_json(row["attrs"], {}),
        groups=row["groups"].split("\x1f") if row["groups"] else [],
    )
    if row["profile_id"] is not None:
        # A scenario message sees its profile's capture data as `event.*`.
        context["event"] = _json(row["profile_data"], {})
    subject, body = content.compiled(source).render(context)
    webhook = target.channel is not None and target.channel.type == "webhook"
    record = {
        "message_id": row["message_id"], **fields, "contact": row["external_id"],
        "channel": target.name, "subject": subject, "body": body, "sent_at": sent_at,
        "to": (row["email"] or row["phone"]) if webhook else row["email"],
    }
    return Message(row["message_id"], row["email"], subject, body, record)


# --- hand-over to a network channel --------------------------------------------------------------
class _Inline:
    """One connection driven from this thread (a batch of one, or `connections: 1`): the
    channel reads the next message only after the outcome of the previous one is recorded."""

    width = 1

    def __init__(self, channel: NetworkChannel) -> None:
        self._waiting: deque[_Item] = deque()
        self._outcomes = channel.deliver(self._feed())

    def _feed(self) -> Iterator[Message]:
        while self._waiting:
            yield self._waiting[0].message

    def submit(self, item: _Item) -> None:
        self._waiting.append(item)

    def result(self) -> tuple[_Item, Outcome | Exception]:
        item = self._waiting[0]
        try:
            outcome: Outcome | Exception = next(self._outcomes)
        except Exception as exc:  # a channel bug: reported as this message's outcome
            outcome = exc
        self._waiting.popleft()
        return item, outcome

    def close(self) -> None:
        self._waiting.clear()


class _Pool:
    """Several connections, one thread each. The threads only talk to the channel: every SQL
    statement stays on the caller's thread (SQLite connections belong to one thread)."""

    def __init__(self, channels: list[NetworkChannel]) -> None:
        self.width = len(channels)
        self._inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[_Item, Outcome | Exception]] = (
            queue.SimpleQueue())
        self._threads = [threading.Thread(target=self._work, args=(channel,), daemon=True,
                                          name=f"campctl-send-{channel.name}-{i}")
                         for i, channel in enumerate(channels)]
        for thread in self._threads:
            thread.start()

    def submit(self, item: _Item) -> None:
        self._inbox.put(item)

    def result(self) -> tuple[_Item, Outcome | Exception]:
        return self._results.get()

    def close(self) -> None:
        for _ in self._threads:
            self._inbox.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self, channel: NetworkChannel) -> None:
        """Feed the channel from the shared inbox until the end mark; one result per item."""
        current: _Item | None = None

        def feed() -> Iterator[Message]:
            nonlocal current
            while (item := self._inbox.get()) is not None:
                current = item
                yield item.message

        try:
            for outcome in channel.deliver(feed()):
                if current is not None:
                    self._results.put((current, outcome))
                current = None
        except Exception as exc:  # a channel bug: this item and any that still come fail
            if current is not None:
                self._results.put((current, exc))
            while (item := self._inbox.get()) is not None:
                self._results.put((item, exc))


class _HandOver:
    """Hands a batch to a network channel over up to `connections` connections at once.

    Before a message goes, a committed `handover_begun` mark says it may reach the channel;
    when its outcome comes back, one short transaction records a sent message and marks the
    next one: a kill between a hand-over and its record repeats at most the messages in
    flight (one per connection). When the write lock is not free within RECORD_WAIT_MS (a
    pause or another tick holds it) no further message starts; the messages in flight finish
    and everything not recorded yet is recorded with the rest of the batch, once the lock is
    free. The batch also stops when the next item was cancelled or held meanwhile (stop,
    closing, pause).

    Where commits that wait for the disk are dear (PostgreSQL, `db.handover_window`), one
    durable commit marks up to that many messages ahead and each record commits without
    waiting (see docs/delivery.md); each message is also noted as started just before it goes,
    in the (asynchronous) transaction that records the one before it. A campctl process that
    dies loses no commit the server has: a mark without its start never went, so a kill leaves
    "possibly handed over" the messages in flight, as on SQLite (every mark only when the server
    itself restarted since the claim). Messages marked but not handed over when the batch ends
    early are unmarked before the gate opens, so that a stop waiting for it does not count them
    as possibly handed over."""

    def __init__(self, work: _Pass, target: _Target, channel: NetworkChannel,
                 batch: _Batch) -> None:
        self.work = work
        self.target = target
        self.channel = channel
        self.batch = batch
        self.at = from_db(batch.sent_at) or work.clock.now()
        self.pending: deque[_Item] = deque(batch.items)
        self.ahead = 0  # the first `ahead` of `pending` are marked (committed), not handed over
        # Marked at the start, and by a record that finds none marked ahead (SQLite: the next
        # message only, each record marking the one that replaces it in flight).
        window = work.db.handover_window
        self.first = max(channel.connections, window)
        self.refill = max(channel.connections, window) if window else 1
        self.starts = bool(window)  # marks go ahead: note each start (store.start_hand_overs)
        self.in_flight = 0
        self.going = True  # further messages may be marked
        self.locked = False  # recording waits for the end of the batch
        self.broken: str | None = None  # the channel failed: what is left is retried
        self.unrecorded: list[_Tried] = []

    def run(self) -> tuple[list[_Tried], list[int]]:
        """(outcomes still to record, ids of items given back untouched)."""
        sender = self.target.sender(self.channel, len(self.pending))
        try:
            try:
                with self.work.db.atomic(wait_ms=RECORD_WAIT_MS, shared=True):
                    self._mark(self.first)
                    starting = self._start(sender.width)
            except StateLocked:
                self.ahead = 0
                return [], [item.row["id"] for item in self.batch.items]
            self._submit(sender, starting)
            while self.in_flight:
                item, outcome = sender.result()
                self.in_flight -= 1
                if isinstance(outcome, Exception):
                    self._broke(item, outcome)
                else:
                    self._submit(sender, self._recorded(item, outcome))
        finally:
            sender.close()
        self._unmark()
        if self.broken is not None:
            self.unrecorded += [(item.row, item.message, Outcome(TRANSIENT, self.broken))
                                for item in self.pending]
            self.pending.clear()
        return self.unrecorded, [item.row["id"] for item in self.pending]

    def _unmark(self) -> None:
        """Take back the marks of messages marked ahead and never handed over (those no earlier
        claim had marked), while this batch still holds the gate."""
        ids = [item.row["id"] for item in list(self.pending)[:self.ahead]
               if not item.row.get("handover_begun")]
        self.ahead = 0
        if ids:
            store.unmark_hand_overs(self.work.db, token=self.batch.token, ids=ids)

    def _mark(self, count: int) -> None:
        """Inside a transaction: mark waiting messages as going, up to `count` marked ahead."""
        while self.going and self.ahead < min(count, len(self.pending)):
            if not store.begin_hand_over(self.work.db, token=self.batch.token,
                                         item_id=self.pending[self.ahead].row["id"]):
                self.going = False
                break
            self.ahead += 1

    def _start(self, count: int) -> int:
        """Inside a transaction: note that the first `count` marked messages go now (where
        marks go ahead); returns how many may. One that a stop, closing or pause took meanwhile
        does not go, nor any after it."""
        ids = [item.row["id"] for item in list(self.pending)[:min(count, self.ahead)]]
        if not self.starts or not ids:
            return len(ids)
        started = store.start_hand_overs(self.work.db, token=self.batch.token, ids=ids)
        ready = 0
        while ready < len(ids) and ids[ready] in started:
            ready += 1
        if ready < len(ids):
            self.going = False
        return ready

    def _submit(self, sender: _Inline | _Pool, count: int) -> None:
        """Hand the first `count` waiting messages (marked, and the mark committed) over."""
        for _ in range(min(count, self.ahead)):
            sender.submit(self.pending.popleft())
            self.ahead -= 1
            self.in_flight += 1

    def _recorded(self, item: _Item, outcome: Outcome) -> int:
        """Record a sent message at once and mark the next one as going (or the next window
        of them), in one short transaction; a failure is recorded with the rest. Returns how
        many may start."""
        if self.locked:
            self.unrecorded.append((item.row, item.message, outcome))
            return 0
        marks = self.going and self.ahead == 0 and bool(self.pending)
        ahead = self.ahead  # as it stands if the transaction rolls back
        try:
            with self.work.db.atomic(wait_ms=RECORD_WAIT_MS, shared=True, durable=marks):
                marked = (store.mark_sent(self.work.db, token=self.batch.token,
                                          ids=[item.row["id"]], now=self.at)
                          if outcome.ok else set())
                if marks:
                    self._mark(self.refill)
                starting = self._start(1)
        except StateLocked:
            self.locked, self.going, self.ahead = True, False, ahead
            self.unrecorded.append((item.row, item.message, outcome))
            return 0
        except Exception as exc:
            self.locked, self.ahead = True, ahead
            self._broke(item, exc)
            return 0
        self.work.report.sent += len(marked)
        if not outcome.ok:
            self.unrecorded.append((item.row, item.message, outcome))
        return starting

    def _broke(self, item: _Item, exc: Exception) -> None:
        """The channel (or recording) failed: no message starts any more, and this one and
        those not handed over are retried later (a channel bug must not leave the batch
        claimed for the whole lease)."""
        reason = self.channel.redact(f"channel {self.target.name} failed: "
                                     f"{type(exc).__name__}: {exc}") or ""
        if self.broken is None:
            self.broken = reason
            self.work.report.errors.append(reason)
        self.going = False
        self.unrecorded.append((item.row, item.message, Outcome(TRANSIENT, reason)))


# --- recording -----------------------------------------------------------------------------------
def _record(work: _Pass, channel: Channel | None, batch: _Batch, tried: list[_Tried],
            untouched: list[int]) -> None:
    """Record what the hand-over left to record, the items that failed or were cancelled before
    it, and give back the untouched ones."""
    db, report = work.db, work.report
    at = work.clock.now()
    sent_ids = [row["id"] for row, _, outcome in tried if outcome.ok]
    verdicts = _Verdicts(
        [(row["id"], o.reason or "refused") for row, _, o in tried if o.status == PERMANENT]
        + batch.failed,
        [(row["id"], o.reason or "temporary failure", next_attempt(at, row["attempts"],
                                                                   o.retry_after))
         for row, _, o in tried if not o.ok and o.status != PERMANENT],
        batch.cancelled)
    # Not durable: a record lost with the server leaves its items claimed and marked, to go
    # again with the same key after the lease (docs/delivery.md).
    with db.atomic(shared=True, durable=False):
        report.sent += len(store.mark_sent(
            db, token=batch.token, ids=sent_ids,
            now=_sent_at([(row, message) for row, message, _ in tried], at)))
        store.release(db, token=batch.token, ids=untouched)
        _record_failures(work, channel, batch.token, verdicts, at=at)
        report.cancelled += store.cancel_where_run_ended(
            db, [row["id"] for row, _, _ in tried] + untouched)


def _record_outbox(work: _Pass, channel: OutboxChannel, batch: _Batch) -> None:
    """The outbox delivers in the transaction that records the batch: outbox rows (and lines of
    its `dir:` file) for the items that may still go; a run paused or stopped since the claim
    gets its items back unsent."""
    db, report = work.db, work.report
    at = work.clock.now()
    ids = [item.row["id"] for item in batch.items]
    wrote = False
    # A `dir:` file is appended to from its committed length: one writer at a time (exclusive).
    shared = channel.path is None
    try:
        with db.atomic(shared=shared):
            keep = store.deliverable(db, ids)
            store.release(db, token=batch.token, ids=[i for i in ids if i not in keep])
            marked = store.mark_sent(db, token=batch.token, ids=[i for i in ids if i in keep],
                                     now=_sent_at(batch.items, at))
            if marked:
                records = [item.message.record for item in batch.items
                           if item.row["id"] in marked]
                store.insert_outbox(db, records)
                _write_outbox_file(db, channel, records, now=at)
                wrote = True
            report.sent += len(marked)
            _record_failures(work, channel, batch.token,
                             _Verdicts(batch.failed, [], batch.cancelled), at=at)
            report.cancelled += store.cancel_where_run_ended(db, ids)
    except ChannelError as exc:  # the outbox file could not be written: nothing was recorded
        report.errors.append(exc.reason)
        retry = [(item.row["id"], exc.reason, at + backoff(item.row["attempts"]))
                 for item in batch.items]
        with db.atomic(shared=True):
            _record_failures(work, channel, batch.token,
                             _Verdicts(batch.failed, retry, batch.cancelled), at=at)
    except BaseException:  # not recorded (full or read-only state file): take the lines back
        if wrote:
            channel.discard_written()
        raise


def _write_outbox_file(db: Database, channel: OutboxChannel, records: list[dict], *,
                       now: datetime) -> None:
    """Append the batch to the outbox `dir:` file inside the transaction that records it, and
    record the file's new length in that transaction: lines a killed process wrote beyond the
    last committed length are cut off by the next append, so a retried batch is not doubled."""
    if channel.path is None:
        return
    key = os.path.abspath(channel.path)
    end = channel.write_lines(records, committed_length=store.outbox_file_length(db, key))
    if end is not None:
        store.set_outbox_file_length(db, key, end, now=now)


def _record_failures(work: _Pass, channel: Channel | None, token: str, verdicts: _Verdicts, *,
                     at: datetime) -> None:
    db, report = work.db, work.report
    report.failed += store.mark_failed(db, token=token, items=verdicts.failed, now=at)
    max_attempts = channel.max_attempts if channel is not None else 1
    retried, gave_up = store.mark_retry(db, token=token, items=verdicts.retry,
                                        max_attempts=max_attempts, now=at)
    report.retried += retried
    report.failed += gave_up
    report.cancelled += store.mark_cancelled(db, token=token, items=verdicts.cancelled)


def _sent_at(messages: Iterable[tuple[Any, Message]], fallback: datetime) -> datetime:
    for _, message in messages:
        return from_db(message.record["sent_at"]) or fallback
    return fallback


def _json(text: str | None, default):
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _dry_run_channel(work: _Pass, target: _Target, remaining: int | None) -> int:
    db, report, name = work.db, work.report, target.name
    due = store.count_due(db, work.scope, channel=name)
    stale = min(due, work.stale.sweep(name, now=work.scope.now, apply=False))
    if stale:
        due -= stale
        report.stale += stale
        report.cancelled += stale
    if due == 0:
        return 0
    if target.channel is None:
        report.failed += due
        report.notes.append(f"channel {name} is not usable: {due} item(s) would fail")
        return due
    would = due if remaining is None else max(0, min(due, remaining))
    if target.channel.rate:
        count, seconds = target.channel.rate
        start, _ = _window(work.scope.now, seconds)
        budget = max(0, count - store.rate_used(db, channel=name, window_start=start))
        if budget < would:
            report.waiting_rate += would - budget
            report.notes.append(f"channel {name}: {would - budget} item(s) would wait for the "
                                f"rate limit {target.channel.definition.rate}")
            would = budget
    report.sent += would
    report.notes.append(f"channel {name}: {would} message(s) would be sent")
    return would


# --- single messages: channel test and operator notifications ------------------------------------
@dataclass(frozen=True)
class SendResult:
    channel: str
    to: str
    message_id: str
    ok: bool
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "to": self.to, "message_id": self.message_id,
                "status": "sent" if self.ok else "failed", "reason": self.reason}


def _digest(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _single(channel: Channel, *, to: str, subject: str, body: str, message_id: str,
            now: datetime) -> Message:
    record = {"message_id": message_id, "run": None, "campaign": None, "stage": None,
              "scenario": None, "step": None, "contact": None, "channel": channel.name,
              "subject": subject, "body": body, "sent_at": to_db(now), "to": to}
    return Message(message_id, to, subject, body, record)


def _send_one(db: Database, channel: Channel, message: Message, *, now: datetime) -> SendResult:
    to, message_id = message.to or "", message.message_id
    try:
        if isinstance(channel, OutboxChannel):
            wrote = False
            try:
                with db.atomic():
                    store.insert_outbox(db, [message.record])
                    _write_outbox_file(db, channel, [message.record], now=now)
                    wrote = True
            except BaseException:
                if wrote:
                    channel.discard_written()
                raise
            return SendResult(channel.name, to, message_id, True)
        assert isinstance(channel, NetworkChannel)
        (outcome,) = channel.deliver([message])
    except ChannelError as exc:
        return SendResult(channel.name, to, message_id, False, channel.redact(exc.reason))
    finally:
        channel.close()
    return SendResult(channel.name, to, message_id, outcome.ok, outcome.reason)


def _unusable(db: Database, channel: str, environ: Mapping[str, str], exc: ChannelError) -> str:
    """The reason a channel cannot be opened, with its secrets masked."""
    return redact_text(db, channel, environ, exc.reason)


def redact_text(db: Database, channel: str, environ: Mapping[str, str], text: str) -> str:
    """`text` with the secrets of channel `channel` (as `environ` resolves them) masked."""
    from campctl.channels.redact import redactor_for

    definition = channel_definition(db, channel)
    return redactor_for(None if definition is None else definition.raw, environ)(text) or ""


def send_test(db: Database, channel: str, to: str, *, now: datetime,
              environ: Mapping[str, str]) -> SendResult:
    """Send one test message through `channel` to `to` (not throttled, not queued).

    NotFound if the channel is neither defined nor the built-in outbox."""
    if channel_definition(db, channel) is None and channel != BUILTIN_OUTBOX:
        raise NotFound(f"no channel named {channel!r}; see 'campctl get channels'")
    message_id = f"test-{_digest(channel, to, to_db(now))}"
    try:
        opened = load_channel(db, channel, environ)
    except ChannelError as exc:
        return SendResult(channel, to, message_id, False, _unusable(db, channel, environ, exc))
    subject = f"campctl test message ({channel})"
    body = (f"This is a test message sent by campctl through channel {channel} "
            f"at {to_db(now)}.\n")
    message = _single(opened, to=to, subject=subject, body=body, message_id=message_id, now=now)
    return _send_one(db, opened, message, now=now)


@dataclass(frozen=True)
class Notice:
    """One operator notification: to whom, what. A stable `message_id` (e.g. `notify-<id>`)
    lets the receiver drop a retried duplicate; without one it is derived from the content."""

    to: str
    subject: str
    body: str
    message_id: str | None = None


def send_notification(db: Database, channel: str, notice: Notice, *, now: datetime,
                      environ: Mapping[str, str]) -> SendResult:
    """Deliver one operator notification; never raises for channel problems (see `.ok`,
    `.reason`)."""
    to, subject, body = notice.to, notice.subject, notice.body
    message_id = (notice.message_id
                  or f"notify-{_digest(channel, to, subject, body, to_db(now))}")
    try:
        opened = load_channel(db, channel, environ)
    except ChannelError as exc:
        return SendResult(channel, to, message_id, False, _unusable(db, channel, environ, exc))
    message = _single(opened, to=to, subject=subject, body=body, message_id=message_id, now=now)
    return _send_one(db, opened, message, now=now)
