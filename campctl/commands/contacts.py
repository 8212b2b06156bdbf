"""Commands: contacts import|list|count|show|forget, segment count."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campctl.commands.common import app_context, emit, emit_object, notice
from campctl.errors import NotFound, UsageProblem

GroupOption = Annotated[
    list[str] | None,
    typer.Option("--group", "-g", help="Only contacts in this group (repeat: in any of them)."),
]
SegmentOption = Annotated[
    str | None, typer.Option("--segment", "-s", help="Only contacts matching this segment.")
]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    contacts = typer.Typer(
        help="The people campaigns are sent to: import, list, count, show, forget.",
        no_args_is_help=True, rich_markup_mode=None,
    )
    contacts.command("import", help="Upsert contacts by id from a CSV (with a header) or "
                     "JSON Lines file; rejected rows are listed, valid rows still import.")(
        import_
    )
    contacts.command("list", help="List contacts (import order), optionally by group or segment.")(
        list_
    )
    contacts.command("count", help="Count contacts, optionally by group or segment.")(count)
    contacts.command("show", help="Show one contact by its id.")(show)
    contacts.command("forget", help="Erase one person's data (email, phone, attributes, groups, "
                     "opt-outs, events; message contents); counts stay consistent.")(forget)
    app.add_typer(contacts, name="contacts")
    segment = typer.Typer(help="Segments: dynamic audiences (defined in YAML, kind Segment).",
                          no_args_is_help=True, rich_markup_mode=None)
    segment.command("count", help="Print the number of contacts a segment matches now.")(
        segment_count
    )
    app.add_typer(segment, name="segment")


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .csv, .jsonl or .ndjson file.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="csv or jsonl (default: from the file extension)."),
    ] = None,
) -> None:
    from campctl.engine.audience import detect_format, import_contacts

    app = app_context(ctx)
    detect_format(file, fmt)  # usage errors before the state file is touched
    if not file.is_file():
        raise UsageProblem(f"no such file: {file}")
    db = app.db(create=True)
    err = app.err()
    if err.is_terminal:  # a terminal, or forced (TTY_COMPATIBLE=1 or FORCE_COLOR, as for rich)
        with _import_bar(err) as bar:
            task = bar.add_task("import", total=file.stat().st_size, rows=0)
            report = import_contacts(
                db, file, now=app.now, fmt=fmt,
                progress=lambda done: bar.update(task, completed=done),
                rows_done=lambda rows: bar.update(task, rows=rows))
    else:
        report = import_contacts(db, file, now=app.now, fmt=fmt)
    if app.json:
        emit_object(app, report.as_json())
        return
    for error in report.errors:
        notice(app, f"{file}:{error['line']}: rejected: {error['reason']}")
    if report.errors_omitted:
        notice(app, f"... and {report.errors_omitted} more rejected rows")
    notice(app, f"{report.inserted} inserted, {report.updated} updated, "
                f"{report.rejected} rejected")


def _import_bar(console):
    """The bar follows the bytes read (so it fills and has an ETA); the text counts rows."""
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class RowsColumn(ProgressColumn):
        def render(self, task) -> Text:
            rows = task.fields.get("rows", 0)
            elapsed = task.elapsed or 0.0
            rate = f"{rows / elapsed:,.0f} rows/s" if rows and elapsed > 0 else "- rows/s"
            return Text(f"{rows:,} rows  {rate}")

    return Progress(TextColumn("importing"), BarColumn(), RowsColumn(), TimeRemainingColumn(),
                    console=console, transient=True)


def _filter(app, db, group, segment):
    from campctl.store.segments import contact_filter

    return contact_filter(db, now=app.now, groups=group or (), segment=segment)


def list_(
    ctx: typer.Context,
    group: GroupOption = None,
    segment: SegmentOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="At most N contacts (0: no limit).")
    ] = 100,
) -> None:
    from campctl.store.contacts import count_contacts, list_contacts

    app = app_context(ctx)
    db = app.db()
    where, params = _filter(app, db, group, segment)
    found = list_contacts(db, where=where, params=params, limit=limit or None)
    if limit and len(found) == limit:
        total = count_contacts(db, where=where, params=params)
        if total > limit:
            notice(app, f"showing {limit} of {total} contacts; use --limit N (0: all)")
    emit(
        app,
        found,
        [("id", "ID"), ("email", "EMAIL"), ("phone", "PHONE"),
         ("groups", "GROUPS", lambda v, r: ", ".join(v) or "-"),
         ("opt_out", "OPT-OUT", lambda v, r: ", ".join(v) or "-"),
         ("attributes", "ATTRIBUTES", _attrs_cell)],
        empty="no contacts",
    )


def _attrs_cell(value, row) -> str:
    import json

    return " ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
        for k, v in value.items()
    ) or "-"


def count(ctx: typer.Context, group: GroupOption = None, segment: SegmentOption = None) -> None:
    from campctl.store.contacts import count_contacts

    app = app_context(ctx)
    db = app.db()
    where, params = _filter(app, db, group, segment)
    total = count_contacts(db, where=where, params=params)
    if app.json:
        emit_object(app, {"count": total})
    else:
        app.out().print(str(total))


# How many recent messages and runs `contacts show` lists.
SHOW_RECENT = 10


def show(ctx: typer.Context, contact: Annotated[str, typer.Argument(help="The contact's id.")]):
    from campctl.engine.scenarios import contact_journeys
    from campctl.store.contacts import contact_pk, contact_runs, get_contact, recent_messages

    app = app_context(ctx)
    db = app.db()
    found = get_contact(db, contact)
    pk = contact_pk(db, contact)
    if found is None or pk is None:
        raise NotFound(f"no contact with id {contact!r}")
    journeys = contact_journeys(db, pk)
    messages = recent_messages(db, pk, limit=SHOW_RECENT)
    runs = contact_runs(db, pk, limit=SHOW_RECENT)
    if app.json:
        emit_object(app, {**found, "journeys": journeys, "recent_messages": messages,
                          "runs": runs})
        return
    from campctl.commands.common import local_cell
    from campctl.commands.scenarios import data_cell

    when = local_cell(None)
    emit_object(app, found, title=f"contact {contact}")
    emit(app, journeys, [("scenario", "SCENARIO"), ("step", "STEP"), ("status", "STATUS"),
                         ("wake_at", "WAKES", when), ("entered_at", "ENTERED", when),
                         ("exited_at", "EXITED", when), ("data", "DATA", data_cell)],
         title="scenario journeys", empty="no scenario journeys")
    emit(app, messages, [("created_at", "CREATED", when), ("campaign", "CAMPAIGN"),
                         ("run_id", "RUN"), ("scenario", "SCENARIO"), ("step", "STEP"),
                         ("channel", "CHANNEL"), ("status", "STATUS"),
                         ("sent_at", "SENT", when)],
         title=f"recent messages (latest {SHOW_RECENT})", empty="no messages")
    emit(app, runs, [("id", "RUN"), ("campaign", "CAMPAIGN"), ("stage", "STAGE"),
                     ("status", "STATUS"), ("message_status", "MESSAGE")],
         title=f"runs (latest {SHOW_RECENT})", empty="no runs")


def forget(
    ctx: typer.Context,
    contact: Annotated[str, typer.Argument(help="The contact's id.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (e.g. the request's reference), "
                                             "for the history.")] = None,
) -> None:
    from campctl.store import contacts as store
    from campctl.store import history

    app = app_context(ctx)
    db = app.db(writes=True)
    with db.atomic():
        pk = store.contact_pk(db, contact)
        if pk is None:
            raise NotFound(f"no contact with id {contact!r}")
        result = store.forget(db, pk, now=app.now)
        # The history names the internal number only: the external id may itself be personal.
        history.record(db, history.HistoryEntry(
            kind="contact", name=f"#{pk}", action="forget", actor=app.actor,
            note=note), now=app.now)
    if app.json:
        emit_object(app, {"forgotten": contact, **result})
    else:
        notice(app, f"contact {contact} forgotten: {result['events_deleted']} events deleted, "
                    f"{result['queue_items_cancelled']} queued messages cancelled, "
                    f"{result['outbox_redacted']} outbox messages redacted, "
                    f"{result['profiles_exited']} scenario profiles exited")


def segment_count(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The segment's name.")],
    message_type: Annotated[
        str | None,
        typer.Option("--message-type", help="Leave out contacts opted out of this message type."),
    ] = None,
) -> None:
    from campctl.engine.audience import count_audience
    from campctl.store.segments import segment_spec

    app = app_context(ctx)
    db = app.db()
    spec = segment_spec(db, name)
    total = count_audience(db, {"segment": name}, now=app.now, message_type=message_type)
    if app.json:
        emit_object(app, {"segment": name, "count": total,
                          "limit_percent": spec.get("limit_percent")})
    else:
        app.out().print(str(total))
