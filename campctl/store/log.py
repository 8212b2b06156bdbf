"""The execution log of plans, runs and scenarios (events such as "Processing Failed")."""

from __future__ import annotations

from datetime import datetime

from campctl.store.db import Database
from campctl.timeutil import to_db


def append(
    db: Database,
    *,
    now: datetime,
    event: str,
    plan: str | None = None,
    instance_id: int | None = None,
    campaign: str | None = None,
    stage: str | None = None,
    run_id: int | None = None,
    scenario: str | None = None,
    details: str | None = None,
    launch_id: int | None = None,
) -> None:
    db.execute(
        "INSERT INTO exec_log (at, event, plan, instance_id, campaign, stage, run_id, scenario,"
        " details, launch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (to_db(now), event, plan, instance_id, campaign, stage, run_id, scenario, details,
         launch_id),
    )


def read_log(
    db: Database,
    *,
    plan: str | None = None,
    instance_id: int | None = None,
    run_id: int | None = None,
    scenario: str | None = None,
    campaign: str | None = None,
    launch_id: int | None = None,
    since: str | None = None,
    after_id: int = 0,
    limit: int | None = 1000,
) -> tuple[list[dict], int]:
    """Log rows oldest first (the keys of `log -o json`) with filters, and the last id read
    (for --follow). `limit`: the most recent N rows; None for all."""
    where = ["id > ?"]
    params: list = [after_id]
    for column, value in (("plan", plan), ("instance_id", instance_id), ("run_id", run_id),
                          ("scenario", scenario), ("campaign", campaign),
                          ("launch_id", launch_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    rows = db.query(
        "SELECT id, at, event, plan, instance_id, campaign, stage, run_id, scenario, details,"
        " launch_id"
        f" FROM (SELECT * FROM exec_log WHERE {' AND '.join(where)} ORDER BY id DESC"
        f"{'' if limit is None else ' LIMIT ?'}) AS recent ORDER BY id",
        params if limit is None else [*params, limit],
    )
    out = [{"at": r["at"], "event": r["event"], "plan": r["plan"],
            "instance": r["instance_id"], "campaign": r["campaign"], "stage": r["stage"],
            "run": r["run_id"], "scenario": r["scenario"], "launch": r["launch_id"],
            "details": r["details"]}
           for r in rows]
    last = rows[-1]["id"] if rows else after_id
    return out, last
