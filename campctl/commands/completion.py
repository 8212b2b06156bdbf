"""Shell completion of object names (`campctl describe plan <TAB>`), read from the state file."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from campctl.models import Kind


def complete_object_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Names of the kind named by the command (`plan`, `plans`, `scenario`, ...) that start
    with what was typed; nothing when the command names no kind or the state file is absent."""
    try:
        kind = Kind.from_cli(ctx.info_name or "")
    except ValueError:
        return []
    from campctl.store.completion import object_names

    return object_names(_state_path(ctx), kind.value, incomplete)


def _state_path(ctx: typer.Context) -> Path:
    """The state file the command line would use: --state, CAMPCTL_STATE, ./campctl.db."""
    given = ctx.find_root().params.get("state")
    return Path(given or os.environ.get("CAMPCTL_STATE") or "campctl.db")
