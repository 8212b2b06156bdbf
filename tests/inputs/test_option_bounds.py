"""Every numeric option and argument of every command, and every duration or id given as text,
is bounded: a huge or non-finite value is one `error:` line and exit 2."""

from __future__ import annotations

import typing

import pytest

from campctl.cli import _command

# Store-agnostic: every bound is checked while parsing the command line, before the state is opened.
pytestmark = pytest.mark.store_agnostic

HUGE = "99999999999999999999"


def _leaves(command, path):
    subs = getattr(command, "commands", None)
    if subs:
        for name, sub in subs.items():
            yield from _leaves(sub, [*path, name])
    else:
        yield path, command


def _numeric(param) -> type | None:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = descriptor.annotation if descriptor is not None else None
    kinds = typing.get_args(annotation) or (annotation,)
    return next((k for k in (int, float) if k in kinds), None)


def _cases():
    for path, command in _leaves(_command(), []):
        for param in command.params:
            kind = _numeric(param)
            if kind is None:
                continue
            values = [HUGE, "-" + HUGE] if kind is int else ["inf", "nan", "1e999"]
            if param.param_type_name == "argument":
                values = [v for v in values if not v.startswith("-")]  # would read as an option
            for value in values:
                yield pytest.param(path, command, param, value,
                                   id=f"{' '.join(path)} {param.opts[0]}={value}")


def _argv(path, command, target, value) -> list[str]:
    argv = list(path)
    options: list[str] = []
    for param in command.params:
        if param is target:
            if param.param_type_name == "argument":
                argv.append(value)
            else:
                options += [param.opts[0], value]
        elif param.param_type_name == "argument" and param.required:
            argv.append("1" if _numeric(param) else "x")
        elif param.param_type_name == "option" and param.required:
            options += [param.opts[0], "x"]
    if path == ["daemon"] and target.opts[0] != "--ticks":
        options += ["--ticks", "1"]  # without the bound, the daemon would run on
    return argv + options


CASES = list(_cases())


def test_the_hunt_finds_the_numeric_parameters():
    names = {(" ".join(c.values[0]), c.values[2].opts[0]) for c in CASES}
    assert ("describe run", "run_id") in names and ("log", "--limit") in names
    assert ("tick", "--max-seconds") in names


@pytest.mark.parametrize(("path", "command", "param", "value"), CASES)
def test_a_huge_or_non_finite_number_is_a_usage_error(cli, path, command, param, value):
    assert cli("init").exit_code == 0
    result = cli(*_argv(path, command, param, value))
    assert result.exit_code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value"), result


@pytest.mark.parametrize("argv", [
    ["log", "--since", "99999999999999999w"],
    ["log", "--since", "9" * 5000 + "s"],
    ["notifications", "--since", "1000000w"],
    ["stats", "scenario", "x", "--since", HUGE + "d"],
    ["daemon", "--interval", HUGE + "s", "--ticks", "1"],
    ["describe", "instance", HUGE],
    ["pause", f"instance/{HUGE}"],
    ["history", "instance", "١٢"],
], ids=lambda a: " ".join(a)[:40])
def test_durations_and_ids_given_as_text_are_bounded(cli, argv):
    assert cli("init").exit_code == 0
    result = cli(*argv)
    assert result.exit_code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("columns", ["abc", HUGE, "-5", "0"])
def test_a_strange_columns_variable_does_not_break_tables(cli, columns):
    assert cli("init").exit_code == 0
    result = cli("get", "campaigns", env={"COLUMNS": columns})
    assert result.exit_code == 0, result


@pytest.mark.parametrize("data", ['{"v": NaN}', '{"v": Infinity}', '{"v": 1e999}',
                                  '{"v": 99999999999999999999}', '{"v": "\\ud800"}',
                                  '{"v": ' + "[" * 5000 + "]" * 5000 + "}", "{"])
def test_event_data_given_on_the_command_line_is_bounded(cli, rows, tmp_path, data):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id\na\n")
    assert cli("contacts", "import", str(contacts)).exit_code == 0
    result = cli("events", "emit", "signed_up", "--contact", "a", "--data", data)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("error: --data: ") and "internal error" not in result.stderr
    assert rows("SELECT count(*) AS n FROM events") == [{"n": 0}]
    fine = cli("events", "emit", "signed_up", "--contact", "a", "--data", '{"v": [1, 2.5]}')
    assert fine.exit_code == 0, fine
