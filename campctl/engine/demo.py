"""`campctl demo`: the sample state (audience, definitions applied, approved and started), the
virtual clock that drives the engine across simulated days, and the summary.

Reading the example definitions is the command's job (it goes through the same functions as
`apply`); this module applies them, ticks, emits a few sample events and reports what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from campctl.timeutil import iso_z

# The example definitions are dated around March 2027: the demo clock starts there.
DEFAULT_START = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)
# Shipped as package data (in a source tree, campctl/data/plans links to the repository's plans/).
DATA = Path(__file__).resolve().parent.parent / "data"


# Issue 16's operations on the examples (plans/campaigns/operations.yaml, flash-friday): the
# demo's operator pauses two runs once built and resumes them after the simulated days, one with
# each missed-message policy; retries the failures of one; asks `why` about one contact; runs
# `doctor` on the state and a short `simulate` forecast.
PAUSED = {"store-opening": "skip", "flash-friday": "send"}  # campaign -> --missed policy
RETRIED = "referral-codes"
LATE_CODES = "referral-codes-late.csv"  # the codes the retry waits for
WHY_CONTACT = "C0160"  # a VIP beta tester whose referral code arrives late
SIMULATE_DAYS = 2
# After the operator's actions the demo ticks until the runs it resumed or retried have nothing
# waiting (a window may hold them until it opens), at most this many ticks: one day.
FINISH_TICKS = 48


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
    # The referral codes of all but five beta testers (see plans/campaigns/operations.yaml).
    import_contacts(db, DATA / "referral-codes.csv", now=start)
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
          record_event: Callable, progress: Callable | None = None,
          operator: Operator | None = None) -> dict:
    """Tick every STEP from `start` for `days`, emitting the sample events when their time
    comes (and letting `operator` act before each tick); returns totals."""
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
        if operator is not None:
            operator.before_tick(db, now=now)
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


# --- issue 16's operations ------------------------------------------------------------------------

@dataclass
class Operator:
    """The demo's operator during the simulated days: pauses each run of PAUSED once it is built
    (before its send time), as `campctl pause run ID` would."""

    actor: str
    paused: dict[str, int] = field(default_factory=dict)  # campaign -> run id

    def before_tick(self, db: Database, *, now: datetime) -> None:
        from campctl.engine.run_control import RunVerb, apply_run_verb
        from campctl.models import ACTIVE_RUN_STATUSES

        active = {str(s) for s in ACTIVE_RUN_STATUSES}
        for campaign in PAUSED:
            if campaign in self.paused:
                continue
            for run in run_store.list_run_records(db, campaign=campaign):
                if run.built_at is not None and run.status in active and run.status != "paused":
                    apply_run_verb(db, run.id, RunVerb("pause", self.actor, note="demo"),
                                   now=now)
                    self.paused[campaign] = run.id
                    break


def operate(db: Database, operator: Operator, *, at: datetime, environ: Mapping[str, str],
            location: Any) -> dict[str, Any]:
    """After the simulated days, at `at`: resume the paused runs (each with its policy), import
    the late referral codes and retry the failures, tick until those runs are done, then `why`,
    `doctor` and a `simulate` of the state at `location` (copied, left unchanged). Returns one
    section per item."""
    out: dict[str, Any] = {"resume": _resume(db, operator, at=at)}
    out["retry"] = _retry(db, operator.actor, at=at, environ=environ)
    watched = [r["run"] for r in out["resume"] if r["run"] is not None]
    watched += [out["retry"]["new_run"]] if out["retry"]["new_run"] is not None else []
    last = at
    for i in range(FINISH_TICKS):
        last = at + i * STEP
        tick_engine.tick(db, now=last, environ=environ)
        if not any(c["queued"] for c in run_store.counts_for(db, watched).values()):
            break
    if out["retry"].get("new_run") is not None:
        out["retry"]["sent"] = run_store.counts(db, out["retry"]["new_run"])["sent"]
    out["stale"] = _stale(db)
    out["why"] = _why(db, now=last)
    out["doctor"] = _doctor(db, now=last, environ=environ)
    out["ended_at"] = iso_z(last)  # the demo's last tick: `--now` for why and doctor
    out["simulate"] = _simulate(location, start=last + STEP, environ=environ)
    return out


def _resume(db: Database, operator: Operator, *, at: datetime) -> list[dict[str, Any]]:
    from campctl.engine.run_control import RunVerb, apply_run_verb

    rows = []
    for campaign, policy in PAUSED.items():
        row: dict[str, Any] = {"campaign": campaign, "run": operator.paused.get(campaign),
                               "policy": policy, "missed": 0, "released": 0, "cancelled": 0}
        if row["run"] is not None:
            action = apply_run_verb(db, row["run"], RunVerb(
                "resume", operator.actor, note="demo: resumed after the simulated days",
                missed=policy), now=at)
            assert action.missed is not None
            row.update(missed=action.missed.missed, released=action.missed.released,
                       cancelled=action.missed.cancelled)
        rows.append(row)
    return rows


def _retry(db: Database, actor: str, *, at: datetime,
           environ: Mapping[str, str]) -> dict[str, Any]:
    from campctl.engine.run_control import deliver_pending_notifications, retry_failed

    out: dict[str, Any] = {"campaign": RETRIED, "run": None, "failed": 0, "new_run": None,
                           "queued": 0, "sent": 0}
    runs = [r for r in run_store.list_run_records(db, campaign=RETRIED)
            if r.status in ("completed", "failed", "stopped")]
    counts = run_store.counts_for(db, [r.id for r in runs])
    failing = [r for r in runs if counts.get(r.id, {}).get("failed")]
    if not failing:
        return out
    run = min(failing, key=lambda r: r.id)
    out.update(run=run.id, failed=counts[run.id]["failed"])
    import_contacts(db, DATA / LATE_CODES, now=at)  # the missing codes arrive
    action = retry_failed(db, run.id, actor=actor, note="referral codes imported", now=at)
    deliver_pending_notifications(db, now=at, environ=environ)
    out.update(new_run=action.new_run_id, queued=action.queued)
    return out


def _stale(db: Database) -> dict[str, Any]:
    runs = run_store.list_run_records(db)
    counts = run_store.counts_for(db, [r.id for r in runs])
    rows = [{"run": r.id, "campaign": r.campaign, "stale": counts[r.id]["stale"]}
            for r in sorted(runs, key=lambda r: r.id) if counts.get(r.id, {}).get("stale")]
    return {"total": sum(r["stale"] for r in rows), "runs": rows}


def _why(db: Database, *, now: datetime) -> dict[str, Any]:
    from campctl.engine.why import explain

    answer = explain(db, WHY_CONTACT, now=now)
    shown = set(PAUSED) | {RETRIED}
    objects = [{"kind": o["kind"], "name": o["name"], "stage": o.get("stage"),
                "verdict": o["verdict"], "reason": o["reason"]}
               for o in answer["objects"] if (o.get("campaign") or o["name"]) in shown]
    return {"contact": WHY_CONTACT, "objects": objects, "answers": len(answer["objects"])}


def _doctor(db: Database, *, now: datetime, environ: Mapping[str, str]) -> dict[str, Any]:
    from campctl.engine import doctor

    checks = doctor.run_checks(doctor.DoctorInput(db, now, environ))
    counts = doctor.summary(checks)
    return {"healthy": counts["problems"] == 0, **counts,
            "findings": [{"name": c.name, "severity": c.severity, "detail": c.detail}
                         for c in checks if c.severity != "ok"]}


def _simulate(location: Any, *, start: datetime, environ: Mapping[str, str]) -> dict[str, Any]:
    """`simulate --days SIMULATE_DAYS` from `start` on a temporary SQLite copy of the state."""
    import tempfile

    from campctl.engine.simulate import simulate
    from campctl.store.copy import copy_state
    from campctl.store.db import open_state
    from campctl.store.location import SqlitePath
    from campctl.timeutil import to_db

    with tempfile.TemporaryDirectory(prefix="campctl-demo-simulate-") as folder:
        target = SqlitePath(Path(folder) / "copy.db")
        copy_state(location, target, now_text=to_db(start))
        copy = open_state(target, create=False)
        try:
            result = simulate(copy, start=start, days=SIMULATE_DAYS, environ=environ,
                              timezone="UTC")
        finally:
            copy.close()
    data = result.as_json()
    keys = ("fired", "built", "sent", "failed", "stale", "held_window")
    return {"from": data["from"], "until": data["until"], "simulated_days": SIMULATE_DAYS,
            "ticks": data["ticks"],
            "days": [{"day": d["day"], **{k: d[k] for k in keys}} for d in data["days"]],
            "totals": {k: data["totals"][k] for k in keys}}
