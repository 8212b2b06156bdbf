"""Commands: start plan, get/describe instances, pause/resume/stop instance."""

from __future__ import annotations

from typing import Annotated

import typer

from campctl.commands.common import (
    DryRunOption,
    MissedOption,
    app_context,
    cell,
    emit,
    emit_object,
    local_cell,
    local_text,
    missed_policy,
    notice,
    require_filters,
)
from campctl.commands.completion import complete_object_name

NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the history.")]


def _instance_ref(value: str) -> str:
    """An id must be a plain decimal integer that fits SQLite's INTEGER (else: a name)."""
    text = value.strip()
    if text.isdigit() and (not text.isascii() or len(text) > 18):
        raise typer.BadParameter(f"instance id {text[:40]!r} is out of range (ids are decimal "
                                 "integers of at most 18 digits)")
    return value


InstanceArg = Annotated[str, typer.Argument(help="Instance id (or its name).", metavar="ID",
                                            callback=_instance_ref)]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["start"].command(
        "plan", help="Start Now: create an instance of an approved manual plan."
    )(start_plan)
    groups["get"].command(
        "instances", help="List plan instances with their stages (--plan to filter)."
    )(get_instances)
    groups["get"].command("instance", hidden=True)(get_instances)
    groups["describe"].command(
        "instance", help="Show a plan instance: stage instances, snapshot and execution log."
    )(describe_instance)
    groups["describe"].command("instances", hidden=True)(describe_instance)
    groups["history"].command(
        "instance", help="Show the actions recorded for a plan instance (start, pause, stop ...)."
    )(history_instance)
    groups["pause"].command(
        "instance", help="Pause delivery of an instance: messages are built, none are sent."
    )(pause_instance)
    groups["resume"].command(
        "instance", help="Resume delivery of a paused instance; --missed skip cancels the "
        "messages of its runs whose send time passed while it was paused."
    )(resume_instance)
    groups["stop"].command(
        "instance",
        help="Stop an instance now: building and delivery stop, unsent messages are cancelled, "
        "later stages are cancelled.",
    )(stop_instance)


def start_plan(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plan name.", autocompletion=complete_object_name)],
    note: NoteOption = None,
) -> None:
    from campctl.engine import access, plans

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        access.check(db, access.AccessRequest(
            kind="Plan", name=name, actor=app.actor, action="start",
            override=app.override_access), now=app.now)
        view = plans.start_manual(db, plan=name, now=app.now, actor=app.actor, note=note)
    if app.json:
        emit_object(app, view)
    notice(app, f"instance {view['name']} (id {view['id']}) started; follow it with "
                f"'campctl describe instance {view['id']}' or "
                f"'campctl log --instance {view['id']}'")


def _stage_summary(view: dict) -> str:
    done = sum(1 for s in view["stages"] if s["status"] == "completed")
    return f"{done}/{len(view['stages'])}"


def get_instances(
    ctx: typer.Context,
    ref: Annotated[str | None, typer.Argument(help="One instance id (or name).",
                                              metavar="[ID]")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Only instances of this plan.")]
    = None,
) -> None:
    from campctl.engine import plans

    app = app_context(ctx)
    db = app.db()
    if ref is not None:
        found = plans.require_instance(db, ref)
        views = [plans.instance_view(db, found.id)]
    else:
        require_filters(db, plan=plan)  # a deleted plan's instances are still listed
        views = plans.list_views(db, plan=plan)
    rows = [_json_row(v) for v in views]
    if app.json:
        emit(app, rows, [])
        return
    emit(app, [{**r, "timezone": v["timezone"], "stage_list": _stage_summary(v),
                "current": v["current_stage"]} for r, v in zip(rows, views, strict=True)],
         [("id", "ID"), ("name", "NAME"), ("plan", "PLAN"), ("status", "STATUS"),
          ("current", "CURRENT STAGE"), ("started_at", "STARTED", local_cell(None)),
          ("finished_at", "FINISHED", local_cell(None)), ("stage_list", "DONE")],
         empty="no plan instances (start one with 'campctl start plan NAME')")


def _json_row(view: dict) -> dict:
    """The keys of `get instances -o json`."""
    return {
        "id": view["id"],
        "name": view["name"],
        "plan": view["plan"],
        "status": view["status"],
        "started_at": view["started_at"],
        "finished_at": view["finished_at"],
        "scheduled_at": view["scheduled_at"],
        "plan_version": view["plan_version"],
        "transition": view["transition"],
        "current_stage": view["current_stage"],
        "stages": [
            {key: s[key] for key in ("campaign", "code", "stage", "status", "started_at",
                                     "ended_at", "run", "completed", "has_errors")}
            for s in view["stages"]
        ],
    }


def describe_instance(ctx: typer.Context, ref: InstanceArg) -> None:
    from rich.table import Table

    from campctl.engine import plans
    from campctl.timeutil import from_db

    app = app_context(ctx)
    db = app.db()
    view = plans.describe(db, ref)
    if app.json:
        emit_object(app, view)
        return
    tz = view["timezone"]

    def when(text: str | None) -> str:
        return cell(None) if text is None else local_cell(tz)(from_db(text), {})

    console = app.out()
    summary = {
        "name": view["name"],
        "id": view["id"],
        "parent plan": f"{view['plan']} (version {view['plan_version']})",
        "status": view["status"],
        "transition": view["transition"],
        "scheduled": when(view["scheduled_at"]),
        "started": when(view["started_at"]),
        "finished": when(view["finished_at"]),
        "execution tree": " → ".join(f"{s['campaign']}/{s['stage']}" for s in view["stages"]),
    }
    if view["error"]:
        summary["error"] = view["error"]
    emit_object(app, summary, title=f"instance {view['name']}")
    stages = Table(title="Campaign stage instances")
    for header in ("CAMPAIGN", "CODE", "STAGE", "STATUS", "START DATE", "END DATE",
                   "COMPLETED", "HAS ERRORS", "RUN"):
        stages.add_column(header, overflow="fold")
    for s in view["stages"]:
        stages.add_row(s["campaign"], cell(s["code"]), s["stage"], s["status"],
                       when(s["started_at"]), when(s["ended_at"]), cell(s["completed"]),
                       cell(s["has_errors"]), cell(s["run"]))
    console.print(stages)
    activity = Table(title="Activities (campaign runs)")
    for header in ("STAGE", "ACTIVITY CREATED", "ACTIVITY FINISHED", "RUN LOG"):
        activity.add_column(header, overflow="fold")
    for s in view["stages"]:
        activity.add_row(f"{s['campaign']}/{s['stage']}", when(s["activity_created_at"]),
                         when(s["activity_finished_at"]), cell(s["run_log"]))
    console.print(activity)
    log = Table(title="Execution log")
    for header in ("DATE", "TIME", "EVENT", "STAGE", "CAMPAIGN", "RUN", "DETAILS"):
        log.add_column(header, overflow="fold")
    for entry in view["log"]:
        stamp = when(entry["at"])
        date, _, clock = stamp.partition(" ")
        log.add_row(date, clock, entry["event"], cell(entry["stage"]), cell(entry["campaign"]),
                    cell(entry["run"]), local_text(entry["details"], tz))
    console.print(log)


def _control(ctx: typer.Context, verb: str, ref: str, note: str | None, *,
             missed: str | None = None) -> None:
    from campctl.engine import plans, run_control

    app = app_context(ctx)
    db = app.db(create=True)
    action = {"pause": plans.pause_instance, "resume": plans.resume_instance,
              "stop": plans.stop_instance}[verb]
    count = None
    with db.atomic():
        if missed is not None:
            # Before the resume: its policy applies to the runs the resume releases.
            instance = plans.require_instance(db, ref)
            if instance.status == "paused":
                count = run_control.instance_missed(db, instance.id, policy=missed, now=app.now,
                                                    actor=app.actor)
        view = action(db, ref=ref, now=app.now, actor=app.actor, note=note)
    if app.json:
        row = _json_row(view)
        if count is not None:
            row.update({"missed": count.as_json(), "dry_run": False})
        emit_object(app, row)
    elif count is not None:
        from campctl.commands.runs import emit_missed

        emit_missed(app, f"instance {view['id']}", count, dry_run=False,
                    zone=_instance_zone(db, view["id"]))
    done = {"pause": "paused (messages are still built, none are sent)",
            "resume": "resumed", "stop": "stopped (cancelled)"}[verb]
    notice(app, f"instance {view['name']} (id {view['id']}) {done}")


def pause_instance(ctx: typer.Context, ref: InstanceArg, note: NoteOption = None) -> None:
    _control(ctx, "pause", ref, note)


def _instance_zone(db, instance_id: int) -> str | None:
    from campctl.engine import plans

    return plans.require_instance(db, instance_id).snapshot.timezone


def resume_instance(ctx: typer.Context, ref: InstanceArg, note: NoteOption = None,
                    missed: MissedOption = "send", dry_run: DryRunOption = False) -> None:

    policy = missed_policy(missed)
    if dry_run:
        _preview_resume(ctx, ref, policy)
        return
    _control(ctx, "resume", ref, note, missed=policy)


def _preview_resume(ctx: typer.Context, ref: str, policy: str) -> None:
    """`resume instance --dry-run`: the counts, refused as the resume would be; writes nothing."""
    from campctl.commands.runs import emit_missed
    from campctl.engine import plans, run_control
    from campctl.errors import ActionRefused

    app = app_context(ctx)
    db = app.db()
    instance = plans.require_instance(db, ref)
    if instance.status != "paused":
        raise ActionRefused(f"cannot resume instance {instance.name} (id {instance.id}): it is "
                            f"{instance.status}; only a paused instance resumes")
    count = run_control.instance_missed(db, instance.id, policy=policy, now=app.now,
                                        apply=False)
    if app.json:
        emit_object(app, {**_json_row(plans.instance_view(db, instance.id)),
                          "missed": count.as_json(), "dry_run": True})
        return
    emit_missed(app, f"instance {instance.id}", count, dry_run=True,
                zone=instance.snapshot.timezone)


def stop_instance(ctx: typer.Context, ref: InstanceArg, note: NoteOption = None) -> None:
    _control(ctx, "stop", ref, note)


def history_instance(ctx: typer.Context, ref: InstanceArg) -> None:
    from campctl.engine import plans

    app = app_context(ctx)
    db = app.db()
    rows = plans.instance_history(db, ref)
    tz = plans.require_instance(db, ref).snapshot.timezone
    emit(app, rows, [("at", "AT", local_cell(tz)), ("actor", "ACTOR"), ("action", "ACTION"),
                     ("from_status", "FROM"), ("to_status", "TO"), ("note", "NOTE")],
         empty="no actions recorded")
