"""Multi-stage execution plans: occurrences, instances, stage transitions, delivery control."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from campctl.engine import isolation
from campctl.errors import ActionRefused, NotFound
from campctl.models import INSTANCE_TRANSITIONS, allowed_verbs
from campctl.store import history
from campctl.store import log as exec_log
from campctl.store import plans as store
from campctl.store import runs as store_runs
from campctl.timeutil import from_db, iso_z, parse_local_datetime, zone

SCHEDULER = "campctl-scheduler"  # the actor of instances started by a schedule
BUILT_RUN = ("queued", "sending", "completed")


# --- reading a plan spec (defaults filled here, SPEC §6) ---------------------------------------

def _schedule(spec: dict) -> dict:
    schedule = spec.get("schedule")
    return schedule if isinstance(schedule, dict) else {"type": "manual"}


def plan_timezone(spec: dict) -> str:
    """The plan's zone for instance names and display; UTC for a manual plan without one."""
    tz = _schedule(spec).get("timezone")
    return tz if isinstance(tz, str) and tz else "UTC"


def transition_of(spec: dict) -> str:
    return spec.get("transition") or "completed"


def _local(moment: datetime, tz: str) -> str:
    local = moment.astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def precondition_problems(db, spec: dict, *, now: datetime) -> list[str]:
    """Why the plan cannot start now: each stage exists with controlled_by_plan: true and its
    campaign is approved and closes in the future (the same rule as submit and approve)."""
    from campctl.engine.workflow import plan_blockers

    return plan_blockers(db, spec, now=now)


def _require_plan(db, name: str) -> dict:
    plan = store.get_definition(db, "Plan", name)
    if plan is None:
        raise NotFound(f"no plan named {name!r} (see 'campctl get plans')")
    return plan


def require_instance(db, ref: str | int) -> dict:
    """An instance by integer id (or by its name, as a convenience)."""
    text = str(ref).strip()
    instance_id = int(text) if text.isdigit() else store.find_instance_id(db, text)
    found = store.get_instance(db, instance_id) if instance_id is not None else None
    if found is None:
        raise NotFound(f"no plan instance {text!r} (see 'campctl get instances')")
    return found


# --- starting instances ------------------------------------------------------------------------

def start_manual(db, *, plan: str, now: datetime, actor: str, note: str | None = None) -> dict:
    """`campctl start plan NAME` (Start Now): the new instance's view. The caller holds the
    transaction. One instance at a time: refused while one is running or paused."""
    obj = _require_plan(db, plan)
    if obj["status"] != "approved":
        hint = {
            "draft": f"submit and approve it first: 'campctl submit plan {plan}'",
            "pending-approval": f"it waits for 'campctl approve plan {plan}'",
        }.get(obj["status"], f"'campctl revise plan {plan}', then submit and approve it again")
        raise ActionRefused(
            f"cannot start plan {plan}: it is {obj['status']}, only approved plans start ({hint})"
        )
    kind = _schedule(obj["spec"]).get("type", "manual")
    if kind != "manual":
        raise ActionRefused(
            f"cannot start plan {plan}: its schedule type is {kind}, so it starts on its schedule; "
            "'start plan' is only for schedule type manual (see 'campctl preview plan "
            f"{plan}')"
        )
    problems = precondition_problems(db, obj["spec"], now=now)
    if problems:
        from campctl.engine.workflow import refusal

        raise refusal(f"cannot start plan {plan}", problems)
    running = store.list_instances(db, plan=plan, statuses=store.ACTIVE_INSTANCE)
    if running:
        current = running[0]
        raise ActionRefused(
            f"cannot start plan {plan}: instance {current['name']} (id {current['id']}) is "
            f"still {current['status']}; wait for it to end, or 'campctl stop instance "
            f"{current['id']} --note WHY'"
        )
    instance_id = start_instance(db, plan=obj, now=now, actor=actor, note=note,
                                 how=f"Start Now by {actor}")
    return instance_view(db, instance_id)


def _snapshot(db, obj: dict) -> dict:
    """The execution tree and each stage's resolved definition, frozen at start."""
    from campctl.engine.runs import resolve_stage

    spec = obj["spec"]
    stages = []
    for entry in spec.get("stages") or []:
        campaign = store.get_definition(db, "Campaign", entry["campaign"])
        if campaign is None:  # guarded by the preconditions; kept for a clear message
            raise ActionRefused(f"campaign {entry['campaign']} does not exist")
        stage = entry.get("stage", "main")
        resolved = dict(resolve_stage(campaign["spec"], campaign["name"], stage,
                                      version=campaign["version"]))
        stages.append({
            "campaign": campaign["name"],
            "stage": stage,
            "code": resolved.get("code") or campaign["spec"].get("code") or campaign["name"],
            "campaign_version": campaign["version"],
            "spec": resolved,
        })
    return {
        "plan": obj["name"],
        "plan_version": obj["version"],
        "transition": transition_of(spec),
        "timezone": plan_timezone(spec),
        "schedule": _schedule(spec),
        "stages": stages,
    }


def start_instance(db, *, plan: dict, now: datetime, actor: str, how: str,
                   scheduled_at: datetime | None = None, occurrence_id: int | None = None,
                   note: str | None = None, report=None) -> int:
    """Create an instance with its snapshot and start its first stage (caller's transaction)."""
    snapshot = _snapshot(db, plan)
    tz = snapshot["timezone"]
    local = (scheduled_at or now).astimezone(zone(tz))
    instance_id, name = store.insert_instance(
        db, name=f"{plan['name']}-{local.strftime('%Y%m%dT%H%M')}", plan=plan["name"],
        status="running", scheduled_at=scheduled_at, started_at=now,
        plan_version=plan["version"], snapshot=snapshot, occurrence_id=occurrence_id,
    )
    for position, stage in enumerate(snapshot["stages"]):
        store.insert_stage(db, instance_id=instance_id, position=position,
                           campaign=stage["campaign"], code=stage["code"], stage=stage["stage"])
    when = f" for the occurrence of {_local(scheduled_at, tz)}" if scheduled_at else ""
    exec_log.append(db, now=now, event="Instance Created", plan=plan["name"],
                    instance_id=instance_id,
                    details=f"{name}: {how}{when}; {len(snapshot['stages'])} stage(s), "
                            f"transition {snapshot['transition']}, plan version {plan['version']}")
    _note(report, f"plan {plan['name']}: instance {name} created ({how})")
    history.record(db, kind="instance", name=str(instance_id), action="start", actor=actor,
                   now=now, to_status="running", note=note or how)
    _advance_instance(db, instance_id, now=now, report=report)
    return instance_id


# --- the tick: firing occurrences --------------------------------------------------------------

def fire_due(db, *, now: datetime, report, dry_run: bool = False) -> None:
    """Fire due plan occurrences (once / recurrent), applying catch-up and overlap rules.

    `tick --dry-run` runs this inside a transaction it rolls back; `report.notes` says what
    happened. `dry_run` is accepted for callers that pass it and changes nothing here.
    """
    for candidate in store.plans_to_examine(db, now):
        # A plan that fails is rolled back alone and retried at the next tick.
        with isolation.boundary(db, report, kind="Plan", name=candidate["name"], now=now):
            _fire_plan(db, candidate["name"], now=now, report=report)


def _due_times(spec: dict, *, after: datetime, now: datetime) -> tuple[list[datetime],
                                                                      datetime | None]:
    """(due instants in (after, now], next instant after now) of a once/recurrent schedule."""
    from campctl.engine import cron

    schedule = _schedule(spec)
    tz = plan_timezone(spec)
    if schedule.get("type") == "once":
        at = parse_local_datetime(str(schedule.get("at")), tz)
        return ([at] if after < at <= now else []), (at if at > now else None)
    if schedule.get("type") == "recurrent":
        expr = str(schedule.get("cron"))
        return cron.fire_times(expr, tz, after=after, until=now), cron.next_fire(expr, tz,
                                                                                after=now)
    return [], None


def _cursor(db, plan: dict, now: datetime) -> datetime:
    """Occurrences count from the later of the last examination and the last approval."""
    state = store.get_schedule_state(db, plan["name"])
    marks = [from_db(state["cursor_at"])] if state and state.get("cursor_at") else []
    approved = store.approved_at(db, plan["name"]) or plan.get("updated_at")
    if approved:
        marks.append(from_db(approved))
    marks = [m for m in marks if m is not None]
    return max(marks) if marks else now


def _fire_plan(db, name: str, *, now: datetime, report) -> None:
    plan = store.get_definition(db, "Plan", name)
    if plan is None or plan["status"] != "approved":
        return
    spec = plan["spec"]
    kind = _schedule(spec).get("type", "manual")
    if kind in ("once", "recurrent"):
        from campctl.engine import cron

        cursor = _cursor(db, plan, now)
        try:
            due, upcoming = _due_times(spec, after=cursor, now=now)
        except ValueError as exc:  # a schedule that validate should have refused
            store.set_schedule_state(db, name, next_due_at=None, cursor_at=max(cursor, now))
            exec_log.append(db, now=now, event="Occurrence Skipped", plan=name,
                            details=f"schedule cannot be evaluated: {exc}")
            return
        fire, skipped = cron.apply_catchup(due, _schedule(spec).get("catchup"), now=now)
        tz = plan_timezone(spec)
        for scheduled_at, reason in skipped:
            _skip(db, name, scheduled_at, reason=reason, tz=tz, now=now, report=report)
        for scheduled_at in fire:
            _fire_occurrence(db, plan, scheduled_at, now=now, report=report)
        store.set_schedule_state(db, name, next_due_at=upcoming, cursor_at=max(cursor, now))
    else:
        store.set_schedule_state(db, name, next_due_at=None, cursor_at=now)
    _start_queued(db, name, now=now, report=report)


def _skip(db, plan: str, scheduled_at: datetime, *, reason: str, tz: str, now: datetime,
          report, occurrence_id: int | None = None) -> None:
    if occurrence_id is None:
        occurrence_id = store.insert_occurrence(db, plan, scheduled_at, status="skipped",
                                                reason=reason, now=now)
        if occurrence_id is None:
            return  # already handled by another tick
    else:
        store.set_occurrence(db, occurrence_id, status="skipped", reason=reason)
    exec_log.append(db, now=now, event="Occurrence Skipped", plan=plan,
                    details=f"occurrence {_local(scheduled_at, tz)} skipped: {reason}")
    if report is not None:
        report.skipped += 1
    _note(report, f"plan {plan}: occurrence {iso_z(scheduled_at)} skipped ({reason})")


def _note(report, text: str) -> None:
    """What the tick did, for `tick --dry-run` (which runs the same code and rolls back)."""
    if report is not None:
        report.notes.append(text)


def _fire_occurrence(db, plan: dict, scheduled_at: datetime, *, now: datetime, report) -> None:
    name, spec = plan["name"], plan["spec"]
    tz = plan_timezone(spec)
    problems = precondition_problems(db, spec, now=now)
    if problems:
        _skip(db, name, scheduled_at, reason="precondition not met: " + "; ".join(problems),
              tz=tz, now=now, report=report)
        return
    running = store.list_instances(db, plan=name, statuses=store.ACTIVE_INSTANCE)
    if running:
        current = running[0]["name"]
        if _schedule(spec).get("overlap", "skip") == "queue":
            occurrence = store.insert_occurrence(
                db, name, scheduled_at, status="queued",
                reason=f"overlap queue: waiting for instance {current}", now=now)
            if occurrence is not None:
                exec_log.append(db, now=now, event="Occurrence Queued", plan=name,
                                details=f"occurrence {_local(scheduled_at, tz)} waits for "
                                        f"instance {current} (overlap: queue)")
                _note(report, f"plan {name}: occurrence {iso_z(scheduled_at)} queued behind "
                              f"instance {current} (overlap: queue)")
        else:
            _skip(db, name, scheduled_at, tz=tz, now=now, report=report,
                  reason=f"overlap skip: instance {current} is still running")
        return
    occurrence = store.insert_occurrence(db, name, scheduled_at, status="fired", reason=None,
                                         now=now)
    if occurrence is None:
        return
    start_instance(db, plan=plan, now=now, actor=SCHEDULER, how=f"{_schedule(spec)['type']} "
                   "schedule", scheduled_at=scheduled_at, occurrence_id=occurrence, report=report)
    if report is not None:
        report.fired += 1


def _start_queued(db, name: str, *, now: datetime, report) -> None:
    """overlap: queue — when nothing runs, the oldest queued occurrence starts."""
    queued = store.queued_occurrences(db, name)
    if not queued or store.active_instance_ids(db, plan=name):
        return
    plan = store.get_definition(db, "Plan", name)
    tz = plan_timezone(plan["spec"]) if plan else "UTC"
    if plan is None or plan["status"] != "approved":
        status = plan["status"] if plan else "deleted"
        for item in queued:
            _skip(db, name, from_db(item["scheduled_at"]), tz=tz, now=now, report=report,
                  occurrence_id=item["id"], reason=f"plan is {status}; queued occurrence dropped")
        return
    problems = precondition_problems(db, plan["spec"], now=now)
    if problems:
        for item in queued:
            _skip(db, name, from_db(item["scheduled_at"]), tz=tz, now=now, report=report,
                  occurrence_id=item["id"],
                  reason="precondition not met: " + "; ".join(problems))
        return
    first = queued[0]
    if not store.set_occurrence(db, first["id"], status="fired", only_if="queued"):
        return
    start_instance(db, plan=plan, now=now, actor=SCHEDULER, how="queued occurrence (overlap: "
                   "queue)", scheduled_at=from_db(first["scheduled_at"]),
                   occurrence_id=first["id"], report=report)
    if report is not None:
        report.fired += 1


# --- the tick: advancing instances -------------------------------------------------------------

def advance(db, *, now: datetime, report, dry_run: bool = False) -> None:
    """Move every running or paused instance along its execution tree by the transition rule."""
    for instance_id in store.active_instance_ids(db):
        # An instance that cannot be advanced fails alone; the other instances go on.
        with isolation.boundary(
                db, report, kind="instance", name=str(instance_id), now=now,
                fail=lambda reason, instance_id=instance_id: fail_instance(
                    db, instance_id, reason=reason, now=now, report=report)):
            _advance_instance(db, instance_id, now=now, report=report)


def fail_instance(db, instance_id: int, *, reason: str, now: datetime, report=None) -> None:
    """The tick could not advance this instance: it ends `failed`, and its active runs fail with
    it (unsent messages cancelled), so nothing more goes out under a plan that stopped moving.
    Caller's transaction."""
    from campctl.engine.runs import fail_run

    why = f"the engine could not advance it: {reason}"
    for run in store.active_runs_of_instance(db, instance_id):
        fail_run(db, run["id"], error=f"plan instance {instance_id} failed: {reason}", now=now,
                 report=report)
    try:
        with db.atomic():
            instance = store.get_instance(db, instance_id)
            if instance is None or instance["status"] not in store.ACTIVE_INSTANCE:
                return
            _end_instance(db, instance, to="failed", now=now, actor=SCHEDULER, why=why,
                          report=report)
        return
    except Exception as exc:  # the instance is too broken to end the usual way: status alone
        if isolation.state_problem(exc):
            raise
    if store.set_instance_status(db, instance_id, to="failed", from_=store.ACTIVE_INSTANCE,
                                 finished_at=now, error=why):
        exec_log.append(db, now=now, event="Instance Failed", instance_id=instance_id,
                        details=why)
        history.record(db, kind="instance", name=str(instance_id), action="fail",
                       actor=SCHEDULER, now=now, to_status="failed", note=why)
        from campctl.store import notifications

        notifications.add(db, now=now, kind="instance-failed", object=f"instance/{instance_id}",
                          note=why, actor=SCHEDULER)


def _is_built(run: dict) -> bool:
    return run["built_at"] is not None or run["status"] in BUILT_RUN


def _observe(db, instance: dict, stage: dict, *, now: datetime) -> dict | None:
    """Log what the stage's run did since the last look; returns the run's state."""
    if stage["run_id"] is None:
        return None
    run = store.run_state(db, stage["run_id"])
    if run is None:
        return None
    base = {"plan": instance["plan"], "instance_id": instance["id"],
            "campaign": stage["campaign"], "stage": stage["stage"]}
    if run["status"] == "skipped" and (replacement := store.follow_restart(db, run["id"])):
        store.update_stage(db, stage["id"], run_id=replacement, queue_created_at=None,
                           delivery_started_at=None, sent_logged=0, activity_finished_at=None)
        exec_log.append(db, now=now, event="Activity Created", run_id=replacement,
                        details=f"run {replacement} replaces run {run['id']} (restart)", **base)
        stage.update(run_id=replacement, queue_created_at=None, delivery_started_at=None,
                     sent_logged=0, activity_finished_at=None)
        run = store.run_state(db, replacement)
        if run is None:
            return None
    changes: dict[str, Any] = {}
    counts = run["counts"]
    # The campaign engine logs "Queue Items Created" and "Delivery Started" for the run itself;
    # the stage only records when it saw them.
    if _is_built(run) and stage["queue_created_at"] is None:
        changes["queue_created_at"] = now
        if stage["status"] == "started":
            changes["status"] = "running"
    handled = counts["sent"] + counts["failed"]
    if stage["delivery_started_at"] is None and (handled or run["status"] == "sending"):
        changes["delivery_started_at"] = now
    if handled > stage["sent_logged"]:
        changes["sent_logged"] = handled
        exec_log.append(
            db, now=now, event="Messages Sent", run_id=run["id"], **base,
            details=f"{handled - stage['sent_logged']} more handled; {counts['sent']} sent, "
                    f"{counts['failed']} failed of {run['total']}")
    if (counts["failed"] or run["status"] == "failed") and not stage["has_errors"]:
        changes["has_errors"] = 1
    if run["status"] in store.TERMINAL_RUN and stage["activity_finished_at"] is None:
        changes["activity_finished_at"] = from_db(run["finished_at"]) or now
    summary = (f"run {run['id']} {run['status']}: {run['total']} built, {counts['sent']} sent, "
               f"{counts['failed']} failed, {counts['cancelled']} cancelled")
    if run.get("error"):
        summary += f"; {run['error']}"
    if summary != stage["run_log"]:
        changes["run_log"] = summary
    if changes:
        store.update_stage(db, stage["id"], **changes)
        stage.update({k: (iso_z(v) if isinstance(v, datetime) else v)
                      for k, v in changes.items()})
    return run


def _reached(run: dict, transition: str) -> bool:
    if run["status"] == "skipped":
        return True  # skipped by the operator: the plan carries on
    if run["status"] == "stopped":
        return False  # stopped by the operator: waits for 'restart run' or 'skip run'
    if not _is_built(run):
        return False
    if transition == "completed":
        return True
    return run["status"] == "completed" or run["counts"]["queued"] == 0


def _start_stage(db, instance: dict, stage: dict, total: int, *, now: datetime) -> None:
    from campctl.engine.runs import create_run
    from campctl.store.runs import NewRun

    if not store.claim_stage_start(db, stage["id"], now=now):
        return
    entry = instance["snapshot"]["stages"][stage["position"]]
    run_id = create_run(db, NewRun(campaign=stage["campaign"], stage=stage["stage"],
                                   spec=entry["spec"], scheduled_at=now, queue_at=now,
                                   send_at=now, instance_id=instance["id"]), now=now)
    store.update_stage(db, stage["id"], run_id=run_id, activity_created_at=now)
    stage.update(status="started", run_id=run_id, started_at=iso_z(now),
                 activity_created_at=iso_z(now))
    base = {"plan": instance["plan"], "instance_id": instance["id"],
            "campaign": stage["campaign"], "stage": stage["stage"]}
    exec_log.append(db, now=now, event="Stage Instance Created", **base,
                    details=f"stage {stage['position'] + 1} of {total}")
    exec_log.append(db, now=now, event="Activity Created", run_id=run_id, **base,
                    details=f"run {run_id} created")
    if instance["status"] == "paused":
        exec_log.append(db, now=now, event="Delivery Paused", run_id=run_id, **base,
                        details="stage started while the instance is paused: its messages are "
                                "built but not sent until 'resume instance'")


def _complete_stage(db, instance: dict, stage: dict, *, now: datetime, why: str) -> None:
    store.update_stage(db, stage["id"], status="completed", completed=1, ended_at=now)
    stage.update(status="completed", completed=1, ended_at=iso_z(now))
    exec_log.append(db, now=now, event="Stage Completed", plan=instance["plan"],
                    instance_id=instance["id"], campaign=stage["campaign"], stage=stage["stage"],
                    run_id=stage["run_id"], details=why)


def _advance_instance(db, instance_id: int, *, now: datetime, report=None) -> None:
    instance = store.get_instance(db, instance_id)
    if instance is None or instance["status"] not in store.ACTIVE_INSTANCE:
        return
    store.tag_plan_in_log(db, instance_id, instance["plan"])
    stages = store.stages_of(db, instance_id)
    transition = instance["snapshot"].get("transition", "completed")
    for stage in stages:
        if stage["status"] == "cancelled":
            continue
        if stage["status"] == "not-started":
            # The campaign is looked at again when its stage starts: stopped, revised or
            # closed since the instance started, it starts no new run.
            from campctl.engine.campaigns import new_run_blocker

            if problem := new_run_blocker(db, stage["campaign"], now=now):
                _cancel_instance(db, instance, now=now, report=report,
                                 why=f"stage {stage['campaign']}/{stage['stage']} cannot start:"
                                     f" {problem}")
                return
            _start_stage(db, instance, stage, len(stages), now=now)
        elif stage["run_status"] in store.ACTIVE_RUN:
            from campctl.engine.campaigns import close_if_due

            # Ends the instance through campaign_closed when the close cuts this stage.
            if close_if_due(db, stage["campaign"], now=now, report=report) is not None:
                return
        run = _observe(db, instance, stage, now=now)
        if stage["status"] == "completed":
            continue
        if run is None:
            return
        if run["status"] == "failed":
            _end_instance(db, instance, to="failed", now=now, actor=SCHEDULER, report=report,
                          why=f"run {run['id']} of stage {stage['campaign']}/{stage['stage']} "
                              f"failed: {run.get('error') or 'see the run log'}")
            return
        if not _reached(run, transition):
            return
        why = (f"run {run['id']} skipped ({run.get('error') or 'by the operator'})"
               if run["status"] == "skipped" else
               f"all {run['total']} message(s) built" if transition == "completed" else
               f"all {run['total']} message(s) sent or finally failed")
        _complete_stage(db, instance, stage, now=now, why=f"transition {transition}: {why}")
        _note(report, f"instance {instance['name']}: stage {stage['campaign']}/{stage['stage']} "
                      f"completed ({why})")
    # Every stage reached its transition; the instance ends when its runs have finished, so
    # pause and stop keep control of delivery until the last message.
    if any(s["run_status"] in store.ACTIVE_RUN for s in store.stages_of(db, instance_id)):
        return
    failed = [s for s in store.stages_of(db, instance_id) if s["run_status"] == "failed"]
    if failed:
        _end_instance(db, instance, to="failed", now=now, actor=SCHEDULER, report=report,
                      why=f"run {failed[0]['run_id']} of stage {failed[0]['campaign']}/"
                          f"{failed[0]['stage']} failed")
        return
    _end_instance(db, instance, to="completed", now=now, actor=SCHEDULER, report=report,
                  why=f"all {len(stages)} stage(s) completed")


def _cancel_instance(db, instance: dict, *, now: datetime, why: str, report=None) -> None:
    """The engine ends an instance that cannot go on (its campaign closed or stopped): stages
    cancelled, logged, and an operator notification, as for a failure."""
    from campctl.store import notifications

    _refresh_logs(db, instance, now=now)
    _end_instance(db, instance, to="cancelled", now=now, actor=SCHEDULER, why=why,
                  report=report, action="cancel")
    notifications.add(db, now=now, kind="instance-cancelled", object=f"instance/{instance['id']}",
                      note=f"{instance['name']}: {why}", actor=SCHEDULER)


def _cancel_cut_stages(db, instance: dict, why_by_run: dict[int, str], *,
                       now: datetime) -> None:
    """Stages whose delivery was just cut read `cancelled`, even once their transition was
    reached (transition completed): their messages did not all go out."""
    for stage in store.stages_of(db, instance["id"]):
        if stage["run_id"] in why_by_run and stage["status"] != "cancelled":
            store.update_stage(db, stage["id"], status="cancelled", ended_at=now)
            exec_log.append(db, now=now, event="Stage Cancelled", plan=instance["plan"],
                            instance_id=instance["id"], campaign=stage["campaign"],
                            stage=stage["stage"], run_id=stage["run_id"],
                            details=why_by_run[stage["run_id"]])


def campaign_closed(db, *, campaign: str, closes_at: datetime, runs: list[dict],
                    now: datetime, report=None) -> None:
    """The campaign's close ended `runs` (engine.campaigns): an instance whose stage lost
    messages or never got to build is cancelled with the reason."""
    why = f"campaign {campaign} closed at {iso_z(closes_at)}"
    by_instance: dict[int, list[dict]] = {}
    for run in runs:
        if run.get("instance_id") is not None:
            by_instance.setdefault(int(run["instance_id"]), []).append(run)
    for instance_id, ended in by_instance.items():
        instance = store.get_instance(db, instance_id)
        if instance is None or instance["status"] not in store.ACTIVE_INSTANCE:
            continue
        stages = {s["run_id"]: s for s in store.stages_of(db, instance_id)}
        cut = {r["id"] for r in ended
               if r["cancelled"] or r["status"] in ("scheduled", "building")
               or (r["id"] in stages and stages[r["id"]]["status"] != "completed")}
        if not cut:
            continue  # its messages had all gone out: the instance carries on
        lost = sum(r["cancelled"] for r in ended)
        reason = f"{why}; {lost} unsent message(s) cancelled"
        _cancel_cut_stages(db, instance, dict.fromkeys(cut, reason), now=now)
        _cancel_instance(db, instance, now=now, why=reason, report=report)


def _end_instance(db, instance: dict, *, to: str, now: datetime, actor: str, why: str,
                  note: str | None = None, report=None, action: str | None = None) -> None:
    """completed | failed | cancelled: close open stages, record, start a queued occurrence."""
    if not store.set_instance_status(db, instance["id"], to=to, from_=store.ACTIVE_INSTANCE,
                                     finished_at=now, error=why if to == "failed" else None):
        return
    store.tag_plan_in_log(db, instance["id"], instance["plan"])
    base = {"plan": instance["plan"], "instance_id": instance["id"]}
    for stage in store.cancel_open_stages(db, instance["id"], now=now):
        exec_log.append(db, now=now, event="Stage Cancelled", campaign=stage["campaign"],
                        stage=stage["stage"], run_id=stage["run_id"], **base,
                        details=f"instance {to}: {why}")
    event = {"completed": "Instance Completed", "failed": "Instance Failed",
             "cancelled": "Instance Cancelled"}[to]
    _note(report, f"instance {instance['name']}: {to} ({why})")
    exec_log.append(db, now=now, event=event, **base,
                    details=why + (f"; note: {note}" if note else ""))
    history.record(db, kind="instance", name=str(instance["id"]),
                   action=action or {"completed": "complete", "failed": "fail",
                                     "cancelled": "stop"}[to],
                   actor=actor, now=now, from_status=instance["status"], to_status=to,
                   note=note or why)
    if to == "failed":
        from campctl.store import notifications

        notifications.add(db, now=now, kind="instance-failed", object=f"instance/{instance['id']}",
                          note=f"{instance['name']}: {why}", actor=actor)
    instance["status"] = to
    _start_queued(db, instance["plan"], now=now, report=report)


# --- delivery control --------------------------------------------------------------------------

def _current_stage(stages: list[dict]) -> dict | None:
    """The stage in progress, else the last one that started."""
    active = [s for s in stages if s["status"] in ("started", "running")]
    if active:
        return active[0]
    started = [s for s in stages if s["run_id"] is not None]
    return started[-1] if started else None


def _verb_allowed(instance: dict, verb: str) -> None:
    if verb not in INSTANCE_TRANSITIONS.get(instance["status"], {}):
        allowed = allowed_verbs(INSTANCE_TRANSITIONS, instance["status"])
        hint = ", ".join(f"'campctl {v} instance {instance['id']}'" for v in allowed) or "none"
        raise ActionRefused(
            f"cannot {verb} instance {instance['name']} (id {instance['id']}): it is "
            f"{instance['status']}; allowed: {hint}"
        )


def pause_instance(db, *, ref: str | int, now: datetime, actor: str,
                   note: str | None = None) -> dict:
    """Hold delivery: messages keep being built, none are sent, later stages start paused."""
    # The campaign engine keeps building the runs of a paused instance and delivers none of
    # them (engine.runs.live_runs), so pausing is the instance's status alone.
    return _set_delivery(db, ref=ref, now=now, actor=actor, note=note, verb="pause")


def resume_instance(db, *, ref: str | int, now: datetime, actor: str,
                    note: str | None = None) -> dict:
    return _set_delivery(db, ref=ref, now=now, actor=actor, note=note, verb="resume")


_DELIVERY_VERBS = {
    "pause": ("running", "paused", "Delivery Paused", "paused"),
    "resume": ("paused", "running", "Delivery Resumed", "resumed"),
}


def _set_delivery(db, *, ref: str | int, now: datetime, actor: str, note: str | None,
                  verb: str) -> dict:
    from_status, to_status, event, past = _DELIVERY_VERBS[verb]
    instance = require_instance(db, ref)
    _verb_allowed(instance, verb)
    if verb == "pause":
        db.wait_for_hand_overs()  # as for a run: batches claimed before it are handed over first
    if not store.set_instance_status(db, instance["id"], to=to_status, from_=(from_status,)):
        raise ActionRefused(f"instance {instance['name']} changed meanwhile; look again")
    current = _current_stage(store.stages_of(db, instance["id"]))
    exec_log.append(db, now=now, event=event, plan=instance["plan"],
                    instance_id=instance["id"], campaign=current and current["campaign"],
                    stage=current and current["stage"], run_id=current and current["run_id"],
                    details=f"{past} by {actor}" + (f": {note}" if note else ""))
    history.record(db, kind="instance", name=str(instance["id"]), action=verb, actor=actor,
                   now=now, from_status=from_status, to_status=to_status, note=note)
    if verb == "resume":
        _advance_instance(db, instance["id"], now=now)
    return instance_view(db, instance["id"])


def stop_instance(db, *, ref: str | int, now: datetime, actor: str,
                  note: str | None = None) -> dict:
    """Stop current instance execution, whatever the plan's status (SPEC §6)."""
    instance = require_instance(db, ref)
    _verb_allowed(instance, "stop")
    db.wait_for_hand_overs()  # as for a run: nothing goes out after the stop commits
    who = f"stopped by {actor}"
    cancelled = 0
    cut: dict[int, str] = {}
    stopped: dict[int, str] = {}
    for run in store.active_runs_of_instance(db, instance["id"]):
        if store_runs.set_status(db, run["id"], "stopped", now=now, expected=store.ACTIVE_RUN,
                                 finished=True):
            count = store_runs.cancel_queued_items(db, run["id"], now=now)
            cancelled += count
            history.record(db, kind="run", name=str(run["id"]), action="stop", actor=actor,
                           now=now, from_status=run["status"], to_status="stopped",
                           note=note or f"instance {instance['name']} stopped")
            stopped[run["id"]] = (f"instance {who}: delivery cut, {count} unsent message(s) "
                                  "cancelled")
            if count or run["built_at"] is None:
                cut[run["id"]] = stopped[run["id"]]
    _refresh_logs(db, instance, now=now)
    for stage in store.stages_of(db, instance["id"]):
        if stage["run_id"] in stopped:
            exec_log.append(db, now=now, event="Run Stopped", plan=instance["plan"],
                            instance_id=instance["id"], campaign=stage["campaign"],
                            stage=stage["stage"], run_id=stage["run_id"],
                            details=stopped[stage["run_id"]] + (f"; note: {note}" if note else ""))
    _cancel_cut_stages(db, instance, cut, now=now)
    _end_instance(db, instance, to="cancelled", now=now, actor=actor, note=note,
                  why=f"{who}; {cancelled} unsent message(s) cancelled")
    from campctl.store import notifications

    notifications.add(db, now=now, kind="instance-stopped", object=f"instance/{instance['id']}",
                      note=note or who, actor=actor)
    return instance_view(db, instance["id"])


def run_verb_blocker(db, run: dict, verb: str) -> str | None:
    """Why `restart`/`skip` of a stage's run is refused: its instance has ended (an operator
    stopped it, or its campaign closed); None when the verb may go ahead."""
    if run.get("instance_id") is None:
        return None
    instance = store.get_instance(db, int(run["instance_id"]))
    if instance is None:
        return None
    if instance["status"] == "failed":
        # Resuming it beside a newer instance would run the plan twice at once.
        others = [i for i in store.active_instance_ids(db, plan=instance["plan"])
                  if i != instance["id"]]
        if others:
            return (f"it would resume the failed plan instance {instance['name']} (id "
                    f"{instance['id']}) while instance {others[0]} of plan {instance['plan']} "
                    f"runs; stop that one first ('campctl stop instance {others[0]} --note WHY')")
        return None
    if instance["status"] not in ("cancelled", "completed"):
        return None
    return (f"its plan instance {instance['name']} (id {instance['id']}) is "
            f"{instance['status']}, so no stage of it runs again (start a new instance: "
            f"'campctl start plan {instance['plan']}')")


def resume_after_run_verb(db, run: dict, verb: str, *, new_run_id: int | None, actor: str,
                          now: datetime, note: str | None = None) -> bool:
    """A restart or skip of the run that failed an instance resumes that instance: the stage
    follows the new run (or carries on past the skipped one), later stages run. Caller's
    transaction; True when an instance was resumed."""
    if run.get("instance_id") is None:
        return False
    instance = store.get_instance(db, int(run["instance_id"]))
    if instance is None or instance["status"] != "failed":
        return False
    stage = next((s for s in store.stages_of(db, instance["id"]) if s["run_id"] == run["id"]),
                 None)
    if stage is None or not store.reopen_failed_instance(db, instance["id"]):
        return False
    store.reopen_cancelled_stages(db, instance["id"])
    what = (f"run {run['id']} restarted as run {new_run_id}" if verb == "restart"
            else f"run {run['id']} skipped")
    exec_log.append(db, now=now, event="Instance Resumed", plan=instance["plan"],
                    instance_id=instance["id"], campaign=stage["campaign"], stage=stage["stage"],
                    run_id=new_run_id or run["id"],
                    details=f"{what} by {actor}: stage {stage['campaign']}/{stage['stage']} "
                            "and the stages after it go on" + (f"; note: {note}" if note else ""))
    history.record(db, kind="instance", name=str(instance["id"]), action="resume", actor=actor,
                   now=now, from_status="failed", to_status="running", note=note or what)
    return True


def _refresh_logs(db, instance: dict, *, now: datetime) -> None:
    for stage in store.stages_of(db, instance["id"]):
        if stage["run_id"] is not None:
            _observe(db, instance, stage, now=now)


def stop_current(db, *, plan: str, now: datetime, actor: str, note: str | None = None
                 ) -> list[int]:
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

def _stage_view(stage: dict) -> dict:
    return {
        "campaign": stage["campaign"],
        "code": stage["code"],
        "stage": stage["stage"],
        "status": stage["status"],
        "started_at": stage["started_at"],
        "activity_created_at": stage["activity_created_at"],
        "activity_finished_at": stage["activity_finished_at"],
        "ended_at": stage["ended_at"],
        "completed": bool(stage["completed"]),
        "has_errors": bool(stage["has_errors"]),
        "run": stage["run_id"],
        "run_status": stage.get("run_status"),
        "run_log": stage["run_log"],
    }


def _view(instance: dict, stages: list[dict]) -> dict:
    current = next((s for s in stages if s["status"] in ("started", "running")), None)
    return {
        "id": instance["id"],
        "name": instance["name"],
        "plan": instance["plan"],
        "status": instance["status"],
        "scheduled_at": instance["scheduled_at"],
        "started_at": instance["started_at"],
        "finished_at": instance["finished_at"],
        "timezone": instance["snapshot"].get("timezone", "UTC"),
        "transition": instance["snapshot"].get("transition"),
        "plan_version": instance["plan_version"],
        "current_stage": f"{current['campaign']}/{current['stage']}" if current else None,
        "error": instance.get("error"),
        "stages": [_stage_view(s) for s in stages],
    }


def instance_view(db, instance_id: int) -> dict:
    instance = store.get_instance(db, instance_id)
    if instance is None:
        raise NotFound(f"no plan instance {instance_id}")
    return _view(instance, store.stages_of(db, instance_id))


def list_views(db, *, plan: str | None = None) -> list[dict]:
    instances = store.list_instances(db, plan=plan)
    stages = store.stages_of_many(db, [i["id"] for i in instances])
    return [_view(i, stages[i["id"]]) for i in instances]


def describe(db, ref: str | int) -> dict:
    """An instance with its stage-instance table, snapshot and execution log."""
    instance = require_instance(db, ref)
    view = _view(instance, store.stages_of(db, instance["id"]))
    view["snapshot"] = instance["snapshot"]
    view["log"] = store.instance_log(db, instance["id"])
    return view


def instance_history(db, ref: str | int) -> list[dict]:
    """The actions recorded for an instance (kind `instance`, name = id)."""
    instance = require_instance(db, ref)
    return history.actions(db, "instance", str(instance["id"]))


def status_rows(db, *, now: datetime) -> list[dict]:
    """Running and paused instances with their current stage, for `status` and the daemon."""
    rows = []
    for view in list_views_active(db):
        done = sum(1 for s in view["stages"] if s["status"] == "completed")
        current = next((s for s in view["stages"] if s["status"] in ("started", "running")),
                       None)
        rows.append({
            "id": view["id"],
            "name": view["name"],
            "plan": view["plan"],
            "status": view["status"],
            "stage": view["current_stage"] or "-",
            "stage_status": current["status"] if current else None,
            "progress": f"{done}/{len(view['stages'])} stages",
            "run": current["run"] if current else None,
            "started_at": view["started_at"],
        })
    return rows


def list_views_active(db) -> list[dict]:
    instances = store.list_instances(db, statuses=store.ACTIVE_INSTANCE)
    stages = store.stages_of_many(db, [i["id"] for i in instances])
    return [_view(i, stages[i["id"]]) for i in instances]


def next_occurrence(db, plan: str) -> str | None:
    """The plan's next scheduled instant as stored for the tick (UTC text), if any."""
    return store.next_due(db, plan)
