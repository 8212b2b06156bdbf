"""Campaign occurrences, schedule_state (next-due instants, run wake-ups) and the no-op tick probe.

`schedule_state` rows used by the campaign engine:
- kind 'Campaign': `next_due_at` = when the campaign's schedule next needs attention,
  `cursor_at` = the launch (objects.launched_at) already processed;
- kind 'Run', name = run id: the run sleeps until `next_due_at` (send schedule or window);
- kind 'Events', name 'seen': `cursor_at` = the highest event id a full tick has looked at.
Every write is conditional, so a tick that changes nothing writes nothing.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, NamedTuple

from campctl.timeutil import to_db

ACTIVE_RUN_STATUSES = ("scheduled", "building", "queued", "sending")


def _t(value: datetime | None) -> str | None:
    return None if value is None else to_db(value)


# --- occurrences ------------------------------------------------------------------------------

class Slot(NamedTuple):
    """One scheduled instant of one object: the key of its occurrence."""

    kind: str
    name: str
    scheduled_at: datetime


def insert_occurrence(db, slot: Slot, *, status: str, now: datetime,
                      reason: str | None = None) -> int | None:
    """Record an occurrence once per slot (kind, name, scheduled_at); None if it already
    existed."""
    row = db.one(
        "INSERT INTO occurrences (kind, name, scheduled_at, status, reason, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name, scheduled_at) DO NOTHING"
        " RETURNING id",
        (slot.kind, slot.name, to_db(slot.scheduled_at), status, reason, to_db(now)),
    )
    return None if row is None else int(row[0])


def last_occurrence_at(db, *, kind: str, name: str) -> str | None:
    return db.scalar(
        "SELECT max(scheduled_at) FROM occurrences WHERE kind = ? AND name = ?", (kind, name)
    )


def occurrence_exists(db, *, kind: str, name: str, scheduled_at: datetime) -> bool:
    return db.one(
        "SELECT 1 FROM occurrences WHERE kind = ? AND name = ? AND scheduled_at = ?",
        (kind, name, to_db(scheduled_at)),
    ) is not None


def list_occurrences(db, *, kind: str, name: str, limit: int = 50) -> list[dict]:
    return [dict(r) for r in db.query(
        "SELECT id, scheduled_at, status, reason FROM occurrences WHERE kind = ? AND name = ?"
        " ORDER BY scheduled_at DESC LIMIT ?", (kind, name, limit))]


# --- schedule_state ---------------------------------------------------------------------------

class ScheduleState(NamedTuple):
    """One schedule_state row: when the object next needs attention, and its cursor (a
    NamedTuple: this module is on the no-op tick's path, which does not load dataclasses)."""

    next_due_at: str | None = None
    cursor_at: str | None = None

    @classmethod
    def from_row(cls, row) -> ScheduleState:
        return cls(next_due_at=row["next_due_at"], cursor_at=row["cursor_at"])


def get_state(db, kind: str, name: str) -> ScheduleState | None:
    row = db.one(
        "SELECT next_due_at, cursor_at FROM schedule_state WHERE kind = ? AND name = ?",
        (kind, name),
    )
    return None if row is None else ScheduleState.from_row(row)


def set_state(db, kind: str, name: str, *, next_due_at: datetime | None,
              cursor_at: str | None = None, keep_cursor: bool = False) -> None:
    """Upsert a schedule_state row, writing only when something differs."""
    due = _t(next_due_at)
    if keep_cursor:
        db.execute(
            "INSERT INTO schedule_state (kind, name, next_due_at, cursor_at) VALUES (?, ?, ?, NULL)"
            " ON CONFLICT (kind, name) DO UPDATE SET next_due_at = excluded.next_due_at"
            f" WHERE {db.d.is_not('schedule_state.next_due_at', 'excluded.next_due_at')}",
            (kind, name, due),
        )
        return
    db.execute(
        "INSERT INTO schedule_state (kind, name, next_due_at, cursor_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (kind, name) DO UPDATE SET next_due_at = excluded.next_due_at,"
        " cursor_at = excluded.cursor_at"
        f" WHERE {db.d.is_not('schedule_state.next_due_at', 'excluded.next_due_at')}"
        f" OR {db.d.is_not('schedule_state.cursor_at', 'excluded.cursor_at')}",
        (kind, name, due, cursor_at),
    )


def lower_due(db, kind: str, name: str, *, due: datetime) -> None:
    """Bring an existing row's next_due_at forward to `due` (never later)."""
    db.execute(
        "UPDATE schedule_state SET next_due_at = ? WHERE kind = ? AND name = ?"
        " AND (next_due_at IS NULL OR next_due_at > ?)",
        (to_db(due), kind, name, to_db(due)),
    )


def clear_state(db, kind: str, name: str) -> None:
    db.execute("DELETE FROM schedule_state WHERE kind = ? AND name = ?", (kind, name))


def due_campaigns(db, *, now: datetime) -> list[str]:
    """Campaigns whose schedule needs attention: due by next_due_at, or launched and not yet
    processed (a launch the start command did not hand to on_launch)."""
    rows = db.query(
        "SELECT name FROM schedule_state WHERE kind = 'Campaign' AND next_due_at <= ?"
        " UNION "
        "SELECT o.name FROM objects o WHERE o.kind = 'Campaign' AND o.launched_at IS NOT NULL"
        " AND o.status = 'approved' AND NOT EXISTS (SELECT 1 FROM schedule_state s"
        " WHERE s.kind = 'Campaign' AND s.name = o.name AND s.cursor_at = o.launched_at)"
        " ORDER BY 1",
        (to_db(now),),
    )
    return [r[0] for r in rows]


def next_occurrences(db, *, limit: int = 10) -> list[dict]:
    return [dict(r) for r in db.query(
        "SELECT kind, name, next_due_at FROM schedule_state WHERE next_due_at IS NOT NULL"
        " AND kind IN ('Campaign', 'Plan', 'Scenario') ORDER BY next_due_at, kind, name LIMIT ?",
        (limit,))]


def run_wakes(db, run_ids: list[int]) -> dict[int, str]:
    if not run_ids:
        return {}
    names = [str(i) for i in run_ids]
    rows = db.query(
        "SELECT name, next_due_at FROM schedule_state WHERE kind = 'Run'"
        f" AND name IN ({', '.join('?' for _ in names)})", names)
    return {int(r[0]): r[1] for r in rows}


def clear_run_wakes(db) -> None:
    """Forget wake-ups of runs that are no longer active."""
    db.execute(
        "DELETE FROM schedule_state WHERE kind = 'Run' AND NOT EXISTS (SELECT 1 FROM runs r"
        " WHERE CAST(r.id AS TEXT) = schedule_state.name AND r.status IN"
        " ('scheduled', 'building', 'queued', 'sending'))"
    )


def events_seen(db) -> int:
    value = db.scalar(
        "SELECT cursor_at FROM schedule_state WHERE kind = 'Events' AND name = 'seen'")
    return int(value) if value else 0


def mark_events_seen(db) -> None:
    top = db.scalar("SELECT max(id) FROM events") or 0
    if top != events_seen(db):
        set_state(db, "Events", "seen", next_due_at=None, cursor_at=str(top))


_LAUNCHES = ("SELECT max(launched_at) || '|' || count(*) FROM objects"
             " WHERE kind = 'Campaign' AND launched_at IS NOT NULL")


def mark_launches_seen(db) -> None:
    seen = db.scalar(_LAUNCHES)
    if seen != db.scalar("SELECT cursor_at FROM schedule_state WHERE kind = 'Launches'"
                         " AND name = 'seen'"):
        set_state(db, "Launches", "seen", next_due_at=None, cursor_at=seen)


# --- the no-op probe --------------------------------------------------------------------------

# Each query reads an index (or a handful of rows) and answers "is there anything to do at ?".
_PROBES = (
    ("schedule due", "SELECT 1 FROM schedule_state WHERE next_due_at <= :now LIMIT 1"),
    # A launch changes the latest launch time or the number of launched campaigns; both come
    # from the objects_launched index, compared with what the last full tick saw.
    ("campaign launched", "SELECT 1 WHERE (" + _LAUNCHES + ") IS NOT (SELECT cursor_at"
     " FROM schedule_state WHERE kind = 'Launches' AND name = 'seen')"),
    ("plan changed", "SELECT 1 FROM objects o WHERE o.kind = 'Plan' AND o.status = 'approved'"
     " AND NOT EXISTS (SELECT 1 FROM schedule_state s WHERE s.kind = 'Plan' AND s.name = o.name"
     " AND s.cursor_at >= o.updated_at) LIMIT 1"),
    ("run active", "SELECT 1 FROM runs r WHERE r.status IN ('scheduled', 'building', 'queued',"
     " 'sending') AND NOT EXISTS (SELECT 1 FROM schedule_state s WHERE s.kind = 'Run'"
     " AND s.name = CAST(r.id AS TEXT) AND s.next_due_at > :now) LIMIT 1"),
    # pause: a run paused before it was built still builds when its queue time comes.
    ("paused run to build", "SELECT 1 FROM runs WHERE status = 'paused'"
     " AND paused_from = 'scheduled' AND (queue_at IS NULL OR queue_at <= :now) LIMIT 1"),
    # closing: an active run whose campaign's closes_at has come, even asleep until a later
    # send time (runs_closing index).
    ("campaign closing", "SELECT 1 FROM runs WHERE closes_at IS NOT NULL AND closes_at <= :now"
     " AND status IN ('scheduled', 'building', 'queued', 'sending', 'paused') LIMIT 1"),
    ("instance active", "SELECT 1 FROM plan_instances WHERE status IN ('running', 'paused')"
     " LIMIT 1"),
    ("scenario item", "SELECT 1 FROM queue_items WHERE run_id IS NULL AND status = 'queued'"
     " LIMIT 1"),
    ("profile due", "SELECT 1 FROM scenario_profiles WHERE status = 'active'"
     " OR (status = 'waiting' AND wake_at <= :now) LIMIT 1"),
    ("scenario scheduled", "SELECT 1 FROM objects o WHERE o.kind = 'Scenario'"
     " AND o.status = 'active' AND json_extract(o.spec, '$.launch.type') = 'schedule'"
     " AND NOT EXISTS (SELECT 1 FROM schedule_state s"
     " WHERE s.kind = 'Scenario' AND s.name = o.name) LIMIT 1"),
    ("new events", "SELECT 1 WHERE coalesce((SELECT max(id) FROM events), 0) > coalesce(("
     "SELECT CAST(cursor_at AS INTEGER) FROM schedule_state WHERE kind = 'Events'"
     " AND name = 'seen'), 0)"),
    # isolation: an object set aside by an earlier tick is retried at every tick, as promised,
    # even when nothing else is due (its events stay unconsumed until it goes through).
    ("object failing", "SELECT 1 FROM object_failures LIMIT 1"),
    # Operator notifications waiting for (re)delivery (time area; 5 = NOTIFY_MAX_ATTEMPTS).
    ("notification pending", "SELECT 1 FROM notifications WHERE delivered_at IS NULL"
     " AND attempts < 5 AND (claimed_until IS NULL OR claimed_until <= :now)"
     " AND EXISTS (SELECT 1 FROM config WHERE key = 'notify_channel')"
     " AND (recipient IS NOT NULL"
     " OR EXISTS (SELECT 1 FROM config WHERE key = 'notify_to')) LIMIT 1"),
)


def due_reason(conn: sqlite3.Connection | Any, now_text: str) -> str | None:
    """Why a tick at `now_text` has work, or None when it would do nothing. Takes a raw
    sqlite3 connection (the fast path) or a Database."""
    for reason, sql in _PROBES:
        try:
            if conn.execute(sql, {"now": now_text}).fetchone() is not None:
                return reason
        except sqlite3.OperationalError:
            return "probe failed"
    return None


def dumps(value: Any) -> str:
    import json  # here: the no-op tick's probe (below) never needs it

    return json.dumps(value, sort_keys=True)


def probe_file(path: str, now_text: str) -> str | None:
    """The fast path of `campctl tick`: open the state file with sqlite3 alone and say why a
    tick has work (or that the file needs the full CLI); None when there is nothing to do."""
    from campctl.store.schema import SCHEMA_VERSION

    try:
        conn = sqlite3.connect(path, timeout=5)
    except sqlite3.Error:
        return "cannot open"
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return "schema version differs"
        return due_reason(conn, now_text)
    except sqlite3.Error:
        return "probe failed"
    finally:
        conn.close()


# --- demo read-outs ---------------------------------------------------------------------------

def sample_contacts(db, count: int) -> list[str]:
    return [r[0] for r in db.query(
        "SELECT external_id FROM contacts ORDER BY id LIMIT ?", (count,))]


def delivered_sample(db, limit: int) -> list[dict]:
    return [dict(r) for r in db.query(
        "SELECT sent_at, contact, campaign, stage, scenario, step, subject FROM outbox"
        " ORDER BY sent_at, message_id LIMIT ?", (limit,))]


def delivered_total(db) -> int:
    return int(db.scalar("SELECT count(*) FROM outbox") or 0)
