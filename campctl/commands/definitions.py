"""Commands: validate (definition files, all errors at once) and schema (their JSON Schema)."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from campctl.commands.common import app_context, notice, print_json
from campctl.errors import ValidationFailed


class Format(StrEnum):
    text = "text"
    json = "json"
    github = "github"


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("validate", help="Check definition files (all errors of all files at once); "
                "exit 0 if valid, 1 if not. Needs no state file, but resolves references "
                "against it when it exists.")(validate)
    app.command("schema", help="Print the JSON Schema (draft 2020-12) of definition files, for "
                "editors and schema-validation tools.")(schema)


def validate(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Files or directories (searched recursively "
                                               "for *.yaml and *.yml).")],
    fmt: Annotated[Format | None, typer.Option(
        "--format", help="text (path:line:col: message [CODE]), json, or github (workflow "
        "annotations titled with the code). Default: text, or json with -o json.")] = None,
) -> None:
    from campctl.definitions import load_paths

    app = app_context(ctx)
    chosen = fmt or (Format.json if app.json else Format.text)
    known = _known_specs(app)
    result = load_paths(paths, known)
    issues = result.issues
    warnings = _warnings(result.definitions, now=app.now)
    files_with_errors = len({i.file for i in issues})
    out = sys.stdout
    if chosen is Format.json:
        data: dict = {"valid": not issues, "errors": [i.as_json() for i in issues]}
        if warnings:  # the key appears only when there is something to say
            data["warnings"] = [w.as_json() for w in warnings]
        print_json(data)
    elif chosen is Format.github:
        # The code is the annotation's title; file comes first, as workflow tools expect.
        for problem in [*issues, *warnings]:
            out.write(f"::{problem.level} file={_gh_prop(problem.file)},"
                      f"title={_gh_prop(problem.code)},line={problem.line},col={problem.col}::"
                      f"{_gh_data(problem.message)}\n")
    else:
        for problem in [*issues, *warnings]:
            out.write(f"{problem}\n")
    out.flush()
    if issues:
        noun = "error" if len(issues) == 1 else "errors"
        files = "file" if files_with_errors == 1 else "files"
        raise ValidationFailed(f"{len(issues)} {noun} in {files_with_errors} {files}; fix them "
                               "and run campctl validate again", issues)
    count = len(result.definitions)
    summary = (f"ok: {count} definition{'s' if count != 1 else ''} in {len(result.files)} "
               f"file{'s' if len(result.files) != 1 else ''}")
    if chosen is Format.text:
        out.write(summary + "\n")
    else:
        notice(app, summary)


def _warnings(definitions, *, now) -> list:
    """Valid definitions that may still surprise: several queue builds held for a later send
    schedule (each contact then gets one message per build)."""
    from campctl.definitions.models import Campaign
    from campctl.engine.held import held_builds
    from campctl.models import Issue, Kind

    found = []
    for d in definitions:
        if d.kind is not Kind.CAMPAIGN:
            continue
        held = held_builds(Campaign.from_spec(d.spec), launch=now)
        if held is not None:
            found.append(Issue(d.pos.file, d.pos.line, d.pos.col,
                               f"campaign {d.name}: if launched now, {held.text()}",
                               "CC901", "warning"))
    return found


def _known_specs(app) -> dict:
    """Objects of the state file, when there is one: references may point at them."""
    if not app.state_has_content:
        return {}
    from campctl.store.objects import known_specs

    return known_specs(app.db())


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def schema(ctx: typer.Context) -> None:
    from campctl.definitions import json_schema

    app_context(ctx)
    print_json(json_schema())
