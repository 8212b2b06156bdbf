"""Run rows: create, read, list, item counts, conditional status changes, cancelling items.

Shared by run control (time area) and the campaign engine. Status changes are conditional
`UPDATE … RETURNING` on the expected current status, so two processes cannot both move a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campctl.store.db import Database
from campctl.timeutil import to_db

RUN_FIELDS = (
    "id, campaign, stage, status, scheduled_at, queue_at, send_at, built_at, finished_at, "
    "instance_id, restart_of, include_sent, occurrence_id, spec, error, created_at, updated_at, "
    "paused_from, closes_at"
)
# Queue item statuses that are final; anything else still waits to be delivered.
FINAL_ITEM_STATUSES = ("sent", "failed", "cancelled")
# The `last_error` of an item cancelled because its staleness deadline passed (store/stale.py).
STALE_ERROR = "stale"
# The `last_error` of an item a frequency cap with `policy: drop` cancelled (store/caps.py).
CAPPED_ERROR = "capped"


def _row(row) -> dict[str, Any]:
    data = dict(row)
    spec = data.get("spec")
    if isinstance(spec, str):
        try:
            data["spec"] = json.loads(spec)
        except ValueError as exc:
            data["spec"] = {}
            data["spec_error"] = f"its stored snapshot is not valid JSON ({exc})"
    data["include_sent"] = bool(data.get("include_sent"))
    return data


@dataclass(frozen=True, slots=True)
class NewRun:
    """What a new run row holds: the stage it runs, its snapshot, and its schedule.

    `spec` is the snapshot (a dict, or the stored text of another run, copied byte for byte);
    `closes_at` is the campaign's closing instant: delivery claims nothing of the run after it.
    """

    campaign: str
    stage: str
    spec: dict | str
    status: str = "scheduled"
    scheduled_at: datetime | None = None
    queue_at: datetime | None = None
    send_at: datetime | None = None
    instance_id: int | None = None
    restart_of: int | None = None
    include_sent: bool = False
    occurrence_id: int | None = None
    closes_at: datetime | None = None


def _t(value: datetime | None) -> str | None:
    return to_db(value) if value else None


def insert_run(db: Database, run: NewRun, *, now: datetime) -> int:
    """Insert one run row and return its id (the caller owns the transaction)."""
    spec_text = run.spec if isinstance(run.spec, str) else json.dumps(run.spec, sort_keys=True)
    row = db.one(
        "INSERT INTO runs (campaign, stage, status, scheduled_at, queue_at, send_at, instance_id,"
        " restart_of, include_sent, occurrence_id, spec, created_at, updated_at, closes_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (run.campaign, run.stage, run.status, _t(run.scheduled_at), _t(run.queue_at),
         _t(run.send_at), run.instance_id, run.restart_of, 1 if run.include_sent else 0,
         run.occurrence_id, spec_text, to_db(now), to_db(now), _t(run.closes_at)),
    )
    assert row is not None  # an INSERT without a conflict clause returns its row
    return int(row[0])


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of `runs`, its snapshot parsed; `spec_error` says why a stored snapshot could not
    be read (then `spec` is empty, and nothing builds or sends from it)."""

    id: int
    campaign: str
    stage: str
    status: str
    scheduled_at: str | None
    queue_at: str | None
    send_at: str | None
    built_at: str | None
    finished_at: str | None
    instance_id: int | None
    restart_of: int | None
    include_sent: bool
    occurrence_id: int | None
    spec: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str
    paused_from: str | None
    closes_at: str | None
    spec_error: str | None = None

    @classmethod
    def from_row(cls, row) -> RunRecord:
        data = _row(row)
        data["spec"] = data.get("spec") or {}
        values: dict[str, Any] = {k: data.get(k) for k in _RECORD_FIELDS}
        return cls(**values)


_RECORD_FIELDS = [*(f.strip() for f in RUN_FIELDS.split(",")), "spec_error"]


def get_run_record(db: Database, run_id: int) -> RunRecord | None:
    """One run as a typed record, or None."""
    row = db.one(f"SELECT {RUN_FIELDS} FROM runs WHERE id = ?", (run_id,))
    return None if row is None else RunRecord.from_row(row)


def raw_spec(db: Database, run_id: int) -> str | None:
    """The run's snapshot exactly as stored (a restart copies it byte for byte)."""
    return db.scalar("SELECT spec FROM runs WHERE id = ?", (run_id,))


def list_run_records(db: Database, *, status: str | Iterable[str] | None = None,
                     campaign: str | None = None, instance_id: int | None = None,
                     limit: int | None = None) -> list[RunRecord]:
    """Runs as typed records, newest first, filtered by campaign, plan instance and
    status(es)."""
    return [RunRecord.from_row(r) for r in _select_runs(db, campaign, instance_id, status, limit)]


def _select_runs(db: Database, campaign: str | None, instance_id: int | None,
                 status: str | Iterable[str] | None, limit: int | None) -> list:
    where: list[str] = []
    params: list[Any] = []
    if campaign is not None:
        where.append("campaign = ?")
        params.append(campaign)
    if instance_id is not None:
        where.append("instance_id = ?")
        params.append(instance_id)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    sql = f"SELECT {RUN_FIELDS} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return db.query(sql, params)


def _empty_counts() -> dict[str, int]:
    return {"queued": 0, "sent": 0, "failed": 0, "cancelled": 0, "stale": 0, "capped": 0,
            "window_fallback": 0}


def counts(db: Database, run_id: int) -> dict[str, int]:
    """Item counts of one run: queued (not yet final), sent, failed, cancelled."""
    return counts_for(db, [run_id]).get(run_id, _empty_counts())


def counts_for(db: Database, run_ids: Iterable[int] | None = None) -> dict[int, dict[str, int]]:
    """Item counts for several runs (all runs when `run_ids` is None), one grouped query.
    `stale` counts the cancelled items whose staleness deadline passed (also in `cancelled`);
    `capped` the items a frequency cap held at least once (deferred or dropped), whatever
    became of them; `window_fallback` the items whose window is read in the run's zone because
    their contact had no valid `timezone` (`schedule.window_timezone: contact`), whatever their
    status."""
    sql = ("SELECT run_id, status, count(*) AS n, count(*) FILTER (WHERE status = 'cancelled'"
           " AND last_error = ?) AS stale, count(*) FILTER (WHERE capped IS NOT NULL) AS capped,"
           " count(*) FILTER (WHERE window_fallback = 1) AS window_fallback"
           " FROM queue_items WHERE run_id IS NOT NULL")
    params: list[Any] = [STALE_ERROR]
    if run_ids is not None:
        ids = list(run_ids)
        if not ids:
            return {}
        params += ids
        sql += f" AND run_id IN ({', '.join('?' for _ in ids)})"
        out = {i: _empty_counts() for i in ids}
    else:
        out = {}
    sql += " GROUP BY run_id, status"
    for row in db.query(sql, params):
        bucket = out.setdefault(row["run_id"], _empty_counts())
        key = row["status"] if row["status"] in FINAL_ITEM_STATUSES else "queued"
        bucket[key] += row["n"]
        bucket["stale"] += int(row["stale"] or 0)
        bucket["capped"] += int(row["capped"] or 0)
        bucket["window_fallback"] += int(row["window_fallback"] or 0)
    return out


def notes_for(db: Database, run_ids: Iterable[int]) -> dict[int, list[str]]:
    """The notes recorded in each run's history, oldest first."""
    ids = [str(i) for i in run_ids]
    out: dict[int, list[str]] = {int(i): [] for i in ids}
    if not ids:
        return out
    rows = db.query(
        "SELECT name, note FROM history WHERE kind = 'run' AND note IS NOT NULL AND note != ''"
        f" AND name IN ({', '.join('?' for _ in ids)}) ORDER BY id",
        ids,
    )
    for row in rows:
        out.setdefault(int(row["name"]), []).append(row["note"])
    return out


def set_status(db: Database, run_id: int, status: str, *, now: datetime,
               expected: Iterable[str] | None = None, paused_from: str | None = None) -> bool:
    """Move a run to `status` if its current status is one of `expected` (any when None).

    Sets `paused_from` (NULL unless given). Returns False when the run was not in an expected
    status. A move to a final status goes through `end_run`.
    """
    return _move(db, run_id, ["status = ?", "updated_at = ?", "paused_from = ?"],
                 [status, to_db(now), paused_from], expected)


def end_run(db: Database, run_id: int, status: str, *, now: datetime,
            expected: Iterable[str] | None = None, error: str | None = None) -> bool:
    """Move a run to the final `status` as `set_status` does, and set `finished_at` (kept if
    already set) and `error` when given."""
    sets = ["status = ?", "updated_at = ?", "paused_from = ?",
            "finished_at = coalesce(finished_at, ?)"]
    params: list[Any] = [status, to_db(now), None, to_db(now)]
    if error is not None:
        sets.append("error = ?")
        params.append(error)
    return _move(db, run_id, sets, params, expected)


def _move(db: Database, run_id: int, sets: list[str], params: list[Any],
          expected: Iterable[str] | None) -> bool:
    sql = f"UPDATE runs SET {', '.join(sets)} WHERE id = ?"
    params.append(run_id)
    if expected is not None:
        allowed = list(expected)
        sql += f" AND status IN ({', '.join('?' for _ in allowed)})"
        params.extend(allowed)
    return db.execute(sql + " RETURNING id", params).fetchone() is not None


# `last_error` of an item cancelled after a hand-over that began and was never recorded.
UNSURE_ERROR = "possibly handed over before a delivery was interrupted; not sent again"
UNSURE_SQL = f"'{UNSURE_ERROR}'"
# A contact counts as reached by an item when it was sent or may have been (see above): an
# item cancelled keeps `handover_begun = 1` only when in doubt (`in_doubt_sql`).
REACHED_SQL = "(s.status = 'sent' OR s.handover_begun <> 0)"
# How long a delivery's claim lasts (`claimed_until` = the claim's time + this).
CLAIM_LEASE = timedelta(minutes=5)


def in_doubt_sql(db: Database, prefix: str = "") -> str:
    """SQL true for a queue item whose hand-over may have begun and whose outcome was never
    recorded (a delivery was killed, or is recording right now): see `Dialect.in_doubt`."""
    return db.d.in_doubt(prefix, int(CLAIM_LEASE.total_seconds()))


def _cancel_set(db: Database) -> str:
    """Cancel a waiting item; one in doubt keeps `handover_begun = 1` and says so, any other
    mark (taken ahead, never handed over) is cleared. Every right-hand side reads the row as
    it was, so it may be combined with settings of the claim."""
    doubt = in_doubt_sql(db)
    return ("status = 'cancelled', next_attempt_at = NULL,"
            f" last_error = CASE WHEN {doubt} THEN {UNSURE_SQL} ELSE last_error END,"
            f" handover_begun = CASE WHEN {doubt} THEN 1 ELSE 0 END")


def cancel_queued_items(db: Database, run_id: int, *, now: datetime) -> int:
    """Cancel every waiting item of a run; returns how many (for stop, skip, restart, closing).

    An item whose hand-over began and was never recorded (a delivery was killed, or is
    recording right now) is cancelled as possibly handed over: it keeps its claim so that a
    delivery still recording it can mark it sent, and a restart excludes its contact. Every
    other claimed item was not handed over: the delivery holding it finds it cancelled and
    stops its batch.
    """
    doubt = in_doubt_sql(db)
    cur = db.execute(
        f"UPDATE queue_items SET {_cancel_set(db)},"
        f" claimed_until = CASE WHEN {doubt} THEN claimed_until END,"
        f" claim_token = CASE WHEN {doubt} THEN claim_token END"
        " WHERE run_id = ? AND status = 'queued'",
        (run_id,),
    )
    return cur.rowcount


def unsure_items(db: Database, run_id: int) -> int:
    """Cancelled items of a run that may have been handed over (a crash in between)."""
    return int(db.scalar(
        "SELECT count(*) FROM queue_items WHERE run_id = ? AND status = 'cancelled'"
        " AND handover_begun = 1", (run_id,)) or 0)


def sweep_ended_runs(db: Database, *, now: datetime) -> int:
    """Cancel the waiting items of runs that have ended and that no live claim holds (a claim
    of a delivery that died expires); returns how many."""
    return db.execute(
        f"UPDATE queue_items SET {_cancel_set(db)}, claimed_until = NULL, claim_token = NULL"
        " WHERE status = 'queued' AND (claimed_until IS NULL OR claimed_until <= ?)"
        " AND run_id IN (SELECT id FROM runs WHERE status IN"
        " ('completed', 'failed', 'stopped', 'skipped'))",
        (to_db(now),),
    ).rowcount


# The run and every run it restarts, back to the first (restarts of restarts keep excluding).
RESTART_CHAIN_SQL = (
    "(WITH RECURSIVE chain(id) AS (SELECT CAST(? AS BIGINT) UNION SELECT r.restart_of FROM runs r"
    " JOIN chain ON r.id = chain.id WHERE r.restart_of IS NOT NULL) SELECT id FROM chain)"
)


def sent_contact_ids(db: Database, run_id: int) -> list[int]:
    """Contacts that received this run's message, or may have (for restarts without
    --include-sent)."""
    return [
        r[0]
        for r in db.query(
            f"SELECT contact_id FROM queue_items s WHERE run_id = ? AND {REACHED_SQL}"
            " AND contact_id IS NOT NULL ORDER BY contact_id",
            (run_id,),
        )
    ]


def restarted_as(db: Database, run_id: int) -> list[int]:
    """Ids of the runs created by restarting `run_id`."""
    return [r[0] for r in db.query("SELECT id FROM runs WHERE restart_of = ? ORDER BY id",
                                   (run_id,))]


# --- campaign engine additions ----------------------------------------------------------------

def scheduled_due(db: Database, *, now: datetime) -> list[int]:
    """Scheduled runs whose queue (build) time has come, oldest first."""
    return [r[0] for r in db.query(
        "SELECT id FROM runs WHERE status = 'scheduled' AND (queue_at IS NULL OR queue_at <= ?)"
        " ORDER BY id", (to_db(now),))]


def mark_built(db: Database, run_id: int, *, now: datetime) -> bool:
    """building → queued, stamping built_at (conditional: False if the run moved meanwhile)."""
    return db.one(
        "UPDATE runs SET status = 'queued', built_at = ?, updated_at = ? WHERE id = ?"
        " AND status = 'building' RETURNING id", (to_db(now), to_db(now), run_id)
    ) is not None


def campaigns_past_closing(db: Database, *, now: datetime) -> list[str]:
    """Campaigns with an active run whose closing instant has come (runs_closing index)."""
    return [r[0] for r in db.query(
        "SELECT DISTINCT campaign FROM runs WHERE closes_at IS NOT NULL AND closes_at <= ?"
        " AND status IN ('scheduled', 'building', 'queued', 'sending', 'paused') ORDER BY 1",
        (to_db(now),))]


def paused_unbuilt_due(db: Database, *, now: datetime) -> list[int]:
    """Runs paused before they were built whose queue (build) time has come, oldest first."""
    return [r[0] for r in db.query(
        "SELECT id FROM runs WHERE status = 'paused' AND paused_from = 'scheduled'"
        " AND (queue_at IS NULL OR queue_at <= ?) ORDER BY id", (to_db(now),))]


def claim_paused_build(db: Database, run_id: int, *, now: datetime) -> bool:
    """Take a paused, unbuilt run for building; it stays paused (paused_from 'building')."""
    return db.one(
        "UPDATE runs SET paused_from = 'building', updated_at = ? WHERE id = ?"
        " AND status = 'paused' AND paused_from = 'scheduled' RETURNING id",
        (to_db(now), run_id)) is not None


def mark_built_paused(db: Database, run_id: int, *, now: datetime) -> bool:
    """A paused run's queue is built: it stays paused and resumes to `queued`."""
    return db.one(
        "UPDATE runs SET paused_from = 'queued', built_at = ?, updated_at = ? WHERE id = ?"
        " AND status = 'paused' AND paused_from = 'building' RETURNING id",
        (to_db(now), to_db(now), run_id)) is not None


def active_runs_of_campaign(db: Database, campaign: str) -> list[RunRecord]:
    return list_run_records(db, campaign=campaign,
                            status=("scheduled", "building", "queued", "sending", "paused"))


def remaining_items(db: Database, run_ids: Iterable[int]) -> dict[int, int]:
    """Items not yet final per run (0 for runs without any)."""
    ids = list(run_ids)
    if not ids:
        return {}
    out = dict.fromkeys(ids, 0)
    for row in db.query(
        "SELECT run_id, count(*) FROM queue_items WHERE status = 'queued'"
        f" AND run_id IN ({', '.join('?' for _ in ids)}) GROUP BY run_id", ids):
        out[row[0]] = row[1]
    return out


def next_retry_at(db: Database, run_id: int) -> str | None:
    """The earliest instant a waiting item of the run may be attempted again."""
    return db.scalar(
        "SELECT min(coalesce(next_attempt_at, '')) FROM queue_items WHERE run_id = ?"
        " AND status = 'queued'", (run_id,))


def paused_instances(db: Database, instance_ids: Iterable[int]) -> set[int]:
    """Those of the given plan instances whose delivery is paused."""
    ids = sorted({int(i) for i in instance_ids})
    if not ids:
        return set()
    return {r[0] for r in db.query(
        "SELECT id FROM plan_instances WHERE status = 'paused'"
        f" AND id IN ({', '.join('?' for _ in ids)})", ids)}


def channel_failures(db: Database, run_id: int) -> int:
    """Failed items of a run whose failure came from the channel, not from rendering (template
    failures are recorded with a `subject:` / `body:` reason and fail only that message)."""
    return int(db.scalar(
        "SELECT count(*) FROM queue_items WHERE run_id = ? AND status = 'failed'"
        " AND coalesce(last_error, '') NOT LIKE 'subject:%'"
        " AND coalesce(last_error, '') NOT LIKE 'body:%'", (run_id,)) or 0)


# --- resume with a policy for missed messages -------------------------------------------------

def paused_since(db: Database, kind: str, name: str) -> str | None:
    """When the object (`run` or `instance`, by id text) was last paused, from its history
    (None: no pause recorded, e.g. a state copied from an older campctl)."""
    return db.scalar(
        "SELECT at FROM history WHERE kind = ? AND name = ? AND action = 'pause'"
        " ORDER BY id DESC LIMIT 1", (kind, name))


def waiting_by_attempt(db: Database, run_id: int, *,
                       by_zone: bool = False) -> list[tuple[str | None, str | None, int]]:
    """The run's waiting items that no hand-over has begun on, grouped by `next_attempt_at`
    (None: never attempted, or due at once) and, with `by_zone`, by window zone (else None):
    [(next_attempt_at, window_zone, count)]."""
    zone = "window_zone" if by_zone else "NULL"
    return [(r[0], r[1], int(r[2])) for r in db.query(
        f"SELECT next_attempt_at, {zone}, count(*) FROM queue_items WHERE run_id = ?"
        f" AND status = 'queued' AND NOT {in_doubt_sql(db)} GROUP BY next_attempt_at"
        + (", window_zone" if by_zone else ""), (run_id,))]


MISSED_ERROR = "missed"


def cancel_missed(db: Database, run_id: int, next_attempts: Iterable[str | None], *,
                  zone: str | None = None) -> int:
    """Cancel the run's waiting items (no hand-over begun) whose `next_attempt_at` is one of
    `next_attempts` (None stands for NULL), with `zone` only those of that window zone, with
    `last_error` 'missed'; returns how many."""
    values = list(next_attempts)
    texts = [v for v in values if v is not None]
    parts = []
    params: list[Any] = [MISSED_ERROR, run_id]
    if len(texts) < len(values):
        parts.append("next_attempt_at IS NULL")
    if texts:
        parts.append(f"next_attempt_at IN ({', '.join('?' for _ in texts)})")
        params.extend(texts)
    if not parts:
        return 0
    in_zone = ""
    if zone is not None:
        in_zone = " AND window_zone = ?"
        params.append(zone)
    return db.execute(
        "UPDATE queue_items SET status = 'cancelled', last_error = ?, next_attempt_at = NULL,"
        " claimed_until = NULL, claim_token = NULL, handover_begun = 0"
        f" WHERE run_id = ? AND status = 'queued' AND NOT {in_doubt_sql(db)}"
        f" AND ({' OR '.join(parts)}){in_zone}", params).rowcount
