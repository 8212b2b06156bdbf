"""What `campctl simulate` reads and marks in its temporary copy of the state (never the source).

The simulation runs the engine on a throw-away SQLite copy (`store.copy`). Besides the engine's
own tables it keeps two bookkeeping tables there, `sim_held` (a message seen waiting for its
window or its channel's rate, or held by a frequency cap, first at `at`) and `sim_ended` (a
message seen failed or cancelled, first at `at`; NULL for those that had ended before the
simulation began).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from campctl.store.db import Database

TABLES = (
    "CREATE TABLE IF NOT EXISTS sim_held (id INTEGER NOT NULL, why TEXT NOT NULL, "
    "at TEXT NOT NULL, PRIMARY KEY (id, why))",
    "CREATE TABLE IF NOT EXISTS sim_ended (id INTEGER PRIMARY KEY, at TEXT)",
)


def prepare(db: Database) -> int:
    """The bookkeeping tables; messages ended before now are marked as such. Returns the
    highest queue item id (those above it are built by the simulation). Caller's transaction."""
    for sql in TABLES:
        db.execute(sql)
    db.execute("INSERT INTO sim_ended (id, at) SELECT id, NULL FROM queue_items"
               " WHERE status IN ('failed', 'cancelled') ON CONFLICT (id) DO NOTHING")
    return int(db.scalar("SELECT coalesce(max(id), 0) FROM queue_items") or 0)


def occurrence_mark(db: Database) -> int:
    """The highest occurrence id (those above it are recorded by the simulation)."""
    return int(db.scalar("SELECT coalesce(max(id), 0) FROM occurrences") or 0)


def reroute_channels(db: Database) -> list[str]:
    """Every defined channel becomes an outbox without a `dir:` (rows in this copy only),
    keeping its rate and max_attempts. Returns the names of those that were not outboxes
    already. Caller's transaction."""
    changed = []
    for name, text in db.query("SELECT name, spec FROM objects WHERE kind = 'Channel'"
                               " ORDER BY name"):
        try:
            spec = json.loads(text) if isinstance(text, str) else dict(text or {})
        except ValueError:
            spec = {}
        if not isinstance(spec, dict):
            spec = {}
        outbox: dict[str, Any] = {"type": "outbox"}
        for key in ("rate", "max_attempts"):
            if key in spec:
                outbox[key] = spec[key]
        if spec.get("type", "outbox") != "outbox":
            changed.append(str(name))
        db.execute("UPDATE objects SET spec = ? WHERE kind = 'Channel' AND name = ?",
                   (json.dumps(outbox, sort_keys=True), name))
    return changed


def channel_rates(db: Database) -> dict[str, str]:
    """name -> rate text of the channels that have one."""
    found = {}
    for name, text in db.query("SELECT name, spec FROM objects WHERE kind = 'Channel'"):
        try:
            rate = json.loads(text).get("rate")
        except (ValueError, AttributeError):
            continue
        if rate not in (None, ""):
            found[str(name)] = str(rate)
    return found


# The instants at which a probe of `schedules.due_reason` that depends on `now` turns true.
_THRESHOLDS = (
    "SELECT min(next_due_at) FROM schedule_state WHERE next_due_at > :now",
    "SELECT min(queue_at) FROM runs WHERE status = 'paused' AND paused_from = 'scheduled'"
    " AND queue_at > :now",
    "SELECT min(closes_at) FROM runs WHERE closes_at > :now"
    " AND status IN ('scheduled', 'building', 'queued', 'sending', 'paused')",
    "SELECT min(wake_at) FROM scenario_profiles WHERE status = 'waiting' AND wake_at > :now",
    "SELECT min(claimed_until) FROM notifications WHERE delivered_at IS NULL"
    " AND claimed_until > :now",
)


def next_threshold(db: Database, now_text: str) -> str | None:
    """The earliest instant after `now_text` at which a tick may have work again, when none
    has now (every probe that does not depend on the time stays false until something
    writes). None: nothing will ever be due without an outside change."""
    found = [db.scalar(sql, {"now": now_text}) for sql in _THRESHOLDS]
    return min((f for f in found if f is not None), default=None)


def active_built_runs(db: Database) -> list[dict]:
    """Runs that are built and may deliver: id, spec, send_at, instance_id."""
    return [dict(r) for r in db.query(
        "SELECT id, spec, send_at, instance_id FROM runs WHERE status IN ('queued', 'sending')"
        " AND built_at IS NOT NULL ORDER BY id")]


def _ids(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def mark_held_window(db: Database, run_ids: Sequence[int], *, at: str,
                     zones: Sequence[str] | None = None) -> None:
    """The queued messages of `run_ids` (runs whose window is closed) are held by it; with
    `zones`, only those whose window zone is among them (a run whose window is read in each
    contact's zone: the zones closed at `at`)."""
    if not run_ids or (zones is not None and not zones):
        return
    in_zones = f" AND window_zone IN ({_ids(zones)})" if zones is not None else ""
    db.execute(
        "INSERT INTO sim_held (id, why, at) SELECT id, 'window', ? FROM queue_items"
        f" WHERE status = 'queued' AND run_id IN ({_ids(run_ids)}){in_zones}"
        " ON CONFLICT (id, why) DO NOTHING", (at, *run_ids, *(zones or ())))


def mark_held_rate(db: Database, channels: Iterable[str], live_run_ids: Sequence[int], *,
                   at: str) -> None:
    """Messages of rate-limited `channels` still due after a tick: held by the rate."""
    names = list(channels)
    if not names:
        return
    runs = f" OR run_id IN ({_ids(live_run_ids)})" if live_run_ids else ""
    db.execute(
        "INSERT INTO sim_held (id, why, at) SELECT id, 'rate', ? FROM queue_items"
        f" WHERE status = 'queued' AND channel IN ({_ids(names)})"
        " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        " AND (claimed_until IS NULL OR claimed_until <= ?)"
        f" AND (run_id IS NULL{runs})"
        " ON CONFLICT (id, why) DO NOTHING", (at, *names, at, at, *live_run_ids))


def mark_held_cap(db: Database, *, at: str) -> None:
    """Messages a frequency cap held (deferred or dropped) since the last call: held at `at`."""
    db.execute(
        "INSERT INTO sim_held (id, why, at) SELECT id, 'cap', ? FROM queue_items"
        " WHERE capped IS NOT NULL ON CONFLICT (id, why) DO NOTHING", (at,))


def mark_ended(db: Database, *, at: str) -> None:
    """Messages that failed or were cancelled since the last call ended at `at`."""
    db.execute("INSERT INTO sim_ended (id, at) SELECT id, ? FROM queue_items"
               " WHERE status IN ('failed', 'cancelled') ON CONFLICT (id) DO NOTHING", (at,))


def occurrences_after(db: Database, after_id: int) -> list[dict]:
    return [dict(r) for r in db.query(
        "SELECT kind, name, scheduled_at, status, reason, created_at FROM occurrences WHERE id > ?"
        " ORDER BY id", (after_id,))]


_ITEM = (
    "SELECT q.id, q.status, q.last_error, q.created_at, q.sent_at, q.scenario, q.channel,"
    " c.external_id AS contact, r.campaign, r.stage, pi.plan, e.at AS ended_at"
    " FROM queue_items q LEFT JOIN runs r ON r.id = q.run_id"
    " LEFT JOIN plan_instances pi ON pi.id = r.instance_id"
    " LEFT JOIN contacts c ON c.id = q.contact_id"
    " LEFT JOIN sim_ended e ON e.id = q.id"
)


def items_touched(db: Database, *, built_after: int, start: str) -> list[dict]:
    """Messages the simulation built, sent, failed or cancelled (with their object)."""
    return [dict(r) for r in db.query(
        _ITEM + " WHERE q.id > ? OR q.sent_at >= ? OR e.at IS NOT NULL ORDER BY q.id",
        (built_after, start))]


def held(db: Database) -> list[dict]:
    """Every hold seen: the message's object, why and when first."""
    return [dict(r) for r in db.query(
        "SELECT h.why, h.at, q.scenario, r.campaign, pi.plan FROM sim_held h"
        " JOIN queue_items q ON q.id = h.id LEFT JOIN runs r ON r.id = q.run_id"
        " LEFT JOIN plan_instances pi ON pi.id = r.instance_id ORDER BY h.id, h.why")]
