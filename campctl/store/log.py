"""The execution log (SPEC §6 events) of plans, runs and scenarios."""

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
) -> None:
    db.execute(
        "INSERT INTO exec_log (at, event, plan, instance_id, campaign, stage, run_id, scenario,"
        " details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (to_db(now), event, plan, instance_id, campaign, stage, run_id, scenario, details),
    )
