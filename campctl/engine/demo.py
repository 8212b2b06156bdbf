"""`campctl demo`: the sample state (audience, definitions applied, approved and started), the
virtual clock that drives the engine across simulated days, and the summary.

Reading the example definitions is the command's job (it goes through the same functions as
`apply`); this module applies them, ticks, emits a few sample events and reports what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campctl.engine import catalog, plans, workflow
from campctl.engine import tick as tick_engine
from campctl.engine.audience import import_contacts
from campctl.errors import CampctlError, NotFound
from campctl.models import Definition, Kind
from campctl.store import objects as object_store
from campctl.store import runs as run_store
from campctl.store.db import Database
from campctl.store.plans import list_instances
from campctl.store.schedules import delivered_sample, delivered_total, sample_contacts

# The example definitions are dated around March 2027: the demo clock starts there.
DEFAULT_START = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)
# Shipped as package data (in a source tree, campctl/data/plans links to the repository's plans/).
DATA = Path(__file__).resolve().parent.parent / "data"


def examples_dir() -> Path:
    """The example definitions installed with campctl."""
    candidate = DATA / "plans"
    if candidate.is_dir():
        return candidate
    raise NotFound(f"the example definitions are not installed with this campctl ({candidate} "
                   "is missing): reinstall campctl")


def setup(db: Database, definitions: Sequence[Definition], *, start: datetime,
          actor: str) -> list[str]:
    """Import the sample audience, apply the example definitions (channels rerouted to the
    outbox), approve and start everything. Returns notes about what could not be started."""
    import_contacts(db, DATA / "contacts.csv", now=start)
    for definition in definitions:
        if definition.kind == Kind.CHANNEL:
            # No network in the demo: every channel becomes an outbox without a file copy.
            definition.spec = {"type": "outbox"}
    with db.atomic():
        changes = catalog.plan_apply(db, list(definitions))
        catalog.execute_apply(db, changes, actor=actor, now=start, note="demo")
    notes = _approve(db, definitions, start=start, actor=actor)
    for definition in definitions:
        try:
            with db.atomic():
                _start(db, definition, start=start, actor=actor)
        except CampctlError as exc:
            notes.append(exc.message)
    return notes


def _approve(db: Database, definitions: Sequence[Definition], *, start: datetime,
             actor: str) -> list[str]:
    """Submit (as `actor`) and approve (as another user) every campaign, then every plan."""
    notes: list[str] = []
    for kind in (Kind.CAMPAIGN, Kind.PLAN):
        for definition in [d for d in definitions if d.kind == kind]:
            for verb, who in (("submit", actor), ("approve", f"{actor}-approver")):
                try:
                    with db.atomic():
                        workflow.business_verb(db, kind, definition.name, workflow.VerbRequest(
                            verb, who, note="demo"), now=start)
                except CampctlError as exc:
                    notes.append(exc.message)
    return notes


def _start(db: Database, definition: Definition, *, start: datetime, actor: str) -> None:
    """Start what runs on its own: campaigns not only run by a plan, manual plans, scenarios."""
    if definition.kind == Kind.CAMPAIGN:
        stages = definition.spec.get("stages") or [{}]
        if not all(s.get("controlled_by_plan") for s in stages):
            workflow.start_campaign(db, name=definition.name, actor=actor, now=start)
    elif definition.kind == Kind.PLAN:
        if (definition.spec.get("schedule") or {}).get("type") == "manual":
            plans.start_manual(db, plan=definition.name, now=start, actor=actor)
    elif definition.kind == Kind.SCENARIO:
        workflow.scenario_verb(db, name=definition.name, verb="activate", actor=actor,
                               now=start)


def sample_events(db, *, at: datetime) -> list[tuple[str, str, datetime]]:
    """A handful of events for every event the examples listen to, spread over the first days."""
    names: set[str] = set()
    for obj in object_store.list_records(db, "Campaign"):
        event = (obj.spec.get("trigger") or {}).get("event")
        if event:
            names.add(event)
    for obj in object_store.list_records(db, "Scenario"):
        launch = obj.spec.get("launch") or {}
        if launch.get("type") == "event" and launch.get("event"):
            names.add(launch["event"])
    contacts = sample_contacts(db, 12)
    out = []
    for i, name in enumerate(sorted(names)):
        for j, contact in enumerate(contacts[i::3][:4]):
            out.append((name, contact, at + timedelta(hours=3 + 7 * j + i)))
    return out


def drive(db, *, start: datetime, days: int, environ: Mapping[str, str],
          record_event: Callable, progress: Callable | None = None) -> dict:
    """Tick every STEP from `start` for `days`, emitting the sample events when their time
    comes; returns totals."""
    end = start + timedelta(days=days)
    pending = sorted(sample_events(db, at=start), key=lambda e: e[2])
    totals = {"ticks": 0, "fired": 0, "built": 0, "sent": 0, "failed": 0, "events": 0}
    now = start
    while now <= end:
        while pending and pending[0][2] <= now:
            name, contact, at = pending.pop(0)
            with db.atomic():
                record_event(db, name=name, contact=contact, at=at, data=None, now=at)
            totals["events"] += 1
        report = tick_engine.tick(db, now=now, environ=environ)
        totals["ticks"] += 1
        totals["fired"] += report.fired
        totals["built"] += report.built
        totals["sent"] += report.sent
        totals["failed"] += report.failed
        if progress is not None:
            progress(db, now, report)
        now += STEP
    return totals


def summary(db, *, limit: int = 8) -> dict:
    runs = run_store.list_run_records(db)
    counts = run_store.counts_for(db, [r.id for r in runs])
    run_rows = [{"id": r.id, "campaign": r.campaign, "stage": r.stage,
                 "status": r.status, "instance": r.instance_id,
                 **counts.get(r.id, {"queued": 0, "sent": 0, "failed": 0, "cancelled": 0,
                                     "stale": 0})}
                for r in sorted(runs, key=lambda r: r.id)]
    instances = [{"id": i.id, "name": i.name, "plan": i.plan, "status": i.status}
                 for i in list_instances(db)]
    profiles = object_store.profile_counts(db)
    scenarios = [{"name": s.name, "active": s.status == "active",
                  "profiles": profiles.get(s.name, 0)}
                 for s in object_store.list_records(db, "Scenario")]
    return {"runs": run_rows, "instances": instances, "scenarios": scenarios,
            "messages": delivered_sample(db, limit), "delivered": delivered_total(db)}
