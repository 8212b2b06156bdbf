"""Commands of scenarios: start scenario, stop launch, get launches, clear, remove-profile, clone,
stats, profiles (and describe scenario's per-step picture)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from campctl.commands.common import (
    app_context,
    emit,
    emit_object,
    local_cell,
    local_text,
    notice,
    object_zones,
    print_json,
)
from campctl.commands.completion import complete_object_name
from campctl.errors import ActionRefused, UsageProblem

if TYPE_CHECKING:
    from campctl.engine.scenarios import LaunchPlan

NOTE = typer.Option("--note", help="Why, for the history.")
# A table of tens of thousands of rows takes minutes to draw; JSON and --limit 0 give them all.
PROFILES_LIMIT = 1000


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["start"].command(
        "scenario", help="Launch a manual scenario for --all contacts, --group G (repeatable) or "
        "one --contact ID.")(start_scenario)
    groups["stop"].command(
        "launch", help="Abandon the future steps of a scenario launch's profiles.")(stop_launch)
    groups["get"].command("launches", help="Scenario launches and their results.")(get_launches)
    groups["get"].command("launch", hidden=True)(get_launches)
    groups["clear"].command("scenario", help="Remove all profiles of a scenario.")(clear_scenario)
    groups["remove-profile"].command(
        "scenario", help="Remove one contact's profile(s) inside a scenario.")(remove_profile)
    groups["clone"].command(
        "scenario", help="Copy a scenario's definition under a new name (inactive, version 1)."
    )(clone_scenario)
    groups["stats"].command(
        "scenario", help="Entered, completed and errors in a period; profiles inside now, "
        "per step.")(stats_scenario)
    groups["profiles"].command(
        "scenario", help="List a scenario's profiles with their wake-up times.")(profiles_scenario)


def start_scenario(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Scenario name.",
                                        autocompletion=complete_object_name)],
    all_contacts: Annotated[bool, typer.Option("--all", help="Every contact.")] = False,
    group: Annotated[list[str] | None, typer.Option(
        "--group", help="Contacts of this group (repeatable).")] = None,
    contact: Annotated[str | None, typer.Option(
        "--contact", help="One contact (its external id), manually triggered.")] = None,
    include_opted_out: Annotated[bool, typer.Option(
        "--include-opted-out", help="Send even to contacts that opted out of a step's "
        "message type.")] = False,
    data: Annotated[str | None, typer.Option(
        "--data", help="JSON object kept on the profiles as capture data (event.* in "
        "templates).")] = None,
    count: Annotated[bool, typer.Option(
        "--count", help="Print the number of targeted contacts; launch nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import access, scenarios
    from campctl.engine.campaigns import parse_event_data

    app = app_context(ctx)
    request = scenarios.LaunchRequest(
        name, scenarios.Participants(all_contacts, tuple(group or ()), contact),
        include_opted_out=include_opted_out,
        data=None if data is None else parse_event_data(data))
    if count:
        _print_count(app, scenarios.plan_launch(app.db(), request, now=app.now, validate=False))
        return
    db = app.db(create=True)
    plan = scenarios.plan_launch(db, request, now=app.now)
    if plan.problems:
        for problem in plan.problems:
            notice(app, f"  {problem}")
        raise ActionRefused(f"scenario {name}: {len(plan.problems)} validation problem(s) "
                            "listed above; nothing launched")
    if not yes:
        _confirm(app, plan)
    with db.atomic():
        access.check(db, access.AccessRequest(
            kind="Scenario", name=name, actor=app.actor, action="launch",
            override=app.override_access), now=app.now)
        result = scenarios.launch(db, plan, actor=app.actor, now=app.now, note=note)
    if app.json:
        emit_object(app, result)
    else:
        notice(app, f"launch {result['id']}: scenario {name}, {scenarios.summary_text(plan)}; "
               f"{result['entered']} entered; profiles move at the next tick")
        _left_out_notice(app, plan)


def _print_count(app, plan: LaunchPlan) -> None:
    """`start scenario --count`: the number of targeted contacts, and who the rights leave out."""
    if app.json:
        print_json(plan.targeted)
    else:
        app.out().print(str(plan.targeted))
    _left_out_notice(app, plan)


def _confirm(app, plan: LaunchPlan) -> None:
    """Ask before launching (on a terminal only: elsewhere --yes is required)."""
    from campctl.engine.scenarios import summary_text

    if not (app.stdin_is_terminal and app.stdout_is_terminal):
        raise ActionRefused("not a terminal: add --yes to launch without confirmation")
    notice(app, f"scenario {plan.scenario} ({plan.selection}): {summary_text(plan)}")
    _left_out_notice(app, plan)
    if not typer.confirm("Confirm and launch scenario?", default=False, err=True):
        raise ActionRefused("not confirmed; nothing launched")


def _left_out_notice(app, plan: LaunchPlan) -> None:
    if plan.left_out:
        notice(app, f"{plan.left_out} targeted contact(s) left out for the creator's rights: "
                    f"{plan.left_out_reason}")


def stop_launch(
    ctx: typer.Context,
    launch_id: Annotated[int, typer.Argument(metavar="ID", help="Launch id (get launches).")],
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import scenarios

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        result = scenarios.stop_launch(db, launch_id=launch_id, actor=app.actor, now=app.now,
                                       note=note)
    if app.json:
        emit_object(app, result)
    else:
        notice(app, f"launch {launch_id} abandoned: {result['abandoned']} profile(s) stopped; "
               "messages already sent stand")


def get_launches(
    ctx: typer.Context,
    scenario: Annotated[str | None, typer.Option("--scenario", help="Only this scenario.")] = None,
) -> None:
    from campctl.engine import scenarios

    app = app_context(ctx)
    rows = scenarios.launches(app.db(), scenario=scenario)
    emit(app, rows, [("id", "ID"), ("scenario", "SCENARIO"), ("status", "STATUS"),
                     ("targeted", "TARGETED"), ("success", "SUCCESS"), ("failure", "FAILURE"),
                     ("abandoned", "ABANDONED"), ("other", "OTHER"), ("inside", "INSIDE")],
         empty="no launches")


def clear_scenario(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Scenario name.",
                                        autocompletion=complete_object_name)],
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import access, scenarios
    from campctl.store import history

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        access.check(db, access.AccessRequest(
            kind="Scenario", name=name, actor=app.actor, action="clear",
            override=app.override_access), now=app.now)
        removed = scenarios.clear(db, name=name, now=app.now)
        history.record(db, history.HistoryEntry(
            kind="Scenario", name=name, action="clear", actor=app.actor, note=note), now=app.now)
    if app.json:
        emit_object(app, {"scenario": name, "removed": removed})
    else:
        notice(app, f"scenario {name}: {removed} profile(s) removed")


def remove_profile(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Scenario name.",
                                        autocompletion=complete_object_name)],
    contact: Annotated[str, typer.Argument(help="Contact id (external id).")],
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import scenarios
    from campctl.store import history

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        removed = scenarios.remove_profile(db, name=name, contact=contact, now=app.now)
        history.record(db, history.HistoryEntry(
            kind="Scenario", name=name, action="remove-profile", actor=app.actor,
            note=note or f"contact {contact}"), now=app.now)
    if app.json:
        emit_object(app, {"scenario": name, "contact": contact, "removed": removed})
    else:
        notice(app, f"scenario {name}: profile of {contact} removed")


def clone_scenario(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Scenario to copy.",
                                        autocompletion=complete_object_name)],
    new: Annotated[str, typer.Argument(help="Name of the copy.")],
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import scenarios

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        scenarios.clone(db, name=name, new=new, actor=app.actor, now=app.now, note=note)
    if app.json:
        emit_object(app, {"scenario": new, "clone_of": name, "status": "inactive"})
    else:
        notice(app, f"scenario/{new} created (inactive) as a copy of scenario/{name}")


def stats_scenario(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Scenario name.",
                                        autocompletion=complete_object_name)],
    since: Annotated[str | None, typer.Option(
        "--since", help="Period: a duration back from now (e.g. 30d).")] = None,
    from_: Annotated[str | None, typer.Option(
        "--from", help="Start of the period: a date (YYYY-MM-DD, from 00:00 UTC) or a "
        "datetime (UTC unless it has an offset). Default: 7 days before --to.")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="End of the period: a date (up to 24:00 UTC of that day) or a datetime. "
        "Default: now.")] = None,
) -> None:
    from campctl.engine import scenarios
    from campctl.timeutil import parse_duration

    app = app_context(ctx)
    try:
        period = parse_duration(since) if since is not None else None
    except ValueError as exc:
        raise UsageProblem(f"--since: {exc}") from exc
    start, end = scenarios.period_bounds(
        since=period, start=_period_edge("--from", from_, end_of_day=False),
        end=_period_edge("--to", to, end_of_day=True), now=app.now)
    result = scenarios.stats(app.db(), name=name, start=start, end=end, now=app.now)
    if app.json:
        emit_object(app, result)
        return
    zone = object_zones(app.db())({"scenario": name})
    title = (f"scenario {name}, last {since}" if since is not None
             else f"scenario {name}, {result['from']} to {result['to']}")
    if not app.json:
        title = local_text(title, zone)
    emit_object(app, {k: v for k, v in result.items() if k not in ("by_step", "since")},
                title=title, zone=zone)
    emit(app, [{"step": k, "count": v} for k, v in result["by_step"].items()],
         [("step", "STEP"), ("count", "INSIDE")], empty="no profiles inside")


def _period_edge(option: str, text: str | None, *, end_of_day: bool):
    """A --from/--to value as an aware UTC instant; a bare date covers that whole UTC day."""
    import re
    from datetime import timedelta

    from campctl.timeutil import parse_local_datetime

    if text is None:
        return None
    try:
        moment = parse_local_datetime(text, "UTC")
    except ValueError as exc:
        raise UsageProblem(f"{option}: {exc}; a date YYYY-MM-DD also works") from exc
    if end_of_day and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        moment += timedelta(days=1, seconds=-1)
    return moment


def profiles_scenario(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Scenario name.",
                                        autocompletion=complete_object_name)],
    step: Annotated[str | None, typer.Option("--step", help="Only profiles at this step.")]
    = None,
    status: Annotated[str | None, typer.Option(
        "--status", help="Only this status (active, waiting, frozen, completed, exited, "
        "abandoned, removed, error).")] = None,
    contact: Annotated[str | None, typer.Option(
        "--contact", help="Only this contact's profiles (its external id).")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", min=0, help="At most N profiles, oldest first (0: no limit).")]
    = PROFILES_LIMIT,
) -> None:
    from campctl.engine import scenarios

    app = app_context(ctx)
    db = app.db()
    rows, total = scenarios.profiles(db, name=name, step=step, status=status,
                                     contact=contact, limit=limit or None)
    tz = object_zones(db)({"scenario": name})
    emit(app, rows, [("contact", "CONTACT"), ("step", "STEP"), ("status", "STATUS"),
                     ("entered_at", "ENTERED", local_cell(tz)),
                     ("wake_at", "WAKES", local_cell(tz)),
                     ("exited_at", "EXITED", local_cell(tz)),
                     ("data", "DATA", data_cell)],
         empty="no profiles")
    if total > len(rows):
        notice(app, f"showing {len(rows)} of {total} profiles; narrow with --step, --status or "
               "--contact, or raise --limit (0: all)")


def data_text(value: dict | None) -> str:
    """Capture data on one line: compact JSON, cut at 60 characters."""
    import json

    if not value:
        return "-"
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 60 else text[:59] + "…"


def data_cell(value: dict | None, _row: dict) -> str:
    from rich.markup import escape

    return escape(data_text(value))


def render_steps(app, rows: list[dict], title: str | None = None) -> None:
    """The journey as a tree with the profiles on each step (for describe scenario)."""
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(escape(title or "steps"))
    for row in rows:
        inside = row.get("active", 0) + row.get("waiting", 0) + row.get("frozen", 0)
        bar = "█" * min(30, inside) if inside else ""
        label = (f"[bold]{escape(row['step'])}[/bold] {row['action']} {escape(row['detail'])} "
                 f"→ {escape(row['next'])}")
        counts = f"  [cyan]{inside} inside[/cyan] {bar}" if inside else ""
        if row.get("sent"):
            counts += f"  [green]{row['sent']} sent[/green]"
        if row.get("failed"):
            counts += f"  [red]{row['failed']} failed[/red]"
        if row.get("stale"):
            counts += f"  [yellow]{row['stale']} stale[/yellow]"
        if row.get("capped"):
            counts += f"  [yellow]{row['capped']} capped[/yellow]"
        tree.add(label + counts)
    app.out().print(tree)
