"""Delivery rows: claiming due queue items, recording outcomes, outbox rows, rate windows.

Callers own the transactions (`db.atomic()`); nothing here commits. A claim is one conditional
`UPDATE … RETURNING` inside BEGIN IMMEDIATE (on PostgreSQL: under the shared SERIAL lock, its
rows taken `FOR UPDATE SKIP LOCKED`), so two processes never hold the same item, and every
outcome is recorded only while the caller's claim token still holds the item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.store.runs import UNSURE_SQL, in_doubt_sql
from campctl.timeutil import to_db

# A run's items may be claimed only while the run is in one of these statuses.
DELIVERING_RUN_STATUSES = ("queued", "sending")
ENDED_RUN_STATUSES = ("completed", "failed", "stopped", "skipped")
OUTBOX_KEYS = (
    "message_id", "run", "campaign", "stage", "scenario", "step", "contact", "channel",
    "subject", "body", "sent_at", "to",
)


# A run of a paused plan instance keeps its status but holds its delivery.
_NOT_HELD = ("(instance_id IS NULL OR instance_id NOT IN"
             " (SELECT id FROM plan_instances WHERE status = 'paused'))")


@dataclass(frozen=True)
class DueScope:
    """Which items a delivery may take: those of live runs among `run_ids` whose campaign has
    not closed by `now`, and (with `scenario_items`) scenario items; due at `now`. A run in
    `zones` (its window read in each contact's zone) gives only its items of those zones."""

    run_ids: tuple[int, ...]
    scenario_items: bool
    now: datetime
    zones: tuple[tuple[int, tuple[str, ...]], ...] = ()


def _scope(scope: DueScope) -> tuple[str, list[Any]]:
    run_ids, scenario_items, now = scope.run_ids, scope.scenario_items, scope.now
    parts: list[str] = []
    params: list[Any] = []
    if run_ids:
        marks = ", ".join("?" for _ in run_ids)
        parts.append(
            f"q.run_id IN (SELECT id FROM runs WHERE id IN ({marks})"
            f" AND status IN ({', '.join('?' for _ in DELIVERING_RUN_STATUSES)}) AND {_NOT_HELD}"
            " AND (closes_at IS NULL OR closes_at > ?))"
        )
        params += [int(r) for r in run_ids] + list(DELIVERING_RUN_STATUSES) + [to_db(now)]
        if scope.zones:
            # Runs without contact zones are not listed here and cost nothing more.
            zoned = [f"(q.run_id = ? AND q.window_zone IN ({', '.join('?' for _ in zones)}))"
                     if zones else "(q.run_id = ? AND 1 = 0)" for _run, zones in scope.zones]
            marks = ", ".join("?" for _ in scope.zones)
            parts[-1] = (f"({parts[-1]} AND (q.run_id NOT IN ({marks}) OR "
                         + " OR ".join(zoned) + "))")
            params += [int(run) for run, _zones in scope.zones]
            for run, zones in scope.zones:
                params += [int(run), *zones]
    if scenario_items:
        # A frozen profile (scenario deactivated with keep_profiles_on_deactivate) holds its mail.
        parts.append(
            "(q.run_id IS NULL AND q.scenario IS NOT NULL AND (q.profile_id IS NULL OR NOT EXISTS"
            " (SELECT 1 FROM scenario_profiles p WHERE p.id = q.profile_id"
            " AND p.status = 'frozen')))"
        )
    if not parts:
        return "false", []
    return "(" + " OR ".join(parts) + ")", params


def _due(now: datetime) -> tuple[str, list[Any]]:
    at = to_db(now)
    return (
        "q.status = 'queued' AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= ?)"
        " AND (q.claimed_until IS NULL OR q.claimed_until <= ?)",
        [at, at],
    )


def due_channels(db: Database, scope: DueScope) -> list[str]:
    """The channels that have due items in scope, by name."""
    where, sparams = _scope(scope)
    due, dparams = _due(scope.now)
    rows = db.query(
        f"SELECT DISTINCT q.channel FROM queue_items q WHERE {due} AND {where} ORDER BY 1",
        dparams + sparams,
    )
    return [r[0] for r in rows]


def count_due(db: Database, scope: DueScope, *, channel: str) -> int:
    where, sparams = _scope(scope)
    due, dparams = _due(scope.now)
    return int(db.scalar(
        f"SELECT count(*) FROM queue_items q WHERE {due} AND q.channel = ? AND {where}",
        [*dparams, channel, *sparams],
    ))


def due_pick_sql(db: Database, scope: DueScope, *, channel: str) -> tuple[str, list[Any]]:
    """`FROM … WHERE … ORDER … LIMIT ? FOR UPDATE …` of the due items of `channel` a claim
    takes, and its parameters before the limit's (the caller appends the limit)."""
    where, sparams = _scope(scope)
    due, dparams = _due(scope.now)
    # No ORDER BY on SQLite: the (run_id, status) index yields rowid order anyway, and sorting
    # every queued row of a 200k-item run on each claim made delivery quadratic.
    return (f" FROM queue_items q WHERE {due} AND {db.d.claim_channel} = ? AND {where}"
            f"{db.d.claim_order} LIMIT ?{db.d.claim_lock}", [*dparams, channel, *sparams])


# What taking an item sets: the claim, and an expired claim's mark taken ahead and never
# started is cleared (that message never went).
def _take_set(db: Database) -> str:
    return ("SET claimed_until = ?, claim_token = ?, handover_begun = CASE WHEN"
            f" handover_begun = 1 AND NOT {in_doubt_sql(db)} THEN 0 ELSE handover_begun END")


def _taken(db: Database, rows: Sequence[Any], *, now: datetime) -> list[int]:
    """The ids of the taken `(id, run_id)` rows; their runs move from `queued` to `sending`."""
    runs = sorted({r[1] for r in rows if r[1] is not None})
    if runs:
        db.execute(
            "UPDATE runs SET status = 'sending', updated_at = ? WHERE status = 'queued'"
            f" AND {db.d.ids_in('id')}",
            (to_db(now), db.d.ids_param(runs)),
        )
    return sorted(r[0] for r in rows)


def claim(db: Database, scope: DueScope, *, channel: str, until: datetime, token: str,
          limit: int) -> list[int]:
    """Take up to `limit` due items of `channel` for this delivery; returns their ids.

    Also moves each run of a claimed item from `queued` to `sending` (never another status).
    """
    if limit <= 0:
        return []
    pick, params = due_pick_sql(db, scope, channel=channel)
    # The ids are picked once (a MATERIALIZED CTE): on PostgreSQL an `IN (SELECT … LIMIT ?
    # FOR UPDATE SKIP LOCKED)` subquery may be evaluated again when a row is re-checked, and
    # then picks other rows, more than `limit` in all (seen: a rate exceeded across hosts).
    rows = db.query(
        f"WITH picked AS MATERIALIZED (SELECT q.id{pick})"
        f" UPDATE queue_items {_take_set(db)}"
        " WHERE id IN (SELECT id FROM picked) RETURNING id, run_id",
        [*params, int(limit), to_db(until), token],
    )
    return _taken(db, rows, now=scope.now)


def take(db: Database, ids: Sequence[int], *, until: datetime, token: str,
         now: datetime) -> list[int]:
    """Claim these items, picked earlier in this transaction (a capped claim: engine/caps.py),
    as `claim` does; returns the ids taken."""
    if not ids:
        return []
    rows = db.query(
        f"UPDATE queue_items {_take_set(db)}"
        f" WHERE {db.d.ids_in('id')} AND status = 'queued' RETURNING id, run_id",
        (to_db(until), token, db.d.ids_param(ids)),
    )
    return _taken(db, rows, now=now)


def load_items(db: Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Claimed items with what rendering needs: the contact, its groups, its opt-out."""
    rows = db.query(
        "SELECT q.id, q.message_id, q.run_id, q.profile_id, q.scenario, q.step, q.contact_id,"
        " q.channel, q.message_type, q.attempts, q.handover_begun, c.id AS contact_row,"
        " c.external_id, c.email, c.phone, c.attrs,"
        f" (SELECT {db.d.group_concat('g.grp')} FROM contact_groups g"
        " WHERE g.contact_id = q.contact_id)"
        " AS groups,"
        " EXISTS (SELECT 1 FROM contact_optouts o WHERE o.contact_id = q.contact_id"
        " AND o.message_type = q.message_type) AS opted_out,"
        " coalesce(p.include_opted_out, 0) AS profile_include_opted_out, p.data AS profile_data"
        " FROM queue_items q LEFT JOIN contacts c ON c.id = q.contact_id"
        " LEFT JOIN scenario_profiles p ON p.id = q.profile_id"
        f" WHERE {db.d.ids_in('q.id')} ORDER BY q.id",
        ("\x1f", db.d.ids_param(ids)),
    )
    return [dict(r) for r in rows]


def run_snapshots(db: Database, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """`{id: {"campaign", "stage", "spec"}}` for the given runs (spec parsed)."""
    out: dict[int, dict[str, Any]] = {}
    for row in db.query(
        f"SELECT id, campaign, stage, spec FROM runs WHERE {db.d.ids_in('id')}",
        (db.d.ids_param(run_ids),),
    ):
        try:
            spec = json.loads(row["spec"]) if row["spec"] else {}
        except ValueError:
            spec = {}
        out[row["id"]] = {"campaign": row["campaign"], "stage": row["stage"], "spec": spec}
    return out


# --- outcomes ------------------------------------------------------------------------------------
def serialize_claims(db: Database, *, channel: str) -> None:
    """Inside the claim transaction: no other claim of `channel` runs until it ends, on any
    host (a rate window is read and added to in one claim)."""
    db.lock_channel(channel)


def begin_hand_over(db: Database, *, token: str, item_id: int) -> bool:
    """Note that this claim is about to hand the item over (committed before it goes), if the
    claim still holds it and its run still delivers. False: leave it and stop the batch (a stop
    or a closing cancelled it, a pause holds its run).

    A crash between this and the record of the outcome leaves `handover_begun = 1`: the item
    may have reached the channel, and once its run has ended it is never sent under another key
    (see `store.runs.cancel_queued_items` and the restart's exclusion). Where marks are taken
    ahead (PostgreSQL), `start_hand_overs` says which of them actually went (2); a mark of an
    earlier claim's start stays 2."""
    marks = ", ".join("?" for _ in DELIVERING_RUN_STATUSES)
    return db.one(
        "UPDATE queue_items SET handover_begun = CASE WHEN handover_begun = 0 THEN 1"
        " ELSE handover_begun END WHERE id = ? AND claim_token = ?"
        " AND status = 'queued' AND (run_id IS NULL OR run_id IN"
        f" (SELECT id FROM runs WHERE status IN ({marks}) AND {_NOT_HELD})) RETURNING id",
        (int(item_id), token, *DELIVERING_RUN_STATUSES),
    ) is not None


def start_hand_overs(db: Database, *, token: str, ids: Sequence[int]) -> set[int]:
    """Note that these marked items go now (`handover_begun = 2`), committed (asynchronously
    will do: a campctl process that dies loses no commit the server has) just before they are
    handed over; returns those still held by this claim, queued and of a delivering run.

    Where marks are taken ahead (PostgreSQL), a mark without this never reached the channel
    unless the server restarted since the claim (`Dialect.in_doubt`)."""
    if not ids:
        return set()
    marks = ", ".join("?" for _ in DELIVERING_RUN_STATUSES)
    rows = db.query(
        f"UPDATE queue_items SET handover_begun = 2 WHERE {db.d.ids_in('id')}"
        " AND claim_token = ? AND status = 'queued' AND (run_id IS NULL OR run_id IN"
        f" (SELECT id FROM runs WHERE status IN ({marks}) AND {_NOT_HELD})) RETURNING id",
        (db.d.ids_param(ids), token, *DELIVERING_RUN_STATUSES),
    )
    return {r[0] for r in rows}


def unmark_hand_overs(db: Database, *, token: str, ids: Sequence[int]) -> None:
    """Take back `begin_hand_over` for items this claim marked ahead and never handed over.

    Its own statement, outside any transaction and without the SERIAL lock: only this claim
    holds these rows, and a pause or stop holding SERIAL waits for this claim's hand-over to
    end (the gate), so waiting for SERIAL here would wait for the end of that wait. Used where
    marks go several at a time (PostgreSQL); on SQLite no item is ever marked ahead."""
    if ids:
        db.execute(
            f"UPDATE queue_items SET handover_begun = 0 WHERE {db.d.ids_in('id')}"
            " AND claim_token = ? AND status = 'queued'",
            (db.d.ids_param(ids), token),
        )


def mark_sent(db: Database, *, token: str, ids: Sequence[int], now: datetime) -> set[int]:
    """Mark items sent if this claim still holds them; returns the ids that were marked.

    An item cancelled as possibly handed over (its run was stopped or closed while this claim
    was handing it over) is marked sent too: the delivery knows it went."""
    if not ids:
        return set()
    rows = db.query(
        "UPDATE queue_items SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
        " last_error = NULL, next_attempt_at = NULL, claimed_until = NULL, claim_token = NULL,"
        " handover_begun = 0"
        f" WHERE {db.d.ids_in('id')} AND claim_token = ?"
        " AND (status = 'queued' OR (status = 'cancelled' AND handover_begun <> 0))"
        " RETURNING id",
        (to_db(now), db.d.ids_param(ids), token),
    )
    return {r[0] for r in rows}


def mark_failed(db: Database, *, token: str, items: Sequence[tuple[int, str]],
                now: datetime | None = None) -> int:
    """Permanent failures: `(id, reason)`; the attempt counts; `now` is kept as `failed_at`."""
    return _finish(db, token=token, items=items, status="failed", attempted=1, failed_at=now)


def mark_retry(db: Database, *, token: str, items: Sequence[tuple[int, str, datetime]],
               max_attempts: int, now: datetime | None = None) -> tuple[int, int]:
    """Transient failures: `(id, reason, next_attempt_at)`. An item whose attempts reach
    `max_attempts` fails for good (at `now`, kept as `failed_at`). Returns (retried, failed)."""
    failed_at = to_db(now) if now is not None else None
    retried = failed = 0
    for item_id, reason, next_at in items:
        row = db.one(
            "UPDATE queue_items SET attempts = attempts + 1, last_error = ?,"
            " status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE status END,"
            " next_attempt_at = CASE WHEN attempts + 1 >= ? THEN NULL ELSE ? END,"
            " failed_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE failed_at END,"
            " claimed_until = NULL, claim_token = NULL, handover_begun = 0"
            " WHERE id = ? AND claim_token = ? AND status = 'queued' RETURNING status",
            (reason[:500], max_attempts, max_attempts, to_db(next_at), max_attempts, failed_at,
             item_id, token),
        )
        if row is None:
            continue
        if row[0] == "failed":
            failed += 1
        else:
            retried += 1
    return retried, failed


def mark_cancelled(db: Database, *, token: str, items: Sequence[tuple[int, str]]) -> int:
    """Items that must not go out any more (contact forgotten, opted out): `(id, reason)`."""
    return _finish(db, token=token, items=items, status="cancelled", attempted=0)


def _finish(db: Database, *, token: str, items: Sequence[tuple[int, str]], status: str,
            attempted: int, failed_at: datetime | None = None) -> int:
    done = 0
    at = to_db(failed_at) if failed_at is not None else None
    for item_id, reason in items:
        done += db.execute(
            "UPDATE queue_items SET status = ?, attempts = attempts + ?, last_error = ?,"
            " next_attempt_at = NULL, claimed_until = NULL, claim_token = NULL, handover_begun = 0,"
            " failed_at = coalesce(?, failed_at)"
            " WHERE id = ? AND claim_token = ? AND status = 'queued'",
            (status, attempted, reason[:500], at, item_id, token),
        ).rowcount
    return done


def deliverable(db: Database, ids: Sequence[int]) -> set[int]:
    """The items among `ids` that may still go out: scenario items, and items of runs that are
    still delivering (not paused, stopped or finished, nor their plan instance paused, since
    they were claimed)."""
    if not ids:
        return set()
    marks = ", ".join("?" for _ in DELIVERING_RUN_STATUSES)
    rows = db.query(
        f"SELECT q.id FROM queue_items q WHERE {db.d.ids_in('q.id')}"
        " AND (q.run_id IS NULL OR q.run_id IN"
        f" (SELECT id FROM runs WHERE status IN ({marks}) AND {_NOT_HELD}))",
        (db.d.ids_param(ids), *DELIVERING_RUN_STATUSES),
    )
    return {r[0] for r in rows}


def release(db: Database, *, token: str, ids: Sequence[int]) -> None:
    """Give claimed items back untouched (nothing was handed over)."""
    if ids:
        db.execute(
            "UPDATE queue_items SET claimed_until = NULL, claim_token = NULL"
            f" WHERE {db.d.ids_in('id')} AND claim_token = ?",
            (db.d.ids_param(ids), token),
        )


def cancel_where_run_ended(db: Database, ids: Sequence[int]) -> int:
    """Among items just given back unsent or for a retry, cancel those whose run ended (stopped,
    skipped, ...) while they were claimed: the stop's own cancel had to leave them to us."""
    if not ids:
        return 0
    marks = ", ".join("?" for _ in ENDED_RUN_STATUSES)
    doubt = in_doubt_sql(db)
    return db.execute(
        "UPDATE queue_items SET status = 'cancelled', claimed_until = NULL, claim_token = NULL,"
        f" next_attempt_at = NULL, last_error = CASE WHEN {doubt} THEN {UNSURE_SQL}"
        " ELSE 'run ' || (SELECT status FROM runs"
        " WHERE runs.id = queue_items.run_id) || ' before it was sent' END,"
        f" handover_begun = CASE WHEN {doubt} THEN 1 ELSE 0 END"
        f" WHERE {db.d.ids_in('id')} AND status = 'queued'"
        f" AND run_id IN (SELECT id FROM runs WHERE status IN ({marks}))",
        (db.d.ids_param(ids), *ENDED_RUN_STATUSES),
    ).rowcount


# --- outbox --------------------------------------------------------------------------------------
def insert_outbox(db: Database, records: Sequence[dict[str, Any]]) -> int:
    """Outbox rows from message records (keys as in OUTBOX_KEYS); an existing message id is kept."""
    cur = db.executemany(
        "INSERT INTO outbox (message_id, channel, run_id, campaign, stage, scenario, step,"
        " contact, recipient, subject, body, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (message_id) DO NOTHING",
        [
            (r["message_id"], r["channel"], r.get("run"), r.get("campaign"), r.get("stage"),
             r.get("scenario"), r.get("step"), r.get("contact"), r.get("to"), r.get("subject"),
             r.get("body"), r["sent_at"])
            for r in records
        ],
    )
    return cur.rowcount


def outbox_file_length(db: Database, path: str) -> int | None:
    """The length of an outbox `dir:` file as of its last committed batch (None: never recorded,
    e.g. a file written before this was kept)."""
    value = db.scalar("SELECT committed_length FROM outbox_files WHERE path = ?", (path,))
    return None if value is None else int(value)


def set_outbox_file_length(db: Database, path: str, length: int, *, now: datetime) -> None:
    db.execute(
        "INSERT INTO outbox_files (path, committed_length, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (path) DO UPDATE SET committed_length = excluded.committed_length,"
        " updated_at = excluded.updated_at",
        (path, int(length), to_db(now)),
    )


@dataclass(frozen=True, slots=True)
class OutboxFilter:
    """Which outbox records to list: each field given must match (None: any)."""

    campaign: str | None = None
    run_id: int | None = None
    scenario: str | None = None
    contact: str | None = None
    channel: str | None = None


def list_outbox(db: Database, only: OutboxFilter = OutboxFilter(), *,
                limit: int | None = None) -> list[dict[str, Any]]:
    """Outbox records (the keys of OUTBOX_KEYS), oldest first; with `limit`, the newest `limit`."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("campaign", only.campaign), ("run_id", only.run_id),
                          ("scenario", only.scenario), ("contact", only.contact),
                          ("channel", only.channel)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = (
        "SELECT rowid AS seq, message_id, run_id AS run, campaign, stage, scenario, step, contact,"
        " channel, subject, body, sent_at, recipient AS \"to\" FROM outbox"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY rowid DESC"
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    rows = [dict(r) for r in db.query(sql, params)]
    rows.reverse()
    for row in rows:
        del row["seq"]
    return rows


# --- rate windows --------------------------------------------------------------------------------
def rate_used(db: Database, *, channel: str, window_start: datetime) -> int:
    return int(db.scalar(
        "SELECT coalesce(sum(sent), 0) FROM channel_sends WHERE channel = ? AND window_start = ?",
        (channel, to_db(window_start)),
    ))


def rate_add(db: Database, *, channel: str, window_start: datetime, count: int,
             prune_before: datetime) -> None:
    """Count `count` hand-overs in the channel's current window; drop windows long past."""
    if count <= 0:
        return
    db.execute(
        "INSERT INTO channel_sends (channel, window_start, sent) VALUES (?, ?, ?)"
        " ON CONFLICT (channel, window_start)"
        " DO UPDATE SET sent = channel_sends.sent + excluded.sent",
        (channel, to_db(window_start), int(count)),
    )
    db.execute(
        "DELETE FROM channel_sends WHERE channel = ? AND window_start < ?",
        (channel, to_db(prune_before)),
    )
