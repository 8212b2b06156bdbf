"""`campctl demo`: the virtual clock that drives the engine across simulated days, and the summary.

Loading the example definitions is the command's job (it goes through the same functions as
`apply`); this module only ticks, emits a few sample events and reports what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from campctl.engine import tick as tick_engine
from campctl.store import objects as object_store
from campctl.store import runs as run_store
from campctl.store.schedules import delivered_sample, delivered_total, sample_contacts

# The example definitions are dated around March 2027: the demo clock starts there.
DEFAULT_START = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)


def sample_events(db, *, at: datetime) -> list[tuple[str, str, datetime]]:
    """A handful of events for every event the examples listen to, spread over the first days."""
    names: set[str] = set()
    for obj in object_store.list_objects(db, "Campaign"):
        event = ((obj["spec"] or {}).get("trigger") or {}).get("event")
        if event:
            names.add(event)
    for obj in object_store.list_objects(db, "Scenario"):
        launch = (obj["spec"] or {}).get("launch") or {}
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
        for key in ("fired", "built", "sent", "failed"):
            totals[key] += getattr(report, key)
        if progress is not None:
            progress(db, now, report)
        now += STEP
    return totals


def summary(db, *, limit: int = 8) -> dict:
    runs = run_store.list_runs(db)
    counts = run_store.counts_for(db, [r["id"] for r in runs])
    run_rows = [{"id": r["id"], "campaign": r["campaign"], "stage": r["stage"],
                 "status": r["status"], "instance": r["instance_id"],
                 **counts.get(r["id"], {"queued": 0, "sent": 0, "failed": 0, "cancelled": 0})}
                for r in sorted(runs, key=lambda r: r["id"])]
    try:
        from campctl.store.plans import list_instances

        instances = [{"id": i.id, "name": i.name, "plan": i.plan,
                      "status": i.status} for i in list_instances(db)]
    except ImportError:  # pragma: no cover
        instances = []
    profiles = object_store.profile_counts(db)
    scenarios = [{"name": s["name"], "active": s["status"] == "active",
                  "profiles": profiles.get(s["name"], 0)}
                 for s in object_store.list_objects(db, "Scenario")]
    return {"runs": run_rows, "instances": instances, "scenarios": scenarios,
            "messages": delivered_sample(db, limit), "delivered": delivered_total(db)}
