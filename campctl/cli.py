"""The root command: global options, clock/environment/terminal resolution, one error handler."""

from __future__ import annotations

import functools
import getpass
import importlib
import math
import os
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer._click import exceptions as click  # typer >= 0.26 vendors click as typer._click
from typer.core import TyperGroup

from campctl.commands.common import AppContext
from campctl.commands.startup import LazyCommands, quicken
from campctl.commands.tick_output import error_line, exit_for
from campctl.errors import CampctlError, UsageProblem
from campctl.store.location import parse_state
from campctl.timeutil import shorten

if TYPE_CHECKING:
    from typer._click import Context as ClickContext
    from typer._click import HelpFormatter

# Options valid anywhere on the line; they are moved in front of the subcommand before parsing,
# so `campctl get plans -o json` and `campctl -o json get plans` mean the same.
GLOBAL_VALUE_OPTIONS = {"--state", "--now", "-o", "--output", "--as", "--override-access"}
GLOBAL_FLAGS = {"--debug"}
KIND_SLASH = re.compile(
    r"^(plan|campaign|scenario|segment|channel|frequencycap|run|instance|launch)s?/(.+)$",
    re.IGNORECASE,
)

# Verb groups shared by several command modules: `campctl stop run 3`, `campctl stop plan x`.
VERB_GROUPS = {
    "get": "List objects of a kind, or show one: get plans, get runs --campaign NAME.",
    "describe": "Show one object in detail: describe plan NAME, describe run ID.",
    "delete": "Delete a definition (refused while it has an active run, instance or profile).",
    "history": "Show the versions and actions recorded for an object.",
    "submit": "Submit a draft campaign or plan for approval.",
    "approve": "Approve a campaign or plan pending approval.",
    "deny": "Deny a campaign or plan pending approval.",
    "revise": "Return a denied, stopped or approved (idle) campaign or plan to draft.",
    "start": "Launch a campaign, start a plan now, or launch a scenario manually.",
    "stop": "Stop a campaign, plan, run, plan instance or scenario launch.",
    "pause": "Hold delivery of a run or plan instance.",
    "resume": "Release delivery of a paused run or plan instance.",
    "restart": "Restart a failed or stopped run as a new run.",
    "skip": "Mark a failed or stopped run as skipped.",
    "retry": "Send again to the contacts whose messages failed in a run.",
    "activate": "Activate a scenario.",
    "deactivate": "Deactivate a scenario.",
    "clear": "Remove all profiles of a scenario.",
    "remove-profile": "Remove one contact's profile from a scenario.",
    "clone": "Copy a scenario under a new name.",
    "preview": "Show the next occurrences of a schedule, local and UTC.",
    "stats": "Statistics of a scenario.",
    "profiles": "List the profiles of a scenario.",
}

# The sections of `campctl --help`, in order; commands list in the order given here. A command
# missing from every section is shown under "Other commands" (tests/test_help.py refuses that).
HELP_PANELS: dict[str, tuple[str, ...]] = {
    "Setup": ("init", "demo", "config", "users", "backup", "state"),
    "Definitions": ("validate", "apply", "get", "describe", "history", "preview", "submit",
                    "approve", "deny", "revise", "delete", "schema", "segment", "export"),
    "Run control": ("start", "stop", "pause", "resume", "restart", "skip", "retry", "tick",
                    "daemon", "simulate", "status", "doctor", "log", "worklist", "assign",
                    "notifications"),
    "Delivery": ("contacts", "events", "channel", "outbox", "failures", "why"),
    "Scenarios": ("activate", "deactivate", "profiles", "stats", "remove-profile", "clear",
                  "clone"),
}
OTHER_PANEL = "Other commands"


class PanelGroup(TyperGroup):
    """The root group: lists its commands in the sections of HELP_PANELS."""

    def format_commands(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        visible = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                visible[name] = command
        if not visible:
            return
        panels = {title: [n for n in names if n in visible] for title, names in HELP_PANELS.items()}
        placed = {n for names in panels.values() for n in names}
        panels[OTHER_PANEL] = [n for n in visible if n not in placed]
        width = max(len(name) for name in visible)
        limit = formatter.width - 6 - width
        for title, names in panels.items():
            if names:
                with formatter.section(title):
                    formatter.write_dl([(name.ljust(width), visible[name].get_short_help_str(limit))
                                        for name in names])


# Each module defines register(app, groups).
COMMAND_MODULES = [
    "campctl.commands.setup",
    "campctl.commands.state",
    "campctl.commands.definitions",
    "campctl.commands.objects",
    "campctl.commands.export",
    "campctl.commands.workflow",
    "campctl.commands.contacts",
    "campctl.commands.delivery",
    "campctl.commands.failures",
    "campctl.commands.runs",
    "campctl.commands.engine",
    "campctl.commands.plans",
    "campctl.commands.scenarios",
    "campctl.commands.users",
    "campctl.commands.doctor",
    "campctl.commands.why",
    "campctl.commands.simulate",
]

# Every top-level command, in the order the full app lists them, with the modules (of
# COMMAND_MODULES) that register something under it: a command line imports and builds only
# those. tests/test_startup.py checks this table against what the modules register.
COMMAND_SOURCES: dict[str, tuple[str, ...]] = {
    "init": ("setup",),
    "backup": ("setup",),
    "validate": ("definitions",),
    "schema": ("definitions",),
    "apply": ("objects",),
    "export": ("export",),
    "notifications": ("runs",),
    "tick": ("engine",),
    "daemon": ("engine",),
    "status": ("engine",),
    "log": ("engine",),
    "demo": ("engine",),
    "worklist": ("users",),
    "doctor": ("doctor",),
    "why": ("why",),
    "simulate": ("simulate",),
    "config": ("setup",),
    "state": ("state",),
    "contacts": ("contacts",),
    "segment": ("contacts",),
    "outbox": ("delivery",),
    "channel": ("delivery",),
    "failures": ("failures",),
    "events": ("engine",),
    "users": ("users",),
    "assign": ("users",),
    "get": ("objects", "runs", "plans", "scenarios", "users"),
    "describe": ("objects", "runs", "plans", "users"),
    "delete": ("objects",),
    "history": ("objects", "plans", "users"),
    "submit": ("workflow",),
    "approve": ("workflow",),
    "deny": ("workflow",),
    "revise": ("workflow",),
    "start": ("workflow", "plans", "scenarios"),
    "stop": ("workflow", "runs", "plans", "scenarios"),
    "pause": ("runs", "plans"),
    "resume": ("runs", "plans"),
    "restart": ("runs",),
    "skip": ("runs",),
    "retry": ("runs",),
    "activate": ("workflow",),
    "deactivate": ("workflow",),
    "clear": ("scenarios",),
    "remove-profile": ("scenarios",),
    "clone": ("scenarios",),
    "preview": ("engine",),
    "stats": ("scenarios",),
    "profiles": ("scenarios",),
}


def _root_typer() -> typer.Typer:
    app = typer.Typer(
        name="campctl",
        cls=PanelGroup,
        help="Run marketing campaigns, multi-stage plans and customer journeys from YAML "
        "definitions and one SQLite state file.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root_options)
    return app


def build_app(only: str | None = None) -> typer.Typer:
    """The root Typer with every command; with `only`, with that top-level command alone (and
    only the modules that register under it imported)."""
    app = _root_typer()
    groups = {
        name: typer.Typer(help=text, no_args_is_help=True, rich_markup_mode=None)
        for name, text in VERB_GROUPS.items()
    }
    wanted = None if only is None else COMMAND_SOURCES[only]
    for module_name in COMMAND_MODULES:
        if wanted is None or module_name.rsplit(".", 1)[1] in wanted:
            module = importlib.import_module(module_name)
            module.register(app, groups)
    for name, group in groups.items():
        if group.registered_commands or group.registered_groups:
            app.add_typer(group, name=name)
    if only is not None:
        app.registered_commands = [c for c in app.registered_commands if c.name == only]
        app.registered_groups = [g for g in app.registered_groups if g.name == only]
    return app


def _build_command(name: str) -> Any:
    """The click command of one top-level command (with its subcommands), ready to run."""
    command = typer.main.get_command(build_app(only=name)).commands[name]  # type: ignore[attr-defined]
    _bound_numbers(command)
    quicken(command)
    return command


@functools.lru_cache(maxsize=1)
def _command():
    """The root click command, built once per process (in-process callers such as the test
    suite run many command lines). Its subcommands are built when first looked up: a command
    line builds one, `--help` and completion build them all."""
    command = typer.main.get_command(_root_typer())
    command.commands = LazyCommands(tuple(COMMAND_SOURCES), _build_command)  # type: ignore[attr-defined]
    _bound_numbers(command, subcommands=False)
    quicken(command, subcommands=False)
    return command


INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1  # SQLite's INTEGER


def _bounded(value: object) -> object:
    """Numbers a query or a clock can hold: integers within 64 bits, finite floats."""
    if isinstance(value, list | tuple):
        for item in value:
            _bounded(item)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise click.BadParameter(f"{shorten(str(value))} is out of range (at most {INT_MAX})")
    elif isinstance(value, float) and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def _bound_numbers(command: Any, *, subcommands: bool = True) -> None:
    """Check every option and argument of every command with `_bounded` after it is parsed
    (a huge id or --limit is a usage error, exit 2, not an OverflowError in a query)."""
    for param in command.params:
        declared = param.callback

        def check(ctx: Any, param: Any, value: Any, declared: Any = declared) -> Any:
            _bounded(value)
            return declared(ctx, param, value) if declared is not None else value

        param.callback = check
    if subcommands:
        for sub in getattr(command, "commands", {}).values():
            _bound_numbers(sub)


def _print_version(value: bool) -> None:
    if value:
        import campctl

        sys.stdout.write(f"campctl {campctl.__version__}\n")
        raise typer.Exit(0)


def root_options(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option("--state", help="State file, or a postgresql://USER@HOST:PORT/DB URL "
                     "[env CAMPCTL_STATE; default ./campctl.db]."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Current time, ISO 8601 with offset or Z [env CAMPCTL_NOW]."),
    ] = None,
    output: Annotated[
        str, typer.Option("-o", "--output", help="Output format: table or json; yaml for "
                          "definitions ('get KIND [NAME] -o yaml').")
    ] = "table",
    actor: Annotated[
        str | None, typer.Option("--as", help="Who acts, for the history [env CAMPCTL_USER].")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks [env CAMPCTL_DEBUG=1].")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, expose_value=False, callback=_print_version,
                     help="Show the installed version and exit."),
    ] = False,
    override_access: Annotated[
        str | None, typer.Option(
            "--override-access", metavar="WHY",
            help="Act on an object whose access_groups do not name you; the reason is "
            "recorded in its history.")
    ] = None,
) -> None:
    environ = dict(os.environ)
    if output not in ("table", "json", "yaml") or (
            output == "yaml" and ctx.invoked_subcommand not in (None, "get")):
        raise click.BadParameter("use table or json (or yaml with 'get KIND [NAME]')",
                                 param_hint="'-o/--output'")
    # An explicit --now is checked here, whether or not the command reads the clock: a
    # mistyped or empty value must never fall back to the system clock unnoticed.
    now_text = now if now is not None else environ.get("CAMPCTL_NOW") or None
    if now_text is not None:
        _check_now(now_text)
    ctx.obj = AppContext(
        state=parse_state(state or environ.get("CAMPCTL_STATE") or "campctl.db"),
        now_text=now_text,
        output=output,
        actor=actor or environ.get("CAMPCTL_USER") or _login_name(),
        debug=debug or environ.get("CAMPCTL_DEBUG") == "1",
        busy_timeout_ms=_busy_timeout(environ),
        environ=environ,
        command=ctx.invoked_subcommand,
        override_access=override_access,
    )
    ctx.call_on_close(ctx.obj.close)


def _check_now(text: str) -> None:
    from campctl.timeutil import parse_instant

    if not text.strip():
        raise UsageProblem("--now/CAMPCTL_NOW is empty: give an ISO 8601 timestamp with Z or "
                           "an offset, e.g. 2027-03-01T09:00Z")
    try:
        parse_instant(text)
    except ValueError as exc:
        raise UsageProblem(f"--now/CAMPCTL_NOW: {exc}") from exc


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _busy_timeout(environ: dict[str, str]) -> int:
    try:
        return max(0, int(environ.get("CAMPCTL_BUSY_TIMEOUT", "5000")))
    except ValueError:
        return 5000


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options to the front and split an object address `KIND/NAME` into two words.

    Only the word right after a verb (`describe run/3`, `stop plan/x`) is an object address: a
    file path (`validate plans/a.yaml`) or a `--note` text is never rewritten.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_VALUE_OPTIONS:
            if "=" in arg:
                front.append(arg)
            else:
                front.extend(argv[i : i + 2])
                i += 1
        elif arg in GLOBAL_FLAGS:
            front.append(arg)
        elif (len(rest) == 1 and rest[0] in VERB_GROUPS
              and (match := KIND_SLASH.match(arg)) is not None):
            rest.extend([match.group(1).lower(), match.group(2)])
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _debug_wanted(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("CAMPCTL_DEBUG") == "1"


def run(argv: list[str] | None = None) -> int:
    """Parse and run one command line; returns the exit code. Never lets a traceback out
    unless --debug."""
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        command = _command()
        result = command.main(args=args, prog_name="campctl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except CampctlError as exc:
        return exit_for(exc, debug=_debug_wanted(args))
    except click.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.format_message() + "\n") if exc.format_message() else None
        return 2
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error(exc.format_message() + hint)
        return 2
    except click.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        _error("aborted")
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:
        return exit_for(exc, debug=_debug_wanted(args))


def _error(message: str) -> None:
    sys.stderr.write(error_line(message))
    sys.stderr.flush()
