"""Commands: tick, daemon, status, preview, log, events emit|import, demo."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from campctl.commands.common import (
    Column,
    app_context,
    emit,
    emit_object,
    local_cell,
    local_text,
    notice,
    object_zones,
    print_json,
    require_filters,
    text_cell,
    write_plain,
)
from campctl.commands.completion import complete_object_name
from campctl.commands.status_screen import (
    SCREEN_ROWS,
    PlainSection,
    status_parts,
    status_renderable,
)
from campctl.commands.tick_output import report_text, summary_line
from campctl.errors import UsageProblem, ValidationFailed

LOG_COLUMNS: list[Column] = [
    ("at", "AT"), ("event", "EVENT"), ("plan", "PLAN"), ("instance", "INSTANCE"),
    ("campaign", "CAMPAIGN"), ("stage", "STAGE"), ("run", "RUN"), ("launch", "LAUNCH"),
    ("details", "DETAILS", text_cell)]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("tick", help="One pass of the engine at the current time: fire due "
                "occurrences, build due queues, deliver due messages, finish what is done.")(tick)
    app.command("daemon", help="Tick in a loop every --interval; a live table on a terminal, "
                "one line per tick otherwise. SIGINT/SIGTERM finish the batch and exit 0.")(daemon)
    app.command("status", help="One screen: plans, campaigns, active runs and instances, "
                "scenarios, next occurrences.")(status)
    app.command("log", help="The execution log, oldest first (filters combine).")(log)
    app.command("demo", help="Run the example definitions on a sample audience across N "
                "simulated days (no network, a temporary state file unless --state).")(demo)
    for kind in ("campaign", "plan", "scenario"):
        groups["preview"].command(kind, help=f"The next occurrences of a {kind}'s schedule, "
                                  "local and UTC.")(_preview_for(kind))
    events = typer.Typer(help="Record contact events (they trigger event campaigns and "
                         "scenarios).", no_args_is_help=True, rich_markup_mode=None)
    events.command("emit", help="Record one event for a contact.")(events_emit)
    events.command("import", help="Record events from a JSON Lines file: {\"event\", "
                   "\"contact\", \"at\"?, \"data\"?} per line.")(events_import)
    events.command("list", help="The most recent events.")(events_list)
    app.add_typer(events, name="events")


# --- tick ---------------------------------------------------------------------------------------

def _summary_line(report) -> str:
    return summary_line(report.as_json())


def tick(
    ctx: typer.Context,
    max_messages: Annotated[int | None, typer.Option(
        "--max-messages", min=1, help="Deliver at most N messages in this tick.")] = None,
    max_seconds: Annotated[float | None, typer.Option(
        "--max-seconds", min=0.1, help="Stop delivering after S seconds.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Write nothing; print what this tick would do and why.")] = False,
) -> None:
    from campctl.engine.context import Budget
    from campctl.engine.tick import tick as run_tick

    app = app_context(ctx)
    db = app.db(create=True)
    budget = Budget.of(max_messages=max_messages, max_seconds=max_seconds)
    report = run_tick(db, now=app.now, environ=app.environ, budget=budget, dry_run=dry_run)
    _deliver_notifications(db, app)
    for problem in report.warnings:
        notice(app, f"warning: {problem}")
    notes = list(report.notes)
    if dry_run:
        from campctl.engine.held import held_notes

        notes += held_notes(db, now=app.now)
    data = report.as_json()
    if app.json and dry_run:
        data["dry_run"] = True
        data["notes"] = notes
    elif dry_run:
        out = app.out()
        out.print("dry run: nothing was written", markup=False)
        zone_of = object_zones(db)
        for line in notes:
            out.print(f"  {local_text(line, zone_of(_named_in(line)))}", markup=False)
    sys.stdout.write(report_text(data, app.output))


_NOTE_SUBJECT = re.compile(r"^(?:(campaign|plan|scenario) ([a-z0-9-]+)|run \d+ \(([a-z0-9-]+)/)")


def _named_in(line: str) -> dict:
    """The object a dry-run note is about ('campaign X: ...', 'run N (X/stage) ...')."""
    match = _NOTE_SUBJECT.match(line)
    if match is None:
        return {}
    if match.group(3):
        return {"campaign": match.group(3)}
    return {match.group(1): match.group(2)}


def _deliver_notifications(db, app) -> None:
    from campctl.engine.run_control import deliver_pending_notifications

    try:
        deliver_pending_notifications(db, now=app.now, environ=app.environ)
    except Exception as exc:  # a notification problem must never fail the tick
        notice(app, f"warning: notifications not delivered: {exc}")


# --- daemon -------------------------------------------------------------------------------------

def daemon(
    ctx: typer.Context,
    interval: Annotated[str, typer.Option("--interval", help="Time between ticks (30s, 1m).")]
    = "30s",
    max_messages: Annotated[int | None, typer.Option(
        "--max-messages", min=1, help="Deliver at most N messages per tick.")] = None,
    ticks: Annotated[int | None, typer.Option(
        "--ticks", min=1, help="Stop after N ticks (for rehearsals and tests); without a "
        "terminal, the screen is printed once at the end.")] = None,
) -> None:
    from campctl.commands.daemon_screen import DaemonScreen

    app = app_context(ctx)
    seconds = _interval_seconds(interval)
    db = app.db(create=True)
    stop = {"requested": False}

    def on_signal(signum, frame):  # finish the current batch, then leave the loop
        stop["requested"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    screen = DaemonScreen(app.state.display(), virtual=bool(app.now_text), interval=seconds)
    live = None
    try:
        if app.stdout_is_terminal and not app.json:
            from rich.live import Live

            live = Live(console=app.out(), refresh_per_second=2)
            live.start()
        count = 0
        next_at = time.monotonic()
        while not stop["requested"]:
            now = _daemon_clock(app, seconds * count)
            report = _daemon_tick(db, app, now, max_messages, lambda: stop["requested"])
            count += 1
            last = ticks is not None and count >= ticks
            if live is not None:
                live.update(screen.renderable(db, now=now, report=report))
            else:
                _daemon_line(app, report, screen=screen if ticks is not None else None,
                             db=db, now=now, last=last)
            if last or not _wait_for(next_at := next_at + seconds, stop):
                break
    finally:
        if live is not None:
            live.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if stop["requested"]:
        notice(app, "daemon: stopped by signal after finishing the current batch")


def _interval_seconds(interval: str) -> float:
    from campctl.timeutil import parse_duration

    try:
        seconds = parse_duration(interval).total_seconds()
    except ValueError as exc:
        raise UsageProblem(f"--interval: {exc}") from exc
    if seconds <= 0:
        raise UsageProblem("--interval must be positive")
    return seconds


def _daemon_clock(app, elapsed: float):
    """--now fixes the clock for a rehearsal (each tick advances it by the interval); else the
    system clock."""
    from datetime import UTC, datetime, timedelta

    if app.now_text:
        return app.now + timedelta(seconds=elapsed)
    return datetime.now(UTC).replace(microsecond=0)


def _daemon_tick(db, app, now, max_messages, stop_requested):
    from campctl.engine.context import Budget
    from campctl.engine.tick import tick as run_tick

    budget = Budget(max_messages=max_messages, stop_requested=stop_requested)
    report = run_tick(db, now=now, environ=app.environ, budget=budget)
    _deliver_notifications(db, app)
    for problem in report.warnings:
        notice(app, f"warning: {problem}")
    return report


def _daemon_line(app, report, *, screen, db, now, last: bool) -> None:
    """Without a terminal: one line per tick (JSON with -o json); with --ticks, the screen once
    at the end (it is built at every tick to measure the sending speed)."""
    if app.json:
        sys.stdout.write(json.dumps(report.as_json()) + "\n")
    else:
        sys.stdout.write(_summary_line(report) + "\n")
        if screen is not None:
            shown = screen.renderable(db, now=now, report=report)
            if last:
                sys.stdout.flush()
                app.out().print(shown)
    sys.stdout.flush()


def _wait_for(next_at: float, stop: dict) -> bool:
    """Sleep until the monotonic instant `next_at`; False when a signal asked to stop."""
    while not stop["requested"]:
        left = next_at - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.2))
    return False


# --- status -------------------------------------------------------------------------------------

def status(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option(
        "--all", help=f"List every row of every section (a section of more than {SCREEN_ROWS} "
        "rows is otherwise summarised: counts per status and the rows needing attention).")]
    = False,
) -> None:
    from campctl.engine.status import collect

    app = app_context(ctx)
    data = collect(app.db(), now=app.now)
    if app.json:
        print_json(data)
        return
    out = app.out()
    for part in status_parts(app.db(), now=app.now, data=data, full=all_):
        if isinstance(part, PlainSection):
            write_plain(part.header, part.rows, title=part.title)
        else:
            out.print(part)


# --- preview ------------------------------------------------------------------------------------

def _preview_for(kind: str):
    def preview_cmd(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The object's name.",
                                            autocompletion=complete_object_name)],
        next_: Annotated[int, typer.Option("--next", min=1, max=1000,
                                           help="How many occurrences.")] = 5,
    ) -> None:
        from campctl.engine.status import preview as compute
        from campctl.timeutil import iso_z

        app = app_context(ctx)
        if kind != "campaign":
            moments, tz = compute(app.db(), kind, name, now=app.now, count=next_)
            rows = [{"local": m.astimezone(_zone(tz)).isoformat(), "utc": iso_z(m),
                     "dst": mark} for m, mark in moments]
            # The one screen with UTC beside local time, on purpose: local with its abbreviation.
            columns: list[Column] = [("local", f"LOCAL ({tz})", _local_iso_cell(tz)),
                                     ("utc", "UTC")]
        else:
            from campctl.engine.campaigns import QUEUE, QUEUE_AND_SEND
            from campctl.engine.status import preview_campaign, preview_held

            marks: dict = {}
            steps, tz = preview_campaign(app.db(), name, now=app.now, count=next_, marks=marks)
            # A DST change moves or doubles a build (the cron occurrence), not a send.
            rows = [{"phase": phase, "local": m.astimezone(_zone(tz)).isoformat(),
                     "utc": iso_z(m),
                     "dst": marks.get(m) if phase in (QUEUE, QUEUE_AND_SEND) else None}
                    for m, phase in steps]
            columns = [("phase", "PHASE"), ("local", f"LOCAL ({tz})", _local_iso_cell(tz)),
                       ("utc", "UTC")]
            held = preview_held(app.db(), name, now=app.now)
            if held is not None:
                # Each build says whether it waits for the send schedule.
                for row, (moment, phase) in zip(rows, steps, strict=True):
                    row["held_until"] = (iso_z(held.send_start)
                                         if phase == QUEUE and moment < held.send_start
                                         else None)
                columns.append(("held_until", "HELD UNTIL", local_cell(tz)))
                text = held.text() if app.json else local_text(held.text(), tz)
                notice(app, f"note: campaign {name}: {text}")
            window = _contact_window(app.db(), name)
            if window:
                notice(app, f"note: campaign {name}: its sending window {window} is read in each "
                            "contact's timezone: the send instants are when sending starts; "
                            "each message then waits for its own recipient's window")
        if any(row["dst"] for row in rows):  # the occurrences a DST change moved or doubled
            columns.append(("dst", "DST", lambda value, _row: _DST_MARKS.get(value, "")))
        emit(app, rows, columns, empty=f"{kind} {name} has no upcoming occurrences")

    preview_cmd.__name__ = f"preview_{kind}"
    return preview_cmd


def _contact_window(db, name: str) -> str | None:
    """The window of campaign `name` when it is read in each contact's zone (else None)."""
    from campctl.definitions.models import Campaign
    from campctl.store import objects as object_store

    obj = object_store.get_record(db, "Campaign", name)
    if obj is None:
        return None
    try:
        model = Campaign.from_spec(obj.spec)
    except (ValueError, TypeError):
        return None
    return model.window if model.window and model.window_timezone == "contact" else None


# How the preview table marks an occurrence a DST change moved (gap) or doubled (fold: twice).
_DST_MARKS = {"shifted": "shifted (gap)", "repeated": "repeated (fold)"}


def _local_iso_cell(tz: str):
    from datetime import datetime

    from campctl.timeutil import display

    return lambda value, _row: display(datetime.fromisoformat(value), tz)


def _zone(tz: str):
    from campctl.timeutil import zone

    return zone(tz)


# --- log ----------------------------------------------------------------------------------------

def log(
    ctx: typer.Context,
    plan: Annotated[str | None, typer.Option("--plan", help="Only this plan.")] = None,
    instance: Annotated[int | None, typer.Option("--instance", help="Only this instance.")]
    = None,
    run: Annotated[int | None, typer.Option("--run", help="Only this run.")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="Only this scenario.")]
    = None,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")]
    = None,
    launch: Annotated[int | None, typer.Option(
        "--launch", help="Only this scenario launch (get launches).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only the last DURATION (2h).")]
    = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new entries "
                                         "(Ctrl-C to stop).")] = False,
    limit: Annotated[int, typer.Option("--limit", min=0,
                                       help="The most recent N entries (0: all).")] = 1000,
) -> None:
    from campctl.store.log import LogQuery, Subject, read_log
    from campctl.timeutil import parse_duration, to_db

    app = app_context(ctx)
    db = app.db()
    after_at = None
    if since:
        try:
            after_at = to_db(app.now - parse_duration(since))
        except ValueError as exc:
            raise UsageProblem(f"--since: {exc}") from exc
    require_filters(db, plan=plan, instance=instance, run=run, scenario=scenario,
                    campaign=campaign)
    if launch is not None:
        from campctl.engine.scenarios import require_launch

        require_launch(db, launch)
    subject = Subject(plan=plan, instance_id=instance, run_id=run, scenario=scenario,
                      campaign=campaign, launch_id=launch)

    def read(after_id: int = 0) -> tuple[list[dict], int]:
        return read_log(db, LogQuery(subject, since=after_at, after_id=after_id,
                                     limit=limit or None))

    rows, last_id = read()
    if not follow:
        emit(app, rows, LOG_COLUMNS, empty="no log entries", zones=object_zones(db))
        return
    _print_log_lines(app, rows, object_zones(db))
    try:
        while True:
            time.sleep(1.0)
            rows, new_last = read(after_id=last_id)
            if rows:
                last_id = new_last
                _print_log_lines(app, rows, object_zones(db))
    except KeyboardInterrupt:
        return


def _print_log_lines(app, rows, zone_of) -> None:
    for row in rows:
        if app.json:
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            tz = zone_of(row)
            cells = [local_text(str(row[col[0]]), tz) if row.get(col[0]) is not None else "-"
                     for col in LOG_COLUMNS]
            sys.stdout.write("  ".join(cells) + "\n")
    sys.stdout.flush()


# --- events -------------------------------------------------------------------------------------

def events_emit(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Event name, e.g. form_submitted.")],
    contact: Annotated[str, typer.Option("--contact", help="The contact's id.")],
    data: Annotated[str | None, typer.Option("--data", help="JSON object with details.")] = None,
) -> None:
    from campctl.engine.campaigns import parse_event_data, record_event

    app = app_context(ctx)
    payload = None if data is None else parse_event_data(data)
    db = app.db(create=True)
    with db.atomic():
        event_id = record_event(db, name=name, contact=contact, at=app.now, data=payload,
                                now=app.now)
    if app.json:
        emit_object(app, {"id": event_id, "event": name, "contact": contact,
                          "at": app.now})
    else:
        notice(app, f"event {name} recorded for contact {contact} (id {event_id})")


def events_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="JSON Lines file.")],
) -> None:
    from campctl.engine.campaigns import import_events

    app = app_context(ctx)
    if not path.is_file():  # as `contacts import`: a missing input file is a usage error
        raise UsageProblem(f"no such file: {path}")
    db = app.db(create=True)
    # surrogateescape: an undecodable byte stays inside its line, so that line alone is refused.
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        result = import_events(db, handle, now=app.now)
    # As for `contacts import`: rejected lines are reported, the exit code stays 0.
    if app.json:
        print_json(result)
        return
    for err in result["errors"]:
        notice(app, f"{path}:{err['line']}: rejected: {err['reason']}")
    if result.get("errors_omitted"):
        notice(app, f"... and {result['errors_omitted']} more rejected lines")
    notice(app, f"imported {result['imported']}, rejected {result['rejected']}")


def events_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--event", help="Only this event name.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0,
                                       help="The most recent N events (0: all).")] = 50,
) -> None:
    from campctl.store.events import list_events

    app = app_context(ctx)
    rows = list_events(app.db(), name=name, limit=limit or None)
    # An event belongs to no object: its time is shown in UTC, labelled.
    emit(app, rows, [("id", "ID"), ("name", "EVENT"), ("contact", "CONTACT"), ("at", "AT"),
                     ("data", "DATA")], empty="no events")


# --- demo ---------------------------------------------------------------------------------------

def demo(
    ctx: typer.Context,
    days: Annotated[int, typer.Option("--days", min=1, max=60,
                                      help="Simulated days.")] = 7,
) -> None:
    import tempfile
    from datetime import timedelta

    from campctl.engine import demo as demo_engine
    from campctl.store.db import open_state
    from campctl.store.location import SqlitePath
    from campctl.timeutil import iso_z, parse_instant

    app = app_context(ctx)
    start = parse_instant(app.now_text) if app.now_text else demo_engine.DEFAULT_START
    keep = _state_given(ctx)
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="campctl-demo-")
    try:
        where = app.state if tmp is None else SqlitePath(Path(tmp.name) / "demo.db")
        db = open_state(where, create=True)
        try:
            notes = _demo_setup(db, start=start, actor="demo")
            for line in notes:
                notice(app, f"demo: {line}")
            from campctl.engine.campaigns import record_event

            progress = None if app.json else _demo_progress(app)
            operator = demo_engine.Operator(actor="demo")
            try:
                totals = demo_engine.drive(db, start=start, days=days, environ=app.environ,
                                           record_event=record_event, progress=progress,
                                           operator=operator)
            finally:
                getattr(progress, "close", lambda: None)()
            operations = demo_engine.operate(
                db, operator, at=start + timedelta(days=days) + demo_engine.STEP,
                environ=app.environ, location=where)
            summary = demo_engine.summary(db)
            zone_of = object_zones(db)
        finally:
            db.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    summary.update(days=days, start=iso_z(start), state=app.state.display() if keep else None,
                   totals=totals, **operations)
    summary["try_next"] = _demo_try_next(summary)
    if app.json:
        print_json(summary)
        return
    _print_demo_summary(app, summary, zone_of)


def _demo_setup(db, *, start, actor: str) -> list[str]:
    """Read the example definitions (as `apply` does) and let the engine set the demo up."""
    from campctl.definitions import load_paths
    from campctl.engine.demo import examples_dir, setup
    from campctl.store.objects import known_specs

    result = load_paths([str(examples_dir())], known=known_specs(db))
    if result.issues:
        raise ValidationFailed(f"the example definitions do not validate: {result.issues[0]}")
    return setup(db, result.definitions, start=start, actor=actor)


def _state_given(ctx) -> bool:
    root = ctx.find_root()
    return root.params.get("state") is not None or "CAMPCTL_STATE" in app_context(ctx).environ


def _demo_progress(app):
    if not app.stdout_is_terminal:
        def plain(db, now, report):
            if report.fired or report.built or report.sent:
                sys.stderr.write(_summary_line(report) + "\n")
        return plain
    from rich.live import Live

    holder = {}

    def live(db, now, report):
        if "live" not in holder:
            holder["live"] = Live(console=app.out(), refresh_per_second=8)
            holder["live"].start()
        holder["live"].update(status_renderable(db, now=now, footer=_summary_line(report)))

    def close():
        if "live" in holder:
            holder["live"].stop()

    live.close = close  # type: ignore[attr-defined]
    return live


def _print_demo_summary(app, summary, zone_of) -> None:
    out = app.out()
    where = summary["state"] or "a temporary state file (removed; use --state PATH to keep it)"
    start = local_text(summary["start"], None)
    out.print(f"demo: {summary['days']} simulated days from {start} on {where}",
              markup=False)
    emit(app, summary["runs"], [("id", "RUN"), ("campaign", "CAMPAIGN"), ("stage", "STAGE"),
                                ("status", "STATUS"), ("sent", "SENT"), ("failed", "FAILED")],
         title="Runs", empty="no runs")
    emit(app, summary["instances"], [("id", "ID"), ("name", "INSTANCE"), ("status", "STATUS")],
         title="Plan instances", empty="no plan instances")
    emit(app, summary["scenarios"], [("name", "SCENARIO"), ("profiles", "PROFILES")],
         title="Scenarios", empty="no scenarios")
    emit(app, summary["messages"], [("sent_at", "SENT"), ("contact", "TO"),
                                    ("campaign", "CAMPAIGN"), ("subject", "SUBJECT")],
         title="Sample of delivered messages", empty="no messages delivered", zones=zone_of)
    out.print(f"total messages delivered: {summary['delivered']}", markup=False)
    _print_demo_operations(app, summary, zone_of)


def _demo_try_next(summary: dict) -> list[str]:
    """The commands to explore what the demo did (on its state when kept)."""
    state = summary["state"]
    prefix = f"campctl --state {state}" if state else "campctl --state demo.db"
    lines = [] if state else ["campctl --state demo.db demo   (keep the demo's state)"]
    retry = summary["retry"]
    if retry["run"] is not None:
        lines.append(f"{prefix} describe run {retry['run']}   (its failures; retried as run "
                     f"{retry['new_run']})")
    lines.append(f"{prefix} get runs   (STALE, the cancelled and the retry runs)")
    at = summary["ended_at"]
    lines.append(f"{prefix} --now {at} why {summary['why']['contact']}   (every campaign, plan "
                 "and scenario)")
    lines.append(f"{prefix} --now {at} doctor")
    sim = summary["simulate"]
    lines.append(f"{prefix} --now {sim['from']} simulate --days {sim['simulated_days']}")
    return lines


def _print_demo_operations(app, summary, zone_of) -> None:
    """One compact section per item of issue 16 the demo exercised."""
    out = app.out()
    stale = summary["stale"]
    emit(app, stale["runs"], [("run", "RUN"), ("campaign", "CAMPAIGN"), ("stale", "STALE")],
         title=f"Stale (stale_after): {stale['total']} messages cancelled",
         empty="no message went stale")
    emit(app, summary["resume"], [("run", "RUN"), ("campaign", "CAMPAIGN"),
                                  ("policy", "--MISSED"), ("missed", "MISSED"),
                                  ("released", "RELEASED"), ("cancelled", "CANCELLED")],
         title="Resume of the runs the demo paused", empty="no run paused")
    retry = summary["retry"]
    if retry["run"] is None:
        out.print(f"Retry: no failed message in {retry['campaign']} yet", markup=False)
    else:
        out.print(f"Retry (--failed-only): run {retry['run']} of {retry['campaign']} had "
                  f"{retry['failed']} failures; run {retry['new_run']} queued {retry['queued']} "
                  f"and sent {retry['sent']}", markup=False)
    why = summary["why"]
    emit(app, why["objects"], [("name", "OBJECT"), ("stage", "STAGE"), ("verdict", "VERDICT"),
                               ("reason", "WHY")],
         title=f"Why, for contact {why['contact']} ({why['answers']} answers in all)",
         empty="no answer")
    doctor = summary["doctor"]
    state = "healthy" if doctor["healthy"] else f"{doctor['problems']} problems"
    out.print(f"Doctor: {state}, {doctor['warnings']} warnings, {doctor['checks']} checks",
              markup=False)
    for finding in doctor["findings"]:
        out.print(f"  {finding['severity']}: {finding['name']}: {finding['detail']}",
                  markup=False)
    sim = summary["simulate"]
    emit(app, sim["days"], [("day", "DAY"), ("fired", "FIRED"), ("built", "BUILT"),
                            ("sent", "SENT"), ("stale", "STALE")],
         title=f"Simulate --days {sim['simulated_days']} from {sim['from']} (on a copy: "
               "nothing written or sent)",
         empty="nothing would happen")
    out.print("try next:", markup=False)
    for line in summary["try_next"]:
        out.print(f"  {line}", markup=False)

