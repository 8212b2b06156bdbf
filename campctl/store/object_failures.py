"""Objects whose processing keeps failing in ticks (campaigns, plans, scenarios): one row each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.timeutil import to_db


def record(db: Database, *, kind: str, name: str, reason: str, now: datetime) -> bool:
    """Note one more failure; True when it is new or its reason changed (worth telling)."""
    at = to_db(now)
    row = db.one("SELECT reason FROM object_failures WHERE kind = ? AND name = ?", (kind, name))
    if row is None:
        db.execute("INSERT INTO object_failures (kind, name, reason, first_at, last_at) "
                   "VALUES (?, ?, ?, ?, ?)", (kind, name, reason, at, at))
        return True
    db.execute("UPDATE object_failures SET reason = ?, last_at = ?, count = count + 1 "
               "WHERE kind = ? AND name = ?", (reason, at, kind, name))
    return row["reason"] != reason


def clear(db: Database, *, kind: str, name: str) -> dict[str, Any] | None:
    """Forget a failure (the object went through); the row it had, if any."""
    row = db.one("DELETE FROM object_failures WHERE kind = ? AND name = ? "
                 "RETURNING kind, name, reason, first_at, last_at, count", (kind, name))
    return None if row is None else dict(row)


def failing(db: Database) -> set[tuple[str, str]]:
    return {(r["kind"], r["name"]) for r in db.query("SELECT kind, name FROM object_failures")}


def list_failures(db: Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(
        "SELECT kind, name, reason, first_at, last_at, count FROM object_failures "
        "ORDER BY kind, name")]
