"""Commands: outbox list, channel test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from campctl.commands.common import (
    app_context,
    emit,
    emit_object,
    local_cell,
    notice,
    object_zones,
    require_filters,
)
from campctl.errors import ActionRefused, UsageProblem


def _source(_value, row: dict) -> str:
    if row.get("campaign"):
        return f"{row['campaign']}/{row.get('stage')} run {row.get('run')}"
    if row.get("scenario"):
        return f"{row['scenario']}/{row.get('step')}"
    return "-"


OUTBOX_COLUMNS: list[tuple[str, str] | tuple[str, str, Callable[[Any, dict], str]]] = [
    ("sent_at", "SENT", local_cell(None)), ("campaign", "FROM", _source), ("contact", "CONTACT"),
    ("channel", "CHANNEL"), ("subject", "SUBJECT"),
]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    outbox = typer.Typer(help="Messages delivered through outbox channels.",
                         no_args_is_help=True, rich_markup_mode=None)
    outbox.command("list", help="List delivered outbox messages, newest last.")(outbox_list)
    app.add_typer(outbox, name="outbox")
    channel = typer.Typer(help="Check delivery channels before a launch.",
                          no_args_is_help=True, rich_markup_mode=None)
    channel.command("test", help="Send one test message through a channel and report the "
                    "outcome (exit 0 sent, 1 failed).")(channel_test)
    app.add_typer(channel, name="channel")


def outbox_list(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")] = None,
    run: Annotated[int | None, typer.Option("--run", help="Only this run id.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="Only this scenario.")] = None,
    contact: Annotated[str | None, typer.Option("--contact", help="Only this contact id.")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show the newest N (0: all).")] = 100,
) -> None:
    from campctl.store.delivery import OutboxFilter, list_outbox

    if limit < 0:
        raise UsageProblem("--limit must be 0 (all) or a positive number")
    app = app_context(ctx)
    db = app.db()
    require_filters(db, campaign=campaign, run=run, scenario=scenario, contact=contact,
                    channel=channel)
    only = OutboxFilter(campaign=campaign, run_id=run, scenario=scenario, contact=contact,
                        channel=channel)
    rows = list_outbox(db, only, limit=limit or None)
    emit(app, rows, OUTBOX_COLUMNS, empty="no messages in the outbox", zones=object_zones(db))


def channel_test(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Channel name (a Channel definition or 'outbox').")],
    to: Annotated[str, typer.Option("--to", help="Recipient address (email for smtp).")],
) -> None:
    from campctl.engine.delivery import send_test

    app = app_context(ctx)
    if not to.strip():
        raise UsageProblem("--to needs an address")
    result = send_test(app.db(create=True), name, to.strip(), now=app.now, environ=app.environ)
    if app.json:
        emit_object(app, result.as_json())
    if not result.ok:
        raise ActionRefused(f"channel {name}: test message to {to} failed: {result.reason}")
    if not app.json:
        notice(app, f"channel {name}: test message {result.message_id} sent to {to}")
