"""Audience test helpers: stored segments and channels, bare runs, events (set up by SQL)."""

from __future__ import annotations

import json

NOW = "2027-03-01T09:00:00Z"


def store_segment(db, name: str, spec: dict, *, now: str = NOW) -> None:
    """A Segment definition as `apply` stores it (spec without kind/name)."""
    with db.atomic():
        db.execute(
            "INSERT INTO objects (kind, name, version, spec, created_at, updated_at) "
            "VALUES ('Segment', ?, 1, ?, ?, ?) "
            "ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec",
            (name, json.dumps(spec), now, now),
        )


def store_channel(db, name: str, spec: dict, *, now: str = NOW) -> None:
    with db.atomic():
        db.execute(
            "INSERT INTO objects (kind, name, version, spec, created_at, updated_at) "
            "VALUES ('Channel', ?, 1, ?, ?, ?)",
            (name, json.dumps(spec), now, now),
        )


def new_run(db, *, campaign: str = "c1", now: str = NOW) -> int:
    """A bare run row for queue items to belong to (the campaign engine creates real ones)."""
    with db.atomic():
        return int(db.scalar(
            "INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at) "
            "VALUES (?, 'main', 'building', '{}', ?, ?) RETURNING id",
            (campaign, now, now),
        ))


def add_event(db, contact: str, name: str, at: str) -> None:
    with db.atomic():
        db.execute(
            "INSERT INTO events (name, contact_id, at, recorded_at) "
            "SELECT ?, id, ?, ? FROM contacts WHERE external_id = ?",
            (name, at, at, contact),
        )
