"""The sending phase: claim due queue items, render, hand over outside any transaction, record.

A message handed to a channel is never handed over again, except after a crash between the
hand-over and the commit that records it: the claim then expires (`LEASE`) and the item goes
again with the same message id (SMTP Message-ID, webhook Idempotency-Key).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from campctl.channels import (
    BUILTIN_OUTBOX,
    PERMANENT,
    SENT,
    Channel,
    ChannelError,
    Message,
    Outcome,
    open_channel,
)
from campctl.engine.templates import TemplateFailed, compile_message, contact_context
from campctl.errors import NotFound, StateLocked
from campctl.store import delivery as store
from campctl.store.db import Database
from campctl.timeutil import from_db, to_db

# How long a claim holds an item. Longer than any batch takes; after a crash the item waits
# this long before another delivery may take it again.
LEASE = timedelta(minutes=5)
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
            from campctl.store.objects import get_object

            obj = get_object(self.db, "Scenario", name)
            self.scenarios[name] = obj["spec"] if obj else None
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


def _channel_spec(db: Database, name: str) -> dict | None:
    from campctl.store.objects import get_object

    obj = get_object(db, "Channel", name)
    return None if obj is None else obj["spec"]


def load_channel(db: Database, name: str, environ: Mapping[str, str]) -> Channel:
    """The named channel (a definition, or the built-in outbox); ChannelError if unusable."""
    return open_channel(name, _channel_spec(db, name), environ, base_dir=db.path.parent)


def _window(clock_now: datetime, seconds: int) -> tuple[datetime, float]:
    """(start of the fixed rate window containing `clock_now`, seconds until it ends)."""
    epoch = clock_now.timestamp()
    start = math.floor(epoch / seconds) * seconds
    return datetime.fromtimestamp(start, UTC), start + seconds - epoch


def deliver_due(
    db: Database,
    *,
    now: datetime,
    run_ids: Sequence[int],
    scenario_items: bool,
    environ: Mapping[str, str],
    max_messages: int | None = None,
    deadline: float | None = None,
    stop_requested: Callable[[], bool] | None = None,
    dry_run: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    batch_size: int | None = None,
) -> DeliveryReport:
    """Deliver the due items of `run_ids` (and scenario items): see the module docstring.

    `deadline` is a `monotonic()` value after which no new batch starts; `stop_requested` is
    asked between batches; `max_messages` caps the items taken in this pass.
    """
    report = DeliveryReport()
    run_ids = [int(r) for r in run_ids]
    if not run_ids and not scenario_items:
        return report
    clock = _Clock(now, monotonic)
    channels = store.due_channels(db, run_ids=run_ids, scenario_items=scenario_items, now=now)
    content = _Content(db)
    content.preload_runs(run_ids)
    taken = 0
    for name in channels:
        try:
            channel: Channel | None = load_channel(db, name, environ)
        except ChannelError as exc:
            channel = None
            problem = _unusable(db, name, environ, exc)
            report.errors.append(problem)
        except Exception as exc:  # a definition the engine cannot read: this channel only
            channel = None
            problem = " ".join(f"channel {name} cannot be opened: {type(exc).__name__}: "
                               f"{exc}".split())[:300]
            report.errors.append(problem)
        if dry_run:
            taken += _dry_run_channel(db, report, name, channel, run_ids=run_ids,
                                      scenario_items=scenario_items, now=now,
                                      remaining=None if max_messages is None
                                      else max_messages - taken)
            continue
        try:
            while True:
                if stop_requested is not None and stop_requested():
                    return report
                if deadline is not None and monotonic() >= deadline:
                    return report
                limit = batch_size or (channel.batch_size if channel else 500)
                if max_messages is not None:
                    limit = min(limit, max_messages - taken)
                    if limit <= 0:
                        return report
                got = _one_batch(db, report, name, channel, None if channel else problem,
                                 content=content, clock=clock, run_ids=run_ids,
                                 scenario_items=scenario_items, now=now, limit=limit,
                                 deadline=deadline, sleep=sleep)
                if got is None:  # rate window full: it slept, try again
                    continue
                if got == 0:
                    break
                taken += got
        finally:
            if channel is not None:
                channel.close()
    return report


def _one_batch(db, report, name, channel, problem, *, content, clock, run_ids, scenario_items,
               now, limit, deadline, sleep) -> int | None:
    """Claim, render, hand over and record one batch. Returns the number of items taken, 0 when
    nothing is left, None after sleeping for a per-second rate window."""
    token = os.urandom(12).hex()  # names this claim; cheaper to import than uuid
    handing_over = False
    try:
        with db.atomic():
            at = clock.now()
            if channel is not None and channel.rate:
                count, seconds = channel.rate
                start, left = _window(at, seconds)
                budget = count - store.rate_used(db, channel=name, window_start=start)
                if budget <= 0:
                    waiting = store.count_due(db, channel=name, run_ids=run_ids,
                                              scenario_items=scenario_items, now=now)
                    if waiting == 0:
                        return 0
                    fits = deadline is None or clock.monotonic() + left < deadline
                    if left <= MAX_RATE_SLEEP and fits:
                        sleep(left)
                        return None
                    report.waiting_rate += waiting
                    report.notes.append(f"channel {name}: {waiting} item(s) wait for the rate "
                                        f"limit {channel.spec.get('rate')}")
                    return 0
                limit = min(limit, budget)
            ids = store.claim(db, channel=name, run_ids=run_ids, scenario_items=scenario_items,
                              now=now, until=at + LEASE, token=token, limit=limit)
            if not ids:
                return 0
            if channel is not None and channel.rate:
                store.rate_add(db, channel=name, window_start=start, count=len(ids),
                               prune_before=start - timedelta(days=1))
            rows = store.load_items(db, ids)
            if channel is not None and not channel.in_store:
                # Taken before the claim commits: a pause that commits after this claim waits
                # until the batch is handed over (see Database.wait_for_hand_overs).
                db.hand_over_begin()
                handing_over = True
        return _hand_over(db, report, name, channel, problem, token, rows, content=content,
                          clock=clock)
    finally:
        if handing_over:
            db.hand_over_end()


def _hand_over(db, report, name, channel, problem, token, rows, *, content, clock) -> int:
    """Render the claimed rows, hand them to the channel, record the outcomes."""
    sent_at = to_db(clock.now())
    messages: list[tuple[dict, Message]] = []
    failed: list[tuple[int, str]] = []
    cancelled: list[tuple[int, str]] = []
    for row in rows:
        if problem is not None:
            failed.append((row["id"], problem))
            continue
        if row["contact_id"] is not None and row["contact_row"] is None:
            cancelled.append((row["id"], "contact was erased"))
            continue
        try:
            source, include_opted_out, fields = content.for_item(row)
            if row["opted_out"] and not include_opted_out:
                cancelled.append((row["id"], f"contact opted out of {row['message_type']}"))
                continue
            context = contact_context(
                external_id=row["external_id"], email=row["email"], phone=row["phone"],
                attrs=_json(row["attrs"], {}),
                groups=row["groups"].split("\x1f") if row["groups"] else [],
            )
            if row["profile_id"] is not None:
                # A scenario message sees its profile's capture data as `event.*`.
                context["event"] = _json(row["profile_data"], {})
            subject, body = content.compiled(source).render(context)
        except TemplateFailed as exc:
            failed.append((row["id"], exc.reason))
            continue
        except Exception as exc:  # a broken stored message fails its item, not the batch
            text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            failed.append((row["id"], f"message could not be prepared: {text}"))
            continue
        record = {
            "message_id": row["message_id"], **fields, "contact": row["external_id"],
            "channel": name, "subject": subject, "body": body, "sent_at": sent_at,
            "to": row["email"] if channel is None or channel.type != "webhook"
            else (row["email"] or row["phone"]),
        }
        messages.append((row, Message(row["message_id"], row["email"], subject, body, record)))

    outcomes: list[Outcome]
    untouched: list[int] = []
    if not messages:
        outcomes = []
    elif channel.in_store:
        outcomes = [Outcome(SENT)] * len(messages)
    else:
        outcomes, untouched = _hand_over_each(db, report, name, channel, token, messages,
                                              sent_at)
        recorded = {i for i, o in enumerate(outcomes) if o is RECORDED}
        messages = [m for i, m in enumerate(messages[:len(outcomes)]) if i not in recorded]
        outcomes = [o for i, o in enumerate(outcomes) if i not in recorded]
    if channel is not None and not channel.in_store:
        db.hand_over_end()  # handed over: a pause may commit now (before this records it)

    _record(db, report, name, channel, token, messages, outcomes, failed, cancelled, clock,
            untouched=untouched)
    return len(rows)


RECORDED = Outcome(SENT, "recorded at hand-over")


def _hand_over_each(db, report, name, channel, token, messages, sent_at):
    """Hand messages to an external channel one by one, recording each sent one in its own
    short transaction before the next goes: a kill between a hand-over and its record repeats
    at most that one message. When the write lock is not free within RECORD_WAIT_MS (a pause
    or another tick holds it) the batch stops there and the rest is given back unsent.

    Before each message goes, a committed `handover_begun` mark says it may reach the channel
    (in the transaction that records the previous one): after a crash, only that message is in
    doubt. The batch also stops when the next item was cancelled meanwhile (stop, closing).

    Returns (outcomes of the messages tried, RECORDED for those already recorded; ids given
    back)."""
    outcomes: list[Outcome] = []
    at = from_db(sent_at)

    def begin(index: int) -> bool:
        return store.begin_hand_over(db, token=token, item_id=messages[index][0]["id"])

    try:
        with db.atomic(wait_ms=RECORD_WAIT_MS):
            go_on = begin(0)
    except StateLocked:
        go_on = False
    if not go_on:
        return [], [row["id"] for row, _ in messages]
    try:
        for index, ((row, _), outcome) in enumerate(
                zip(messages, channel.deliver([m for _, m in messages]), strict=False)):
            more = index + 1 < len(messages)
            try:
                with db.atomic(wait_ms=RECORD_WAIT_MS):
                    marked = (store.mark_sent(db, token=token, ids=[row["id"]], now=at)
                              if outcome.ok else set())
                    go_on = not more or begin(index + 1)
            except StateLocked:
                outcomes.append(outcome)  # recorded with the rest, after the lock is free
                break
            report.sent += len(marked)
            outcomes.append(RECORDED if outcome.ok else outcome)
            if not go_on:
                break
    except Exception as exc:  # a channel bug must not leave the batch claimed for 5 minutes
        reason = channel.redact(f"channel {name} failed: {type(exc).__name__}: {exc}")
        report.errors.append(reason)
        outcomes += [Outcome("transient", reason)] * (len(messages) - len(outcomes))
    untouched = [row["id"] for row, _ in messages[len(outcomes):]]
    return outcomes, untouched


def _record(db, report, name, channel, token, messages, outcomes, failed, cancelled, clock, *,
            untouched=()):
    sent_ids = [row["id"] for (row, _), o in zip(messages, outcomes, strict=True) if o.ok]
    permanent = [(row["id"], o.reason or "refused") for (row, _), o in
                 zip(messages, outcomes, strict=True) if o.status == PERMANENT]
    at = clock.now()
    transient = [(row["id"], o.reason or "temporary failure",
                  next_attempt(at, row["attempts"], o.retry_after))
                 for (row, _), o in zip(messages, outcomes, strict=True)
                 if not o.ok and o.status != PERMANENT]
    by_id = {row["id"]: m for row, m in messages}
    wrote = False
    try:
        with db.atomic():
            if channel is not None and channel.in_store and sent_ids:
                # The outbox delivers at this commit: a run paused or stopped since the claim
                # gets its items back unsent.
                keep = store.deliverable(db, sent_ids)
                store.release(db, token=token, ids=[i for i in sent_ids if i not in keep])
                sent_ids = [i for i in sent_ids if i in keep]
            marked = store.mark_sent(db, token=token, ids=sent_ids, now=_sent_at(messages, at))
            if channel is not None and channel.in_store and marked:
                records = [by_id[i].record for i in sent_ids if i in marked]
                store.insert_outbox(db, records)
                _write_outbox_file(db, channel, records, now=at)
                wrote = True
            report.sent += len(marked)
            store.release(db, token=token, ids=list(untouched))
            _record_failures(db, report, channel, token, permanent + failed, transient, cancelled,
                             at=at)
            report.cancelled += store.cancel_where_run_ended(
                db, [row["id"] for row, _ in messages] + list(untouched))
    except ChannelError as exc:  # the outbox file could not be written: nothing was recorded
        report.errors.append(exc.reason)
        retry = [(row["id"], exc.reason, at + backoff(row["attempts"])) for row, _ in messages]
        with db.atomic():
            _record_failures(db, report, channel, token, failed, retry, cancelled, at=at)
    except BaseException:  # not recorded (full or read-only state file): take the lines back
        if wrote:
            channel.discard_written()
        raise


def _write_outbox_file(db: Database, channel: Channel, records: list[dict], *,
                       now: datetime) -> None:
    """Append the batch to the outbox `dir:` file inside the transaction that records it, and
    record the file's new length in that transaction: lines a killed process wrote beyond the
    last committed length are cut off by the next append, so a retried batch is not doubled."""
    from campctl.channels.outbox import OutboxChannel

    if not isinstance(channel, OutboxChannel) or channel.path is None:
        return
    key = os.path.abspath(channel.path)
    end = channel.write_lines(records, committed_length=store.outbox_file_length(db, key))
    if end is not None:
        store.set_outbox_file_length(db, key, end, now=now)


def _record_failures(db, report, channel, token, permanent, transient, cancelled, *, at):
    report.failed += store.mark_failed(db, token=token, items=permanent, now=at)
    max_attempts = channel.max_attempts if channel is not None else 1
    retried, gave_up = store.mark_retry(db, token=token, items=transient,
                                        max_attempts=max_attempts, now=at)
    report.retried += retried
    report.failed += gave_up
    report.cancelled += store.mark_cancelled(db, token=token, items=cancelled)


def _sent_at(messages, fallback: datetime) -> datetime:
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


def _dry_run_channel(db, report, name, channel, *, run_ids, scenario_items, now,
                     remaining) -> int:
    due = store.count_due(db, channel=name, run_ids=run_ids, scenario_items=scenario_items,
                          now=now)
    if due == 0:
        return 0
    if channel is None:
        report.failed += due
        report.notes.append(f"channel {name} is not usable: {due} item(s) would fail")
        return due
    would = due if remaining is None else max(0, min(due, remaining))
    if channel.rate:
        count, seconds = channel.rate
        start, _ = _window(now, seconds)
        budget = max(0, count - store.rate_used(db, channel=name, window_start=start))
        if budget < would:
            report.waiting_rate += would - budget
            report.notes.append(f"channel {name}: {would - budget} item(s) would wait for the "
                                f"rate limit {channel.spec.get('rate')}")
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


def _send_one(db: Database, channel: Channel, *, to: str, subject: str, body: str,
              message_id: str, now: datetime, extra: dict) -> SendResult:
    record = {"message_id": message_id, "run": None, "campaign": None, "stage": None,
              "scenario": None, "step": None, "contact": None, "channel": channel.name,
              "subject": subject, "body": body, "sent_at": to_db(now), "to": to, **extra}
    message = Message(message_id, to, subject, body, record)
    try:
        if channel.in_store:
            wrote = False
            try:
                with db.atomic():
                    store.insert_outbox(db, [record])
                    _write_outbox_file(db, channel, [record], now=now)
                    wrote = True
            except BaseException:
                if wrote:
                    channel.discard_written()
                raise
            return SendResult(channel.name, to, message_id, True)
        outcome = channel.send_batch([message])[0]
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

    return redactor_for(_channel_spec(db, channel), environ)(text) or ""


def send_test(db: Database, channel: str, to: str, *, now: datetime,
              environ: Mapping[str, str]) -> SendResult:
    """Send one test message through `channel` to `to` (not throttled, not queued).

    NotFound if the channel is neither defined nor the built-in outbox."""
    if _channel_spec(db, channel) is None and channel != BUILTIN_OUTBOX:
        raise NotFound(f"no channel named {channel!r}; see 'campctl get channels'")
    message_id = f"test-{_digest(channel, to, to_db(now))}"
    try:
        opened = load_channel(db, channel, environ)
    except ChannelError as exc:
        return SendResult(channel, to, message_id, False, _unusable(db, channel, environ, exc))
    subject = f"campctl test message ({channel})"
    body = (f"This is a test message sent by campctl through channel {channel} "
            f"at {to_db(now)}.\n")
    return _send_one(db, opened, to=to, subject=subject, body=body, message_id=message_id,
                     now=now, extra={})


def send_notification(db: Database, *, channel: str, to: str, subject: str, body: str,
                      now: datetime, environ: Mapping[str, str],
                      message_id: str | None = None) -> SendResult:
    """Deliver one operator notification; never raises for channel problems (see `.ok`,
    `.reason`). Pass a stable `message_id` (e.g. `notify-<id>`) so a retry can be deduplicated."""
    message_id = message_id or f"notify-{_digest(channel, to, subject, body, to_db(now))}"
    try:
        opened = load_channel(db, channel, environ)
    except ChannelError as exc:
        return SendResult(channel, to, message_id, False, _unusable(db, channel, environ, exc))
    return _send_one(db, opened, to=to, subject=subject, body=body, message_id=message_id,
                     now=now, extra={})
