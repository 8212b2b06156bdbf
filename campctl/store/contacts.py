"""Contacts, their groups and opt-outs in the state file: upserts, lookups, listing and erasure."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import chain
from operator import itemgetter
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

# A chunk of contacts that are all new and distinct needs no conflict handling. It goes in by
# multi-row INSERTs of up to _ROWS_PER_INSERT rows: one statement per row (executemany) costs
# SQLite a statement run (and its AUTOINCREMENT bookkeeping) and Python a bind per row, about
# twice the time of the rows themselves. ?1 is the time stamp. Attributes already encoded
# (compact, without nulls: the CSV reader's form) are stored as written; a dict goes through
# json_patch so that its nulls are dropped.
_INSERT_NEW = (
    "INSERT INTO contacts (external_id, email, phone, attrs, created_at, updated_at) VALUES ")
_ROWS_PER_INSERT = 500
_PG_MAX_PARAMETERS = 65_535
_NEW_TEXT_PARAMS = itemgetter(1, 2, 4, 6)  # external_id, email, phone, attrs
_GROUPS, _OPT_OUT = itemgetter(7), itemgetter(8)


def _values_text(rows: int) -> str:
    return ",".join(f"(?{i},?{i + 1},?{i + 2},?{i + 3},?1,?1)" for i in range(2, 4 * rows, 4))


def _values_patch(rows: int) -> str:
    return ",".join(
        f"(?{i},?{i + 1},?{i + 2},"
        f"CASE WHEN ?{i + 4} THEN ?{i + 3} ELSE json_patch('{{}}', ?{i + 3}) END,?1,?1)"
        for i in range(2, 5 * rows, 5))


# The rows one multi-row INSERT just added (AUTOINCREMENT within one write transaction gives
# them consecutive ids, in the order they were inserted).
_COUNT_RANGE = "SELECT count(*) FROM contacts WHERE id BETWEEN ? AND ?"
_ADD_GROUP_IDS = """
INSERT INTO contact_groups (grp, contact_id) SELECT ?, value FROM json_each(?)
WHERE true ON CONFLICT DO NOTHING
"""
_ADD_OPTOUT_IDS = """
INSERT INTO contact_optouts (contact_id, message_type) SELECT value, ? FROM json_each(?)
WHERE true ON CONFLICT DO NOTHING
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
WHERE true ON CONFLICT DO NOTHING
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
WHERE true ON CONFLICT DO NOTHING
"""

# The same statements on PostgreSQL (same parameters: JSON text of ids, or of [id, [values]]
# pairs).
_PG_ADD_GROUP_IDS = """
INSERT INTO contact_groups (grp, contact_id)
SELECT CAST(? AS TEXT), CAST(j.value AS BIGINT) FROM jsonb_array_elements_text(CAST(? AS jsonb)) j
ON CONFLICT DO NOTHING
"""
_PG_ADD_OPTOUT_IDS = """
INSERT INTO contact_optouts (contact_id, message_type)
SELECT CAST(j.value AS BIGINT), CAST(? AS TEXT) FROM jsonb_array_elements_text(CAST(? AS jsonb)) j
ON CONFLICT DO NOTHING
"""
_PG_PAIRS = ("jsonb_array_elements(CAST(? AS jsonb)) AS p(v)"
             " JOIN contacts c ON c.external_id = p.v ->> 0")
_PG_CLEAR_GROUPS = f"DELETE FROM contact_groups WHERE contact_id IN (SELECT c.id FROM {_PG_PAIRS})"
_PG_ADD_GROUPS = f"""
INSERT INTO contact_groups (grp, contact_id)
SELECT g.value, c.id FROM {_PG_PAIRS}
CROSS JOIN LATERAL jsonb_array_elements_text(p.v -> 1) g
ON CONFLICT DO NOTHING
"""
_PG_CLEAR_OPTOUTS = (
    f"DELETE FROM contact_optouts WHERE contact_id IN (SELECT c.id FROM {_PG_PAIRS})")
_PG_ADD_OPTOUTS = f"""
INSERT INTO contact_optouts (contact_id, message_type)
SELECT c.id, g.value FROM {_PG_PAIRS}
CROSS JOIN LATERAL jsonb_array_elements_text(p.v -> 1) g
ON CONFLICT DO NOTHING
"""
# The rows of a chunk that exist already, locked for the merge done in Python. `= ANY(ARRAY(…))`
# takes the external_id index whatever the statistics say: with `IN (SELECT …)` a table filled
# by this very import (not analyzed yet) was scanned whole for every chunk (0.6 s a chunk at 20k).
_PG_EXISTING = """
SELECT id, external_id, email, phone, attrs FROM contacts
WHERE external_id = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(? AS jsonb))))
ORDER BY id FOR UPDATE
"""
_PG_UPDATE = "UPDATE contacts SET email = ?, phone = ?, attrs = ?, updated_at = ? WHERE id = ?"
_PG_INSERT_WITH_ID = (
    "INSERT INTO contacts (id, external_id, email, phone, attrs, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)")
# Reserves ? ids of the contacts sequence; gives the first one.
_PG_RESERVE = """
SELECT setval(pg_get_serial_sequence('contacts', 'id'),
              nextval(pg_get_serial_sequence('contacts', 'id')) + CAST(? AS BIGINT) - 1)
       - CAST(? AS BIGINT) + 1
"""


@contextmanager
def import_session(db: Database) -> Iterator[None]:
    """Foreign-key checks off while an import writes its chunks (set outside any transaction:
    SQLite ignores the pragma inside one), back on after. PostgreSQL keeps its checks.

    Every statement of the import names contacts by the ids it has just inserted or joins them
    from `contacts`, and it deletes no contact, so a check could never fail; each one cost a
    lookup in `contacts` per membership and opt-out row (a fifth of their insert). Journal and
    synchronous settings, hence crash safety, are unchanged.
    """
    if db.d.is_postgres or db.in_transaction or not db.scalar("PRAGMA foreign_keys"):
        yield
        return
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        db.execute("PRAGMA foreign_keys = ON")


def upsert_chunk(db: Database, rows: Sequence[ContactRow], *, now: datetime) -> tuple[int, int]:
    """Upsert one chunk of rows (the caller holds the transaction); returns (inserted, updated).

    A row repeated within the chunk counts once as inserted (if new) and then as updated.
    """
    if not rows:
        return 0, 0
    stamp = to_db(now)
    if db.d.is_postgres:
        return _pg_upsert_chunk(db, rows, stamp)
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
    _set_memberships(db, rows)
    return inserted, len(rows) - inserted


def _set_memberships(db: Database, rows: Sequence[ContactRow]) -> None:
    """Set memberships: the last row of a contact in the chunk that carries the field wins."""
    pg = db.d.is_postgres
    groups = {r.external_id: r.groups for r in rows if r.groups is not None}
    if groups:
        pairs = json.dumps(list(groups.items()), ensure_ascii=False)
        db.execute(_PG_CLEAR_GROUPS if pg else _CLEAR_GROUPS, (pairs,))
        db.execute(_PG_ADD_GROUPS if pg else _ADD_GROUPS, (pairs,))
    optouts = {r.external_id: r.opt_out for r in rows if r.opt_out is not None}
    if optouts:
        pairs = json.dumps(list(optouts.items()), ensure_ascii=False)
        db.execute(_PG_CLEAR_OPTOUTS if pg else _CLEAR_OPTOUTS, (pairs,))
        db.execute(_PG_ADD_OPTOUTS if pg else _ADD_OPTOUTS, (pairs,))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch, as SQLite's json_patch: a null removes a key, a key already
    there keeps its place, a new key goes last (the target is not changed)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


# The text json_patch gives (compact, non-ASCII as is).
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _attrs_text(attrs: dict[str, Any] | str) -> str:
    """A row's attributes as stored for a new contact (json_patch('{}', attrs) on SQLite)."""
    return attrs if type(attrs) is str else _compact(merge_patch({}, attrs))


def _pg_upsert_chunk(db: Database, rows: Sequence[ContactRow], stamp: str) -> tuple[int, int]:
    """`upsert_chunk` on PostgreSQL, without json_patch: the chunk's existing rows are read FOR
    UPDATE, merged in Python (json_patch's text and key order) and updated by id; the new ones
    are inserted.

    Ids come out as on SQLite, where AUTOINCREMENT spends one id on every row of the upsert,
    an update included: the chunk reserves one id per row, and a new contact gets the id of
    its first row (contact ids show in message ids)."""
    distinct = list(dict.fromkeys(r.external_id for r in rows))
    found = {r["external_id"]: r for r in db.query(
        _PG_EXISTING, (json.dumps(distinct, ensure_ascii=False),))}
    inserted = len(distinct) - len(found)
    if not found and len(distinct) == len(rows):
        _insert_new(db, rows, stamp)
        return inserted, 0
    base = int(db.scalar(_PG_RESERVE, (len(rows), len(rows))))
    # external id -> [email, phone, attrs (stored text or merged dict), id, new]
    state: dict[str, list[Any]] = {}
    for position, r in enumerate(rows):
        current = state.get(r.external_id)
        if current is None:
            old = found.get(r.external_id)
            if old is None:
                state[r.external_id] = [r.email, r.phone, r.attrs if type(r.attrs) is str
                                        else merge_patch({}, r.attrs), base + position, True]
                continue
            current = state[r.external_id] = [old["email"], old["phone"],
                                              json.loads(old["attrs"]), old["id"], False]
        if r.has_email:
            current[0] = r.email
        if r.has_phone:
            current[1] = r.phone
        attrs = current[2]
        current[2] = merge_patch(json.loads(attrs) if type(attrs) is str else attrs,
                                 json.loads(r.attrs) if type(r.attrs) is str else r.attrs)
    updates = [(email, phone, _attrs_text(attrs), stamp, pk)
               for email, phone, attrs, pk, new in state.values() if not new]
    if updates:
        db.executemany(_PG_UPDATE, updates)
    new_rows = [(pk, external_id, email, phone, _attrs_text(attrs), stamp)
                for external_id, (email, phone, attrs, pk, new) in state.items() if new]
    if new_rows:
        db.executemany(_PG_INSERT_WITH_ID, new_rows)
    _set_memberships(db, rows)
    return inserted, len(rows) - inserted


def _insert_new(db: Database, rows: Sequence[ContactRow], stamp: str) -> None:
    """Insert a chunk of new, distinct contacts, then their groups and opt-outs by the ids they
    got: one statement per distinct group (most rows share a few), no lookup by external id."""
    if db.d.is_postgres and not all(type(r[6]) is str for r in rows):
        # No json_patch on PostgreSQL: the attributes are encoded here, as it would store them.
        rows = [r._replace(attrs=_attrs_text(r.attrs)) for r in rows]
    if all(type(r[6]) is str for r in rows):
        template, width = _values_text, 4
        params: list = list(chain.from_iterable(map(_NEW_TEXT_PARAMS, rows)))
    else:
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        template, width = _values_patch, 5
        params = [p for r in rows for p in (
            (r[1], r[2], r[4], r[6], True) if type(r[6]) is str
            else (r[1], r[2], r[4], dumps(r[6]), False))]
    # Rows keep their order, so that ids follow the chunk.
    per = _rows_per_insert(db, width)
    full = _INSERT_NEW + template(per)
    step = per * width
    for start in range(0, len(params), step):
        part = params[start:start + step]
        sql = full if len(part) == step else _INSERT_NEW + template(len(part) // width)
        db.execute(sql, [stamp, *part])
    last = db.scalar(db.d.last_id("contacts"))
    first = last - len(rows) + 1
    if db.scalar(_COUNT_RANGE, (first, last)) != len(rows):
        raise RuntimeError("contacts inserted in one chunk did not get consecutive ids")
    pg = db.d.is_postgres
    for field, sql in ((_GROUPS, _PG_ADD_GROUP_IDS if pg else _ADD_GROUP_IDS),
                       (_OPT_OUT, _PG_ADD_OPTOUT_IDS if pg else _ADD_OPTOUT_IDS)):
        for value, pks in _members(map(field, rows), first).items():
            db.execute(sql, (value, json.dumps(pks)))


def _members(sets: Iterable[list[str] | None], first: int) -> dict[str, list[int]]:
    """Each value of a chunk's sets (groups or opt-outs) → the ids of the rows that hold it, in
    order; the row at position i has id `first + i`. Rows with the same cell share one list (the
    CSV reader's cache), so rows are bucketed by that list and each distinct cell is read once."""
    buckets: dict[int, tuple[list[str], list[int]]] = {}
    for pk, cell in enumerate(sets, first):
        if cell:
            found = buckets.get(id(cell))
            if found is None:
                buckets[id(cell)] = (cell, [pk])
            else:
                found[1].append(pk)
    by_value: dict[str, list[list[int]]] = {}
    for cell, pks in buckets.values():
        for value in cell:
            by_value.setdefault(value, []).append(pks)
    return {value: parts[0] if len(parts) == 1 else sorted(chain.from_iterable(parts))
            for value, parts in by_value.items()}


def _rows_per_insert(db: Database, width: int) -> int:
    """Rows per multi-row INSERT of `width` parameters a row (plus the stamp), within the
    connection's limit on parameters (32,766 since SQLite 3.32, 999 before; 65,535 on
    PostgreSQL)."""
    if db.d.is_postgres:
        limit = _PG_MAX_PARAMETERS
    else:
        limit = db.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(_ROWS_PER_INSERT, (limit - 1) // width))


_SELECT = """
SELECT c.id AS pk, c.external_id AS id, c.email, c.phone, c.attrs,
    (SELECT json_group_array(grp) FROM (SELECT grp FROM contact_groups
        WHERE contact_id = c.id ORDER BY grp) AS g) AS groups,
    (SELECT json_group_array(message_type) FROM (SELECT message_type FROM contact_optouts
        WHERE contact_id = c.id ORDER BY message_type) AS o) AS opt_out,
    c.created_at, c.updated_at
FROM contacts c
"""
_PG_SELECT = """
SELECT c.id AS pk, c.external_id AS id, c.email, c.phone, c.attrs,
    (SELECT CAST(coalesce(json_agg(grp ORDER BY grp), '[]') AS TEXT) FROM contact_groups
        WHERE contact_id = c.id) AS groups,
    (SELECT CAST(coalesce(json_agg(message_type ORDER BY message_type), '[]') AS TEXT)
        FROM contact_optouts WHERE contact_id = c.id) AS opt_out,
    c.created_at, c.updated_at
FROM contacts c
"""


def _select(db: Database) -> str:
    return _PG_SELECT if db.d.is_postgres else _SELECT


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
    row = db.one(_select(db) + " WHERE c.external_id = ?", (external_id,))
    if row is None:
        return None
    contact = _contact(row)
    contact["events"] = db.scalar("SELECT count(*) FROM events WHERE contact_id = ?", (row["pk"],))
    return contact


def contact_pk(db: Database, external_id: str) -> int | None:
    return db.scalar("SELECT id FROM contacts WHERE external_id = ?", (external_id,))


def list_contacts(
    db: Database, *, where: str = "true", params: Sequence = (), limit: int | None = None
) -> list[dict]:
    """Contacts matching a boolean SQL expression over alias `c` (from store.segments), in
    import order."""
    sql = _select(db) + f" WHERE {where} ORDER BY c.id"
    args = list(params)
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [_contact(r) for r in db.query(sql, args)]


def count_contacts(db: Database, *, where: str = "true", params: Sequence = ()) -> int:
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
