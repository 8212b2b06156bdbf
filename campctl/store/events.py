"""Contact events: recording, per-consumer cursors, and set-based queue building from events."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.store.runs import REACHED_SQL, RESTART_CHAIN_SQL
from campctl.timeutil import to_db


def contact_id(db: Database, external_id: str) -> int | None:
    return db.scalar("SELECT id FROM contacts WHERE external_id = ?", (external_id,))


def insert_event(db: Database, *, name: str, contact: int, at: datetime, data: Any,
                 now: datetime) -> int:
    row = db.one(
        "INSERT INTO events (name, contact_id, at, data, recorded_at) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id",
        (name, contact, to_db(at), None if data is None else json.dumps(data, sort_keys=True),
         to_db(now)),
    )
    assert row is not None  # an INSERT without a conflict clause returns its row
    return int(row[0])


def event_campaigns(db: Database, event: str | None) -> list[str]:
    """Launched event-triggered campaigns listening to `event` (None: to any event)."""
    kind, trigger = db.d.json_field("spec", ["type"]), db.d.json_field("spec", ["trigger", "event"])
    return [r[0] for r in db.query(
        "SELECT name FROM objects WHERE kind = 'Campaign' AND status = 'approved'"
        f" AND launched_at IS NOT NULL AND {kind} = 'event-triggered'"
        f" AND (CAST(? AS TEXT) IS NULL OR {trigger} = ?) ORDER BY name",
        (event, event))]


def get_cursor(db: Database, consumer: str) -> int | None:
    return db.scalar("SELECT last_event_id FROM event_cursors WHERE consumer = ?", (consumer,))


def set_cursor(db: Database, consumer: str, last_event_id: int) -> None:
    db.execute(
        "INSERT INTO event_cursors (consumer, last_event_id) VALUES (?, ?)"
        " ON CONFLICT (consumer) DO UPDATE SET last_event_id = excluded.last_event_id"
        f" WHERE {db.d.is_not('event_cursors.last_event_id', 'excluded.last_event_id')}",
        (consumer, last_event_id),
    )


def max_event_id(db: Database, *, name: str | None = None, upto_at: datetime | None = None) -> int:
    sql = "SELECT max(id) FROM events"
    where, params = [], []
    if name is not None:
        where.append("name = ?")
        params.append(name)
    if upto_at is not None:
        where.append("at <= ?")
        params.append(to_db(upto_at))
    if where:
        sql += " WHERE " + " AND ".join(where)
    return int(db.scalar(sql, params) or 0)


def pending_events(db: Database, *, name: str, after_id: int, upto_id: int, since: datetime,
                   upto_at: datetime | None = None) -> int:
    """How many events of `name` in the id range (after_id, upto_id] count for a build."""
    sql = ("SELECT count(*) FROM events WHERE name = ? AND id > ? AND id <= ? AND at >= ?"
           " AND contact_id IS NOT NULL")
    params: list[Any] = [name, after_id, upto_id, to_db(since)]
    if upto_at is not None:
        sql += " AND at <= ?"
        params.append(to_db(upto_at))
    return int(db.scalar(sql, params) or 0)


@dataclass(frozen=True, slots=True)
class EventSelection:
    """The events a run of an event-triggered campaign takes, as stored in its snapshot (so a
    rebuild after a restart selects the same contacts): events `name` with an id in
    (after_id, upto_id] dated at or after `since`, of contacts in `audience` (None: everyone)."""

    name: str
    after_id: int
    upto_id: int
    since: str
    audience: Mapping[str, Any] | None = None

    @classmethod
    def from_snapshot(cls, selection: Mapping[str, Any]) -> EventSelection:
        return cls(name=selection["name"], after_id=int(selection["after_id"]),
                   upto_id=int(selection["upto_id"]), since=selection["since"],
                   audience=selection.get("audience") or None)


@dataclass(frozen=True, slots=True)
class EventRecipients:
    """Who a run of an event-triggered campaign sends to: the distinct contacts with a selected
    event who are also in the campaign's audience (opt-outs of `message_type` applied there
    unless `include_opted_out`) and meet `extra_where` (a condition on contacts row `c`)."""

    run_id: int
    selection: EventSelection
    message_type: str | None
    include_opted_out: bool
    extra_where: tuple[str, Sequence[Any]] | None = None


def event_contacts_query(db: Database, recipients: EventRecipients, *,
                         now: datetime) -> tuple[str, list]:
    """`SELECT contact_id` of the recipients."""
    from campctl.store.segments import AudienceQuery, audience_query

    selection = recipients.selection
    audience = selection.audience or {"all": True}
    audience_sql, audience_params = audience_query(db, AudienceQuery(
        audience, recipients.message_type,
        include_opted_out=(recipients.include_opted_out
                           or bool(audience.get("include_opted_out"))),
        sample_key=f"run-{recipients.run_id}", extra=recipients.extra_where), now=now)
    sql = ("SELECT DISTINCT contact_id FROM events WHERE name = ? AND id > ? AND id <= ?"
           f" AND at >= ? AND contact_id IS NOT NULL AND contact_id IN ({audience_sql})")
    return sql, [selection.name, selection.after_id, selection.upto_id, selection.since,
                 *audience_params]


def build_queue_from_events(db: Database, recipients: EventRecipients, *, channel: str,
                            now: datetime, exclude_sent_of_run: int | None = None,
                            priority: int = 50) -> int:
    """One set-based INSERT: a queue item per recipient (see `EventRecipients`); with
    `exclude_sent_of_run`, none for a contact that run's restart chain already reached."""
    contacts_sql, contacts_params = event_contacts_query(db, recipients, now=now)
    run_id = recipients.run_id
    sql = (
        "INSERT INTO queue_items (message_id, run_id, contact_id, channel, message_type, status,"
        " created_at, priority)"
        " SELECT 'r' || ? || '-c' || e.contact_id, ?, e.contact_id, ?, ?, 'queued', ?, ?"
        f" FROM ({contacts_sql}) e WHERE true"
    )
    params: list[Any] = [
        run_id, run_id, channel, recipients.message_type, to_db(now), int(priority),
        *contacts_params,
    ]
    if exclude_sent_of_run is not None:
        sql += (" AND NOT EXISTS (SELECT 1 FROM queue_items s WHERE s.run_id IN"
                f" {RESTART_CHAIN_SQL} AND s.contact_id = e.contact_id AND {REACHED_SQL})")
        params.append(exclude_sent_of_run)
    sql += " ORDER BY e.contact_id ON CONFLICT DO NOTHING"
    return db.execute(sql, params).rowcount


def list_events(db: Database, *, name: str | None = None, limit: int | None = 100) -> list[dict]:
    """The most recent events first; `limit` None for all."""
    sql = ("SELECT e.id, e.name, c.external_id AS contact, e.at, e.data FROM events e"
           " LEFT JOIN contacts c ON c.id = e.contact_id")
    params: list[Any] = []
    if name:
        sql += " WHERE e.name = ?"
        params.append(name)
    sql += " ORDER BY e.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [dict(r) for r in db.query(sql, params)]
