"""Queue building: set-based inserts of a run's queue items (claiming and marking belong to
store/delivery.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from campctl.store.db import Database
from campctl.store.runs import REACHED_SQL, RESTART_CHAIN_SQL
from campctl.store.segments import AudienceQuery, audience_query
from campctl.timeutil import to_db

# Chunks of contact ids: each INSERT … SELECT stays short enough for other writers to get a turn
# when the caller does not hold an outer transaction.
BUILD_CHUNK_IDS = 250_000


def message_id_for(run_id: int, contact_id: int) -> str:
    """The deterministic message id of a run's item for a contact (same text as the SQL below)."""
    return f"r{int(run_id)}-c{int(contact_id)}"


_MESSAGE_ID_SQL = "'r' || ? || '-c' || a.contact_id"


@dataclass(frozen=True, slots=True)
class RunItems:
    """The queue rows of one run: the run and channel each row carries (its message type is
    the audience query's), and whom the build leaves out besides the audience: contacts
    without an email when `require_email` (None: the engine decides from the channel; read
    as False here), and, with `exclude_sent_of_run`, contacts that run's restart chain has
    already reached."""

    run_id: int
    channel: str
    require_email: bool | None = None
    exclude_sent_of_run: int | None = None
    priority: int = 50  # copied onto each item: frequency caps rank by it


def insert_run_items(
    db: Database,
    query: AudienceQuery,
    items: RunItems,
    *,
    now: datetime,
    chunk_ids: int = BUILD_CHUNK_IDS,
) -> int:
    """Insert one `queued` item per contact of `query`; returns how many were new.

    Unique by (run, contact) and by message id, so building again (after a crash, or twice)
    inserts nothing twice. Chunked by contact id; each chunk is a savepoint (or its own
    transaction when the caller holds none).
    """
    audience_sql, audience_params = audience_query(db, query, now=now)  # refuses a bad audience
    bounds = db.one("SELECT min(id), max(id) FROM contacts")
    if bounds is None or bounds[0] is None:
        return 0
    low, high = bounds[0], bounds[1]
    filters = ["a.contact_id > ?", "a.contact_id <= ?"]
    extra: list = []
    if items.require_email:
        filters.append(
            "EXISTS (SELECT 1 FROM contacts m WHERE m.id = a.contact_id "
            "AND m.email IS NOT NULL AND m.email <> '')"
        )
    if items.exclude_sent_of_run is not None:
        filters.append(
            f"NOT EXISTS (SELECT 1 FROM queue_items s WHERE s.run_id IN {RESTART_CHAIN_SQL} "
            f"AND s.contact_id = a.contact_id AND {REACHED_SQL})"
        )
        extra.append(items.exclude_sent_of_run)
    sql = (
        "INSERT INTO queue_items (message_id, run_id, contact_id, channel, message_type, status,"
        " created_at, priority) "
        f"SELECT {_MESSAGE_ID_SQL}, ?, a.contact_id, ?, ?, 'queued', ?, ? "
        f"FROM ({audience_sql}) a WHERE {' AND '.join(filters)} "
        "ORDER BY a.contact_id "
        "ON CONFLICT DO NOTHING"
    )
    stamp = to_db(now)
    run_id = int(items.run_id)
    inserted = 0
    start = low - 1
    while start < high:
        end = start + chunk_ids
        params = [run_id, run_id, items.channel, query.message_type, stamp, int(items.priority),
                  *audience_params, start, end, *extra]
        with db.atomic():
            inserted += db.execute(sql, params).rowcount
        start = end
    return inserted


def run_item_count(db: Database, run_id: int) -> int:
    return db.scalar("SELECT count(*) FROM queue_items WHERE run_id = ?", (run_id,))


def channel_type(db: Database, channel: str) -> str | None:
    """The `type` of a defined channel (None if it is not defined)."""
    text = db.scalar("SELECT spec FROM objects WHERE kind = 'Channel' AND name = ?", (channel,))
    return None if text is None else json.loads(text).get("type")


# --- retry of the failures of a restart chain --------------------------------------------------

@dataclass(frozen=True, slots=True)
class RetrySelection:
    """The contacts a retry of `source_run` queues: a `failed` item somewhere in its restart
    chain, no item there that was sent or possibly handed over, the contact still stored, and
    `rights` (a condition on contacts row `c`, with its parameters) allowing it."""

    source_run: int
    rights: tuple[str, list] | None = None


def _retry_where(selection: RetrySelection) -> tuple[str, list]:
    sql = (
        "EXISTS (SELECT 1 FROM queue_items f WHERE f.run_id IN "
        f"{RESTART_CHAIN_SQL} AND f.contact_id = c.id AND f.status = 'failed')"
        " AND NOT EXISTS (SELECT 1 FROM queue_items s WHERE s.run_id IN "
        f"{RESTART_CHAIN_SQL} AND s.contact_id = c.id AND {REACHED_SQL})"
    )
    params: list = [selection.source_run, selection.source_run]
    return sql, params


def failed_contacts_query(selection: RetrySelection) -> tuple[str, list]:
    """`SELECT contact_id` of the failed contacts, before the rights narrow them."""
    where, params = _retry_where(selection)
    return f"SELECT c.id AS contact_id FROM contacts c WHERE {where}", params


def count_retry_contacts(db: Database, selection: RetrySelection) -> int:
    """How many contacts `insert_retry_items` would queue."""
    where, params = _retry_where(selection)
    if selection.rights is not None:
        where = f"{where} AND ({selection.rights[0]})"
        params = [*params, *selection.rights[1]]
    return int(db.scalar(f"SELECT count(*) FROM contacts c WHERE {where}", params) or 0)


def insert_retry_items(db: Database, selection: RetrySelection, items: RunItems,
                       message_type: str | None, *, now: datetime) -> int:
    """One `queued` item of run `items.run_id` (its channel, `message_type`) per contact of
    `selection`, message id `r<run>-c<contact>` as every run's; returns how many."""
    where, params = _retry_where(selection)
    if selection.rights is not None:
        where = f"{where} AND ({selection.rights[0]})"
        params = [*params, *selection.rights[1]]
    run_id = int(items.run_id)
    return db.execute(
        "INSERT INTO queue_items (message_id, run_id, contact_id, channel, message_type, status,"
        " created_at, priority) "
        f"SELECT 'r' || ? || '-c' || c.id, ?, c.id, ?, ?, 'queued', ?, ? FROM contacts c"
        f" WHERE {where} ORDER BY c.id ON CONFLICT DO NOTHING",
        [run_id, run_id, items.channel, message_type, to_db(now), int(items.priority), *params],
    ).rowcount


# --- sending windows in each recipient's zone (schedule.window_timezone: contact) ----------------

def copy_contact_zones(db: Database, run_id: int, attribute: str) -> None:
    """Each item of the run without a window zone takes its contact's `attribute` as written
    (one statement; the engine then replaces what is not a valid zone)."""
    field = db.d.json_field("c.attrs", [attribute])
    db.execute(
        f"UPDATE queue_items SET window_zone = (SELECT {field} FROM contacts c"
        " WHERE c.id = queue_items.contact_id) WHERE run_id = ? AND window_zone IS NULL",
        (int(run_id),),
    )


def window_zone_values(db: Database, run_id: int) -> list[str | None]:
    """The distinct window zones the run's items hold (NULL included)."""
    return [r[0] for r in db.query(
        "SELECT DISTINCT window_zone FROM queue_items WHERE run_id = ?", (int(run_id),))]


def fallback_window_zones(db: Database, run_id: int, valid: list[str], *, fallback: str) -> int:
    """Items of the run whose window zone is not among `valid` get `fallback`, counted as
    fallbacks; returns how many."""
    where = "window_zone IS NULL"
    if valid:
        where += f" OR window_zone NOT IN ({', '.join('?' for _ in valid)})"
    return db.execute(
        "UPDATE queue_items SET window_zone = ?, window_fallback = 1"
        f" WHERE run_id = ? AND ({where})",
        (fallback, int(run_id), *valid),
    ).rowcount


def queued_zones(db: Database, run_ids: list[int]) -> dict[int, dict[str, int]]:
    """`{run: {window zone: queued items}}` for the given runs (items not yet final)."""
    out: dict[int, dict[str, int]] = {int(r): {} for r in run_ids}
    if not run_ids:
        return out
    for row in db.query(
        "SELECT run_id, window_zone, count(*) FROM queue_items"
        f" WHERE {db.d.ids_in('run_id')} AND status = 'queued' AND window_zone IS NOT NULL"
        " GROUP BY run_id, window_zone",
        (db.d.ids_param(run_ids),),
    ):
        out[int(row[0])][str(row[1])] = int(row[2])
    return out


def zone_counts(db: Database, run_id: int) -> list[dict]:
    """Per window zone of a run: queued, sent, failed, cancelled items and fallbacks."""
    rows = db.query(
        "SELECT window_zone, count(*) FILTER (WHERE status = 'queued') AS queued,"
        " count(*) FILTER (WHERE status = 'sent') AS sent,"
        " count(*) FILTER (WHERE status = 'failed') AS failed,"
        " count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"
        " count(*) FILTER (WHERE window_fallback = 1) AS window_fallback"
        " FROM queue_items WHERE run_id = ? AND window_zone IS NOT NULL"
        " GROUP BY window_zone ORDER BY window_zone",
        (int(run_id),),
    )
    return [{"zone": r[0], "queued": int(r[1]), "sent": int(r[2]), "failed": int(r[3]),
             "cancelled": int(r[4]), "window_fallback": int(r[5])} for r in rows]


def item_window_zone(db: Database, run_id: int, contact_id: int) -> tuple[str | None, bool]:
    """The window zone of a contact's item in a run, and whether it is a fallback."""
    row = db.one("SELECT window_zone, window_fallback FROM queue_items WHERE run_id = ?"
                 " AND contact_id = ?", (int(run_id), int(contact_id)))
    if row is None:
        return None, False
    return row[0], bool(row[1])
