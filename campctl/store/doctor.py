"""The tick markers (schedule_state kind 'Tick') and the read-only queries of `campctl doctor`.

Markers: a full tick (not the no-op fast path, not a dry run) records `started` before its
phases (only when no earlier start is still unfinished, so the row keeps the first start of a
run of ticks that never finish) and `finished` after them, each in its own transaction; both
writes are conditional, so the same `now` ticked twice writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from campctl.store.db import Database
from campctl.store.runs import in_doubt_sql
from campctl.timeutil import to_db

ACTIVE_RUNS = "('scheduled', 'building', 'queued', 'sending')"


class TickMarks(NamedTuple):
    started: str | None
    finished: str | None


def mark_tick_started(db: Database, *, now: datetime) -> None:
    """Record a start at `now` unless an earlier start has not finished yet."""
    db.execute(
        "INSERT INTO schedule_state (kind, name, next_due_at, cursor_at)"
        " VALUES ('Tick', 'started', NULL, ?) ON CONFLICT (kind, name) DO UPDATE"
        " SET cursor_at = excluded.cursor_at"
        f" WHERE {db.d.is_not('schedule_state.cursor_at', 'excluded.cursor_at')}"
        " AND (schedule_state.cursor_at IS NULL OR schedule_state.cursor_at <= coalesce(("
        "SELECT f.cursor_at FROM schedule_state f WHERE f.kind = 'Tick'"
        " AND f.name = 'finished'), ''))",
        (to_db(now),),
    )


def mark_tick_finished(db: Database, *, now: datetime) -> None:
    db.execute(
        "INSERT INTO schedule_state (kind, name, next_due_at, cursor_at)"
        " VALUES ('Tick', 'finished', NULL, ?) ON CONFLICT (kind, name) DO UPDATE"
        " SET cursor_at = excluded.cursor_at"
        f" WHERE {db.d.is_not('schedule_state.cursor_at', 'excluded.cursor_at')}",
        (to_db(now),),
    )


def tick_marks(db: Database) -> TickMarks:
    found = {r[0]: r[1] for r in db.query(
        "SELECT name, cursor_at FROM schedule_state WHERE kind = 'Tick'")}
    return TickMarks(found.get("started"), found.get("finished"))


# Each query: the earliest instant (text) since which some work has waited for a tick, or NULL.
_WAITING: tuple[tuple[str, str], ...] = (
    ("schedule due", "SELECT min(next_due_at) FROM schedule_state WHERE next_due_at <= ?"),
    ("campaign launched", "SELECT min(o.launched_at) FROM objects o WHERE o.kind = 'Campaign'"
     " AND o.launched_at IS NOT NULL AND o.status = 'approved' AND o.launched_at <= ?"
     " AND NOT EXISTS (SELECT 1 FROM schedule_state s WHERE s.kind = 'Campaign'"
     " AND s.name = o.name AND s.cursor_at = o.launched_at)"),
    ("run active", f"SELECT min(r.updated_at) FROM runs r WHERE r.status IN {ACTIVE_RUNS}"
     " AND r.updated_at <= ? AND NOT EXISTS (SELECT 1 FROM schedule_state s"
     " WHERE s.kind = 'Run' AND s.name = CAST(r.id AS TEXT) AND s.next_due_at IS NOT NULL)"),
    ("campaign closing", "SELECT min(closes_at) FROM runs WHERE closes_at IS NOT NULL"
     f" AND closes_at <= ? AND status IN {ACTIVE_RUNS[:-1]}, 'paused')"),
    ("new events", "SELECT min(recorded_at) FROM events WHERE recorded_at <= ? AND id > coalesce(("
     "SELECT CAST(cursor_at AS INTEGER) FROM schedule_state WHERE kind = 'Events'"
     " AND name = 'seen'), 0)"),
    ("scenario item", "SELECT min(coalesce(next_attempt_at, created_at)) FROM queue_items"
     " WHERE run_id IS NULL AND status = 'queued'"
     " AND coalesce(next_attempt_at, created_at) <= ?"),
    ("profile due", "SELECT min(wake_at) FROM scenario_profiles WHERE status = 'waiting'"
     " AND wake_at <= ?"),
)


def waiting_since(db: Database, *, now: datetime) -> tuple[str, str] | None:
    """(reason, since) of the work that has waited longest for a tick at `now`, or None."""
    at = to_db(now)
    found = []
    for reason, sql in _WAITING:
        since = db.scalar(sql, (at,))
        if since is not None:
            found.append((str(since), reason))
    if not found:
        return None
    since, reason = min(found)
    return reason, since


def expired_claims(db: Database, *, now: datetime) -> dict[str, Any]:
    """Queue items still claimed after their lease: count, oldest lease end, and how many
    were being handed over (maybe sent) when their tick stopped."""
    row = db.one(
        "SELECT count(*) AS n, min(claimed_until) AS oldest,"
        f" count(*) FILTER (WHERE {in_doubt_sql(db)}) AS handing FROM queue_items"
        " WHERE claimed_until IS NOT NULL AND claimed_until <= ?",
        (to_db(now),),
    )
    assert row is not None
    return {"count": int(row["n"]), "oldest": row["oldest"], "handing": int(row["handing"] or 0)}


def idle_sending_runs(db: Database) -> list[int]:
    """Runs `sending` without one queued item left (the tick that sent the last one should
    have completed them)."""
    return [int(r[0]) for r in db.query(
        "SELECT r.id FROM runs r WHERE r.status = 'sending' AND NOT EXISTS (SELECT 1"
        " FROM queue_items q WHERE q.run_id = r.id AND q.status = 'queued') ORDER BY r.id")]


def undelivered_notifications(db: Database, *, max_attempts: int) -> dict[str, Any]:
    row = db.one(
        "SELECT count(*) AS n, min(at) AS oldest,"
        " count(*) FILTER (WHERE attempts >= ?) AS given_up,"
        " max(delivery_error) AS error FROM notifications WHERE delivered_at IS NULL",
        (max_attempts,),
    )
    assert row is not None
    return {"count": int(row["n"]), "oldest": row["oldest"],
            "given_up": int(row["given_up"] or 0), "error": row["error"]}


def object_failures(db: Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(
        "SELECT kind, name, reason FROM object_failures ORDER BY kind, name")]


def channel_specs(db: Database) -> list[tuple[str, Any]]:
    """(name, spec) of every channel definition."""
    from campctl.store.objects import all_records

    return [(r.name, r.spec) for r in all_records(db) if r.kind == "Channel"]


def object_zones(db: Database) -> list[str]:
    """The distinct `timezone` values written in campaign, plan and scenario definitions."""
    from campctl.store.objects import all_records

    zones: set[str] = set()
    for record in all_records(db):
        spec = record.spec if isinstance(record.spec, dict) else {}
        for block in (spec, spec.get("schedule"), spec.get("launch")):
            if isinstance(block, dict) and isinstance(block.get("timezone"), str):
                zones.add(block["timezone"])
    return sorted(zones)


# --- integrity ----------------------------------------------------------------------------------

def integrity(db: Database) -> dict[str, Any]:
    """SQLite: `PRAGMA quick_check`. PostgreSQL: a round trip, the schema version, and the dead
    tuples of queue_items (autovacuum falling behind the claim/mark updates)."""
    from campctl.store.db import schema_version

    if not db.d.is_postgres:
        lines = [str(r[0]) for r in db.query("PRAGMA quick_check")]
        return {"ok": lines == ["ok"], "lines": lines[:5], "version": schema_version(db)}
    ok = db.scalar("SELECT 1") == 1
    row = db.one(
        "SELECT n_live_tup AS live, n_dead_tup AS dead FROM pg_stat_user_tables"
        " WHERE relname = 'queue_items' AND schemaname = current_schema()")
    return {"ok": ok, "lines": [], "version": schema_version(db),
            "live": int(row["live"]) if row else 0, "dead": int(row["dead"]) if row else 0}
