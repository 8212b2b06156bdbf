"""Scenario messages render through the one sandbox of engine/templates.py: the same work
budget holds for a scenario's send step as for a campaign's message, and no other engine
module builds a Jinja2 environment of its own."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import T0
from .test_template_budget import EXPONENTIAL_MACRO

ENGINE = Path(__file__).resolve().parents[2] / "campctl" / "engine"


def _imports_jinja(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "jinja2"
                                                for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jinja2":
            return True
    return False


def test_only_the_templates_module_of_the_engine_imports_jinja2():
    importers = sorted(p.name for p in ENGINE.glob("*.py") if _imports_jinja(p))
    assert importers == ["templates.py"]


def test_a_scenario_send_step_is_held_to_the_template_budget(launch, edit_spec, cli, rows):
    launch("kind: Scenario\nname: hello\nlaunch: {type: manual}\nsteps:\n  - id: hi\n"
           "    send: {subject: \"Hi\", body: \"Dear {{ id }}\"}\n", start=False)
    # A hand edit of the state file: the step now holds a template that works for minutes.
    edit_spec("Scenario", "hello",
              lambda spec: spec["steps"][0]["send"].update(body=EXPONENTIAL_MACRO))
    assert cli("--now", T0, "activate", "scenario", "hello").exit_code == 0
    result = cli("--now", T0, "start", "scenario", "hello", "--all", "--yes")
    assert result.exit_code == 1, result
    assert "step hi: body: template exceeds its budget" in result.stderr, result.stderr
    assert rows("SELECT * FROM scenario_launches") == []
