"""Commands: get runs, describe run, stop/restart/skip/pause/resume run, notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from campctl.commands.common import (
    Column,
    DryRunOption,
    MissedOption,
    app_context,
    emit,
    emit_object,
    local_cell,
    missed_policy,
    notice,
    object_zones,
    require_filters,
)
from campctl.errors import NotFound, UsageProblem

if TYPE_CHECKING:
    from campctl.store.runs import RunRecord

RunId = Annotated[int, typer.Argument(help="Run id (see 'campctl get runs').", min=1)]
NoteRequired = Annotated[
    str, typer.Option("--note", help="Why (recorded in the run's history and notification).")
]
NoteOptional = Annotated[
    str | None, typer.Option("--note", help="Why (recorded in the run's history).")
]

RUN_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("campaign", "CAMPAIGN"),
    ("stage", "STAGE"),
    ("status", "STATUS"),
    ("scheduled_at", "SCHEDULED", local_cell(None)),
    ("queued", "Q/S/F/C",
     lambda _v, r: f"{r['queued']}/{r['sent']}/{r['failed']}/{r['cancelled']}"),
    ("instance", "INSTANCE"),
    ("restart_of", "RESTART OF"),
    ("left_out", "LEFT OUT",
     lambda v, _r: f"{v['rights']} ({v['reason']})" if v and v["rights"] else "-"),
]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["get"].command("runs", help="List campaign runs with their item counts.")(get_runs)
    groups["get"].command("run", hidden=True)(get_runs)
    groups["describe"].command("run", help="Show one run: times, counts, snapshot, history.")(
        describe_run
    )
    groups["stop"].command(
        "run", help="Stop an active run at the earliest point; its unsent items are cancelled."
    )(stop_run)
    groups["restart"].command(
        "run", help="Restart a failed or stopped run: it becomes skipped and a new run is created."
    )(restart_run)
    groups["skip"].command(
        "run", help="Mark a failed or stopped run as skipped; the campaign carries on."
    )(skip_run)
    groups["retry"].command(
        "run", help="Send again to the contacts whose messages failed in a completed, failed or "
        "stopped run (--failed-only): a new run is queued with them alone."
    )(retry_run)
    groups["pause"].command("run", help="Hold the delivery of an active run.")(pause_run)
    groups["resume"].command(
        "run", help="Release a paused run (back to the status it had); --missed skip cancels "
        "the messages whose send time passed while it was paused."
    )(resume_run)
    app.command(
        "notifications",
        help="List operator notifications (runs stopped, restarted, skipped, failed).",
    )(list_notifications)


def run_view(run: RunRecord, counts: dict, notes: list[str],
             left_out: tuple[int, str | None] = (0, None)) -> dict:
    """A run as `get runs -o json` shows it (documented keys, stable for scripts), plus its
    timezone for tables.
    `left_out`: contacts the creator's sending rights left out of the queue, and why."""
    spec = run.spec
    return {
        "id": run.id,
        "campaign": run.campaign,
        "stage": run.stage,
        "status": run.status,
        "scheduled_at": run.scheduled_at,
        "built_at": run.built_at,
        "finished_at": run.finished_at,
        "queued": counts["queued"],
        "sent": counts["sent"],
        "failed": counts["failed"],
        "cancelled": counts["cancelled"],
        "stale": counts.get("stale", 0),
        "capped": counts.get("capped", 0),
        "window_fallback": counts.get("window_fallback", 0),
        "instance": run.instance_id,
        "restart_of": run.restart_of,
        "notes": notes,
        "left_out": {"rights": left_out[0], "reason": left_out[1]},
        "timezone": spec.get("timezone") if isinstance(spec, dict) else None,
    }


def get_runs(
    ctx: typer.Context,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Only runs of this campaign.")
    ] = None,
    instance: Annotated[
        int | None, typer.Option("--instance", help="Only runs of this plan instance (id).")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs in this status (comma-separated for several)."),
    ] = None,
) -> None:
    from campctl.models import RunStatus
    from campctl.store import runs as store_runs
    from campctl.store.users import run_left_out

    app = app_context(ctx)
    statuses = None
    if status:
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in set(RunStatus)]
        if unknown:
            raise UsageProblem(
                f"unknown run status {', '.join(unknown)}; use one of "
                + ", ".join(str(s) for s in RunStatus)
            )
    db = app.db()
    require_filters(db, campaign=campaign, instance=instance)
    runs = store_runs.list_run_records(db, campaign=campaign, instance_id=instance,
                                       status=statuses)
    ids = [r.id for r in runs]
    counts = store_runs.counts_for(db, ids)
    notes = store_runs.notes_for(db, ids)
    left_out = run_left_out(db, ids)
    rows = [run_view(r, counts[r.id], notes.get(r.id, []), left_out.get(r.id, (0, None)))
            for r in runs]
    if app.json:
        for row in rows:
            row.pop("timezone", None)
    emit(app, rows, RUN_COLUMNS, empty="no runs")


def describe_run(ctx: typer.Context, run_id: RunId) -> None:
    from campctl.engine.worklist import assignee
    from campctl.store import history
    from campctl.store import runs as store_runs
    from campctl.store.failures import reasons as failure_reasons
    from campctl.store.users import run_left_out

    app = app_context(ctx)
    db = app.db()
    run = store_runs.get_run_record(db, run_id)
    if run is None:
        raise NotFound(f"no run {run_id} (list them with 'campctl get runs')")
    view = run_view(run, store_runs.counts(db, run_id), store_runs.notes_for(db, [run_id])[run_id],
                    run_left_out(db, [run_id]).get(run_id, (0, None)))
    tz = view.pop("timezone")
    spec = run.spec
    view.update(
        {
            "queue_at": run.queue_at,
            "send_at": run.send_at,
            "include_sent": run.include_sent,
            "paused_from": run.paused_from,
            "error": run.error,
            "timezone": tz,
            "channel": spec.get("channel") if isinstance(spec, dict) else None,
            "window": spec.get("window") if isinstance(spec, dict) else None,
            "window_timezone": _window_timezone(spec),
            "window_zones": _window_zones(db, run_id, spec, now=app.now),
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "restarted_as": store_runs.restarted_as(db, run_id),
            "assigned_to": assignee(db, run_id),
            "worklist_history": history.actions(db, "worklist", f"run/{run_id}"),
            "failure_reasons": failure_reasons(db, run_id=run_id),
            "history": history.actions(db, "run", str(run_id)),
        }
    )
    if app.json:
        emit_object(app, view)
        return
    shown = dict(view)  # its instants are shown in the run's zone by emit_object
    events = shown.pop("history")
    shown.pop("worklist_history")
    shown["notes"] = "; ".join(shown["notes"]) or None
    shown["left_out"] = (f"{view['left_out']['rights']}: {view['left_out']['reason']}"
                         if view["left_out"]["rights"] else None)
    shown["window_zones"] = "; ".join(
        f"{z['zone']}: {z['queued']} queued, {z['sent']} sent"
        + (f" ({z['window_fallback']} fallback)" if z["window_fallback"] else "")
        + ("" if not z["queued"] else ", window open" if z["open"] else f", opens {z['opens']}")
        for z in view["window_zones"] or []) or None
    shown["restarted_as"] = ", ".join(str(i) for i in shown["restarted_as"]) or None
    shown["failure_reasons"] = "; ".join(
        f"{r['count']}: {r['reason']}" for r in shown["failure_reasons"]) or None
    if view["failed"]:
        shown["failure_reasons"] += f" (all: campctl failures run {run_id})"
    emit_object(app, shown, title=f"run {run_id}", zone=tz)
    if events:
        emit(
            app,
            events,
            [
                ("at", "AT", local_cell(tz)),
                ("actor", "ACTOR"),
                ("action", "ACTION"),
                ("from_status", "FROM"),
                ("to_status", "TO"),
                ("note", "NOTE"),
            ],
            title="history",
        )




def _window_timezone(spec) -> str | None:
    """Whose zone the run's window is read in (None: the run has no window)."""
    if not isinstance(spec, dict) or not spec.get("window"):
        return None
    return "contact" if spec.get("window_timezone") == "contact" else "campaign"


def _window_zones(db, run_id: int, spec, *, now) -> list[dict] | None:
    """Per-zone counts of a run whose window is read in each contact's zone (else None)."""
    if _window_timezone(spec) != "contact":
        return None
    from campctl.engine.contact_windows import zone_view

    return zone_view(db, run_id, spec["window"], now=now)


MISSED_COLUMNS: list[Column] = [
    ("run", "RUN"), ("missed", "MISSED"), ("released", "RELEASED"), ("cancelled", "CANCELLED"),
]


def emit_missed(app, what: str, missed, *, dry_run: bool, zone: str | None) -> None:
    """The table of a resume's missed/released counts per run, and one summary line (the pause
    instant in `zone`)."""
    from campctl.commands.common import cell

    verb = "would be" if dry_run else "were"
    if missed.runs:
        emit(app, missed.runs, MISSED_COLUMNS, title=f"{what}: messages at resume"
             + (" (dry run: nothing changed)" if dry_run else ""))
    since = cell(missed.since, zone) if missed.since else "an unrecorded time"
    if missed.policy == "skip":
        text = (f"{missed.cancelled} messages whose send time passed while paused (since "
                f"{since}) {verb} cancelled, {missed.released} released")
    else:
        text = (f"{missed.missed + missed.released} messages {verb} released ({missed.missed} "
                f"of them missed their send time while paused, since {since})")
    notice(app, f"{what}: {text}")


def _act(ctx: typer.Context, run_id: int, verb: str, note: str | None, *,
         include_sent: bool = False, missed: str = "send", dry_run: bool = False) -> None:
    from campctl.engine.run_control import (
        RunVerb,
        apply_run_verb,
        deliver_pending_notifications,
        preview_resume_run,
        retry_failed,
    )

    app = app_context(ctx)
    if note is not None and not note.strip() and verb in ("stop", "restart", "skip", "retry"):
        raise UsageProblem(f"--note must say why you {verb} run {run_id}")
    if dry_run:
        db = app.db()
        action = preview_resume_run(db, run_id, policy=missed, now=app.now)
    else:
        db = app.db(create=True)
        if verb == "retry":
            action = retry_failed(db, run_id, actor=app.actor, note=note, now=app.now)
        else:
            action = apply_run_verb(db, run_id, RunVerb(verb, app.actor, note=note,
                                                        include_sent=include_sent,
                                                        missed=missed), now=app.now)
    delivery = None
    if action.notification_id is not None:
        delivery = deliver_pending_notifications(db, now=app.now, environ=app.environ)
    result = {
        "run": action.run_id,
        "action": verb,
        "from_status": action.from_status,
        "status": action.to_status,
        "new_run": action.new_run_id,
        "cancelled": action.cancelled,
        "possibly_handed_over": action.possibly_handed_over,
    }
    if verb == "retry":
        result["queued"] = action.queued
    if action.missed is not None:
        result["missed"] = action.missed.as_json()
        result["dry_run"] = dry_run
    if app.json:
        emit_object(app, result)
    elif action.missed is not None:
        emit_missed(app, f"run {run_id}", action.missed, dry_run=dry_run,
                    zone=_run_zone(db, run_id))
        if not dry_run:
            notice(app, f"run {run_id}: {action.from_status} -> {action.to_status}")
    else:
        text = f"run {run_id}: {action.from_status} -> {action.to_status}"
        if verb == "stop":
            text += f" ({action.cancelled} queued items cancelled)"
        if action.possibly_handed_over:
            text += (f" ({action.possibly_handed_over} possibly handed over before an interrupted"
                     " delivery: not sent again)")
        if action.new_run_id is not None and verb == "retry":
            text += (f"; new run {action.new_run_id} queued with the {action.queued} contacts "
                     f"whose message failed (retry of {run_id})")
        elif action.new_run_id is not None:
            text += f"; new run {action.new_run_id} scheduled (restart of {run_id})"
        notice(app, text)
    if delivery is not None:
        for error in delivery.errors or []:
            notice(app, f"warning: operator notification not delivered ({error}); "
                        "the next tick retries it")


def _run_zone(db, run_id: int) -> str | None:
    from campctl.store import runs as store_runs

    run = store_runs.get_run_record(db, run_id)
    spec = run.spec if run is not None else None
    return spec.get("timezone") if isinstance(spec, dict) else None


def stop_run(ctx: typer.Context, run_id: RunId, note: NoteRequired) -> None:
    _act(ctx, run_id, "stop", note)


def restart_run(
    ctx: typer.Context,
    run_id: RunId,
    note: NoteRequired,
    include_sent: Annotated[
        bool,
        typer.Option("--include-sent",
                     help="Also send again to contacts already sent in the replaced run."),
    ] = False,
) -> None:
    _act(ctx, run_id, "restart", note, include_sent=include_sent)


def skip_run(ctx: typer.Context, run_id: RunId, note: NoteRequired) -> None:
    _act(ctx, run_id, "skip", note)


def pause_run(ctx: typer.Context, run_id: RunId, note: NoteOptional = None) -> None:
    _act(ctx, run_id, "pause", note)


def resume_run(ctx: typer.Context, run_id: RunId, note: NoteOptional = None,
               missed: MissedOption = "send", dry_run: DryRunOption = False) -> None:
    _act(ctx, run_id, "resume", note, missed=missed_policy(missed), dry_run=dry_run)


def retry_run(
    ctx: typer.Context,
    run_id: RunId,
    note: NoteRequired,
    failed_only: Annotated[
        bool,
        typer.Option("--failed-only",
                     help="Only the contacts whose message failed (required: the only kind of "
                          "retry there is for now)."),
    ] = False,
) -> None:
    if not failed_only:
        raise UsageProblem(f"retry needs --failed-only (the only kind of retry for now): "
                           f"'campctl retry run {run_id} --failed-only --note WHY'; to send to "
                           "everyone not yet sent, use 'campctl restart run'")
    _act(ctx, run_id, "retry", note)


def list_notifications(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only the last DURATION (e.g. 30m, 6h, 2d, 1w)."),
    ] = None,
) -> None:
    from campctl.store.notifications import list_notifications as load
    from campctl.timeutil import parse_duration

    app = app_context(ctx)
    start = None
    if since is not None:
        try:
            start = app.now - parse_duration(since)
        except ValueError as exc:
            raise UsageProblem(f"--since: {exc}") from exc
    db = app.db()
    rows = load(db, since=start)
    for row in rows:
        row["delivered"] = row["delivered_at"] is not None
    emit(
        app,
        rows,
        [
            ("at", "AT", local_cell(None)),
            ("kind", "KIND"),
            ("object", "OBJECT"),
            ("note", "NOTE"),
            ("actor", "ACTOR"),
            ("recipient", "TO", lambda v, _r: v or "notify_to"),
            ("delivered_at", "DELIVERED", lambda v, r: _delivery_cell(v, r)),
        ],
        empty="no notifications",
        zones=object_zones(db),
    )


def _delivery_cell(value, row: dict) -> str:
    if value:
        from campctl.commands.common import cell

        return cell(value, row.get("timezone"))
    if row.get("delivery_error"):
        return f"failed: {row['delivery_error']}"
    return "-"
