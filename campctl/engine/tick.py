"""One pass of the engine at `now`: fire, advance and build, deliver, finish (docs/INTERFACES.md).

Each phase runs in its own short transactions; exactly-once comes from the database (UNIQUE
occurrences, conditional claims), so concurrent ticks and killed ticks are safe. A dry run does
the same work inside one transaction that is rolled back, with delivery in dry-run mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime

from campctl.engine import campaigns, runs
from campctl.models import TickReport
from campctl.store import schedules


class _Rollback(Exception):
    """Raised at the end of a dry run to undo everything it wrote."""


def _hook(module_name: str, name: str) -> Callable | None:
    import importlib

    try:
        module = importlib.import_module(f"campctl.engine.{module_name}")
    except ImportError:
        return None
    return getattr(module, name, None)


def tick(db, *, now: datetime, environ: Mapping[str, str], max_messages: int | None = None,
         max_seconds: float | None = None, dry_run: bool = False,
         monotonic: Callable[[], float] = time.monotonic,
         stop_requested: Callable[[], bool] | None = None) -> TickReport:
    report = TickReport(now=now)
    deadline = monotonic() + max_seconds if max_seconds is not None else None
    if not dry_run:
        _phases(db, now=now, environ=environ, report=report, max_messages=max_messages,
                deadline=deadline, stop_requested=stop_requested, dry_run=False)
        return report
    try:
        with db.atomic():
            _phases(db, now=now, environ=environ, report=report, max_messages=max_messages,
                    deadline=deadline, stop_requested=stop_requested, dry_run=True)
            raise _Rollback
    except _Rollback:
        pass
    return report


def _phases(db, *, now, environ, report, max_messages, deadline, stop_requested, dry_run):
    # 1. fire due occurrences
    campaigns.fire_due(db, now=now, report=report)
    for module in ("plans", "scenarios"):
        hook = _hook(module, "fire_due")
        if hook is not None:
            hook(db, now=now, report=report)
    # 2. advance plans and scenarios, build due campaign queues
    for module in ("plans", "scenarios"):
        hook = _hook(module, "advance")
        if hook is not None:
            hook(db, now=now, report=report)
    runs.build_due(db, now=now, report=report, dry_run=dry_run)
    # 3. deliver
    live = runs.live_runs(db, now=now, report=report, dry_run=dry_run)
    runs.start_delivery(db, live, now=now)
    if stop_requested is None or not stop_requested():
        runs.deliver(db, now=now, environ=environ, report=report, run_ids=live,
                     max_messages=max_messages, deadline=deadline,
                     stop_requested=stop_requested, dry_run=dry_run)
    # 4. finish: complete runs, then let plans follow their `sent` transition
    runs.finish(db, now=now, report=report, dry_run=dry_run)
    hook = _hook("scenarios", "finish_delivered_launches")
    if hook is not None and not dry_run:
        hook(db, now=now)
    hook = _hook("plans", "advance")
    if hook is not None:
        hook(db, now=now, report=report)
    if not dry_run:
        with db.atomic():
            schedules.mark_events_seen(db)
            schedules.mark_launches_seen(db)


def nothing_due(db, *, now: datetime) -> bool:
    """True when a tick at `now` would do nothing (the indexed probe of the fast path)."""
    from campctl.timeutil import to_db

    return schedules.due_reason(db, to_db(now)) is None
