"""One pass of the engine at `now`: fire, advance and build, deliver, finish (docs/INTERFACES.md).

Each phase runs in its own short transactions; exactly-once comes from the database (UNIQUE
occurrences, conditional claims), so concurrent ticks and killed ticks are safe. Inside a phase
every object (campaign, plan, instance, scenario, run) is processed inside its own savepoint and
error boundary (`engine.isolation`): one that fails is set aside and the others go on. A dry run
does the same work inside one transaction that is rolled back, with delivery in dry-run mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from campctl.engine import campaigns, plans, runs, scenarios
from campctl.models import TickReport
from campctl.store import schedules
from campctl.store.db import Database


class _Rollback(Exception):
    """Raised at the end of a dry run to undo everything it wrote."""


@dataclass(frozen=True)
class _Pass:
    """What travels through the phases of one tick."""

    db: Database
    now: datetime
    environ: Mapping[str, str]
    report: TickReport
    max_messages: int | None
    deadline: float | None
    stop_requested: Callable[[], bool] | None
    dry_run: bool


def tick(db, *, now: datetime, environ: Mapping[str, str], max_messages: int | None = None,
         max_seconds: float | None = None, dry_run: bool = False,
         monotonic: Callable[[], float] = time.monotonic,
         stop_requested: Callable[[], bool] | None = None) -> TickReport:
    report = TickReport(now=now)
    deadline = monotonic() + max_seconds if max_seconds is not None else None
    work = _Pass(db, now, environ, report, max_messages, deadline, stop_requested, dry_run)
    if not dry_run:
        _phases(work)
        return report
    try:
        with db.atomic():
            _phases(work)
            raise _Rollback
    except _Rollback:
        pass
    return report


def _phases(work: _Pass) -> None:
    _fire(work)
    _advance_and_build(work)
    _deliver(work)
    _finish(work)


def _fire(work: _Pass) -> None:
    """1. Due occurrences: campaign schedules, plan schedules, scenario captures."""
    db, now, report = work.db, work.now, work.report
    campaigns.fire_due(db, now=now, report=report)
    plans.fire_due(db, now=now, report=report)
    scenarios.fire_due(db, now=now, report=report)


def _advance_and_build(work: _Pass) -> None:
    """2. Plan instances and scenario profiles move on; due campaign queues are built."""
    db, now, report = work.db, work.now, work.report
    plans.advance(db, now=now, report=report)
    scenarios.advance(db, now=now, report=report)
    runs.build_due(db, now=now, report=report, dry_run=work.dry_run)


def _deliver(work: _Pass) -> None:
    """3. Messages of live runs (send time come, window open, not paused) and scenario items."""
    db, now, report = work.db, work.now, work.report
    live = runs.live_runs(db, now=now, report=report, dry_run=work.dry_run)
    runs.start_delivery(db, live, now=now, report=report)
    if work.stop_requested is not None and work.stop_requested():
        return
    runs.deliver(db, now=now, environ=work.environ, report=report, run_ids=live,
                 max_messages=work.max_messages, deadline=work.deadline,
                 stop_requested=work.stop_requested, dry_run=work.dry_run)


def _finish(work: _Pass) -> None:
    """4. Runs with nothing left complete; plans follow their `sent` transition; the markers of
    events and launches seen by this tick move on."""
    db, now, report = work.db, work.now, work.report
    runs.finish(db, now=now, report=report, dry_run=work.dry_run)
    if not work.dry_run:
        scenarios.finish_delivered_launches(db, now=now)
    plans.advance(db, now=now, report=report)
    if not work.dry_run:
        with db.atomic():
            schedules.mark_events_seen(db)
            schedules.mark_launches_seen(db)


def nothing_due(db, *, now: datetime) -> bool:
    """True when a tick at `now` would do nothing (the indexed probe of the fast path)."""
    from campctl.timeutil import to_db

    return schedules.due_reason(db, to_db(now)) is None
