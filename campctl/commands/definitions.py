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
        "--format", help="text (path:line:col: message), json, or github (workflow "
        "annotations). Default: text, or json with -o json.")] = None,
) -> None:
    from campctl.definitions import load_paths

    app = app_context(ctx)
    chosen = fmt or (Format.json if app.json else Format.text)
    known = _known_specs(app)
    result = load_paths(paths, known)
    issues = result.issues
    files_with_errors = len({i.file for i in issues})
    out = sys.stdout
    if chosen is Format.json:
        print_json({"valid": not issues, "errors": [
            {"file": i.file, "line": i.line, "col": i.col, "message": i.message} for i in issues]})
    elif chosen is Format.github:
        for i in issues:
            out.write(f"::error file={_gh_prop(i.file)},line={i.line},col={i.col}::"
                      f"{_gh_data(i.message)}\n")
    else:
        for i in issues:
            out.write(f"{i}\n")
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
