"""Command: doctor (health checks of the state; exit 1 when a check finds a problem)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from campctl.commands.common import app_context, print_json, refuse_yaml
from campctl.errors import UsageProblem


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("doctor", help="Check the state's health: ticks, claims, runs, notifications, "
                "integrity, file modes, WAL, channel variables, time zone rules (exit 0 "
                "healthy, 1 problems).")(doctor)


def doctor(
    ctx: typer.Context,
    tick_grace: Annotated[str, typer.Option(
        "--tick-grace", metavar="DURATION",
        help="How long work may wait without a tick before it is a problem (e.g. 10m).")] = "10m",
) -> None:
    from campctl.engine.doctor import DoctorInput, run_checks, summary
    from campctl.timeutil import parse_duration

    app = app_context(ctx)
    refuse_yaml(app)
    try:
        grace = parse_duration(tick_grace)
    except ValueError as exc:
        raise UsageProblem(f"--tick-grace: {exc}") from exc
    checks = run_checks(DoctorInput(app.db(), app.now, app.environ, grace))
    counts = summary(checks)
    if app.json:
        print_json({"healthy": counts["problems"] == 0, **counts,
                    "checks": [c.as_json() for c in checks]})
    else:
        for check in checks:
            if check.severity != "ok":
                advice = f" -> {check.advice}" if check.advice else ""
                sys.stdout.write(f"{check.severity}: {check.name}: {check.detail}{advice}\n")
        if not counts["problems"]:
            sys.stdout.write(f"healthy: {counts['checks']} checks passed"
                             + (f" ({counts['warnings']} warnings)" if counts["warnings"] else "")
                             + "\n")
    if counts["problems"]:
        raise typer.Exit(1)
