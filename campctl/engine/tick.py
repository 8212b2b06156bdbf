"""One pass of the engine at `now`: fire, advance and build, deliver, finish (docs/INTERFACES.md).

Each phase runs in its own short transactions; exactly-once comes from the database (UNIQUE
occurrences, conditional claims), so concurrent ticks and killed ticks are safe. Inside a phase
every object (campaign, plan, instance, scenario, run) is processed inside its own savepoint and
error boundary (`engine.isolation`): one that fails is set aside and the others go on. A dry run
does the same work inside one transaction that is rolled back, with delivery in dry-run mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from campctl.engine import campaigns, plans, runs, scenarios
from campctl.engine.context import UNLIMITED, Budget, TickContext
from campctl.models import TickReport
from campctl.store import doctor, schedules
from campctl.store.db import Database


class _Rollback(Exception):
    """Raised at the end of a dry run to undo everything it wrote."""


def tick(db: Database, *, now: datetime, environ: Mapping[str, str],
         budget: Budget = UNLIMITED, dry_run: bool = False) -> TickReport:
    """One pass at `now` within `budget` (see `Budget.of`); returns what it did."""
    return run(TickContext(db, now, environ, budget, dry_run))


def run(ctx: TickContext) -> TickReport:
    """The tick of `ctx`: its phases in order; a dry run is rolled back at the end."""
    if not ctx.dry_run:
        # Markers for `campctl doctor` (a start never followed by a finish is a tick that
        # crashed); the no-op fast path of __main__ never gets here and writes nothing.
        with ctx.db.atomic():
            doctor.mark_tick_started(ctx.db, now=ctx.now)
        _phases(ctx)
        with ctx.db.atomic():
            doctor.mark_tick_finished(ctx.db, now=ctx.now)
        return ctx.report
    try:
        with ctx.db.atomic():
            _phases(ctx)
            raise _Rollback
    except _Rollback:
        pass
    return ctx.report


def _phases(ctx: TickContext) -> None:
    _fire(ctx)
    _advance_and_build(ctx)
    _deliver(ctx)
    _finish(ctx)


def _fire(ctx: TickContext) -> None:
    """1. Due occurrences: campaign schedules, plan schedules, scenario captures."""
    db, now, report = ctx.db, ctx.now, ctx.report
    campaigns.fire_due(db, now=now, report=report)
    plans.fire_due(db, now=now, report=report)
    scenarios.fire_due(db, now=now, report=report)


def _advance_and_build(ctx: TickContext) -> None:
    """2. Plan instances and scenario profiles move on; due campaign queues are built."""
    db, now, report = ctx.db, ctx.now, ctx.report
    plans.advance(db, now=now, report=report)
    scenarios.advance(db, now=now, report=report)
    runs.build_due(ctx)


def _deliver(ctx: TickContext) -> None:
    """3. Messages of live runs (send time come, window open, not paused) and scenario items."""
    live = runs.live_runs(ctx)
    runs.start_delivery(ctx, live)
    if ctx.budget.stopped():
        return
    runs.deliver(ctx, live)


def _finish(ctx: TickContext) -> None:
    """4. Runs with nothing left complete; plans follow their `sent` transition; the markers of
    events and launches seen by this tick move on."""
    db, now, report = ctx.db, ctx.now, ctx.report
    runs.finish(ctx)
    if not ctx.dry_run:
        scenarios.finish_delivered_launches(db, now=now)
    plans.advance(db, now=now, report=report)
    if not ctx.dry_run:
        with db.atomic():
            schedules.mark_events_seen(db)
            schedules.mark_launches_seen(db)
