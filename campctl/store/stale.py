"""Stale queue items: cancelling (or counting) the messages whose staleness deadline passed.

Called inside a claim transaction (engine/stale.py), before the claim: an item cancelled here is
never claimed, and an item another delivery holds (claimed, or a hand-over begun on it) is left
to that delivery. On PostgreSQL the rows are taken `FOR UPDATE SKIP LOCKED`, as a claim takes
them, so a concurrent claim and this never wait on each other's rows.
"""

from __future__ import annotations

from datetime import datetime

from campctl.store.db import Database
from campctl.store.delivery import DELIVERING_RUN_STATUSES
from campctl.store.runs import STALE_ERROR
from campctl.timeutil import to_db

# A waiting item no delivery holds now: queued, no hand-over begun, its claim (if any) expired.
_FREE = ("q.status = 'queued' AND q.handover_begun = 0"
         " AND (q.claimed_until IS NULL OR q.claimed_until <= ?)")


def _run_items(run_id: int, *, channel: str, now: datetime,
               zone: str | None = None) -> tuple[str, list]:
    """The free items of run `run_id` on `channel` (with `zone`: of that window zone), while
    the run delivers (queued or sending, its plan instance not paused, its campaign not
    closed): what a claim could take now, whatever their retry time."""
    marks = ", ".join("?" for _ in DELIVERING_RUN_STATUSES)
    at = to_db(now)
    in_zone = " AND q.window_zone = ?" if zone is not None else ""
    return (
        f"SELECT q.id FROM queue_items q WHERE q.run_id = ? AND q.channel = ?{in_zone}"
        f" AND {_FREE}"
        " AND EXISTS (SELECT 1 FROM runs r WHERE r.id = q.run_id"
        f" AND r.status IN ({marks}) AND (r.closes_at IS NULL OR r.closes_at > ?)"
        " AND (r.instance_id IS NULL OR r.instance_id NOT IN"
        " (SELECT id FROM plan_instances WHERE status = 'paused')))",
        [int(run_id), channel, *([zone] if zone is not None else []), at,
         *DELIVERING_RUN_STATUSES, at],
    )


def _step_items(scenario: str, step: str, *, channel: str, created_before: datetime,
                now: datetime) -> tuple[str, list]:
    """The free items of a scenario send step on `channel` queued before `created_before`
    (a frozen profile holds its mail: left alone, as delivery leaves it)."""
    return (
        "SELECT q.id FROM queue_items q WHERE q.run_id IS NULL AND q.scenario = ?"
        f" AND q.step = ? AND q.channel = ? AND {_FREE} AND q.created_at < ?"
        " AND (q.profile_id IS NULL OR NOT EXISTS (SELECT 1 FROM scenario_profiles p"
        " WHERE p.id = q.profile_id AND p.status = 'frozen'))",
        [scenario, step, channel, to_db(now), to_db(created_before)],
    )


def _cancel(db: Database, picked: tuple[str, list], *, apply: bool) -> int:
    sql, params = picked
    if not apply:
        return int(db.scalar(f"SELECT count(*) FROM ({sql}) AS s", params) or 0)
    # Counted from RETURNING: Python's sqlite3 reports no rowcount for a statement that
    # starts with WITH.
    return len(db.query(
        f"WITH picked AS MATERIALIZED ({sql}{db.d.claim_lock})"
        " UPDATE queue_items SET status = 'cancelled', last_error = ?, next_attempt_at = NULL,"
        " claimed_until = NULL, claim_token = NULL WHERE id IN (SELECT id FROM picked)"
        " AND status = 'queued' RETURNING id",
        [*params, STALE_ERROR],
    ))


def cancel_stale_run_items(db: Database, run_id: int, *, channel: str, now: datetime,
                           apply: bool = True, zone: str | None = None) -> int:
    """Cancel (reason `stale`) every free item of the run on `channel` (with `zone`: of that
    window zone): the caller found the deadline passed. With `apply` False only count them.
    Returns how many."""
    return _cancel(db, _run_items(run_id, channel=channel, now=now, zone=zone), apply=apply)


def cancel_stale_step_items(db: Database, scenario: str, step: str, *, channel: str,
                            created_before: datetime, now: datetime, apply: bool = True) -> int:
    """Cancel (reason `stale`) the free items of a scenario send step on `channel` queued
    before `created_before` (now minus the step's `stale_after`). With `apply` False only count
    them. Returns how many."""
    return _cancel(db, _step_items(scenario, step, channel=channel,
                                   created_before=created_before, now=now), apply=apply)


def oldest_step_item(db: Database, scenario: str, step: str, *, channel: str,
                     now: datetime) -> datetime | None:
    """When the oldest free item of a scenario send step on `channel` was queued (None: none)."""
    from campctl.timeutil import from_db

    return from_db(db.scalar(
        "SELECT min(q.created_at) FROM queue_items q WHERE q.run_id IS NULL AND q.scenario = ?"
        f" AND q.step = ? AND q.channel = ? AND {_FREE}",
        (scenario, step, channel, to_db(now)),
    ))


def step_stale_counts(db: Database, scenario: str) -> dict[str, int]:
    """Per send step of `scenario`: how many of its messages were cancelled as stale."""
    return {r[0]: int(r[1]) for r in db.query(
        "SELECT step, count(*) FROM queue_items WHERE scenario = ? AND run_id IS NULL"
        " AND status = 'cancelled' AND last_error = ? GROUP BY step", (scenario, STALE_ERROR))}
