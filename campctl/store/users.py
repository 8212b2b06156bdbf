"""Users, the creator of each object, contacts left out for rights, and work lists (SQL only)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.timeutil import to_db

USER_FIELDS = "name, email, groups, message_types, created_at, updated_at"
WORKLIST_FIELDS = "id, object_kind, object_id, assigned_to, reason, assigned_at, cleared_at"


def _list_or_none(text: str | None) -> list[str] | None:
    return None if text is None else list(json.loads(text))


def _user(row: Any) -> dict[str, Any]:
    user = dict(row)
    user["groups"] = _list_or_none(user["groups"])
    user["message_types"] = _list_or_none(user["message_types"])
    return user


def get_user(db: Database, name: str) -> dict[str, Any] | None:
    row = db.one(f"SELECT {USER_FIELDS} FROM users WHERE name = ?", (name,))
    return None if row is None else _user(row)


def list_users(db: Database) -> list[dict[str, Any]]:
    return [_user(r) for r in db.query(f"SELECT {USER_FIELDS} FROM users ORDER BY name")]


def user_count(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM users"))


def _json_list(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def insert_user(db: Database, *, name: str, email: str | None, groups: Sequence[str] | None,
                message_types: Sequence[str] | None, now: datetime) -> bool:
    """False when a user of that name exists already."""
    row = db.one(
        "INSERT INTO users (name, email, groups, message_types, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING name",
        (name, email, _json_list(groups), _json_list(message_types), to_db(now), to_db(now)),
    )
    return row is not None


def update_user(db: Database, *, name: str, email: str | None, groups: Sequence[str] | None,
                message_types: Sequence[str] | None, now: datetime) -> None:
    db.execute(
        "UPDATE users SET email = ?, groups = ?, message_types = ?, updated_at = ? "
        "WHERE name = ?",
        (email, _json_list(groups), _json_list(message_types), to_db(now), name),
    )


def delete_user(db: Database, name: str) -> bool:
    return db.one("DELETE FROM users WHERE name = ? RETURNING name", (name,)) is not None


# --- creators -------------------------------------------------------------------------------------

def created_by(db: Database, kind: str, name: str) -> str | None:
    """The actor of the object's first apply (None: unknown, e.g. from a schema-1 state file)."""
    return db.scalar("SELECT created_by FROM objects WHERE kind = ? AND name = ?", (kind, name))


def set_created_by(db: Database, kind: str, name: str, actor: str) -> None:
    """Record the creator once; later applies by others never change it."""
    db.execute(
        "UPDATE objects SET created_by = ? WHERE kind = ? AND name = ? AND created_by IS NULL",
        (actor, kind, name),
    )


def owned_objects(db: Database, user: str) -> list[str]:
    """`kind/name` of the campaigns and scenarios this user created."""
    return [
        f"{r[0].lower()}/{r[1]}"
        for r in db.query(
            "SELECT kind, name FROM objects WHERE created_by = ? "
            "AND kind IN ('Campaign', 'Scenario') ORDER BY kind, name",
            (user,),
        )
    ]


# --- rights as SQL ------------------------------------------------------------------------------

def rights_where(groups: Sequence[str] | None, *, allowed: bool,
                 alias: str = "c") -> tuple[str, list]:
    """The condition on contacts row `alias` that a user's rights allow: in one of `groups`
    (None: any contact); `allowed=False` (a message type outside the rights) allows no one."""
    if not allowed:
        return "false", []
    if groups is None:
        return "true", []
    marks = ", ".join("?" for _ in groups) or "NULL"
    return (f"EXISTS (SELECT 1 FROM contact_groups rg WHERE rg.contact_id = {alias}.id "
            f"AND rg.grp IN ({marks}))", list(groups))


def count_outside(db: Database, selection_sql: str, params: Sequence,
                  rights: tuple[str, list]) -> int:
    """How many contacts of a `SELECT contact_id` query the rights condition leaves out."""
    cond, cond_params = rights
    return int(db.scalar(
        f"SELECT count(*) FROM ({selection_sql}) s JOIN contacts c ON c.id = s.contact_id "
        f"WHERE NOT ({cond})",
        [*params, *cond_params],
    ))


def set_run_left_out(db: Database, run_id: int, *, count: int, reason: str | None) -> None:
    db.execute("UPDATE runs SET left_out_rights = ?, left_out_reason = ? WHERE id = ?",
               (count, reason, run_id))


def run_left_out(db: Database, run_ids: Sequence[int]) -> dict[int, tuple[int, str | None]]:
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    return {
        r[0]: (int(r[1] or 0), r[2])
        for r in db.query(
            f"SELECT id, left_out_rights, left_out_reason FROM runs WHERE id IN ({marks})",
            [int(i) for i in run_ids],
        )
    }


def set_launch_left_out(db: Database, launch_id: int, *, count: int, reason: str | None) -> None:
    db.execute(
        "UPDATE scenario_launches SET left_out_rights = ?, left_out_reason = ? WHERE id = ?",
        (count, reason, launch_id),
    )


def launch_left_out(db: Database) -> dict[int, tuple[int, str | None]]:
    return {
        r[0]: (int(r[1] or 0), r[2])
        for r in db.query(
            "SELECT id, left_out_rights, left_out_reason FROM scenario_launches "
            "WHERE left_out_rights > 0"
        )
    }


# --- work lists -----------------------------------------------------------------------------------

def _entry(row: Any) -> dict[str, Any]:
    return dict(row)


def open_entry(db: Database, kind: str, object_id: str) -> dict[str, Any] | None:
    row = db.one(
        f"SELECT {WORKLIST_FIELDS} FROM worklist WHERE object_kind = ? AND object_id = ? "
        "AND cleared_at IS NULL",
        (kind, object_id),
    )
    return None if row is None else _entry(row)


def assign(db: Database, *, kind: str, object_id: str, assigned_to: str | None, reason: str,
           now: datetime) -> None:
    """Close the object's open entry (if any) and open a new one for `assigned_to`."""
    clear(db, kind=kind, object_id=object_id, now=now)
    db.execute(
        "INSERT INTO worklist (object_kind, object_id, assigned_to, reason, assigned_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (kind, object_id, assigned_to, reason, to_db(now)),
    )


def clear(db: Database, *, kind: str, object_id: str, now: datetime) -> str | None:
    """Close the open entry; returns who it was assigned to (None when there was none)."""
    row = db.one(
        "UPDATE worklist SET cleared_at = ? WHERE object_kind = ? AND object_id = ? "
        "AND cleared_at IS NULL RETURNING id, assigned_to",
        (to_db(now), kind, object_id),
    )
    if row is None:
        return None
    return row[1] if row[1] is not None else ""


def entries(db: Database, *, assigned_to: str | None, all_users: bool = False,
            include_cleared: bool = False) -> list[dict[str, Any]]:
    where, params = [], []
    if not include_cleared:
        where.append("cleared_at IS NULL")
    if not all_users:
        where.append(db.d.is_("assigned_to", "?"))
        params.append(assigned_to)
    sql = f"SELECT {WORKLIST_FIELDS} FROM worklist"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [_entry(r) for r in db.query(sql + " ORDER BY assigned_at, id", params)]


def open_count(db: Database, user: str) -> int:
    return int(db.scalar(
        "SELECT count(*) FROM worklist WHERE assigned_to = ? AND cleared_at IS NULL", (user,)
    ))


# --- notifications to a user ----------------------------------------------------------------------

def add_notification_for(db: Database, *, notification_id: int, recipient: str) -> int:
    """A copy of notification `notification_id` addressed to `recipient` (its own delivery
    state and message id)."""
    new_id = db.scalar(
        "INSERT INTO notifications (at, kind, object, note, actor, recipient) "
        "SELECT at, kind, object, note, actor, ? FROM notifications WHERE id = ? RETURNING id",
        (recipient, notification_id),
    )
    return int(new_id or 0)


def notification_recipient(db: Database, notification_id: int) -> str | None:
    return db.scalar("SELECT recipient FROM notifications WHERE id = ?", (notification_id,))


def _source_condition(groups: Sequence[str] | None, allowed: bool,
                      params: Sequence[Any] | dict) -> tuple[str, Sequence[Any] | dict]:
    """The rights condition on source row `s` (a `SELECT contact_id ...`), in the parameter
    style of the source: named for a dict, positional for a sequence."""
    if not allowed:
        return "false", params
    if groups is None:
        return "true", params
    if isinstance(params, dict):
        names = {f"rights_grp{i}": g for i, g in enumerate(groups)}
        marks = ", ".join(f":{k}" for k in names) or "NULL"
        merged: Sequence[Any] | dict = {**params, **names}
    else:
        marks = ", ".join("?" for _ in groups) or "NULL"
        merged = [*params, *groups]
    return (f"EXISTS (SELECT 1 FROM contact_groups rg WHERE rg.contact_id = s.contact_id "
            f"AND rg.grp IN ({marks}))", merged)


def restricted_source(source_sql: str, params: Sequence[Any] | dict,
                      groups: Sequence[str] | None,
                      allowed: bool) -> tuple[str, Sequence[Any] | dict]:
    """The source narrowed to the contacts the rights allow (its columns unchanged)."""
    cond, merged = _source_condition(groups, allowed, params)
    return f"SELECT s.* FROM ({source_sql}) s WHERE {cond}", merged


def count_outside_source(db: Database, source_sql: str, params: Sequence[Any] | dict,
                         groups: Sequence[str] | None, allowed: bool) -> int:
    cond, merged = _source_condition(groups, allowed, params)
    bound = merged if isinstance(merged, dict) else list(merged)
    return int(db.scalar(f"SELECT count(*) FROM ({source_sql}) s WHERE NOT ({cond})", bound))
