"""Commands: simulate (the state run forward on a temporary copy; the report and its chart)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from campctl.commands.common import AppContext, app_context, emit, print_json, refuse_yaml
from campctl.errors import UsageProblem

_COUNTS = [("fired", "FIRED"), ("skipped", "SKIPPED"), ("built", "BUILT"), ("sent", "SENT"),
           ("failed", "FAILED"), ("cancelled", "CANCELLED"), ("stale", "STALE"),
           ("capped", "CAPPED"), ("held_window", "HELD WINDOW"), ("held_rate", "HELD RATE")]
_BLOCKS = " ▁▂▃▄▅▆▇█"
_CHART_ROWS = 6


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("simulate", help="Run the state forward N days on a temporary copy (nothing "
                "is written to it, nothing is sent) and report what would happen: occurrences, "
                "messages per day and object, holds, contacts over a daily limit, a chart per "
                "hour.")(simulate)


def simulate(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(
        "--days", help="How many days to run forward from --now (1 to 366).")] = 7,
    max_per_day: Annotated[int, typer.Option(
        "--max-per-day", help="Name the contacts who would get more than K messages in one "
        "day (of --timezone).", metavar="K")] = 1,
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="The zone of the report's days and hours (default: the zone every "
        "campaign, plan and scenario shares, else UTC).")] = None,
) -> None:
    from campctl.engine import simulate as engine
    from campctl.store.copy import copy_state
    from campctl.store.db import open_state
    from campctl.store.location import SqlitePath
    from campctl.timeutil import to_db

    app = app_context(ctx)
    refuse_yaml(app)
    try:
        engine.check_days(days)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    if max_per_day < 0:
        raise UsageProblem(f"--max-per-day must be 0 or more, not {max_per_day}")
    if timezone is not None:
        _check_zone(timezone)
    now = app.now
    with tempfile.TemporaryDirectory(prefix="campctl-simulate-") as folder:
        target = SqlitePath(Path(folder) / "copy.db")
        copy_state(app.state, target, now_text=to_db(now), busy_timeout_ms=app.busy_timeout_ms)
        db = open_state(target, create=False)
        try:
            zone = timezone or _shared_zone(db)
            with _progress(app, now, days) as progress:
                result = engine.simulate(db, start=now, days=days, environ=app.environ,
                                         timezone=zone, max_per_day=max_per_day,
                                         progress=progress)
        finally:
            db.close()
    data = result.as_json()
    if app.json:
        print_json(data)
        return
    _print(app, result, data)


def _check_zone(name: str) -> None:
    from campctl.timeutil import zone

    try:
        zone(name)
    except ValueError as exc:
        raise UsageProblem(f"--timezone: {exc}") from None


def _shared_zone(db) -> str:
    from campctl.commands.common import spec_timezone
    from campctl.store.objects import all_records

    zones = {spec_timezone(o.spec) or "UTC" for o in all_records(db)
             if o.kind in ("Campaign", "Plan", "Scenario")}
    return zones.pop() if len(zones) == 1 else "UTC"


@contextlib.contextmanager
def _progress(app: AppContext, start: datetime, days: int
              ) -> Iterator[Callable[[datetime], None] | None]:
    """A progress bar on stderr when it is a terminal (simulated minutes), else nothing."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    total = days * 24 * 60
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=app.err(), transient=True) as bar:
        task = bar.add_task("", total=total)

        def update(at: datetime) -> None:
            minutes = int((at - start).total_seconds() // 60)
            bar.update(task, completed=minutes, description=f"day {minutes // 1440 + 1}/{days}")

        yield update


# --- the report ---------------------------------------------------------------------------------
def _print(app: AppContext, result: Any, data: dict) -> None:
    from campctl.timeutil import display

    out = app.out()
    rerouted = ", ".join(data["channels_rerouted"]) or "none"
    out.print(f"simulated {display(result.start, result.timezone)} → "
              f"{display(result.end, result.timezone)}: {data['ticks']} ticks; nothing was "
              f"written to the state and nothing sent (channels rerouted to an outbox: "
              f"{rerouted})", markup=False)
    emit(app, data["days"], [("day", "DAY"), *_COUNTS], title=f"per day ({result.timezone})")
    objects = list(data["objects"])
    emit(app, objects, [("object", "OBJECT"), *_COUNTS], title="per campaign, plan, scenario",
         empty="no campaign, plan or scenario did anything")
    for row in objects:
        for key, label in (("skipped_reasons", "skipped"), ("cancelled_reasons", "ended")):
            for reason, count in row[key].items():
                out.print(f"  {row['object']}: {count} {label}: {reason}", markup=False)
    limit = data["max_per_day"]
    if data["contacts_over_max"]:
        out.print(f"{data['contacts_over_max']} contact(s) would get more than {limit} "
                  f"message(s) in one day:", markup=False)
        emit(app, data["over_max"], [("day", "DAY"), ("contact", "CONTACT"),
                                     ("messages", "MESSAGES")])
    else:
        out.print(f"no contact would get more than {limit} message(s) in one day",
                  markup=False)
    for line in chart(result.hourly, width=max(20, min(out.width - 10, 120))):
        out.print(line, markup=False)
    for warning in data["warnings"]:
        app.err().print(f"warning: {warning}", markup=False)


def chart(hourly: list[int], *, width: int) -> list[str]:
    """Messages per hour as unicode block columns: each column sums `per` hours."""
    if not hourly or not any(hourly):
        return ["messages per hour: none sent"]
    per = -(-len(hourly) // width)
    columns = [sum(hourly[i:i + per]) for i in range(0, len(hourly), per)]
    top = max(columns)
    steps = len(_BLOCKS) - 1
    heights = [round(c * _CHART_ROWS * steps / top) if c else 0 for c in columns]
    heights = [max(h, 1) if c else 0 for h, c in zip(heights, columns, strict=True)]
    unit = "hour" if per == 1 else f"{per} hours"
    lines = [f"messages per {unit} (highest {top}):"]
    for row in range(_CHART_ROWS - 1, -1, -1):
        cells = []
        for h in heights:
            fill = h - row * steps
            cells.append(_BLOCKS[max(0, min(steps, fill))])
        lines.append("│" + "".join(cells).rstrip())
    lines.append("└" + "─" * len(columns))
    return lines
