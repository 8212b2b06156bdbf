"""The execution log of plans, runs and scenarios (events such as "Processing Failed")."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from campctl.store.db import Database
from campctl.timeutil import to_db


@dataclass(frozen=True)
class Subject:
    """Which objects a log row concerns (every field optional); as a filter of `read_log`, the
    fields given must all match."""

    plan: str | None = None
    instance_id: int | None = None
    campaign: str | None = None
    stage: str | None = None
    run_id: int | None = None
    scenario: str | None = None
    launch_id: int | None = None


@dataclass(frozen=True)
class LogEntry:
    """One row of the execution log: what happened, to what, and any details."""

    event: str
    subject: Subject = field(default_factory=Subject)
    details: str | None = None


@dataclass(frozen=True)
class LogQuery:
    """Which log rows to read: those about `subject`, at or after `since` (database text), with
    an id above `after_id` (for --follow); `limit` keeps the most recent N, None keeps all."""

    subject: Subject = field(default_factory=Subject)
    since: str | None = None
    after_id: int = 0
    limit: int | None = 1000


def append(db: Database, entry: LogEntry, *, now: datetime) -> None:
    s = entry.subject
    db.execute(
        "INSERT INTO exec_log (at, event, plan, instance_id, campaign, stage, run_id, scenario,"
        " details, launch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (to_db(now), entry.event, s.plan, s.instance_id, s.campaign, s.stage, s.run_id,
         s.scenario, entry.details, s.launch_id),
    )


def read_log(db: Database, query: LogQuery | None = None) -> tuple[list[dict], int]:
    """Log rows oldest first (the keys of `log -o json`) with filters, and the last id read
    (for --follow)."""
    query = query or LogQuery()
    where = ["id > ?"]
    params: list = [query.after_id]
    for f in fields(Subject):
        value = getattr(query.subject, f.name)
        if value is not None:
            where.append(f"{f.name} = ?")
            params.append(value)
    if query.since is not None:
        where.append("at >= ?")
        params.append(query.since)
    rows = db.query(
        "SELECT id, at, event, plan, instance_id, campaign, stage, run_id, scenario, details,"
        " launch_id"
        f" FROM (SELECT * FROM exec_log WHERE {' AND '.join(where)} ORDER BY id DESC"
        f"{'' if query.limit is None else ' LIMIT ?'}) AS recent ORDER BY id",
        params if query.limit is None else [*params, query.limit],
    )
    out = [{"at": r["at"], "event": r["event"], "plan": r["plan"],
            "instance": r["instance_id"], "campaign": r["campaign"], "stage": r["stage"],
            "run": r["run_id"], "scenario": r["scenario"], "launch": r["launch_id"],
            "details": r["details"]}
           for r in rows]
    last = rows[-1]["id"] if rows else query.after_id
    return out, last
