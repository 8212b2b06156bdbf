"""The layering stays visible: imports point one way, SQL and the clock stay where they belong."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "campctl"

# A module in layer L may import campctl modules only from the layers listed for L.
ALLOWED = {
    "base": {"base"},
    "store": {"store", "base"},
    # definitions.models (typed definitions, importing nothing from campctl) is what the engine
    # and the channels receive; the rest of definitions (YAML, validation) stays out of them.
    "engine": {"engine", "store", "base", "channels", "definitions.models"},
    "channels": {"channels", "store", "base", "engine.templates", "definitions.models"},
    "definitions": {"definitions", "store", "base", "engine.cron", "engine.templates"},
    "commands": {"commands", "engine", "definitions", "channels", "store", "base", "cli"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("models", "errors", "timeutil", "__init__"):
        return "base"
    if parts[1] in ("cli", "__main__"):
        return "commands"
    return parts[1]


def campctl_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("campctl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("campctl"):
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(rel.parts), path


def allowed(layer: str, target: str) -> bool:
    target_layer = layer_of(target)
    rules = ALLOWED.get(layer, set())
    if target_layer in rules:
        return True
    return any(target == r or target.startswith(f"campctl.{r}") for r in rules if "." in r)


def test_typed_definitions_import_nothing_from_campctl():
    assert campctl_imports(PACKAGE / "definitions" / "models.py") == []


def test_imports_point_one_way():
    problems = []
    for module, path in modules():
        layer = layer_of(module)
        for target in campctl_imports(path):
            if target == "campctl" or target.count(".") == 0:
                continue
            # "from campctl.store import db" yields campctl.store and campctl.store.db
            if not allowed(layer, target):
                problems.append(f"{module} ({layer}) imports {target}")
    assert not problems, "\n".join(problems)


def test_engine_and_store_do_not_import_the_terminal_layer():
    problems = []
    for module, path in modules():
        if layer_of(module) not in ("engine", "store", "channels", "definitions", "base"):
            continue
        text = path.read_text()
        for lib in ("typer", "rich"):
            if re.search(rf"^\s*(import {lib}|from {lib}[. ])", text, re.M):
                problems.append(f"{module} imports {lib}")
    assert not problems, "\n".join(problems)


def test_sql_only_in_store():
    sql = re.compile(r"""["'](SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|BEGIN|PRAGMA) """)
    problems = [
        module
        for module, path in modules()
        if layer_of(module) != "store" and sql.search(path.read_text())
    ]
    assert not problems, f"SQL outside campctl/store: {problems}"


def test_clock_read_only_in_cli_layer():
    clock = re.compile(r"datetime\.(now|utcnow|today)\(|time\.time\(\)|date\.today\(")
    problems = [
        module
        for module, path in modules()
        if layer_of(module) != "commands" and clock.search(path.read_text())
    ]
    assert not problems, f"the clock is read below the CLI layer: {problems}"


def _imports_of(path: Path, package: str) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                a.name == package or a.name.startswith(f"{package}.") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == package or node.module.startswith(f"{package}.")):
            return True
    return False


def test_psycopg_only_in_store_pg():
    """PostgreSQL's driver is an optional extra: one module imports it, and the SQLite path
    (every other module) runs without it."""
    problems = [module for module, path in modules()
                if module != "campctl.store.pg" and _imports_of(path, "psycopg")]
    assert not problems, f"psycopg imported outside campctl/store/pg.py: {problems}"
