"""Multi-stage execution plans: occurrences, instances, stage transitions, delivery control."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from campctl.engine import isolation
from campctl.errors import ActionRefused, NotFound
from campctl.models import INSTANCE_TRANSITIONS, TickReport, allowed_verbs
from campctl.store import history
from campctl.store import log as exec_log
from campctl.store import objects as object_store
from campctl.store import plans as store
from campctl.store import runs as store_runs
from campctl.store.db import Database
from campctl.store.plans import (
    NewInstance,
    PlanInstance,
    RunState,
    StageInstance,
)
from campctl.timeutil import from_db, iso_z, parse_local_datetime, zone

if TYPE_CHECKING:
    from campctl.definitions.models import Plan, PlanSchedule, PlanStage
    from campctl.engine.runs import EndedRun
    from campctl.store.objects import ObjectRecord
    from campctl.store.runs import RunRecord

SCHEDULER = "campctl-scheduler"  # the actor of instances started by a schedule
BUILT_RUN = ("queued", "sending", "completed")
IN_PROGRESS = ("started", "running")  # the stage statuses of a stage whose run goes on


@dataclass(frozen=True, slots=True)
class Trigger:
    """What starts an instance: Start Now by an operator, or an occurrence of its schedule."""

    actor: str
    how: str  # for the log and the history: "Start Now by ana", "recurrent schedule" ...
    note: str | None = None
    scheduled_at: datetime | None = None
    occurrence_id: int | None = None


@dataclass(frozen=True, slots=True)
class Ending:
    """How an instance ends: its new status (completed | failed | cancelled), why, and who."""

    to: str
    why: str
    actor: str = SCHEDULER
    note: str | None = None
    action: str | None = None  # the history verb, when not the usual one for `to`


_END_EVENTS = {"completed": "Instance Completed", "failed": "Instance Failed",
               "cancelled": "Instance Cancelled"}
_END_ACTIONS = {"completed": "complete", "failed": "fail", "cancelled": "stop"}


@dataclass(frozen=True, slots=True)
class _Slot:
    """One occurrence of a plan's schedule (with its row id once it has one)."""

    plan: str
    scheduled_at: datetime
    tz: str
    occurrence_id: int | None = None


def _instant(text: str) -> datetime:
    """A non-null instant read from the database."""
    moment = from_db(text)
    if moment is None:  # from_db maps only None to None
        raise ValueError("missing instant")
    return moment


# --- plan definitions ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlanObject:
    """A stored plan with its typed definition (every default applied by the model)."""

    name: str
    version: int
    status: str | None
    updated_at: str | None
    model: Plan

    @classmethod
    def of(cls, stored: ObjectRecord) -> PlanObject:
        from campctl.definitions.models import Plan  # here: a tick with nothing due needs none

        return cls(name=stored.name, version=stored.version, status=stored.status,
                   updated_at=stored.updated_at,
                   model=Plan.from_spec(stored.spec))


def _get_plan(db: Database, name: str) -> PlanObject | None:
    stored = object_store.get_record(db, "Plan", name)
    return None if stored is None else PlanObject.of(stored)


def _local(moment: datetime, tz: str) -> str:
    local = moment.astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def precondition_problems(db: Database, plan: Plan, *, now: datetime) -> list[str]:
    """Why the plan cannot start now: each stage exists with controlled_by_plan: true and its
    campaign is approved and closes in the future (the same rule as submit and approve)."""
    from campctl.engine.workflow import plan_blockers

    return plan_blockers(db, plan, now=now)


def _require_plan(db: Database, name: str) -> PlanObject:
    plan = _get_plan(db, name)
    if plan is None:
        raise NotFound(f"no plan named {name!r} (see 'campctl get plans')")
    return plan


def require_instance(db: Database, ref: str | int) -> PlanInstance:
    """An instance by integer id (or by its name, as a convenience)."""
    text = str(ref).strip()
    instance_id = int(text) if text.isdigit() else store.find_instance_id(db, text)
    found = store.get_instance(db, instance_id) if instance_id is not None else None
    if found is None:
        raise NotFound(f"no plan instance {text!r} (see 'campctl get instances')")
    return found


def _log_stage(db: Database, instance: PlanInstance, stage: StageInstance | store.StageRef,
               event: str, details: str, *, now: datetime) -> None:
    """One execution-log row about a stage of an instance (and the run it follows, if any)."""
    exec_log.append(db, exec_log.LogEntry(
        event,
        exec_log.Subject(plan=instance.plan, instance_id=instance.id, campaign=stage.campaign,
                         stage=stage.stage, run_id=stage.run_id),
        details=details), now=now)


# --- starting instances ------------------------------------------------------------------------

def start_manual(db: Database, *, plan: str, now: datetime, actor: str,
                 note: str | None = None) -> dict:
    """`campctl start plan NAME` (Start Now): the new instance's view. The caller holds the
    transaction. One instance at a time: refused while one is running or paused."""
    obj = _require_plan(db, plan)
    if obj.status != "approved":
        hint = {
            "draft": f"submit and approve it first: 'campctl submit plan {plan}'",
            "pending-approval": f"it waits for 'campctl approve plan {plan}'",
        }.get(str(obj.status), f"'campctl revise plan {plan}', then submit and approve it again")
        raise ActionRefused(
            f"cannot start plan {plan}: it is {obj.status}, only approved plans start ({hint})"
        )
    kind = obj.model.schedule.type
    if kind != "manual":
        raise ActionRefused(
            f"cannot start plan {plan}: its schedule type is {kind}, so it starts on its schedule; "
            "'start plan' is only for schedule type manual (see 'campctl preview plan "
            f"{plan}')"
        )
    problems = precondition_problems(db, obj.model, now=now)
    if problems:
        from campctl.engine.workflow import refusal

        raise refusal(f"cannot start plan {plan}", problems)
    running = store.list_instances(db, plan=plan, statuses=store.ACTIVE_INSTANCE)
    if running:
        current = running[0]
        raise ActionRefused(
            f"cannot start plan {plan}: instance {current.name} (id {current.id}) is "
            f"still {current.status}; wait for it to end, or 'campctl stop instance "
            f"{current.id} --note WHY'"
        )
    trigger = Trigger(actor=actor, how=f"Start Now by {actor}", note=note)
    return instance_view(db, start_instance(db, obj, trigger, now=now))


@dataclass(frozen=True, slots=True)
class _FrozenStage:
    """One stage of the execution tree as the snapshot keeps it."""

    campaign: str
    stage: str
    code: str
    campaign_version: int
    spec: dict[str, Any]  # the stage's resolved definition: what its run is built from

    def as_json(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "stage": self.stage, "code": self.code,
                "campaign_version": self.campaign_version, "spec": self.spec}


def _frozen_stages(db: Database, entries: tuple[PlanStage, ...]) -> list[_FrozenStage]:
    """Each stage's resolved definition, as it is when the instance starts."""
    from campctl.definitions.models import Campaign
    from campctl.engine.runs import resolve_stage

    stages = []
    for entry in entries:
        stored = (object_store.get_record(db, "Campaign", entry.campaign)
                  if entry.campaign is not None else None)
        if stored is None:  # guarded by the preconditions; kept for a clear message
            raise ActionRefused(f"campaign {entry.campaign} does not exist")
        campaign = Campaign.from_spec(stored.spec)
        resolved = resolve_stage(campaign, stored.name, entry.stage, version=stored.version)
        stages.append(_FrozenStage(
            campaign=stored.name, stage=entry.stage, code=campaign.code_or(stored.name),
            campaign_version=stored.version, spec=resolved))
    return stages


def start_instance(db: Database, plan: PlanObject, trigger: Trigger, *, now: datetime,
                   report: TickReport | None = None) -> int:
    """Create an instance with its snapshot and start its first stage (caller's transaction)."""
    stages = _frozen_stages(db, plan.model.stages)
    tz, transition = plan.model.timezone, plan.model.transition
    snapshot = {
        "plan": plan.name,
        "plan_version": plan.version,
        "transition": transition,
        "timezone": tz,
        "schedule": dict(plan.model.schedule.raw),
        "stages": [stage.as_json() for stage in stages],
    }
    local = (trigger.scheduled_at or now).astimezone(zone(tz))
    instance_id, name = store.insert_instance(db, NewInstance(
        name=f"{plan.name}-{local.strftime('%Y%m%dT%H%M')}", plan=plan.name, status="running",
        started_at=now, plan_version=plan.version, snapshot=snapshot,
        scheduled_at=trigger.scheduled_at, occurrence_id=trigger.occurrence_id))
    for position, stage in enumerate(stages):
        store.insert_stage(db, instance_id=instance_id, position=position,
                           campaign=stage.campaign, code=stage.code, stage=stage.stage)
    when = (f" for the occurrence of {_local(trigger.scheduled_at, tz)}"
            if trigger.scheduled_at else "")
    exec_log.append(db, exec_log.LogEntry(
        "Instance Created", exec_log.Subject(plan=plan.name, instance_id=instance_id),
        details=f"{name}: {trigger.how}{when}; {len(stages)} stage(s), "
                f"transition {transition}, plan version {plan.version}"), now=now)
    _note(report, f"plan {plan.name}: instance {name} created ({trigger.how})")
    history.record(db, history.HistoryEntry(
        kind="instance", name=str(instance_id), action="start", actor=trigger.actor,
        to_status="running", note=trigger.note or trigger.how), now=now)
    _advance_instance(db, instance_id, now=now, report=report)
    return instance_id


# --- the tick: firing occurrences --------------------------------------------------------------

def fire_due(db: Database, *, now: datetime, report: TickReport | None,
             dry_run: bool = False) -> None:
    """Fire due plan occurrences (once / recurrent), applying catch-up and overlap rules.

    `tick --dry-run` runs this inside a transaction it rolls back; `report.notes` says what
    happened. `dry_run` is accepted for callers that pass it and changes nothing here.
    """
    for candidate in store.plans_to_examine(db, now):
        # A plan that fails is rolled back alone and retried at the next tick.
        with isolation.boundary(db, report, isolation.Unit(
                kind="Plan", name=candidate.name), now=now):
            _fire_plan(db, candidate.name, now=now, report=report)


def _due_times(schedule: PlanSchedule, *, after: datetime,
               now: datetime) -> tuple[list[datetime], datetime | None]:
    """(due instants in (after, now], next instant after now) of a once/recurrent schedule."""
    from campctl.engine import cron

    tz = schedule.timezone
    if schedule.type == "once":
        at = parse_local_datetime(str(schedule.at), tz)
        return ([at] if after < at <= now else []), (at if at > now else None)
    if schedule.type == "recurrent":
        expr = str(schedule.cron)
        return (cron.fire_times(expr, tz, after=after, until=now, dst=schedule.dst),
                cron.next_fire(expr, tz, after=now, dst=schedule.dst))
    return [], None


def _cursor(db: Database, plan: PlanObject, now: datetime) -> datetime:
    """Occurrences count from the later of the last examination and the last approval."""
    state = store.get_schedule_state(db, plan.name)
    marks: list[datetime] = []
    if state and state.cursor_at and (examined := from_db(state.cursor_at)):
        marks.append(examined)
    approved = store.approved_at(db, plan.name) or plan.updated_at
    if approved and (approval := from_db(approved)):
        marks.append(approval)
    return max(marks) if marks else now


def _fire_plan(db: Database, name: str, *, now: datetime, report: TickReport | None) -> None:
    plan = _get_plan(db, name)
    if plan is None or plan.status != "approved":
        return
    if plan.model.schedule.type in ("once", "recurrent"):
        _fire_scheduled(db, plan, now=now, report=report)
    else:
        store.set_schedule_state(db, name, next_due_at=None, cursor_at=now)
    _start_queued(db, name, now=now, report=report)


def _fire_scheduled(db: Database, plan: PlanObject, *, now: datetime,
                    report: TickReport | None) -> None:
    """The occurrences of a once/recurrent plan that came due since its cursor."""
    from campctl.engine import cron

    cursor = _cursor(db, plan, now)
    try:
        due, upcoming = _due_times(plan.model.schedule, after=cursor, now=now)
    except ValueError as exc:  # a schedule that validate should have refused
        store.set_schedule_state(db, plan.name, next_due_at=None, cursor_at=max(cursor, now))
        exec_log.append(db, exec_log.LogEntry(
            "Occurrence Skipped", exec_log.Subject(plan=plan.name),
            details=f"schedule cannot be evaluated: {exc}"), now=now)
        return
    fire, skipped = cron.apply_catchup(due, plan.model.schedule.catchup, now=now)
    tz = plan.model.timezone
    for scheduled_at, reason in skipped:
        _skip(db, _Slot(plan.name, scheduled_at, tz), reason=reason, now=now, report=report)
    for scheduled_at in fire:
        _fire_occurrence(db, plan, scheduled_at, now=now, report=report)
    store.set_schedule_state(db, plan.name, next_due_at=upcoming, cursor_at=max(cursor, now))


def _skip(db: Database, slot: _Slot, *, reason: str, now: datetime,
          report: TickReport | None) -> None:
    if slot.occurrence_id is None:
        if store.insert_occurrence(db, slot.plan, slot.scheduled_at, status="skipped",
                                   reason=reason, now=now) is None:
            return  # already handled by another tick
    else:
        store.set_occurrence(db, slot.occurrence_id, status="skipped", reason=reason)
    exec_log.append(db, exec_log.LogEntry(
        "Occurrence Skipped", exec_log.Subject(plan=slot.plan),
        details=f"occurrence {_local(slot.scheduled_at, slot.tz)} skipped: {reason}"), now=now)
    if report is not None:
        report.skipped += 1
    _note(report, f"plan {slot.plan}: occurrence {iso_z(slot.scheduled_at)} skipped ({reason})")


def _note(report: TickReport | None, text: str) -> None:
    """What the tick did, for `tick --dry-run` (which runs the same code and rolls back)."""
    if report is not None:
        report.notes.append(text)


def _fire_occurrence(db: Database, plan: PlanObject, scheduled_at: datetime, *,
                     now: datetime, report: TickReport | None) -> None:
    name, schedule = plan.name, plan.model.schedule
    slot = _Slot(name, scheduled_at, plan.model.timezone)
    problems = precondition_problems(db, plan.model, now=now)
    if problems:
        _skip(db, slot, reason="precondition not met: " + "; ".join(problems), now=now,
              report=report)
        return
    running = store.list_instances(db, plan=name, statuses=store.ACTIVE_INSTANCE)
    if running:
        _overlap(db, slot, running[0].name, queue=schedule.overlap == "queue", now=now,
                 report=report)
        return
    occurrence = store.insert_occurrence(db, name, scheduled_at, status="fired", reason=None,
                                         now=now)
    if occurrence is None:
        return
    start_instance(db, plan, Trigger(actor=SCHEDULER, how=f"{schedule.type} schedule",
                                     scheduled_at=scheduled_at, occurrence_id=occurrence),
                   now=now, report=report)
    if report is not None:
        report.fired += 1


def _overlap(db: Database, slot: _Slot, current: str, *, queue: bool, now: datetime,
             report: TickReport | None) -> None:
    """An occurrence while instance `current` runs: queued behind it, or skipped."""
    if not queue:
        _skip(db, slot, now=now, report=report,
              reason=f"overlap skip: instance {current} is still running")
        return
    occurrence = store.insert_occurrence(
        db, slot.plan, slot.scheduled_at, status="queued",
        reason=f"overlap queue: waiting for instance {current}", now=now)
    if occurrence is not None:
        exec_log.append(db, exec_log.LogEntry(
            "Occurrence Queued", exec_log.Subject(plan=slot.plan),
            details=f"occurrence {_local(slot.scheduled_at, slot.tz)} waits for "
                    f"instance {current} (overlap: queue)"), now=now)
        _note(report, f"plan {slot.plan}: occurrence {iso_z(slot.scheduled_at)} queued behind "
                      f"instance {current} (overlap: queue)")


def _start_queued(db: Database, name: str, *, now: datetime,
                  report: TickReport | None) -> None:
    """overlap: queue — when nothing runs, the oldest queued occurrence starts."""
    queued = store.queued_occurrences(db, name)
    if not queued or store.active_instance_ids(db, plan=name):
        return
    plan = _get_plan(db, name)
    tz = plan.model.timezone if plan else "UTC"
    slots = [_Slot(name, _instant(item.scheduled_at), tz, item.id) for item in queued]
    if plan is None or plan.status != "approved":
        status = plan.status if plan else "deleted"
        for slot in slots:
            _skip(db, slot, now=now, report=report,
                  reason=f"plan is {status}; queued occurrence dropped")
        return
    problems = precondition_problems(db, plan.model, now=now)
    if problems:
        for slot in slots:
            _skip(db, slot, now=now, report=report,
                  reason="precondition not met: " + "; ".join(problems))
        return
    first = slots[0]
    if first.occurrence_id is None or not store.set_occurrence(
            db, first.occurrence_id, status="fired", only_if="queued"):
        return
    start_instance(db, plan, Trigger(actor=SCHEDULER, how="queued occurrence (overlap: queue)",
                                     scheduled_at=first.scheduled_at,
                                     occurrence_id=first.occurrence_id),
                   now=now, report=report)
    if report is not None:
        report.fired += 1


# --- the tick: advancing instances -------------------------------------------------------------

def advance(db: Database, *, now: datetime, report: TickReport | None,
            dry_run: bool = False) -> None:
    """Move every running or paused instance along its execution tree by the transition rule."""
    for instance_id in store.active_instance_ids(db):
        # An instance that cannot be advanced fails alone; the other instances go on.
        with isolation.boundary(db, report, isolation.Unit(
                kind="instance", name=str(instance_id),
                fail=_failer(db, instance_id, now=now, report=report)), now=now):
            _advance_instance(db, instance_id, now=now, report=report)


def _failer(db: Database, instance_id: int, *, now: datetime,
            report: TickReport | None) -> Callable[[str], None]:
    def fail(reason: str) -> None:
        fail_instance(db, instance_id, reason=reason, now=now, report=report)

    return fail


def fail_instance(db: Database, instance_id: int, *, reason: str, now: datetime,
                  report: TickReport | None = None) -> None:
    """The tick could not advance this instance: it ends `failed`, and its active runs fail with
    it (unsent messages cancelled), so nothing more goes out under a plan that stopped moving.
    Caller's transaction."""
    from campctl.engine.runs import RunFailure, fail_run

    why = f"the engine could not advance it: {reason}"
    for run in store.active_runs_of_instance(db, instance_id):
        fail_run(db, run.id, RunFailure(f"plan instance {instance_id} failed: {reason}"),
                 now=now, report=report)
    try:
        with db.atomic():
            instance = store.get_instance(db, instance_id)
            if instance is None or instance.status not in store.ACTIVE_INSTANCE:
                return
            _end_instance(db, instance, Ending("failed", why), now=now, report=report)
        return
    except Exception as exc:  # the instance is too broken to end the usual way: status alone
        if isolation.state_problem(exc):
            raise
    if store.set_instance_status(db, instance_id, to="failed", from_=store.ACTIVE_INSTANCE,
                                 finished_at=now, error=why):
        exec_log.append(db, exec_log.LogEntry(
            "Instance Failed", exec_log.Subject(instance_id=instance_id), details=why), now=now)
        history.record(db, history.HistoryEntry(
            kind="instance", name=str(instance_id), action="fail", actor=SCHEDULER,
            to_status="failed", note=why), now=now)
        from campctl.store import notifications

        notifications.add(db, now=now, kind="instance-failed", object=f"instance/{instance_id}",
                          note=why, actor=SCHEDULER)


def _is_built(run: RunState) -> bool:
    return run.built_at is not None or run.status in BUILT_RUN


def _observe(db: Database, instance: PlanInstance, stage: StageInstance, *,
             now: datetime) -> tuple[StageInstance, RunState | None]:
    """Log what the stage's run did since the last look; returns the stage as now stored and
    its run's state (None when the stage has no run)."""
    run = store.run_state(db, stage.run_id) if stage.run_id is not None else None
    if run is not None and run.status == "skipped" and (
            replacement := store.follow_restart(db, run.id)):
        stage = _follow_replacement(db, instance, stage, replaced=run.id, by=replacement,
                                    now=now)
        run = store.run_state(db, replacement)
    if run is None:
        return stage, None
    changes = _progress(stage, run, now=now)
    if run.handled > stage.sent_logged:
        changes["sent_logged"] = run.handled
        _log_stage(db, instance, stage, "Messages Sent",  # the stage follows `run`
                   f"{run.handled - stage.sent_logged} more handled; {run.counts.sent} sent, "
                   f"{run.counts.failed} failed of {run.total}", now=now)
    summary = _run_summary(run)
    if summary != stage.run_log:
        changes["run_log"] = summary
    return _update_stage(db, stage, changes), run


def _update_stage(db: Database, stage: StageInstance, changes: dict[str, Any]) -> StageInstance:
    """Store `changes` (datetimes as instants); returns the stage as stored."""
    if not changes:
        return stage
    store.update_stage(db, stage.id, **changes)
    stored: dict[str, Any] = {k: (iso_z(v) if isinstance(v, datetime) else v)
                              for k, v in changes.items()}
    return replace(stage, **stored)


def _follow_replacement(db: Database, instance: PlanInstance, stage: StageInstance, *,
                        replaced: int, by: int, now: datetime) -> StageInstance:
    """The stage's run was skipped and restarted (`restart run`): the stage follows the new run
    from its beginning."""
    stage = _update_stage(db, stage, {"run_id": by, "queue_created_at": None,
                                      "delivery_started_at": None, "sent_logged": 0,
                                      "activity_finished_at": None})
    _log_stage(db, instance, stage, "Activity Created",
               f"run {by} replaces run {replaced} (restart)", now=now)
    return stage


def _progress(stage: StageInstance, run: RunState, *, now: datetime) -> dict[str, Any]:
    """The stage's columns that the run's progress moves (built, delivering, errors, done)."""
    changes: dict[str, Any] = {}
    # The campaign engine logs "Queue Items Created" and "Delivery Started" for the run itself;
    # the stage only records when it saw them.
    if _is_built(run) and stage.queue_created_at is None:
        changes["queue_created_at"] = now
        if stage.status == "started":
            changes["status"] = "running"
    if stage.delivery_started_at is None and (run.handled or run.status == "sending"):
        changes["delivery_started_at"] = now
    if (run.counts.failed or run.status == "failed") and not stage.has_errors:
        changes["has_errors"] = 1
    if run.status in store.TERMINAL_RUN and stage.activity_finished_at is None:
        changes["activity_finished_at"] = from_db(run.finished_at) or now
    return changes


def _run_summary(run: RunState) -> str:
    """The stage's one-line run log."""
    counts = run.counts
    summary = (f"run {run.id} {run.status}: {run.total} built, {counts.sent} sent, "
               f"{counts.failed} failed, {counts.cancelled} cancelled")
    return summary + f"; {run.error}" if run.error else summary


def _reached(run: RunState, transition: str) -> bool:
    if run.status == "skipped":
        return True  # skipped by the operator: the plan carries on
    if run.status == "stopped":
        return False  # stopped by the operator: waits for 'restart run' or 'skip run'
    if not _is_built(run):
        return False
    if transition == "completed":
        return True
    return run.status == "completed" or run.counts.queued == 0


def _start_stage(db: Database, instance: PlanInstance, stage: StageInstance, total: int, *,
                 now: datetime) -> StageInstance:
    """Claim the stage and create its run; returns the stage as now stored."""
    from campctl.engine.runs import create_run
    from campctl.store.runs import NewRun

    if not store.claim_stage_start(db, stage.id, now=now):
        return stage
    run_id = create_run(db, NewRun(campaign=stage.campaign, stage=stage.stage,
                                   spec=instance.snapshot.stage_spec(stage.position),
                                   scheduled_at=now, queue_at=now, send_at=now,
                                   instance_id=instance.id), now=now)
    store.update_stage(db, stage.id, run_id=run_id, activity_created_at=now)
    _log_stage(db, instance, stage, "Stage Instance Created",  # (no run yet in `stage`)
               f"stage {stage.position + 1} of {total}", now=now)
    stage = replace(stage, status="started", run_id=run_id, started_at=iso_z(now),
                    activity_created_at=iso_z(now))
    _log_stage(db, instance, stage, "Activity Created", f"run {run_id} created", now=now)
    if instance.status == "paused":
        _log_stage(db, instance, stage, "Delivery Paused",
                   "stage started while the instance is paused: its messages are built but "
                   "not sent until 'resume instance'", now=now)
    return stage


def _complete_stage(db: Database, instance: PlanInstance, stage: StageInstance, *,
                    now: datetime, why: str) -> None:
    store.update_stage(db, stage.id, status="completed", completed=1, ended_at=now)
    _log_stage(db, instance, stage, "Stage Completed", why, now=now)


def _advance_instance(db: Database, instance_id: int, *, now: datetime,
                      report: TickReport | None = None) -> None:
    instance = store.get_instance(db, instance_id)
    if instance is None or instance.status not in store.ACTIVE_INSTANCE:
        return
    store.tag_plan_in_log(db, instance_id, instance.plan)
    stages = store.stages_of(db, instance_id)
    transition = instance.snapshot.transition_rule
    for stage in stages:
        if stage.status == "cancelled":
            continue
        if not _advance_stage(db, instance, stage, _Step(len(stages), transition, now, report)):
            return
    # Every stage reached its transition; the instance ends when its runs have finished, so
    # pause and stop keep control of delivery until the last message.
    _end_when_runs_finished(db, instance, len(stages), now=now, report=report)


@dataclass(frozen=True, slots=True)
class _Step:
    """What advancing one stage of an instance needs besides the instance and the stage."""

    total: int  # stages in the instance
    transition: str
    now: datetime
    report: TickReport | None


def _advance_stage(db: Database, instance: PlanInstance, stage: StageInstance,
                   step: _Step) -> bool:
    """Start, observe and complete one stage; True when the instance goes on to the next stage,
    False when it waits for this one (or has just ended)."""
    now, report = step.now, step.report
    if stage.status == "not-started":
        started = _start_next(db, instance, stage, step)
        if started is None:
            return False
        stage = started
    elif stage.run_status in store.ACTIVE_RUN:
        from campctl.engine.campaigns import close_if_due

        # Ends the instance through campaign_closed when the close cuts this stage.
        if close_if_due(db, stage.campaign, now=now, report=report) is not None:
            return False
    stage, run = _observe(db, instance, stage, now=now)
    if stage.status == "completed":
        return True
    if run is None:
        return False
    if run.status == "failed":
        _end_instance(db, instance, Ending(
            "failed", f"run {run.id} of stage {stage.campaign}/{stage.stage} failed: "
                      f"{run.error or 'see the run log'}"), now=now, report=report)
        return False
    if not _reached(run, step.transition):
        return False
    why = _reached_because(run, step.transition)
    _complete_stage(db, instance, stage, now=now, why=f"transition {step.transition}: {why}")
    _note(report, f"instance {instance.name}: stage {stage.campaign}/{stage.stage} "
                  f"completed ({why})")
    return True


def _start_next(db: Database, instance: PlanInstance, stage: StageInstance,
                step: _Step) -> StageInstance | None:
    """Start a not-started stage; None when its campaign may no longer start a run (the
    instance is then cancelled)."""
    # The campaign is looked at again when its stage starts: stopped, revised or
    # closed since the instance started, it starts no new run.
    from campctl.engine.campaigns import new_run_blocker

    if problem := new_run_blocker(db, stage.campaign, now=step.now):
        _cancel_instance(db, instance, now=step.now, report=step.report,
                         why=f"stage {stage.campaign}/{stage.stage} cannot start: {problem}")
        return None
    return _start_stage(db, instance, stage, step.total, now=step.now)


def _reached_because(run: RunState, transition: str) -> str:
    if run.status == "skipped":
        return f"run {run.id} skipped ({run.error or 'by the operator'})"
    if transition == "completed":
        return f"all {run.total} message(s) built"
    return f"all {run.total} message(s) sent or finally failed"


def _end_when_runs_finished(db: Database, instance: PlanInstance, total: int, *,
                            now: datetime, report: TickReport | None) -> None:
    stages = store.stages_of(db, instance.id)
    if any(s.run_status in store.ACTIVE_RUN for s in stages):
        return
    failed = [s for s in stages if s.run_status == "failed"]
    if failed:
        first = failed[0]
        ending = Ending("failed", f"run {first.run_id} of stage {first.campaign}/{first.stage} "
                                  "failed")
    else:
        ending = Ending("completed", f"all {total} stage(s) completed")
    _end_instance(db, instance, ending, now=now, report=report)


def _cancel_instance(db: Database, instance: PlanInstance, *, now: datetime, why: str,
                     report: TickReport | None = None) -> None:
    """The engine ends an instance that cannot go on (its campaign closed or stopped): stages
    cancelled, logged, and an operator notification, as for a failure."""
    from campctl.store import notifications

    _refresh_logs(db, instance, now=now)
    _end_instance(db, instance, Ending("cancelled", why, action="cancel"), now=now,
                  report=report)
    notifications.add(db, now=now, kind="instance-cancelled", object=f"instance/{instance.id}",
                      note=f"{instance.name}: {why}", actor=SCHEDULER)


def _cancel_cut_stages(db: Database, instance: PlanInstance, why_by_run: dict[int, str], *,
                       now: datetime) -> None:
    """Stages whose delivery was just cut read `cancelled`, even once their transition was
    reached (transition completed): their messages did not all go out."""
    for stage in store.stages_of(db, instance.id):
        if stage.run_id in why_by_run and stage.status != "cancelled":
            store.update_stage(db, stage.id, status="cancelled", ended_at=now)
            _log_stage(db, instance, stage, "Stage Cancelled", why_by_run[stage.run_id],
                       now=now)


def campaign_closed(db: Database, *, campaign: str, closes_at: datetime,
                    runs: Sequence[EndedRun], now: datetime,
                    report: TickReport | None = None) -> None:
    """The campaign's close ended `runs` (engine.campaigns): an instance whose stage lost
    messages or never got to build is cancelled with the reason."""
    why = f"campaign {campaign} closed at {iso_z(closes_at)}"
    by_instance: dict[int, list[EndedRun]] = {}
    for run in runs:
        if run.instance_id is not None:
            by_instance.setdefault(run.instance_id, []).append(run)
    for instance_id, ended in by_instance.items():
        instance = store.get_instance(db, instance_id)
        if instance is None or instance.status not in store.ACTIVE_INSTANCE:
            continue
        cut = _cut_runs(ended, store.stages_of(db, instance_id))
        if not cut:
            continue  # its messages had all gone out: the instance carries on
        lost = sum(r.cancelled for r in ended)
        reason = f"{why}; {lost} unsent message(s) cancelled"
        _cancel_cut_stages(db, instance, dict.fromkeys(cut, reason), now=now)
        _cancel_instance(db, instance, now=now, why=reason, report=report)


def _cut_runs(ended: list[EndedRun], stages: list[StageInstance]) -> set[int]:
    """The runs whose close cut their stage: messages cancelled, never built, or the stage had
    not reached its transition."""
    status_by_run = {s.run_id: s.status for s in stages}
    return {r.id for r in ended
            if r.cancelled or r.status in ("scheduled", "building")
            or (r.id in status_by_run and status_by_run[r.id] != "completed")}


def _end_instance(db: Database, instance: PlanInstance, ending: Ending, *, now: datetime,
                  report: TickReport | None = None) -> None:
    """completed | failed | cancelled: close open stages, record, start a queued occurrence."""
    to, why, note = ending.to, ending.why, ending.note
    if not store.set_instance_status(db, instance.id, to=to, from_=store.ACTIVE_INSTANCE,
                                     finished_at=now, error=why if to == "failed" else None):
        return
    store.tag_plan_in_log(db, instance.id, instance.plan)
    for stage in store.cancel_open_stages(db, instance.id, now=now):
        _log_stage(db, instance, stage, "Stage Cancelled", f"instance {to}: {why}", now=now)
    _note(report, f"instance {instance.name}: {to} ({why})")
    exec_log.append(db, exec_log.LogEntry(
        _END_EVENTS[to], exec_log.Subject(plan=instance.plan, instance_id=instance.id),
        details=why + (f"; note: {note}" if note else "")), now=now)
    history.record(db, history.HistoryEntry(
        kind="instance", name=str(instance.id), action=ending.action or _END_ACTIONS[to],
        actor=ending.actor, from_status=instance.status, to_status=to, note=note or why), now=now)
    if to == "failed":
        from campctl.store import notifications

        notifications.add(db, now=now, kind="instance-failed", object=f"instance/{instance.id}",
                          note=f"{instance.name}: {why}", actor=ending.actor)
    _start_queued(db, instance.plan, now=now, report=report)


# --- delivery control --------------------------------------------------------------------------

def _in_progress(stages: list[StageInstance]) -> StageInstance | None:
    return next((s for s in stages if s.status in IN_PROGRESS), None)


def _current_stage(stages: list[StageInstance]) -> StageInstance | None:
    """The stage in progress, else the last one that started."""
    active = _in_progress(stages)
    if active:
        return active
    started = [s for s in stages if s.run_id is not None]
    return started[-1] if started else None


def _verb_allowed(instance: PlanInstance, verb: str) -> None:
    allowed = allowed_verbs(INSTANCE_TRANSITIONS, instance.status)
    if verb not in allowed:
        hint = ", ".join(f"'campctl {v} instance {instance.id}'" for v in allowed) or "none"
        raise ActionRefused(
            f"cannot {verb} instance {instance.name} (id {instance.id}): it is "
            f"{instance.status}; allowed: {hint}"
        )


def pause_instance(db: Database, *, ref: str | int, now: datetime, actor: str,
                   note: str | None = None) -> dict:
    """Hold delivery: messages keep being built, none are sent, later stages start paused."""
    # The campaign engine keeps building the runs of a paused instance and delivers none of
    # them (engine.runs.live_runs), so pausing is the instance's status alone.
    return _set_delivery(db, ref=ref, now=now, actor=actor, note=note, verb="pause")


def resume_instance(db: Database, *, ref: str | int, now: datetime, actor: str,
                    note: str | None = None) -> dict:
    return _set_delivery(db, ref=ref, now=now, actor=actor, note=note, verb="resume")


_DELIVERY_VERBS = {
    "pause": ("running", "paused", "Delivery Paused", "paused"),
    "resume": ("paused", "running", "Delivery Resumed", "resumed"),
}


def _set_delivery(db: Database, *, ref: str | int, now: datetime, actor: str, note: str | None,
                  verb: str) -> dict:
    from_status, to_status, event, past = _DELIVERY_VERBS[verb]
    instance = require_instance(db, ref)
    _verb_allowed(instance, verb)
    if verb == "pause":
        db.wait_for_hand_overs()  # as for a run: batches claimed before it are handed over first
    if not store.set_instance_status(db, instance.id, to=to_status, from_=(from_status,)):
        raise ActionRefused(f"instance {instance.name} changed meanwhile; look again")
    current = _current_stage(store.stages_of(db, instance.id))
    exec_log.append(db, exec_log.LogEntry(
        event,
        exec_log.Subject(plan=instance.plan, instance_id=instance.id,
                         campaign=current.campaign if current else None,
                         stage=current.stage if current else None,
                         run_id=current.run_id if current else None),
        details=f"{past} by {actor}" + (f": {note}" if note else "")), now=now)
    history.record(db, history.HistoryEntry(
        kind="instance", name=str(instance.id), action=verb, actor=actor, from_status=from_status,
        to_status=to_status, note=note), now=now)
    if verb == "resume":
        _advance_instance(db, instance.id, now=now)
    return instance_view(db, instance.id)


def stop_instance(db: Database, *, ref: str | int, now: datetime, actor: str,
                  note: str | None = None) -> dict:
    """Stop current instance execution, whatever the plan's status."""
    instance = require_instance(db, ref)
    _verb_allowed(instance, "stop")
    db.wait_for_hand_overs()  # as for a run: nothing goes out after the stop commits
    who = f"stopped by {actor}"
    stopped, cut, cancelled = _stop_runs(db, instance, now=now, actor=actor, note=note)
    _refresh_logs(db, instance, now=now)
    for stage in store.stages_of(db, instance.id):
        if stage.run_id is not None and stage.run_id in stopped:
            _log_stage(db, instance, stage, "Run Stopped",
                       stopped[stage.run_id] + (f"; note: {note}" if note else ""), now=now)
    _cancel_cut_stages(db, instance, cut, now=now)
    _end_instance(db, instance, Ending("cancelled", f"{who}; {cancelled} unsent message(s) "
                                       "cancelled", actor=actor, note=note), now=now)
    from campctl.store import notifications

    notifications.add(db, now=now, kind="instance-stopped", object=f"instance/{instance.id}",
                      note=note or who, actor=actor)
    return instance_view(db, instance.id)


def _stop_runs(db: Database, instance: PlanInstance, *, now: datetime, actor: str,
               note: str | None) -> tuple[dict[int, str], dict[int, str], int]:
    """Stop the instance's active runs: (why by stopped run, why by run whose delivery was cut,
    unsent messages cancelled)."""
    why = f"instance stopped by {actor}"
    cancelled = 0
    cut: dict[int, str] = {}
    stopped: dict[int, str] = {}
    for run in store.active_runs_of_instance(db, instance.id):
        if not store_runs.end_run(db, run.id, "stopped", now=now, expected=store.ACTIVE_RUN):
            continue
        count = store_runs.cancel_queued_items(db, run.id, now=now)
        cancelled += count
        history.record(db, history.HistoryEntry(
            kind="run", name=str(run.id), action="stop", actor=actor, from_status=run.status,
            to_status="stopped", note=note or f"instance {instance.name} stopped"), now=now)
        stopped[run.id] = f"{why}: delivery cut, {count} unsent message(s) cancelled"
        if count or run.built_at is None:
            cut[run.id] = stopped[run.id]
    return stopped, cut, cancelled


def run_verb_blocker(db: Database, run: RunRecord, verb: str) -> str | None:
    """Why `restart`/`skip` of a stage's run is refused: its instance has ended (an operator
    stopped it, or its campaign closed); None when the verb may go ahead."""
    if run.instance_id is None:
        return None
    instance = store.get_instance(db, run.instance_id)
    if instance is None:
        return None
    if instance.status == "failed":
        # Resuming it beside a newer instance would run the plan twice at once.
        others = [i for i in store.active_instance_ids(db, plan=instance.plan)
                  if i != instance.id]
        if others:
            return (f"it would resume the failed plan instance {instance.name} (id "
                    f"{instance.id}) while instance {others[0]} of plan {instance.plan} "
                    f"runs; stop that one first ('campctl stop instance {others[0]} --note WHY')")
        return None
    if instance.status not in ("cancelled", "completed"):
        return None
    return (f"its plan instance {instance.name} (id {instance.id}) is "
            f"{instance.status}, so no stage of it runs again (start a new instance: "
            f"'campctl start plan {instance.plan}')")


def resume_after_run_verb(db: Database, run: RunRecord, *, restarted_as: int | None,
                          actor: str, now: datetime, note: str | None = None) -> bool:
    """A restart (as run `restarted_as`) or skip (`restarted_as` None) of the run that failed
    an instance resumes that instance: the stage follows the new run (or carries on past the
    skipped one), later stages run. Caller's transaction; True when an instance was resumed."""
    if run.instance_id is None:
        return False
    instance = store.get_instance(db, run.instance_id)
    if instance is None or instance.status != "failed":
        return False
    run_id, new_run_id = run.id, restarted_as
    stage = next((s for s in store.stages_of(db, instance.id) if s.run_id == run_id), None)
    if stage is None or not store.reopen_failed_instance(db, instance.id):
        return False
    store.reopen_cancelled_stages(db, instance.id)
    what = (f"run {run_id} restarted as run {new_run_id}" if new_run_id is not None
            else f"run {run_id} skipped")
    _log_stage(db, instance, replace(stage, run_id=new_run_id or run_id), "Instance Resumed",
               f"{what} by {actor}: stage {stage.campaign}/{stage.stage} and the stages after "
               "it go on" + (f"; note: {note}" if note else ""), now=now)
    history.record(db, history.HistoryEntry(
        kind="instance", name=str(instance.id), action="resume", actor=actor, from_status="failed",
        to_status="running", note=note or what), now=now)
    return True


def _refresh_logs(db: Database, instance: PlanInstance, *, now: datetime) -> None:
    for stage in store.stages_of(db, instance.id):
        if stage.run_id is not None:
            _observe(db, instance, stage, now=now)


def stop_current(db: Database, *, plan: str, now: datetime, actor: str,
                 note: str | None = None) -> list[int]:
    """`stop plan NAME --current`: stop the plan's running or paused instances, whatever the
    plan's status; returns their ids. Refused (exit 1) when none is running."""
    ids = store.active_instance_ids(db, plan=plan)
    if not ids:
        raise ActionRefused(f"plan {plan} has no running or paused instance, nothing to stop "
                            f"(see 'campctl get instances --plan {plan}')")
    for instance_id in ids:
        stop_instance(db, ref=instance_id, now=now, actor=actor, note=note)
    return ids


# --- views -------------------------------------------------------------------------------------

def _stage_view(stage: StageInstance) -> dict:
    return {
        "campaign": stage.campaign,
        "code": stage.code,
        "stage": stage.stage,
        "status": stage.status,
        "started_at": stage.started_at,
        "activity_created_at": stage.activity_created_at,
        "activity_finished_at": stage.activity_finished_at,
        "ended_at": stage.ended_at,
        "completed": bool(stage.completed),
        "has_errors": bool(stage.has_errors),
        "run": stage.run_id,
        "run_status": stage.run_status,
        "run_log": stage.run_log,
    }


def _stage_label(stage: StageInstance | None) -> str | None:
    return f"{stage.campaign}/{stage.stage}" if stage else None


def _view(instance: PlanInstance, stages: list[StageInstance]) -> dict:
    return {
        "id": instance.id,
        "name": instance.name,
        "plan": instance.plan,
        "status": instance.status,
        "scheduled_at": instance.scheduled_at,
        "started_at": instance.started_at,
        "finished_at": instance.finished_at,
        "timezone": instance.snapshot.timezone,
        "transition": instance.snapshot.transition,
        "plan_version": instance.plan_version,
        "current_stage": _stage_label(_in_progress(stages)),
        "error": instance.error,
        "stages": [_stage_view(s) for s in stages],
    }


def instance_view(db: Database, instance_id: int) -> dict:
    instance = store.get_instance(db, instance_id)
    if instance is None:
        raise NotFound(f"no plan instance {instance_id}")
    return _view(instance, store.stages_of(db, instance_id))


def list_views(db: Database, *, plan: str | None = None) -> list[dict]:
    instances = store.list_instances(db, plan=plan)
    stages = store.stages_of_many(db, [i.id for i in instances])
    return [_view(i, stages[i.id]) for i in instances]


def describe(db: Database, ref: str | int) -> dict:
    """An instance with its stage-instance table, snapshot and execution log."""
    instance = require_instance(db, ref)
    view = _view(instance, store.stages_of(db, instance.id))
    view["snapshot"] = instance.snapshot.document
    view["log"] = [entry.as_dict() for entry in store.instance_log(db, instance.id)]
    return view


def instance_history(db: Database, ref: str | int) -> list[dict]:
    """The actions recorded for an instance (kind `instance`, name = id)."""
    instance = require_instance(db, ref)
    return history.actions(db, "instance", str(instance.id))


def status_rows(db: Database, *, now: datetime) -> list[dict]:
    """Running and paused instances with their current stage, for `status` and the daemon."""
    instances = store.list_instances(db, statuses=store.ACTIVE_INSTANCE)
    stages_by_instance = store.stages_of_many(db, [i.id for i in instances])
    rows = []
    for instance in instances:
        stages = stages_by_instance[instance.id]
        done = sum(1 for s in stages if s.status == "completed")
        current = _in_progress(stages)
        rows.append({
            "id": instance.id,
            "name": instance.name,
            "plan": instance.plan,
            "status": instance.status,
            "stage": _stage_label(current) or "-",
            "stage_status": current.status if current else None,
            "progress": f"{done}/{len(stages)} stages",
            "run": current.run_id if current else None,
            "started_at": instance.started_at,
        })
    return rows


def list_views_active(db: Database) -> list[dict]:
    instances = store.list_instances(db, statuses=store.ACTIVE_INSTANCE)
    stages = store.stages_of_many(db, [i.id for i in instances])
    return [_view(i, stages[i.id]) for i in instances]


def next_occurrence(db: Database, plan: str) -> str | None:
    """The plan's next scheduled instant as stored for the tick (UTC text), if any."""
    return store.next_due(db, plan)
