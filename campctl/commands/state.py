"""Commands: state copy."""

from __future__ import annotations

from typing import Annotated

import typer

from campctl.commands.common import app_context, emit, emit_object, notice
from campctl.errors import ActionRefused


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    state = typer.Typer(help="The state as a whole: copy it between SQLite and PostgreSQL.",
                        no_args_is_help=True, rich_markup_mode=None)
    state.command("copy", help="Copy a whole state (a file or a postgresql:// URL) into an "
                  "empty one, ids, history and outbox included; prints both sides' row counts.")(
        copy)
    app.add_typer(state, name="state")


def copy(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(
        metavar="FROM", help="The state to copy: a file path or postgresql://USER@HOST:PORT/DB.")],
    target: Annotated[str, typer.Argument(
        metavar="TO", help="An empty state: a new or 0-byte file, or a database without "
        "campctl rows.")],
) -> None:
    from campctl.store.copy import copy_state
    from campctl.store.location import parse_state
    from campctl.timeutil import to_db

    app = app_context(ctx)
    result = copy_state(parse_state(source), parse_state(target), now_text=to_db(app.now),
                        busy_timeout_ms=app.busy_timeout_ms)
    if result.live_claims:
        app.err().print(f"warning: {result.live_claims} queue items were claimed by a running "
                        "tick; stop cron and daemons before copying", markup=False)
    rows = [{"table": t.table, "from": t.source, "to": t.target} for t in result.tables]
    if app.json:
        emit_object(app, {"from": result.source, "to": result.target, "tables": rows,
                          "sequences": result.sequences, "match": result.matches})
    else:
        emit(app, rows, [("table", "TABLE"), ("from", "FROM"), ("to", "TO")])
        total = sum(t.source for t in result.tables)
        notice(app, f"copied {total} rows from {result.source} to {result.target}")
    if not result.matches:
        differ = ", ".join(t.table for t in result.tables if t.source != t.target)
        raise ActionRefused(f"row counts differ in {differ}")
