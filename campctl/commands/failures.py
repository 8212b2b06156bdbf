"""Commands: failures run ID / failures scenario NAME — failed messages and their reasons."""

from __future__ import annotations

from typing import Annotated

import typer

from campctl.commands.common import app_context, emit, local_cell, object_zones, require_step
from campctl.commands.completion import complete_object_name
from campctl.errors import NotFound, UsageProblem

LimitOption = Annotated[int, typer.Option(
    "--limit", help="Show the most recent N failures (0: all).")]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    failures = typer.Typer(help="Failed messages of a run or a scenario, with their reasons.",
                           no_args_is_help=True, rich_markup_mode=None)
    failures.command("run", help="Failed messages of one run.")(failures_run)
    failures.command("scenario", help="Failed messages of a scenario (or one of its steps).")(
        failures_scenario)
    app.add_typer(failures, name="failures")


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise UsageProblem("--limit must be 0 (all) or a positive number")


def failures_run(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id (see 'campctl get runs').", min=1)],
    limit: LimitOption = 100,
) -> None:
    from campctl.store.failures import failed_items
    from campctl.store.runs import get_run_record

    _check_limit(limit)
    app = app_context(ctx)
    db = app.db()
    run = get_run_record(db, run_id)
    if run is None:
        raise NotFound(f"no run {run_id} (list them with 'campctl get runs')")
    tz = run.spec.get("timezone") if isinstance(run.spec, dict) else None
    rows = [{"message_id": r["message_id"], "contact": r["contact"], "run": r["run"],
             "channel": r["channel"], "attempts": r["attempts"], "last_error": r["last_error"],
             "failed_at": r["failed_at"]}
            for r in failed_items(db, run_id=run_id, limit=limit or None)]
    emit(app, rows, [("failed_at", "FAILED", local_cell(tz)), ("contact", "CONTACT"),
                     ("attempts", "ATTEMPTS"), ("last_error", "REASON"),
                     ("message_id", "MESSAGE")],
         empty=f"no failed messages in run {run_id}")


def failures_scenario(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Scenario name.",
                                        autocompletion=complete_object_name)],
    step: Annotated[str | None, typer.Option("--step", help="Only failures of this step.")]
    = None,
    limit: LimitOption = 100,
) -> None:
    from campctl.store.failures import failed_items

    _check_limit(limit)
    app = app_context(ctx)
    db = app.db()
    require_step(db, name, step)
    rows = [{"message_id": r["message_id"], "contact": r["contact"], "scenario": r["scenario"],
             "step": r["step"], "channel": r["channel"], "attempts": r["attempts"],
             "last_error": r["last_error"], "failed_at": r["failed_at"]}
            for r in failed_items(db, scenario=name, step=step, limit=limit or None)]
    emit(app, rows, [("failed_at", "FAILED", local_cell(object_zones(db)({"scenario": name}))),
                     ("contact", "CONTACT"),
                     ("step", "STEP"), ("attempts", "ATTEMPTS"), ("last_error", "REASON"),
                     ("message_id", "MESSAGE")],
         empty=f"no failed messages in scenario {name}"
               + (f" step {step}" if step else ""))

