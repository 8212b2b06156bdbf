"""Commands: apply, and get / describe / delete / history for the six definition kinds."""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from campctl.commands.common import (
    Column,
    app_context,
    emit,
    emit_object,
    local_cell,
    local_text,
    notice,
    print_json,
    spec_timezone,
)
from campctl.commands.completion import complete_object_name
from campctl.errors import NotFound, UsageProblem, ValidationFailed
from campctl.models import Kind

if TYPE_CHECKING:
    from campctl.store.objects import ObjectRecord

KIND_HELP = {
    Kind.PLAN: "plans",
    Kind.CAMPAIGN: "campaigns",
    Kind.SCENARIO: "scenarios",
    Kind.SEGMENT: "segments",
    Kind.CHANNEL: "channels",
    Kind.FREQUENCY_CAP: "frequencycaps",
}

def _types_cell(value: list[str] | None, _row: dict) -> str:
    from rich.markup import escape

    return escape(", ".join(value)) if value else "(every type)"


# Table columns of `get KIND`; JSON carries every key of engine.catalog.summary.
COLUMNS: dict[Kind, list[Column]] = {
    Kind.PLAN: [("name", "NAME"), ("status", "STATUS"), ("schedule_type", "SCHEDULE"),
                ("transition", "TRANSITION"), ("stages", "STAGES"),
                ("next_occurrence", "NEXT", local_cell(None)), ("version", "VERSION")],
    Kind.CAMPAIGN: [("name", "NAME"), ("code", "CODE"), ("status", "STATUS"), ("type", "TYPE"),
                    ("closes_at", "CLOSES", local_cell(None)),
                    ("next_occurrence", "NEXT", local_cell(None)), ("version", "VERSION")],
    Kind.SCENARIO: [("name", "NAME"), ("active", "ACTIVE"), ("launch_type", "LAUNCH"),
                    ("reentry", "REENTRY"), ("profiles_active", "PROFILES"),
                    ("version", "VERSION")],
    Kind.SEGMENT: [("name", "NAME"), ("match", "MATCH"), ("rules", "RULES"),
                   ("limit_percent", "LIMIT %"), ("version", "VERSION")],
    Kind.CHANNEL: [("name", "NAME"), ("type", "TYPE"), ("rate", "RATE"), ("version", "VERSION")],
    Kind.FREQUENCY_CAP: [("name", "NAME"), ("max", "MAX"), ("per", "PER"),
                         ("message_types", "MESSAGE TYPES", _types_cell),
                         ("policy", "POLICY"), ("version", "VERSION")],
}

NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the history.")]

# `apply --dry-run --exit-code` when something would be created or updated: not an error, so
# no `error:` line; distinct from 1-4 so that CI can tell "changes pending" from a failure.
EXIT_CHANGES_PENDING = 10
DRY_RUN_MARK = "(dry run)"


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command(
        "apply",
        help="Validate definition files and create or update their objects in one transaction.",
    )(apply)
    for kind, plural in KIND_HELP.items():
        groups["get"].command(plural, help=f"List {plural}, or show one.")(_get_command(kind))
        groups["get"].command(kind.cli, hidden=True)(_get_command(kind))
        for verb, factory, text in (
            ("describe", _describe_command, f"Show one {kind.cli} in detail, with its spec."),
            ("delete", _delete_command,
             f"Delete a {kind.cli} (refused while in use); its history remains."),
            ("history", _history_command, f"Show the versions and actions of a {kind.cli}."),
        ):
            groups[verb].command(kind.cli, help=text)(factory(kind))
            groups[verb].command(plural, hidden=True)(factory(kind))


# --- apply -----------------------------------------------------------------------------------

def apply(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(
        help="Definition files or directories (recursively *.yaml, *.yml).", metavar="PATH...")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would change, with a diff of the changed fields; "
        "write nothing.")] = False,
    exit_code: Annotated[bool, typer.Option(
        "--exit-code", help=f"With --dry-run: exit {EXIT_CHANGES_PENDING} when something would "
        "be created or updated (0 when all is unchanged).")] = False,
    note: NoteOption = None,
) -> None:
    from campctl.definitions import load_paths
    from campctl.engine import catalog
    from campctl.store.objects import known_specs

    app = app_context(ctx)
    if exit_code and not dry_run:
        raise UsageProblem("--exit-code goes with --dry-run (a real apply exits 0 when it "
                           "applied)")
    db = app.db(create=False) if app.state_has_content else None
    result = load_paths(list(paths), known=known_specs(db) if db is not None else {})
    if result.issues:
        _fail(result.issues)
    if not result.definitions:
        notice(app, ("dry run: " if dry_run else "")
               + "no definitions found; nothing to apply")
        if app.json:
            print_json([])
        return
    try:
        changes = catalog.plan_apply(db, result.definitions)
    except ValidationFailed as exc:
        _fail(exc.issues)
    if dry_run:
        _dry_run(app, db, changes, exit_code=exit_code)
        return
    catalog.check_refusals(changes)
    if any(c.action != "unchanged" for c in changes):
        db = app.db(create=True)
        with db.atomic():
            # Decide again under the write lock: another apply may have landed meanwhile.
            changes = catalog.plan_apply(db, result.definitions)
            catalog.execute_apply(db, changes, actor=app.actor, now=app.now, note=note,
                                  override_access=app.override_access)
    _print_changes(app, changes, diffs=False)
    notice(app, _totals(changes))


def _dry_run(app, db, changes, *, exit_code: bool) -> None:
    """`apply --dry-run`: the changes with their diffs, the refusals and rights checks of a real
    apply, and (with --exit-code) exit EXIT_CHANGES_PENDING when something would change."""
    from campctl.engine import catalog

    _print_changes(app, changes, diffs=True, dry_run=True)
    notice(app, f"dry run: {_totals(changes)}; nothing was written")
    catalog.check_refusals(changes)
    if db is not None:
        _check_rights(app, db, changes)
    if exit_code and any(c.action != "unchanged" for c in changes):
        raise typer.Exit(EXIT_CHANGES_PENDING)


def _check_rights(app, db, changes) -> None:
    """The rights checks of a real apply (who may create, who may change), recording nothing."""
    from campctl.engine import access
    from campctl.engine.users import check_apply

    check_apply(db, actor=app.actor, created=[(c.kind.value, c.name, c.spec)
                                              for c in changes if c.action != "unchanged"])
    for c in changes:
        if c.action not in ("unchanged", "created"):
            access.check(db, access.AccessRequest(
                kind=c.kind.value, name=c.name, actor=app.actor, action="apply",
                override=app.override_access), now=app.now, record=False)


def _fail(issues) -> NoReturn:
    for issue in issues:
        sys.stderr.write(f"{issue}\n")
    files = len({i.file for i in issues})
    raise ValidationFailed(
        f"{len(issues)} problem(s) in {files} file(s); nothing was applied "
        "(fix them; 'campctl validate' shows the same list)",
        issues=issues,
    )


def _totals(changes) -> str:
    counts = {a: sum(1 for c in changes if c.action == a)
              for a in ("created", "updated", "unchanged")}
    return ", ".join(f"{n} {a}" for a, n in counts.items())


def _shown_change(change):
    """A change fit to print: a channel's URL credentials and literal passwords masked."""
    if change.kind is not Kind.CHANNEL or not change.diffs:
        return change
    import dataclasses

    from campctl.channels.redact import display_leaf

    return dataclasses.replace(change, diffs=[(p, display_leaf(p, o), display_leaf(p, n))
                                              for p, o, n in change.diffs])


def _print_changes(app, changes, *, diffs: bool, dry_run: bool = False) -> None:
    from campctl.engine.catalog import format_value

    changes = [_shown_change(c) for c in changes]
    if app.json:
        rows = []
        for c in changes:
            row = c.as_json()
            if not diffs:
                row.pop("changes")
            if dry_run:
                row["dry_run"] = True
            rows.append(row)
        print_json(rows)
        return
    lines = []
    for c in changes:
        lines.append(f"{c.label} {c.action}" + (f" (version {c.version})"
                                                  if c.action != "unchanged" else ""))
        if diffs:
            for path, old, new in c.diffs:
                lines.append(f"    {path}: {format_value(old)} → {format_value(new)}")
    if dry_run:  # a dry run's lines pasted into a ticket or a log must not read as done
        lines = [f"{DRY_RUN_MARK} {line}" for line in lines]
    sys.stdout.write("\n".join(lines) + "\n")


# --- get / describe / delete / history ---------------------------------------------------------

def _require(db, kind: Kind, name: str) -> ObjectRecord:
    from campctl.store.objects import get_record

    obj = get_record(db, kind.value, name)
    if obj is None:  # the words of engine.workflow.require_record
        raise NotFound(f"no {kind.cli} named {name!r} (see 'campctl get {kind.cli}s')")
    return obj


def _get_command(kind: Kind):
    def get(
        ctx: typer.Context,
        name: Annotated[str | None, typer.Argument(
            help="Show only this one.", metavar="NAME",
            autocompletion=complete_object_name)] = None,
        tag: Annotated[list[str] | None, typer.Option(
            "--tag", help="Only objects with this tag (repeatable: all of them); campaigns, "
            "plans and scenarios.")] = None,
    ) -> None:
        from campctl.engine import access
        from campctl.engine.catalog import summary
        from campctl.store.objects import list_records, profile_counts

        app = app_context(ctx)
        db = app.db()
        if app.output == "yaml":
            _print_yaml(app, kind, [_require(db, kind, name)] if name is not None
                        else list_records(db, kind.value))
            return
        profiles = profile_counts(db) if kind is Kind.SCENARIO else None
        tagged = kind.value in access.ACCESS_KINDS
        if tag and not tagged:
            raise UsageProblem(f"--tag: {KIND_HELP[kind]} have no tags (campaigns, plans and "
                               "scenarios do)")
        columns = [*COLUMNS[kind], ("tags", "TAGS", _tags_cell)] if tagged else COLUMNS[kind]

        def row_of(obj: ObjectRecord) -> dict:
            row = summary(kind, obj, now=app.now, profiles=profiles)
            if tagged:
                row["tags"] = access.tags(obj.spec)
                row["access_groups"] = access.access_groups(obj.spec)
            return row

        if name is not None:
            row = row_of(_require(db, kind, name))
            if app.json:
                print_json(row)
            else:
                emit(app, [row], columns)
            return
        wanted = set(tag or [])
        rows = [row_of(obj) for obj in list_records(db, kind.value)
                if not wanted or wanted <= set(access.tags(obj.spec))]
        empty = (f"no {KIND_HELP[kind]} tagged {', '.join(sorted(wanted))}" if wanted
                 else f"no {KIND_HELP[kind]} (apply some definitions)")
        emit(app, rows, columns, empty=empty)

    get.__doc__ = f"List {KIND_HELP[kind]}."
    return get


def _tags_cell(value: list[str] | None, _row: dict) -> str:
    from rich.markup import escape

    return escape(", ".join(value)) if value else "-"


def definition_text(app, kind: Kind, obj: ObjectRecord) -> str:
    """An object as the YAML document that applies it; a channel's literal credentials are
    masked (with a warning: that document no longer applies as it stands)."""
    from campctl.definitions.dump import definition_yaml

    spec = _shown_spec(kind, obj.spec)
    if spec != obj.spec:
        notice(app, f"warning: {kind.cli}/{obj.name}: literal credentials are masked as *** "
               "in this output; write them as ${VAR} in the definition so that it applies as "
               "exported")
    return definition_yaml(kind, obj.name, obj.description, spec)


def _print_yaml(app, kind: Kind, objects: list[ObjectRecord]) -> None:
    """`get KIND [NAME] -o yaml`: the definitions as applied, several as a multi-document
    stream."""
    if not objects:
        notice(app, f"no {KIND_HELP[kind]} (apply some definitions)")
        return
    sys.stdout.write("---\n".join(definition_text(app, kind, obj) for obj in objects))


def _describe_command(kind: Kind):
    def describe(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(
            help="The object's name.", metavar="NAME", autocompletion=complete_object_name)],
    ) -> None:
        from campctl.engine.catalog import referenced_by, summary
        from campctl.engine.workflow import delete_blockers
        from campctl.store.objects import history_with_versions, profile_counts
        from campctl.store.users import created_by

        app = app_context(ctx)
        db = app.db()
        obj = _require(db, kind, name)
        profiles = profile_counts(db) if kind is Kind.SCENARIO else None
        referenced = referenced_by(db, kind, name)
        detail = {
            "kind": kind.cli,
            "name": name,
            "description": obj.description,
            **summary(kind, obj, now=app.now, profiles=profiles),
            "status": obj.status,
            "created_at": obj.created_at,
            "created_by": created_by(db, kind.value, name),
            "updated_at": obj.updated_at,
            "source": obj.source,
            "referenced_by": referenced,
            "in_use": delete_blockers(db, kind, name, referenced=referenced),
            "history": [
                {k: v for k, v in row.items() if k != "id"}
                for row in history_with_versions(db, kind.value, name)[-10:]
            ],
            "spec": _shown_spec(kind, obj.spec),
        }
        if kind.value in ("Campaign", "Plan", "Scenario"):
            from campctl.engine import access

            detail["tags"] = access.tags(obj.spec)
            detail["access_groups"] = access.access_groups(obj.spec)
        if kind is Kind.PLAN:  # what submit, approve or start would refuse now, all of it
            from campctl.definitions.models import Plan
            from campctl.engine.workflow import plan_blockers

            detail["preconditions_unmet"] = plan_blockers(db, Plan.from_spec(obj.spec),
                                                          now=app.now)
        if kind is Kind.SCENARIO:  # the journey with profiles per step (scenarios area)
            from campctl.engine.scenarios import describe_extra, recent_profiles

            detail["steps"] = describe_extra(db, name, app.now)
            detail["recent_profiles"] = recent_profiles(db, name)
        if app.json:
            print_json(detail)
            return
        import yaml

        shown = {k: v for k, v in detail.items()
                 if k not in ("spec", "history", "steps", "recent_profiles")}
        shown["referenced_by"] = ", ".join(detail["referenced_by"]) or None
        shown["in_use"] = "; ".join(detail["in_use"]) or None
        if "preconditions_unmet" in detail:
            shown["preconditions_unmet"] = "; ".join(detail["preconditions_unmet"]) or "none"
        tz = spec_timezone(obj.spec)
        emit_object(app, shown, title=f"{kind.cli}/{name}", zone=tz)
        out = app.out()
        if detail.get("steps") is not None:
            from campctl.commands.scenarios import render_steps

            render_steps(app, detail["steps"], title="journey (profiles inside, per step)")
            if detail["recent_profiles"]:
                from campctl.commands.scenarios import data_text

                out.print("latest profiles (capture data):", markup=False)
                for row in detail["recent_profiles"]:
                    out.print(f"  {row['contact']} {row['status']} at {row['step'] or '-'} "
                              f"{data_text(row['data'])}", markup=False)
        out.print("spec:", markup=False)
        text = yaml.safe_dump(detail["spec"], sort_keys=False, allow_unicode=True).rstrip()
        out.print(textwrap.indent(text, "  "), markup=False)
        if detail["history"]:
            out.print("recent history:", markup=False)
            for row in detail["history"]:
                out.print("  " + _history_line(row, tz), markup=False)

    describe.__doc__ = f"Describe a {kind.cli}."
    return describe


def _shown_spec(kind: Kind, spec):
    """A spec fit to print: a channel's URL credentials and literal passwords masked."""
    if kind is not Kind.CHANNEL or not isinstance(spec, dict):
        return spec
    from campctl.channels.redact import display_spec

    return display_spec(spec)


def _history_line(row: dict, tz: str | None) -> str:
    moves = (f" {row['from_status'] or '-'} → {row['to_status'] or '-'}"
             if row["from_status"] != row["to_status"] else "")
    version = f" v{row['version']}" if row.get("version") else ""
    note = f" — {row['note']}" if row.get("note") else ""
    return f"{local_text(row['at'], tz)} {row['actor']} {row['action']}{version}{moves}{note}"


def _deleted_timezone(db, kind: Kind, name: str) -> str | None:
    """A deleted object's times stay in the zone of its last version."""
    from campctl.store.objects import versions

    found = versions(db, kind.value, name)
    return spec_timezone(found[-1]["spec"]) if found else None


def _delete_command(kind: Kind):
    def delete(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(
            help="The object's name.", metavar="NAME", autocompletion=complete_object_name)],
        note: NoteOption = None,
    ) -> None:
        from campctl.engine import access, workflow

        app = app_context(ctx)
        db = app.db(create=True)
        with db.atomic():
            access.check(db, access.AccessRequest(
                kind=kind.value, name=name, actor=app.actor, action="delete",
                override=app.override_access), now=app.now)
            workflow.delete(db, kind=kind, name=name, actor=app.actor, now=app.now, note=note)
        if app.json:
            print_json({"kind": kind.cli, "name": name, "action": "deleted"})
        else:
            sys.stdout.write(f"{kind.cli}/{name} deleted\n")

    delete.__doc__ = f"Delete a {kind.cli}."
    return delete


def _history_command(kind: Kind):
    def history(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(
            help="The object's name (deleted ones too).", metavar="NAME",
            autocompletion=complete_object_name)],
        version: Annotated[int | None, typer.Option(
            "--version", help="Show the spec of this version instead.")] = None,
    ) -> None:
        from campctl.store.objects import get_record, history_with_versions, versions

        app = app_context(ctx)
        db = app.db()
        if version is not None:
            found = [v for v in versions(db, kind.value, name) if v["version"] == version]
            if not found:
                raise NotFound(f"{kind.cli} {name} has no version {version} "
                               f"(see 'campctl history {kind.cli} {name}')")
            row = {k: v for k, v in found[0].items() if k != "history_id"}
            row["kind"] = kind.cli
            row["spec"] = _shown_spec(kind, row["spec"])
            if app.json:
                print_json(row)
            else:
                import yaml

                emit_object(app, {k: v for k, v in row.items() if k != "spec"},
                            zone=spec_timezone(row["spec"]))
                app.out().print(yaml.safe_dump(row["spec"], sort_keys=False,
                                               allow_unicode=True).rstrip(), markup=False)
            return
        rows = [{k: v for k, v in r.items() if k != "id"}
                for r in history_with_versions(db, kind.value, name)]
        if not rows:
            raise NotFound(f"no {kind.cli} named {name!r} has any history "
                           f"(see 'campctl get {KIND_HELP[kind]}')")
        obj = get_record(db, kind.value, name)
        tz = spec_timezone(obj.spec) if obj else _deleted_timezone(db, kind, name)
        emit(app, rows, [("at", "AT", local_cell(tz)), ("actor", "ACTOR"), ("action", "ACTION"),
                         ("from_status", "FROM"), ("to_status", "TO"), ("version", "VERSION"),
                         ("note", "NOTE")])

    history.__doc__ = f"History of a {kind.cli}."
    return history
