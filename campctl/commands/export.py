"""Command: export (every definition of the state file as YAML files, one folder per kind)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from campctl.commands.common import app_context, notice, print_json
from campctl.errors import ActionRefused, UsageProblem


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("export", help="Write every definition of the state file as YAML, "
                "DIR/<kind plural>/<name>.yaml, for review, recovery or another state file "
                "('campctl apply DIR' reads it back).")(export)


def export(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(
        help="Where to write; created if missing, refused if not empty.", metavar="DIR")],
    force: Annotated[bool, typer.Option(
        "--force", help="Write into a non-empty DIR, replacing files of the same names.")
    ] = False,
) -> None:
    from campctl.commands.objects import KIND_HELP, definition_text
    from campctl.models import APPLY_ORDER
    from campctl.store.objects import list_records

    app = app_context(ctx)
    db = app.db()
    if directory.exists() and not directory.is_dir():
        raise UsageProblem(f"{directory} is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ActionRefused(f"{directory} is not empty; export into a new or empty directory, or "
                            "add --force to replace the files of the same names")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[dict] = []
    for kind in APPLY_ORDER:
        for obj in list_records(db, kind.value):
            folder = directory / KIND_HELP[kind]
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{obj.name}.yaml"
            _write(path, definition_text(app, kind, obj))
            written.append({"kind": kind.cli, "name": obj.name, "path": str(path)})
    if app.json:
        print_json(written)
    else:
        sys.stdout.writelines(f"{w['path']}\n" for w in written)
    notice(app, f"exported {len(written)} definition{'s' if len(written) != 1 else ''} "
           f"to {directory}" if written else "no definitions in the state file; nothing exported")


def _write(path: Path, text: str) -> None:
    """Whole file or nothing: a crash never leaves half a definition behind."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
