"""Operator notifications (run stopped, restarted, skipped, failed ...)."""

from __future__ import annotations

from datetime import datetime

from campctl.store.db import Database
from campctl.timeutil import to_db


def add(db: Database, *, now: datetime, kind: str, object: str, note: str | None,
        actor: str | None) -> int:
    cur = db.execute(
        "INSERT INTO notifications (at, kind, object, note, actor) VALUES (?, ?, ?, ?, ?)",
        (to_db(now), kind, object, note, actor),
    )
    return int(cur.lastrowid)
