"""Command: why CONTACT [KIND NAME] — will this contact get a message, did it, and why not."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from campctl.commands.common import app_context, local_text, print_json, refuse_yaml

MARKS = {True: "ok", False: "FAILS", None: "later"}


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("why", help="For one contact and every campaign, plan stage and scenario (or "
                "the one named): will get, got, will not get or waiting, and why.")(why)


def _complete_kind(incomplete: str) -> list[str]:
    return [k for k in ("campaign", "plan", "scenario") if k.startswith(incomplete)]


def _complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Names of the KIND given before NAME."""
    from campctl.commands.completion import Kind, _state_path
    from campctl.store.completion import object_names

    try:
        kind = Kind.from_cli(str(ctx.params.get("kind") or ""))
    except ValueError:
        return []
    return object_names(_state_path(ctx), kind.value, incomplete)


def why(
    ctx: typer.Context,
    contact: Annotated[str, typer.Argument(help="The contact's id (its external id).")],
    kind: Annotated[str | None, typer.Argument(
        help="campaign, plan or scenario (with NAME): only that object.",
        autocompletion=_complete_kind)] = None,
    name: Annotated[str | None, typer.Argument(
        help="The object's name.", autocompletion=_complete_name)] = None,
) -> None:
    from campctl.engine.why import explain

    app = app_context(ctx)
    refuse_yaml(app)
    report = explain(app.db(), contact, now=app.now, kind=kind, name=name)
    if app.json:
        print_json(report)
        return
    _table(app, report)


def _label(entry: dict[str, Any]) -> str:
    return f"{entry['kind']}/{entry['name']}"


def _part(entry: dict[str, Any]) -> str:
    if entry["kind"] == "scenario":
        profile = entry.get("profile") or {}
        return f"step {profile['step']}" if profile.get("step") else "-"
    if entry["kind"] == "plan":
        return f"{entry['campaign']}/{entry['stage']}"
    return str(entry["stage"])


def _table(app, report: dict[str, Any]) -> None:
    from rich.table import Table

    console = app.out()
    groups = ", ".join(report["groups"]) or "none"
    opted = ", ".join(report["opted_out"]) or "none"
    title = f"why {report['contact']} (groups: {groups}; opted out of: {opted})"
    if not report["objects"]:
        console.print(f"{title}\n[dim]no campaigns, plans or scenarios[/dim]")
        _caps(app, report)
        return
    table = Table(title=title, show_lines=True)
    for header in ("OBJECT", "STAGE/STEP", "VERDICT", "REASON", "CHECKS"):
        table.add_column(header, overflow="fold")
    for entry in report["objects"]:
        tz = entry.get("timezone")
        checks = "\n".join(f"{MARKS[c['passed']]}  {c['check']}"
                           + (f" ({local_text(c['detail'], tz)})" if c["detail"] else "")
                           for c in entry["checks"])
        table.add_row(_label(entry), _part(entry), entry["verdict"],
                      local_text(entry["reason"], tz), checks)
    console.print(table)
    _caps(app, report)


def _caps(app, report: dict[str, Any]) -> None:
    """One line per frequency cap: what it counts for the contact, and what it holds."""
    for cap in report.get("caps") or []:
        types = ", ".join(cap["message_types"]) if cap["message_types"] else "every type"
        frees = cap["next_slot_at"]
        when = (f"next slot {local_text(frees, None)}" if frees
                else f"{cap['slots_left']} slot(s) left")
        app.out().print(
            f"frequency cap {cap['name']} ({types}: max {cap['max']} per {cap['per']}, "
            f"{cap['policy']}): {cap['counted']} counted ({cap['sent']} sent, "
            f"{cap['in_flight']} in flight); {when}", markup=False)
        for held in cap["held"]:
            source = (f"run {held['run']}" if held["run"] is not None
                      else f"scenario {held['scenario']} step {held['step']}")
            state = (f"waits until {local_text(held['until'], None)}" if held["until"]
                     else held["status"])
            app.out().print(f"  held {held['message_id']} ({source}): {state}", markup=False)
