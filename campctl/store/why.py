"""What `campctl why` reads about one contact (SQL only, read-only): one condition evaluated
against one contact, its groups and opt-outs, its messages of a stage or scenario, its profiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.store.segments import rules_where

_ITEM_FIELDS = (
    "q.message_id, q.run_id, q.status, q.attempts, q.last_error, q.next_attempt_at, "
    "q.sent_at, q.failed_at, q.created_at, q.channel, q.message_type, q.capped, q.window_zone,"
    " q.window_fallback"
)


def holds(db: Database, condition: str, params: Sequence[Any], contact_pk: int) -> bool:
    """Whether `condition` (over contacts row `c`) is true for the contact `contact_pk`;
    NULL counts as false, as it does in a WHERE clause."""
    value = db.scalar(
        f"SELECT CASE WHEN ({condition}) THEN 1 ELSE 0 END FROM contacts c WHERE c.id = ?",
        [*params, int(contact_pk)])
    return bool(value)


def rule_holds(db: Database, rule: Mapping[str, Any], contact_pk: int, *,
               now: datetime) -> bool:
    """One segment rule evaluated on its own against one contact (the store's own compiler)."""
    sql, params = rules_where([rule], "all", now=now, alias="c", dialect=db.d)
    return holds(db, sql, params, contact_pk)


def groups_of(db: Database, contact_pk: int) -> list[str]:
    return [r[0] for r in db.query(
        "SELECT grp FROM contact_groups WHERE contact_id = ? ORDER BY grp", (int(contact_pk),))]


def optouts_of(db: Database, contact_pk: int) -> list[str]:
    return [r[0] for r in db.query(
        "SELECT message_type FROM contact_optouts WHERE contact_id = ? ORDER BY message_type",
        (int(contact_pk),))]


def has_email(db: Database, contact_pk: int) -> bool:
    return db.scalar("SELECT 1 FROM contacts WHERE id = ? AND email IS NOT NULL "
                     "AND email <> ''", (int(contact_pk),)) is not None


def _item(row: Any) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}


def stage_runs(db: Database, campaign: str, stage: str, *,
               plan: str | None = None) -> list[int]:
    """The ids of the runs of one campaign stage, newest first: those of `plan`'s instances,
    or (None) those outside any plan instance."""
    where, params = "r.campaign = ? AND r.stage = ?", [campaign, stage]
    if plan is not None:
        where += (" AND r.instance_id IN (SELECT i.id FROM plan_instances i"
                  " WHERE i.plan = ?)")
        params.append(plan)
    else:
        where += " AND r.instance_id IS NULL"
    return [int(r[0]) for r in db.query(
        f"SELECT r.id FROM runs r WHERE {where} ORDER BY r.id DESC", params)]


def run_item(db: Database, run_id: int, contact_pk: int) -> dict[str, Any] | None:
    """The contact's queue item in one run, or None."""
    row = db.one(f"SELECT {_ITEM_FIELDS} FROM queue_items q WHERE q.run_id = ? "
                 "AND q.contact_id = ?", (int(run_id), int(contact_pk)))
    return None if row is None else _item(row)


def scenario_items(db: Database, scenario: str, contact_pk: int) -> list[dict[str, Any]]:
    """The contact's messages from a scenario, newest first, with the step and profile."""
    return [_item(r) for r in db.query(
        f"SELECT {_ITEM_FIELDS}, q.step, q.profile_id FROM queue_items q "
        "WHERE q.scenario = ? AND q.contact_id = ? AND q.run_id IS NULL ORDER BY q.id DESC",
        (scenario, int(contact_pk)))]


def scenario_profiles(db: Database, scenario: str, contact_pk: int) -> list[dict[str, Any]]:
    """The contact's profiles in a scenario, newest first (cleared ones included)."""
    return [_item(r) for r in db.query(
        "SELECT id, step, status, entered_at, wake_at, exited_at, visit, error, cleared_at "
        "FROM scenario_profiles WHERE scenario = ? AND contact_id = ? ORDER BY id DESC",
        (scenario, int(contact_pk)))]


def run_paused_instance(db: Database, instance_id: int | None) -> bool:
    if instance_id is None:
        return False
    return db.scalar("SELECT 1 FROM plan_instances WHERE id = ? AND status = 'paused'",
                     (int(instance_id),)) is not None
