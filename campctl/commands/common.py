"""What every command shares: the resolved global options, the state file, and rendering."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import typer

from campctl.errors import UsageProblem
from campctl.store.location import SqlitePath, StateLocation
from campctl.timeutil import display, from_db, iso_z, parse_instant


@dataclass
class AppContext:
    """Global options after resolution (flags, then CAMPCTL_* environment, then defaults)."""

    state: StateLocation
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
    def state_path(self) -> Path:
        """The state file (an SQLite state; for PostgreSQL a name for messages only)."""
        if isinstance(self.state, SqlitePath):
            return self.state.path
        return Path(self.state.display())

    @property
    def state_has_content(self) -> bool:
        """A non-empty state file exists. An empty one (made by `touch`, or by another campctl
        process that is initialising it) is read as no objects, never opened read-only.
        A PostgreSQL state is opened: an empty schema reads as no objects, as a missing file."""
        if self.state.is_postgres:
            from campctl.errors import NoState

            try:
                self.db()
            except NoState:
                return False
            return True
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
            from campctl.store.db import open_state

            self._db = open_state(self.state, create=create, busy_timeout_ms=self.busy_timeout_ms)
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
# Which zone a row's times are shown in: a zone name for the whole screen, or one per row.
Zones = str | Callable[[dict], str | None] | None

_INSTANT = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def spec_timezone(spec: Any) -> str | None:
    """The zone an object's times are shown in (campaign, plan schedule or scenario launch)."""
    from campctl.timeutil import zone

    if not isinstance(spec, dict):
        return None
    blocks = [spec, spec.get("schedule"), spec.get("launch")]
    for block in blocks:
        candidate = block.get("timezone") if isinstance(block, dict) else None
        if isinstance(candidate, str):
            try:
                zone(candidate)
            except ValueError:
                continue
            return candidate
    return None


def object_zones(db: Any) -> Callable[[dict], str | None]:
    """A row's zone: its own `timezone`, else that of the campaign, plan or scenario it names,
    else None (shown as UTC, labelled)."""
    from campctl.store.objects import all_records

    known = {(obj.kind, obj.name): spec_timezone(obj.spec) for obj in all_records(db)}
    run_campaigns: dict[str, str | None] = {}

    def named(kind: str, name: Any) -> str | None:
        return known.get((kind, name)) if isinstance(name, str) else None

    def zone_of(row: dict) -> str | None:
        if isinstance(row.get("timezone"), str):
            return row["timezone"]
        for key, kind in (("campaign", "Campaign"), ("plan", "Plan"), ("scenario", "Scenario")):
            if tz := named(kind, row.get(key)):
                return tz
        # A notification names its object as KIND/NAME (a run: run/ID, in its campaign's zone).
        kind, _, name = str(row.get("object") or "").partition("/")
        if kind == "run" and name.isdigit():
            if name not in run_campaigns:
                from campctl.store.runs import get_run_record

                run = get_run_record(db, int(name))
                run_campaigns[name] = run.campaign if run else None
            return named("Campaign", run_campaigns[name])
        return named(kind.capitalize(), name) if kind else None

    return zone_of


def _zone_for(zones: Zones, row: dict) -> str | None:
    return zones(row) if callable(zones) else zones


def emit(
    app: AppContext,
    rows: Sequence[dict],
    columns: Iterable[Column],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
    zones: Zones = None,
) -> None:
    """One listing, as a rich table or (with -o json) an array of the row objects.

    Tables show every instant (a datetime, or UTC text as stored) in the row's zone with its
    abbreviation; JSON keeps the UTC text."""
    refuse_yaml(app)
    if app.json:
        print_json(list(rows))
        return
    cols = list(columns)
    if len(rows) > PLAIN_ABOVE:
        emit_plain(rows, cols, title=title, zones=zones)
        return
    from rich.table import Table

    console = app.out()
    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    table = Table(title=title, show_lines=False)
    for col in cols:
        table.add_column(col[1], overflow="fold")
    for row in rows:
        table.add_row(*_cells(row, cols, zones))
    console.print(table)


def _cells(row: dict, cols: list[Column], zones: Zones) -> list[str]:
    """A row's table cells: instants in the row's zone, a column's own renderer if it has one."""
    tz = _zone_for(zones, row)
    shown = row if tz is None or row.get("timezone") else {**row, "timezone": tz}
    cells = []
    for col in cols:
        value = row.get(col[0])
        if len(col) > 2:
            cells.append(col[2](value, shown))
        else:
            cells.append(cell(value, tz))
    return cells


# Above this many rows a listing is written as plain aligned text, not laid out as a rich
# table (a 10,000-row table takes seconds to lay out and fills no screen anyway).
PLAIN_ABOVE = 200


def emit_plain(rows: Sequence[dict], cols: list[Column], *, title: str | None = None,
               zones: Zones = None) -> None:
    """Rows as plain text: a header of the table's column names, then one line per row,
    columns aligned and separated by two spaces (cut, awk and grep work on it)."""
    write_plain([col[1] for col in cols], (_cells(row, cols, zones) for row in rows),
                title=title)


def write_plain(header: list[str], rows: Iterable[Sequence[str]], *,
                title: str | None = None) -> None:
    """Aligned plain-text rows under `header` (and `title`), written in chunks to stdout."""
    lines = [header] + [[_plain(text) for text in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = sys.stdout
    if title:
        out.write(title + "\n")
    for start in range(0, len(lines), 1000):
        out.write("\n".join("  ".join(text.ljust(width) for text, width in zip(
            line, widths, strict=True)).rstrip() for line in lines[start:start + 1000]) + "\n")


def _plain(text: str) -> str:
    """A cell without what a rich table would interpret (escaped brackets, line breaks)."""
    if "\\[" in text:
        text = text.replace("\\[", "[")
    if "\n" in text:
        text = " ".join(text.split("\n"))
    return text


def emit_object(app: AppContext, obj: dict, *, title: str | None = None,
                zone: str | None = None) -> None:
    """One object, as a two-column table (instants in `zone`) or a JSON object."""
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
        table.add_row(key, cell(value, zone))
    app.out().print(table)


def refuse_yaml(app: AppContext) -> None:
    """`-o yaml` prints definitions only; any other listing refuses it rather than guess."""
    if app.output == "yaml":
        raise UsageProblem("-o yaml prints definitions only: campctl get segments|channels|"
                           "campaigns|plans|scenarios [NAME] -o yaml (or campctl export DIR)")


def cell(value: Any, tz_name: str | None = None) -> str:
    """A table cell; an instant (datetime or stored UTC text) in `tz_name`, else UTC."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _display(value, tz_name)
    if isinstance(value, str) and _INSTANT.fullmatch(value):
        return _stored_instant(value, tz_name)
    return str(value)


@lru_cache(maxsize=4096)  # a long listing shows the same few instants in the same few zones
def _stored_instant(text: str, tz_name: str | None) -> str:
    return _display(from_db(text), tz_name)


def _display(moment: datetime | None, tz_name: str | None) -> str:
    """`timeutil.display`, in UTC when a stored zone name is unusable (a table never fails)."""
    try:
        return display(moment, tz_name)
    except ValueError:
        return display(moment)


def local_text(text: str | None, tz_name: str | None) -> str:
    """Free text (a log detail, a notification) with the UTC instants inside it shown local."""
    if text is None:
        return "-"
    return _INSTANT.sub(lambda m: _display(from_db(m.group(0)), tz_name), str(text))


def text_cell(value: Any, row: dict) -> str:
    """A column renderer for free text holding instants: in the row's zone."""
    return local_text(None if value is None else str(value), row.get("timezone"))


def local_cell(tz_name: str | None) -> Callable[[Any, dict], str]:
    """A column renderer for UTC instant strings/datetimes shown in an object's timezone."""

    def render(value: Any, row: dict) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            return _display(value, row.get("timezone") or tz_name)
        return _stored_instant(str(value), row.get("timezone") or tz_name)

    return render


_FILTER_KINDS = {"campaign": "Campaign", "plan": "Plan", "scenario": "Scenario",
                 "segment": "Segment", "channel": "Channel"}


def require_filters(db: Any, **names: Any) -> None:
    """Every listing filter that names something must name something known: a campaign, plan,
    scenario, segment or channel that exists or existed (deleted objects keep their rows), a run
    or instance id, a contact id, a user. NotFound (exit 3) otherwise, like `get KIND NAME`."""
    from campctl.errors import NotFound

    for key, value in names.items():
        if value is None:
            continue
        if key in _FILTER_KINDS:
            from campctl.channels import BUILTIN_OUTBOX
            from campctl.store.objects import name_known

            if key == "channel" and value == BUILTIN_OUTBOX:
                continue
            if not name_known(db, _FILTER_KINDS[key], str(value)):
                raise NotFound(f"no {key} named {value!r} (see 'campctl get {key}s')")
        elif key == "run":
            from campctl.store.runs import get_run_record

            if get_run_record(db, int(value)) is None:
                raise NotFound(f"no run {value} (see 'campctl get runs')")
        elif key == "instance":
            from campctl.store.plans import get_instance
            from campctl.store.runs import list_run_records

            if get_instance(db, int(value)) is None and not list_run_records(
                    db, instance_id=int(value), limit=1):
                raise NotFound(f"no plan instance {value} (see 'campctl get instances')")
        elif key == "contact":
            from campctl.store.contacts import contact_pk

            if contact_pk(db, str(value)) is None:
                raise NotFound(f"no contact {value!r} (see 'campctl contacts list')")
        elif key == "user":
            from campctl.store.history import actions
            from campctl.store.users import get_user

            if get_user(db, str(value)) is None and not actions(db, "user", str(value)):
                raise NotFound(f"no user named {value!r} (see 'campctl users list')")
        else:  # pragma: no cover - a programming error
            raise ValueError(f"unknown filter {key}")


def require_step(db: Any, scenario: str, step: str | None) -> None:
    """A --step filter must name a step of the scenario (NotFound, exit 3, listing its steps)."""
    from campctl.errors import NotFound
    from campctl.store.objects import get_record

    obj = get_record(db, "Scenario", scenario)
    if obj is None:
        raise NotFound(f"no scenario named {scenario!r} (see 'campctl get scenarios')")
    if step is None:
        return
    steps = [s.get("id") for s in obj.spec.get("steps") or [] if isinstance(s, dict)]
    if step not in steps:
        raise NotFound(f"scenario {scenario} has no step {step!r}; its steps: "
                       + (", ".join(str(s) for s in steps) or "none"))


def notice(app: AppContext, message: str) -> None:
    """A notice for the operator: stderr, never mixed with JSON on stdout."""
    sys.stderr.write(message.rstrip("\n") + "\n")


# `resume run` and `resume instance`: what to do with the messages missed while paused.
MissedOption = Annotated[
    str,
    typer.Option("--missed", help="Messages whose intended send time passed while paused: "
                 "send (default: release everything) or skip (cancel them, reason 'missed').",
                 metavar="send|skip"),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the counts of missed and released messages; "
                       "change nothing.")
]


def missed_policy(value: str) -> str:
    from campctl.engine.run_control import MISSED_POLICIES

    if value not in MISSED_POLICIES:
        raise UsageProblem(f"--missed must be one of {', '.join(MISSED_POLICIES)}, not {value!r}")
    return value
