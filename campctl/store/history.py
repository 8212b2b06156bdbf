"""The action history of every object: one row per state change, written in its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campctl.store.db import Database
from campctl.timeutil import to_db


@dataclass(frozen=True)
class HistoryEntry:
    """One state change: who did what to which object, the status it moved from and to (when
    it has one) and a note."""

    kind: str
    name: str
    action: str
    actor: str
    from_status: str | None = None
    to_status: str | None = None
    note: str | None = None


def record(db: Database, entry: HistoryEntry, *, now: datetime) -> None:
    db.execute(
        "INSERT INTO history (kind, name, at, actor, action, from_status, to_status, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.kind, entry.name, to_db(now), entry.actor, entry.action, entry.from_status,
         entry.to_status, entry.note),
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
