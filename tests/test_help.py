"""`campctl --help` lists the commands in sections, each command once, none left over."""

from __future__ import annotations

import re

import pytest

from campctl.cli import HELP_PANELS, OTHER_PANEL, _command

# Store-agnostic: help texts.
pytestmark = pytest.mark.store_agnostic


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if re.fullmatch(r"[A-Z][A-Za-z ]+:", line):
            current = line[:-1]
            sections[current] = []
        elif current and (match := re.match(r"  ([a-z][a-z-]*)\s", line)):
            sections[current].append(match.group(1))
    return sections


def test_help_groups_the_commands_into_panels(cli):
    result = cli("--help")
    assert result.exit_code == 0, result
    sections = _sections(result.stdout)
    panels = {k: v for k, v in sections.items() if k not in ("Usage", "Options")}
    assert list(panels) == list(HELP_PANELS), result.stdout
    assert panels["Run control"][:2] == ["start", "stop"]
    assert "validate" in panels["Definitions"] and "activate" in panels["Scenarios"]
    listed = [name for names in panels.values() for name in names]
    assert len(listed) == len(set(listed))


def test_every_visible_command_has_a_panel():
    root = _command()
    visible = {name for name, command in root.commands.items() if not command.hidden}
    placed = {name for names in HELP_PANELS.values() for name in names}
    assert visible - placed == set(), f"add these commands to HELP_PANELS (else '{OTHER_PANEL}')"
    assert placed - visible == set(), "HELP_PANELS names commands that do not exist"
