"""The action history of every object: one row per state change, written in its transaction."""

from __future__ import annotations

from datetime import datetime

from campctl.store.db import Database
from campctl.timeutil import to_db


def record(
    db: Database,
    *,
    kind: str,
    name: str,
    action: str,
    actor: str,
    now: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    note: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO history (kind, name, at, actor, action, from_status, to_status, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, name, to_db(now), actor, action, from_status, to_status, note),
    )


def actions(db: Database, kind: str, name: str) -> list[dict]:
    return [
        dict(row)
        for row in db.query(
            "SELECT at, actor, action, from_status, to_status, note FROM history "
            "WHERE kind = ? AND name = ? ORDER BY id",
            (kind, name),
        )
    ]
