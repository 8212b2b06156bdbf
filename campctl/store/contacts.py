"""Contacts, their groups and opt-outs in the state file: upserts, lookups, listing and erasure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from campctl.store.db import Database
from campctl.timeutil import to_db


class ContactRow(NamedTuple):
    """One parsed import row. `None` for email/phone/groups/opt_out means "the row says nothing";
    `attrs` is a merge patch (a None value removes the attribute), either a dict or its JSON text
    already encoded compactly and without nulls (the CSV reader's form, stored as written)."""

    line: int
    external_id: str
    email: str | None
    has_email: bool
    phone: str | None
    has_phone: bool
    attrs: dict[str, Any] | str
    groups: list[str] | None
    opt_out: list[str] | None


# Fields the row does not carry keep their stored value; attributes merge key by key
# (RFC 7396 json_patch: a JSON null removes the key, and null never gets stored on insert).
# ?8 says the patch is already compact JSON without nulls, so a new contact stores it as is.
_UPSERT = """
INSERT INTO contacts (external_id, email, phone, attrs, created_at, updated_at)
VALUES (?1, ?2, ?4, CASE WHEN ?8 THEN ?6 ELSE json_patch('{}', ?6) END, ?7, ?7)
ON CONFLICT (external_id) DO UPDATE SET
    email = CASE WHEN ?3 THEN excluded.email ELSE contacts.email END,
    phone = CASE WHEN ?5 THEN excluded.phone ELSE contacts.phone END,
    attrs = json_patch(contacts.attrs, ?6),
    updated_at = excluded.updated_at
"""

# A chunk of contacts that are all new and distinct needs no conflict handling. Attributes
# already encoded (compact, without nulls: the CSV reader's form) are stored as written; a dict
# goes through json_patch so that its nulls are dropped.
_INSERT_NEW_TEXT = """
INSERT INTO contacts (external_id, email, phone, attrs, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?5)
"""
_INSERT_NEW_PATCH = """
INSERT INTO contacts (external_id, email, phone, attrs, created_at, updated_at)
VALUES (?1, ?2, ?3, CASE WHEN ?6 THEN ?4 ELSE json_patch('{}', ?4) END, ?5, ?5)
"""
# The rows one multi-row INSERT just added (AUTOINCREMENT within one write transaction gives
# them consecutive ids, in the order they were inserted).
_COUNT_RANGE = "SELECT count(*) FROM contacts WHERE id BETWEEN ? AND ?"
_ADD_GROUP_IDS = """
INSERT INTO contact_groups (grp, contact_id) SELECT ?, value FROM json_each(?)
WHERE 1 ON CONFLICT DO NOTHING
"""
_ADD_OPTOUT_IDS = """
INSERT INTO contact_optouts (contact_id, message_type) SELECT value, ? FROM json_each(?)
WHERE 1 ON CONFLICT DO NOTHING
"""

_EXISTING = """
SELECT count(DISTINCT j.value) FROM json_each(?) j
JOIN contacts c ON c.external_id = j.value
"""

_CLEAR_GROUPS = """
DELETE FROM contact_groups WHERE contact_id IN (
    SELECT c.id FROM json_each(?) p
    JOIN contacts c ON c.external_id = json_extract(p.value, '$[0]'))
"""
_ADD_GROUPS = """
INSERT INTO contact_groups (grp, contact_id)
SELECT g.value, c.id FROM json_each(?) p
JOIN contacts c ON c.external_id = json_extract(p.value, '$[0]')
JOIN json_each(p.value, '$[1]') g
WHERE 1 ON CONFLICT DO NOTHING
"""
_CLEAR_OPTOUTS = """
DELETE FROM contact_optouts WHERE contact_id IN (
    SELECT c.id FROM json_each(?) p
    JOIN contacts c ON c.external_id = json_extract(p.value, '$[0]'))
"""
_ADD_OPTOUTS = """
INSERT INTO contact_optouts (contact_id, message_type)
SELECT c.id, g.value FROM json_each(?) p
JOIN contacts c ON c.external_id = json_extract(p.value, '$[0]')
JOIN json_each(p.value, '$[1]') g
WHERE 1 ON CONFLICT DO NOTHING
"""


def upsert_chunk(db: Database, rows: Sequence[ContactRow], *, now: datetime) -> tuple[int, int]:
    """Upsert one chunk of rows (the caller holds the transaction); returns (inserted, updated).

    A row repeated within the chunk counts once as inserted (if new) and then as updated.
    """
    if not rows:
        return 0, 0
    stamp = to_db(now)
    ids = [r.external_id for r in rows]
    distinct = set(ids)
    existing = db.scalar(_EXISTING, (json.dumps(list(distinct)),)) or 0
    inserted = len(distinct) - existing
    if not existing and len(distinct) == len(rows):
        _insert_new(db, rows, stamp)
        return inserted, 0
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    db.executemany(
        _UPSERT,
        [
            (r[1], r[2], r[3], r[4], r[5], r[6], stamp, True) if type(r[6]) is str
            else (r[1], r[2], r[3], r[4], r[5], dumps(r[6]), stamp, False)
            for r in rows
        ],
    )
    # Set memberships: the last row of a contact in the chunk that carries the field wins.
    groups = {r.external_id: r.groups for r in rows if r.groups is not None}
    if groups:
        pairs = json.dumps(list(groups.items()), ensure_ascii=False)
        db.execute(_CLEAR_GROUPS, (pairs,))
        db.execute(_ADD_GROUPS, (pairs,))
    optouts = {r.external_id: r.opt_out for r in rows if r.opt_out is not None}
    if optouts:
        pairs = json.dumps(list(optouts.items()), ensure_ascii=False)
        db.execute(_CLEAR_OPTOUTS, (pairs,))
        db.execute(_ADD_OPTOUTS, (pairs,))
    return inserted, len(rows) - inserted


def _insert_new(db: Database, rows: Sequence[ContactRow], stamp: str) -> None:
    """Insert a chunk of new, distinct contacts, then their groups and opt-outs by the ids they
    got: one statement per distinct group (most rows share a few), no lookup by external id."""
    texts = [(r[1], r[2], r[4], r[6], stamp) for r in rows if type(r[6]) is str]
    if len(texts) == len(rows):
        db.executemany(_INSERT_NEW_TEXT, texts)
    else:
        # Rows keep their order, so that ids follow the chunk.
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        db.executemany(_INSERT_NEW_PATCH, [
            (r[1], r[2], r[4], r[6], stamp, True) if type(r[6]) is str
            else (r[1], r[2], r[4], dumps(r[6]), stamp, False)
            for r in rows])
    last = db.scalar(db.d.last_id("contacts"))
    first = last - len(rows) + 1
    if db.scalar(_COUNT_RANGE, (first, last)) != len(rows):
        raise RuntimeError("contacts inserted in one chunk did not get consecutive ids")
    for sets, sql in (([r.groups for r in rows], _ADD_GROUP_IDS),
                      ([r.opt_out for r in rows], _ADD_OPTOUT_IDS)):
        members: dict[str, list[int]] = {}
        for pk, values in enumerate(sets, first):
            for value in values or ():
                found = members.get(value)
                if found is None:
                    members[value] = [pk]
                else:
                    found.append(pk)
        for value, pks in members.items():
            db.execute(sql, (value, json.dumps(pks)))


_SELECT = """
SELECT c.id AS pk, c.external_id AS id, c.email, c.phone, c.attrs,
    (SELECT json_group_array(grp) FROM (SELECT grp FROM contact_groups
        WHERE contact_id = c.id ORDER BY grp)) AS groups,
    (SELECT json_group_array(message_type) FROM (SELECT message_type FROM contact_optouts
        WHERE contact_id = c.id ORDER BY message_type)) AS opt_out,
    c.created_at, c.updated_at
FROM contacts c
"""


def _contact(row) -> dict:
    return {
        "id": row["id"],
        "email": row["email"],
        "phone": row["phone"],
        "groups": json.loads(row["groups"]),
        "opt_out": json.loads(row["opt_out"]),
        "attributes": json.loads(row["attrs"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def get_contact(db: Database, external_id: str) -> dict | None:
    row = db.one(_SELECT + " WHERE c.external_id = ?", (external_id,))
    if row is None:
        return None
    contact = _contact(row)
    contact["events"] = db.scalar("SELECT count(*) FROM events WHERE contact_id = ?", (row["pk"],))
    return contact


def contact_pk(db: Database, external_id: str) -> int | None:
    return db.scalar("SELECT id FROM contacts WHERE external_id = ?", (external_id,))


def list_contacts(
    db: Database, *, where: str = "1", params: Sequence = (), limit: int | None = None
) -> list[dict]:
    """Contacts matching a boolean SQL expression over alias `c` (from store.segments), in
    import order."""
    sql = _SELECT + f" WHERE {where} ORDER BY c.id"
    args = list(params)
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [_contact(r) for r in db.query(sql, args)]


def count_contacts(db: Database, *, where: str = "1", params: Sequence = ()) -> int:
    return db.scalar(f"SELECT count(*) FROM contacts c WHERE {where}", list(params))


def forget(db: Database, pk: int, *, now: datetime) -> dict[str, int]:
    """Erase one person (the caller holds the transaction).

    Deletes the contact row, its groups, opt-outs and events; queue items keep their status but
    queued ones are cancelled (nobody to send to); outbox rows keep their status and counts but
    lose recipient, contact id, subject and body; scenario profiles keep their step and status
    (statistics stay right) but those still inside the scenario exit and lose their error text.
    Contact ids are AUTOINCREMENT, so the number is never given to another person.
    """
    stamp = to_db(now)
    events = db.execute("DELETE FROM events WHERE contact_id = ?", (pk,)).rowcount
    cancelled = db.execute(
        "UPDATE queue_items SET status = 'cancelled', last_error = 'contact forgotten', "
        "claimed_until = NULL, claim_token = NULL, next_attempt_at = NULL "
        "WHERE contact_id = ? AND status = 'queued'",
        (pk,),
    ).rowcount
    redacted = db.execute(
        "UPDATE outbox SET recipient = NULL, contact = NULL, subject = NULL, body = NULL "
        "WHERE message_id IN (SELECT message_id FROM queue_items WHERE contact_id = ?) "
        "OR contact = (SELECT external_id FROM contacts WHERE id = ?)",
        (pk, pk),
    ).rowcount
    exited = db.execute(
        "UPDATE scenario_profiles SET status = 'exited', exited_at = ?, wake_at = NULL, "
        "updated_at = ? WHERE contact_id = ? AND status IN ('active', 'waiting', 'frozen')",
        (stamp, stamp, pk),
    ).rowcount
    db.execute(
        "UPDATE scenario_profiles SET error = NULL WHERE contact_id = ?",
        (pk,),
    )
    db.execute("DELETE FROM contact_groups WHERE contact_id = ?", (pk,))
    db.execute("DELETE FROM contact_optouts WHERE contact_id = ?", (pk,))
    db.execute("DELETE FROM contacts WHERE id = ?", (pk,))
    return {
        "events_deleted": events,
        "queue_items_cancelled": cancelled,
        "outbox_redacted": redacted,
        "profiles_exited": exited,
    }


def recent_messages(db: Database, pk: int, *, limit: int) -> list[dict]:
    """A contact's latest messages (campaign runs and scenario steps), newest first."""
    return [dict(r) for r in db.query(
        "SELECT q.message_id, q.run_id, r.campaign, r.stage, q.scenario, q.step, q.channel,"
        " q.message_type, q.status, q.created_at, q.sent_at, q.last_error"
        " FROM queue_items q LEFT JOIN runs r ON r.id = q.run_id"
        " WHERE q.contact_id = ? ORDER BY q.id DESC LIMIT ?", (pk, int(limit)))]


def contact_runs(db: Database, pk: int, *, limit: int) -> list[dict]:
    """The latest runs that hold a message for the contact, newest first."""
    return [dict(r) for r in db.query(
        "SELECT r.id, r.campaign, r.stage, r.status, q.status AS message_status, r.created_at"
        " FROM queue_items q JOIN runs r ON r.id = q.run_id"
        " WHERE q.contact_id = ? ORDER BY r.id DESC LIMIT ?", (pk, int(limit)))]
