"""What every command shares: the resolved global options, the state file, and rendering."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from campctl.errors import UsageProblem
from campctl.timeutil import display, iso_z, parse_instant


@dataclass
class AppContext:
    """Global options after resolution (flags, then CAMPCTL_* environment, then defaults)."""

    state_path: Path
    now_text: str | None
    output: str
    actor: str
    debug: bool
    busy_timeout_ms: int
    environ: dict[str, str]
    command: str | None = None
    override_access: str | None = None  # the reason of a recorded access-groups bypass
    _db: Any = field(default=None, repr=False)
    _now: datetime | None = field(default=None, repr=False)
    _actor_checked: bool = field(default=False, repr=False)

    @property
    def now(self) -> datetime:
        if self._now is None:
            if self.now_text:
                try:
                    self._now = parse_instant(self.now_text)
                except ValueError as exc:
                    raise UsageProblem(f"--now/CAMPCTL_NOW: {exc}") from exc
            else:
                self._now = datetime.now(UTC).replace(microsecond=0)
        return self._now

    @property
    def state_has_content(self) -> bool:
        """A non-empty state file exists. An empty one (made by `touch`, or by another campctl
        process that is initialising it) is read as no objects, never opened read-only."""
        try:
            return self.state_path.is_file() and self.state_path.stat().st_size > 0
        except OSError:
            return False

    @property
    def json(self) -> bool:
        return self.output == "json"

    def db(self, *, create: bool = False, writes: bool | None = None):
        """The state file; `create=True` for commands that write (they create it if missing).
        `writes` (default: `create`) says the command changes state: the actor is checked."""
        if self._db is None:
            from campctl.store.db import open_db

            self._db = open_db(self.state_path, create=create, busy_timeout_ms=self.busy_timeout_ms)
        if (create if writes is None else writes) and not self._actor_checked:
            from campctl.engine.users import check_actor

            # strict_users: a command that writes refuses an actor who is not a user.
            check_actor(self._db, self.actor, command=self.command)
            self._actor_checked = True
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def stdout_is_terminal(self) -> bool:
        return sys.stdout.isatty()

    @property
    def stdin_is_terminal(self) -> bool:
        return sys.stdin.isatty()

    def out(self):
        from rich.console import Console

        # Piped output (scripts, grep, CI logs) gets a wide table instead of rich's 80 columns.
        width = None if sys.stdout.isatty() else _columns(self.environ.get("COLUMNS"))
        return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)

    def err(self):
        from rich.console import Console

        return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def _columns(text: str | None) -> int:
    """Table width for piped output: COLUMNS when it is a sane number, else 200."""
    value = (text or "").strip()
    if value.isascii() and value.isdigit() and len(value) <= 4:
        return min(max(int(value), 20), 1000)
    return 200


def app_context(ctx: typer.Context) -> AppContext:
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        raise RuntimeError("campctl context missing: run through campctl.__main__.main")
    return root.obj


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=_json_default, ensure_ascii=False) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


Column = tuple[str, str] | tuple[str, str, Callable[[Any, dict], str]]


def emit(
    app: AppContext,
    rows: Sequence[dict],
    columns: Iterable[Column],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """One listing, as a rich table or (with -o json) an array of the row objects."""
    refuse_yaml(app)
    if app.json:
        print_json(list(rows))
        return
    from rich.table import Table

    console = app.out()
    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    table = Table(title=title, show_lines=False)
    cols = list(columns)
    for col in cols:
        table.add_column(col[1], overflow="fold")
    for row in rows:
        cells = []
        for col in cols:
            value = row.get(col[0])
            cells.append(col[2](value, row) if len(col) > 2 else cell(value))  # type: ignore[misc]
        table.add_row(*cells)
    console.print(table)


def emit_object(app: AppContext, obj: dict, *, title: str | None = None) -> None:
    """One object, as a two-column table or a JSON object."""
    refuse_yaml(app)
    if app.json:
        print_json(obj)
        return
    from rich.table import Table

    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in obj.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, default=_json_default, ensure_ascii=False)
        table.add_row(key, cell(value))
    app.out().print(table)


def refuse_yaml(app: AppContext) -> None:
    """`-o yaml` prints definitions only; any other listing refuses it rather than guess."""
    if app.output == "yaml":
        raise UsageProblem("-o yaml prints definitions only: campctl get segments|channels|"
                           "campaigns|plans|scenarios [NAME] -o yaml (or campctl export DIR)")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return display(value)
    return str(value)


def local_cell(tz_name: str | None) -> Callable[[Any, dict], str]:
    """A column renderer for UTC instant strings/datetimes shown in an object's timezone."""

    def render(value: Any, row: dict) -> str:
        from campctl.timeutil import from_db

        if value is None:
            return "-"
        moment = value if isinstance(value, datetime) else from_db(str(value))
        return display(moment, row.get("timezone") or tz_name)

    return render


def notice(app: AppContext, message: str) -> None:
    """A notice for the operator: stderr, never mixed with JSON on stdout."""
    sys.stderr.write(message.rstrip("\n") + "\n")
