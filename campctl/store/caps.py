"""Frequency-cap rows: what a capped claim picks, counts and ranks, and the items a cap holds.

Called inside a claim transaction that holds the caps lock (`Database.lock_caps`; on SQLite the
write lock), so the counts read here stay true until the claim commits. Every query is set-based
over the contacts of one claimed batch; the partial indexes of migration V4 keep the counts to a
contact's sent and queued rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.store.delivery import DueScope, _due, _scope, due_pick_sql
from campctl.store.runs import CAPPED_ERROR, in_doubt_sql
from campctl.timeutil import from_db, to_db


@dataclass(frozen=True, slots=True)
class Picked:
    """A due item a capped claim picked (and, on PostgreSQL, locked)."""

    id: int
    contact_id: int | None
    message_type: str | None
    run_id: int | None
    scenario: str | None
    step: str | None
    # A hand-over may have begun on it (a delivery was killed before recording it): it may
    # already have reached the contact, so no cap holds it and it ranks before the others.
    in_doubt: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """One contact's use of a cap: sends within the period (the oldest of them) and messages in
    flight (claimed by a delivery, or a hand-over begun on them)."""

    sent: int = 0
    oldest_sent: datetime | None = None
    in_flight: int = 0

    @property
    def used(self) -> int:
        return self.sent + self.in_flight


def _types(message_types: Sequence[str] | None) -> tuple[str, list[Any]]:
    if message_types is None:
        return "true", []
    return f"q.message_type IN ({', '.join('?' for _ in message_types)})", list(message_types)


def pick(db: Database, scope: DueScope, *, channel: str, limit: int) -> list[Picked]:
    """The due items of `channel` a claim would take (the same rows, order and locks as
    `store.delivery.claim`), not yet claimed."""
    pick_sql, params = due_pick_sql(db, scope, channel=channel)
    rows = db.query(
        "SELECT q.id, q.contact_id, q.message_type, q.run_id, q.scenario, q.step,"
        f" CASE WHEN {in_doubt_sql(db, 'q.')} THEN 1 ELSE 0 END{pick_sql}",
        [*params, int(limit)],
    )
    return [Picked(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]


def usage(db: Database, scope: DueScope, contacts: Iterable[int],
          message_types: Sequence[str] | None, *, since: datetime,
          now: datetime) -> dict[int, Usage]:
    """Per contact: the messages of `message_types` (None: any) sent after `since`, and those in
    flight at `now` (under a live claim, or a hand-over begun on them that no claim in `scope`
    could take again now: those compete as due items instead)."""
    ids = db.d.ids_param(contacts)
    tsql, tparams = _types(message_types)
    out: dict[int, Usage] = {}
    for row in db.query(
        "SELECT q.contact_id, count(*), min(q.sent_at) FROM queue_items q"
        f" WHERE q.status = 'sent' AND {db.d.ids_in('q.contact_id')} AND q.sent_at > ?"
        f" AND {tsql} GROUP BY q.contact_id",
        [ids, to_db(since), *tparams],
    ):
        out[int(row[0])] = Usage(int(row[1]), from_db(row[2]))
    where, sparams = _scope(scope)
    due, dparams = _due(scope.now)
    for row in db.query(
        "SELECT q.contact_id, count(*) FROM queue_items q"
        f" WHERE q.status = 'queued' AND {db.d.ids_in('q.contact_id')} AND {tsql}"
        " AND ((q.claimed_until IS NOT NULL AND q.claimed_until > ?)"
        f" OR (q.handover_begun > 0 AND NOT ({due} AND {where})))"
        " GROUP BY q.contact_id",
        [ids, *tparams, to_db(now), *dparams, *sparams],
    ):
        found = out.get(int(row[0]), Usage())
        out[int(row[0])] = Usage(found.sent, found.oldest_sent, int(row[1]))
    return out


def ranks(db: Database, scope: DueScope, contacts: Iterable[int],
          message_types: Sequence[str] | None) -> dict[int, int]:
    """`{item id: rank}` of every due item in `scope` (any channel, run or scenario) of these
    contacts and message types: 1 for each contact's first; the items in doubt first (they may
    have reached the contact already and go again whatever the cap), then by priority (highest
    first), then the earliest queued, then the lowest id."""
    where, sparams = _scope(scope)
    due, dparams = _due(scope.now)
    tsql, tparams = _types(message_types)
    rows = db.query(
        "SELECT q.id, row_number() OVER (PARTITION BY q.contact_id"
        f" ORDER BY CASE WHEN {in_doubt_sql(db, 'q.')} THEN 0 ELSE 1 END, q.priority DESC,"
        " q.created_at, q.id) FROM queue_items q"
        f" WHERE {due} AND {where} AND {db.d.ids_in('q.contact_id')} AND {tsql}",
        [*dparams, *sparams, db.d.ids_param(contacts), *tparams],
    )
    return {int(r[0]): int(r[1]) for r in rows}


def defer(db: Database, items: Sequence[tuple[int, datetime]], *, cap: str) -> int:
    """Hold `(id, until)` queued until then, marked as held by `cap` (the first cap's name is
    kept). Returns how many."""
    by_time: dict[str, list[int]] = {}
    for item_id, until in items:
        by_time.setdefault(to_db(until), []).append(int(item_id))
    done = 0
    for until_text, ids in by_time.items():  # one statement per distinct time (a few)
        done += db.execute(
            "UPDATE queue_items SET next_attempt_at = ?, capped = coalesce(capped, ?)"
            f" WHERE {db.d.ids_in('id')} AND status = 'queued'",
            (until_text, cap, db.d.ids_param(ids)),
        ).rowcount
    return done


def drop(db: Database, ids: Sequence[int], *, cap: str) -> int:
    """Cancel these items (reason `capped`), marked as held by `cap`: never handed over."""
    if not ids:
        return 0
    return db.execute(
        "UPDATE queue_items SET status = 'cancelled', last_error = ?, next_attempt_at = NULL,"
        " claimed_until = NULL, claim_token = NULL, capped = coalesce(capped, ?)"
        f" WHERE {db.d.ids_in('id')} AND status = 'queued'",
        (CAPPED_ERROR, cap, db.d.ids_param(ids)),
    ).rowcount


# --- reading (why, describe, simulate) -----------------------------------------------------------
def contact_items_held(db: Database, contact_id: int) -> list[dict[str, Any]]:
    """The items of a contact a cap held (queued and waiting, or dropped), newest first."""
    return [dict(r) for r in db.query(
        "SELECT id, message_id, run_id, scenario, step, channel, message_type, status,"
        " next_attempt_at, capped, last_error FROM queue_items"
        " WHERE contact_id = ? AND capped IS NOT NULL ORDER BY id DESC LIMIT 50",
        (int(contact_id),))]


def step_capped_counts(db: Database, scenario: str) -> dict[str, int]:
    """Per send step of `scenario`: how many of its messages a cap held at least once."""
    return {r[0]: int(r[1]) for r in db.query(
        "SELECT step, count(*) FROM queue_items WHERE scenario = ? AND run_id IS NULL"
        " AND capped IS NOT NULL GROUP BY step", (scenario,))}
