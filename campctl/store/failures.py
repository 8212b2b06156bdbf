"""Failed messages: the items that failed for good, with their reasons, per run or scenario."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.timeutil import to_db

_FIELDS = (
    "SELECT q.message_id, coalesce(c.external_id, '(erased)') AS contact, q.run_id AS run,"
    " q.scenario, q.step, q.channel, q.attempts, q.last_error, q.failed_at"
    " FROM queue_items q LEFT JOIN contacts c ON c.id = q.contact_id"
)


def failed_items(db: Database, *, run_id: int | None = None, scenario: str | None = None,
                 step: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Failed items of one run, or of one scenario (optionally one step), oldest failure first;
    `limit` keeps the most recent N."""
    params: list[Any]
    if run_id is not None:
        where, params = "q.run_id = ?", [run_id]
    else:
        where, params = "q.scenario = ?", [scenario]
        if step is not None:
            where += " AND q.step = ?"
            params.append(step)
    sql = (f"{_FIELDS} WHERE {where} AND q.status = 'failed'"
           " ORDER BY coalesce(q.failed_at, q.created_at) DESC, q.id DESC")
    if limit:
        sql += " LIMIT ?"
        params.append(limit)
    return [dict(r) for r in reversed(db.query(sql, params))]


def reasons(db: Database, *, run_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The most frequent reasons a run's messages failed: `[{reason, count}]`."""
    return [{"reason": r[0], "count": r[1]} for r in db.query(
        "SELECT coalesce(last_error, '(no reason recorded)'), count(*) AS n FROM queue_items"
        " WHERE run_id = ? AND status = 'failed' GROUP BY 1 ORDER BY n DESC, 1 LIMIT ?",
        (run_id, limit))]


def scenario_failures(db: Database, scenario: str, *, since: datetime,
                      now: datetime) -> tuple[int, int]:
    """(failed messages, profiles with a failed message and not already counted as an error
    profile) of a scenario whose failure falls in [since, now]."""
    lo, hi = to_db(since), to_db(now)
    row = db.one(
        "SELECT count(*), count(DISTINCT CASE WHEN p.id IS NOT NULL AND NOT (p.status = 'error'"
        "   AND p.exited_at >= :lo AND p.exited_at <= :hi) THEN q.profile_id END)"
        " FROM queue_items q LEFT JOIN scenario_profiles p ON p.id = q.profile_id"
        " WHERE q.scenario = :scenario AND q.status = 'failed'"
        " AND coalesce(q.failed_at, q.created_at) >= :lo"
        " AND coalesce(q.failed_at, q.created_at) <= :hi",
        {"scenario": scenario, "lo": lo, "hi": hi})
    return (int(row[0] or 0), int(row[1] or 0)) if row is not None else (0, 0)
