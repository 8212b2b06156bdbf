"""Cheap start-up: a command line builds only the top-level command it invokes, without pydantic,
and what it builds is what the full app holds."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer._click import Context

from campctl import cli
from campctl.commands.startup import QuickCoercion

ROOT = Path(__file__).resolve().parent.parent


def _registered(app: typer.Typer) -> list[str]:
    return [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]


def test_command_sources_name_every_module_that_registers_under_a_command():
    app = typer.Typer()
    groups = {name: typer.Typer() for name in cli.VERB_GROUPS}
    sources: dict[str, list[str]] = {}
    for module_name in cli.COMMAND_MODULES:
        before = set(_registered(app))
        sizes = {name: len(_registered(group)) for name, group in groups.items()}
        importlib.import_module(module_name).register(app, groups)
        short = module_name.rsplit(".", 1)[1]
        for name in set(_registered(app)) - before:
            sources.setdefault(name, []).append(short)
        for name, group in groups.items():
            if len(_registered(group)) > sizes[name]:
                sources.setdefault(name, []).append(short)
    full = typer.main.get_command(cli.build_app())
    assert list(cli.COMMAND_SOURCES) == list(full.commands)  # type: ignore[attr-defined]
    assert {name: tuple(found) for name, found in sources.items()} == cli.COMMAND_SOURCES


def _info(command, name: str) -> dict:
    """What a command is to its user: its help screen, options and subcommands."""
    ctx = Context(command, info_name=name)
    return {
        "help": command.get_help(ctx),
        "hidden": command.hidden,
        "params": [(p.name, p.opts, p.secondary_opts, p.required, repr(p.default), p.multiple,
                    p.nargs, getattr(p, "hidden", False), repr(p.type_descriptor.annotation))
                   for p in command.get_params(ctx)],
        "commands": {n: _info(sub, n) for n, sub in getattr(command, "commands", {}).items()},
    }


@pytest.mark.parametrize("name", list(cli.COMMAND_SOURCES))
def test_a_command_built_alone_equals_the_one_in_the_full_app(name):
    full = typer.main.get_command(cli.build_app()).commands[name]  # type: ignore[attr-defined]
    alone = cli._build_command(name)
    assert _info(alone, name) == _info(full, name)


def test_the_root_lists_every_command_in_order():
    root = cli._command()
    assert list(root.commands) == list(cli.COMMAND_SOURCES)
    assert root.list_commands(Context(root)) == list(cli.COMMAND_SOURCES)
    assert "get" in root.commands and "nothing-like-it" not in root.commands
    assert root.get_command(Context(root), "nothing-like-it") is None


PROBE = """
import json, sys
from campctl import cli
code = cli.run(sys.argv[1:])
print(json.dumps({"code": code, "built": list(cli._command().commands.built),
                  "modules": sorted(m for m in sys.modules
                                    if m.startswith(("campctl.commands.", "pydantic", "jinja2")))}))
"""


def _probe(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_command_line_builds_only_its_command_and_imports_no_pydantic(tmp_path):
    state = tmp_path / "s.db"
    assert _probe("--state", str(state), "init")["code"] == 0
    seen = _probe("--state", str(state), "-o", "json", "get", "runs", "--status", "queued")
    assert seen["code"] == 0
    assert _probe("--state", str(state), "get", "runs", "--instance", "5")["code"] == 3  # none
    assert seen["built"] == ["get"]
    assert not [m for m in seen["modules"] if m.startswith(("pydantic", "jinja2"))]
    assert "campctl.commands.engine" not in seen["modules"]
    assert "campctl.commands.contacts" not in seen["modules"]
    help_seen = _probe("--help")
    assert help_seen["built"] == list(cli.COMMAND_SOURCES)


SAMPLES = [None, "", "abc", "5", "007", "-3", "0", "+5", " 5", "5.0", "1_000", "1" * 19,
           "9223372036854775807", "-", "a//b/", "é", 5, 0, -1, True, 2.5, (), ("a", "b"),
           ["x"], ("a", 1)]


def _leaves(command, path):
    for param in command.params:
        yield path, command, param
    for name, sub in getattr(command, "commands", {}).items():
        yield from _leaves(sub, [*path, name])


def _outcome(runtime, value, param, ctx):
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("value", type(result).__name__, result)


def test_quick_coercion_gives_what_typer_gives():
    from typer._coercion import build_runtime_param
    from typer._param_types import coerce_cli_path

    full = typer.main.get_command(cli.build_app())
    compared = 0
    for path, command, param in _leaves(full, []):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None:
            continue
        ctx = Context(command)
        quick = QuickCoercion(descriptor, build_runtime_param, coerce_cli_path)
        slow = build_runtime_param(descriptor)
        for value in SAMPLES:
            expected = _outcome(slow, value, param, ctx)
            assert _outcome(quick, value, param, ctx) == expected, (path, param.name, value)
            compared += 1
    assert compared > 5000
