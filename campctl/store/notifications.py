"""Operator notifications (run stopped, restarted, skipped, failed ...) and their delivery state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.timeutil import to_db

FIELDS = ("id, at, kind, object, note, actor, delivered_at, delivery_error, attempts, "
          "recipient")


def add(db: Database, *, now: datetime, kind: str, object: str, note: str | None,
        actor: str | None) -> int:
    row = db.one(
        "INSERT INTO notifications (at, kind, object, note, actor) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id",
        (to_db(now), kind, object, note, actor),
    )
    assert row is not None  # an INSERT without a conflict clause returns its row
    return int(row[0])


def list_notifications(db: Database, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Notifications, oldest first, optionally only those at or after `since`."""
    if since is None:
        rows = db.query(f"SELECT {FIELDS} FROM notifications ORDER BY at, id")
    else:
        rows = db.query(
            f"SELECT {FIELDS} FROM notifications WHERE at >= ? ORDER BY at, id", (to_db(since),)
        )
    return [dict(r) for r in rows]


def get(db: Database, notification_id: int) -> dict[str, Any] | None:
    row = db.one(f"SELECT {FIELDS} FROM notifications WHERE id = ?", (notification_id,))
    return None if row is None else dict(row)


def pending_ids(db: Database, *, now: datetime, max_attempts: int, limit: int = 100,
                addressed_only: bool = False) -> list[int]:
    """Undelivered notifications that may be tried now (not claimed, attempts left);
    `addressed_only`: only the copies addressed to a user (`recipient` set)."""
    addressed = " AND recipient IS NOT NULL" if addressed_only else ""
    return [
        r[0]
        for r in db.query(
            "SELECT id FROM notifications WHERE delivered_at IS NULL AND attempts < ?"
            f" AND (claimed_until IS NULL OR claimed_until <= ?){addressed} ORDER BY id LIMIT ?",
            (max_attempts, to_db(now), limit),
        )
    ]


def claim(db: Database, notification_id: int, *, now: datetime, until: datetime) -> bool:
    """Take one notification for delivery; False if another process holds it or it is done."""
    row = db.execute(
        "UPDATE notifications SET claimed_until = ?, attempts = attempts + 1"
        " WHERE id = ? AND delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?)"
        " RETURNING id",
        (to_db(until), notification_id, to_db(now)),
    ).fetchone()
    return row is not None


def mark_delivered(db: Database, notification_id: int, *, now: datetime) -> None:
    db.execute(
        "UPDATE notifications SET delivered_at = ?, delivery_error = NULL, claimed_until = NULL"
        " WHERE id = ?",
        (to_db(now), notification_id),
    )


def mark_failed(db: Database, notification_id: int, *, error: str,
                retry_at: datetime | None = None) -> None:
    """Record a failed attempt; `retry_at` holds the next try back until then."""
    db.execute(
        "UPDATE notifications SET delivery_error = ?, claimed_until = ? WHERE id = ?",
        (error[:500], to_db(retry_at) if retry_at else None, notification_id),
    )
