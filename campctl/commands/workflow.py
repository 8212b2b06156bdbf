"""Commands: submit, approve, deny, revise, start/stop campaign, stop plan, (de)activate."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from campctl.commands.common import app_context, print_json
from campctl.commands.completion import complete_object_name
from campctl.errors import ActionRefused
from campctl.models import Kind

NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the history.")]
NameArg = Annotated[str, typer.Argument(help="The object's name.", metavar="NAME",
                                        autocompletion=complete_object_name)]

VERB_HELP = {
    "submit": "Submit a draft {kind} for approval.",
    "approve": "Approve a {kind} pending approval.",
    "deny": "Deny a {kind} pending approval.",
    "revise": "Return a denied, stopped or approved (idle) {kind} to draft, so apply may "
              "change it.",
}

PAST = {"submit": "submitted", "approve": "approved", "deny": "denied", "revise": "revised",
        "stop": "stopped"}


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    for kind in (Kind.CAMPAIGN, Kind.PLAN):
        for verb, text in VERB_HELP.items():
            factory = _approve_command if verb == "approve" else _verb_command
            groups[verb].command(kind.cli, help=text.format(kind=kind.cli))(factory(kind, verb))
    groups["stop"].command(
        "campaign", help="End a campaign's launch: no new runs (status stopped)."
    )(stop_campaign)
    groups["stop"].command(
        "plan", help="Stop a plan (no new instances); --current stops its running instance."
    )(stop_plan)
    groups["start"].command(
        "campaign", help="Launch an approved campaign: its schedule starts counting from now."
    )(start_campaign)
    groups["activate"].command("scenario", help="Activate a scenario.")(activate_scenario)
    groups["deactivate"].command(
        "scenario", help="Deactivate a scenario (profiles exit, or freeze if it keeps them)."
    )(deactivate_scenario)


def _report(app, kind: Kind, name: str, action: str, old: str | None, new: str | None) -> None:
    if app.json:
        print_json({"kind": kind.cli, "name": name, "action": action,
                    "from_status": old, "to_status": new})
    else:
        move = f" ({old} → {new})" if old != new else ""
        sys.stdout.write(f"{kind.cli}/{name} {action}{move}\n")


def _business(ctx: typer.Context, kind: Kind, verb: str, name: str, note: str | None,
              override: bool = False) -> None:
    from campctl.engine import access
    from campctl.engine.workflow import VerbRequest, business_verb

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        if verb in access.GUARDED_ACTIONS:
            access.check(db, access.AccessRequest(
                kind=kind.value, name=name, actor=app.actor, action=verb,
                override=app.override_access), now=app.now)
        old, new = business_verb(db, kind, name, VerbRequest(
            verb, app.actor, note=note, override_four_eyes=override), now=app.now)
    _report(app, kind, name, PAST[verb], old, new)


def _verb_command(kind: Kind, verb: str):
    def command(ctx: typer.Context, name: NameArg, note: NoteOption = None) -> None:
        _business(ctx, kind, verb, name, note)

    command.__doc__ = VERB_HELP[verb].format(kind=kind.cli)
    return command


def _approve_command(kind: Kind, verb: str):
    def command(
        ctx: typer.Context,
        name: NameArg,
        note: NoteOption = None,
        override_four_eyes: Annotated[bool, typer.Option(
            "--override-four-eyes",
            help="Approve what you submitted yourself although four_eyes is on; needs --note, "
            "recorded as approve-override.")] = False,
    ) -> None:
        _business(ctx, kind, verb, name, note, override_four_eyes)

    command.__doc__ = VERB_HELP[verb].format(kind=kind.cli)
    return command


def stop_campaign(ctx: typer.Context, name: NameArg, note: NoteOption = None) -> None:
    _business(ctx, Kind.CAMPAIGN, "stop", name, note)


def stop_plan(
    ctx: typer.Context,
    name: NameArg,
    note: NoteOption = None,
    current: Annotated[bool, typer.Option(
        "--current", help="Stop the plan's running instance instead (the plan keeps its status).")
    ] = False,
) -> None:
    if not current:
        _business(ctx, Kind.PLAN, "stop", name, note)
        return
    from campctl.engine import plans
    from campctl.engine.workflow import require_record

    app = app_context(ctx)
    hook = getattr(plans, "stop_current", None)
    if hook is None:
        raise ActionRefused("'stop plan --current' is not available yet in this campctl; "
                            "use 'campctl stop instance ID'")
    db = app.db(create=True)
    require_record(db, Kind.PLAN, name)
    with db.atomic():
        stopped = hook(db, plan=name, actor=app.actor, now=app.now, note=note)
    if isinstance(stopped, list) and not stopped:
        raise ActionRefused(f"plan {name} has no running or paused instance to stop")
    if app.json:
        print_json({"kind": "plan", "name": name, "action": "stop-current",
                    "instances": stopped if isinstance(stopped, list) else []})
    else:
        ids = ", ".join(str(i) for i in stopped) if isinstance(stopped, list) else ""
        sys.stdout.write(f"plan/{name} current instance stopped {ids}".rstrip() + "\n")


def start_campaign(ctx: typer.Context, name: NameArg, note: NoteOption = None) -> None:
    from campctl.engine import access
    from campctl.engine.workflow import start_campaign as launch

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        access.check(db, access.AccessRequest(
            kind=Kind.CAMPAIGN.value, name=name, actor=app.actor, action="start",
            override=app.override_access), now=app.now)
        launch(db, name=name, actor=app.actor, now=app.now, note=note)
    _report(app, Kind.CAMPAIGN, name, "started", "approved", "approved")


def _scenario(ctx: typer.Context, verb: str, name: str, note: str | None) -> None:
    from campctl.engine import access
    from campctl.engine.workflow import scenario_verb

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        if verb in access.GUARDED_ACTIONS:
            access.check(db, access.AccessRequest(
                kind=Kind.SCENARIO.value, name=name, actor=app.actor, action=verb,
                override=app.override_access), now=app.now)
        old, new = scenario_verb(db, name=name, verb=verb, actor=app.actor, now=app.now,
                                 note=note)
    _report(app, Kind.SCENARIO, name, f"{verb}d", old, new)


def activate_scenario(ctx: typer.Context, name: NameArg, note: NoteOption = None) -> None:
    _scenario(ctx, "activate", name, note)


def deactivate_scenario(ctx: typer.Context, name: NameArg, note: NoteOption = None) -> None:
    _scenario(ctx, "deactivate", name, note)
