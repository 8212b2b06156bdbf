"""MkDocs hook: pages that are generated from the code, so nothing is written twice.

A page holds a marker line and gets the generated text in its place at build time:
- `<!-- generated: commands -->`: every command's `--help`, walked from the CLI's own click tree,
  in the sections of `campctl --help`;
- `<!-- generated: fields -->`: every field of the five kinds, walked from the JSON Schema that
  `campctl schema` prints (built from the field tables of `campctl/definitions/fields.py`);
- `<!-- generated: changelog -->`: the repository's CHANGELOG.md.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 100


def _campctl_of_this_tree() -> None:
    # Document the tree the site is built from, even where another checkout is installed.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# --- commands ------------------------------------------------------------------------------------

def _help(command: Any, name: str, parent: Any) -> tuple[Any, str]:
    ctx = command.context_class(command, info_name=name, parent=parent,
                                max_content_width=WIDTH, terminal_width=WIDTH)
    return ctx, command.get_help(ctx).rstrip()


def _command_section(command: Any, path: list[str], parent: Any, level: int) -> list[str]:
    ctx, text = _help(command, path[-1], parent)
    lines = [f"{'#' * level} `campctl {' '.join(path[1:])}`", "", "```text", text, "```", ""]
    subcommands = getattr(command, "commands", {})
    for name in command.list_commands(ctx) if subcommands else []:
        sub = command.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            lines += _command_section(sub, [*path, name], ctx, min(level + 1, 4))
    return lines


def commands_markdown() -> str:
    _campctl_of_this_tree()
    import typer

    from campctl.cli import HELP_PANELS, OTHER_PANEL, build_app

    # Typer's own click (typer._click in recent versions), so typed loosely.
    root: Any = typer.main.get_command(build_app())
    root_ctx, root_help = _help(root, "campctl", None)
    lines = ["## `campctl`", "", "```text", root_help, "```", ""]
    visible = {n: c for n, c in root.commands.items() if not c.hidden}
    panels = [(title, [n for n in names if n in visible]) for title, names in HELP_PANELS.items()]
    panels.append((OTHER_PANEL, [n for n in visible if n not in
                                 {m for _, names in panels for m in names}]))
    for title, names in panels:
        if not names:
            continue
        lines += [f"## {title}", ""]
        for name in names:
            lines += _command_section(visible[name], ["campctl", name], root_ctx, 3)
    return "\n".join(lines)


# --- definition fields ---------------------------------------------------------------------------

def _type(node: dict[str, Any]) -> str:
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return "list"
    if kind == "object":
        return "mapping"
    if "oneOf" in node or "anyOf" in node:
        alternatives = [_type(alt) for alt in node.get("oneOf", node.get("anyOf", []))]
        return " or ".join(dict.fromkeys(a for a in alternatives if a))
    return kind or ""


def _code(text: str) -> str:
    # A code span in a table cell cannot hold "|" (not even escaped): an HTML entity can.
    return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(node: dict[str, Any], path: str, required: bool, out: dict[str, list[str]]) -> None:
    if path and path not in out:
        details = []
        if "pattern" in node:
            details.append(f"pattern {_code(node['pattern'])}")
        for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
            if key in node:
                details.append(f"{word} {node[key]}")
        if "default" in node:
            details.append(f"default {_code(json.dumps(node['default']))}")
        description = node.get("description", "")
        if details:
            description = f"{description} ({'; '.join(details)})" if description \
                else "; ".join(details)
        out[path] = [f"`{path}`", _type(node), "yes" if required else "", _cell(description)]
    for key, child in node.get("properties", {}).items():
        if key == "kind":
            continue
        _rows(child, f"{path}.{key}" if path else key, key in node.get("required", ()), out)
    if isinstance(node.get("items"), dict):
        _rows(node["items"], f"{path}[]", False, out)
    for alt in node.get("oneOf", []) + node.get("anyOf", []):
        if isinstance(alt, dict):
            _rows(alt, path, required, out)
    for branch in node.get("allOf", []):
        if isinstance(branch.get("then"), dict):
            _rows(branch["then"], path, required, out)


def _table(node: dict[str, Any]) -> list[str]:
    out: dict[str, list[str]] = {}
    _rows(node, "", False, out)
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in out.values()]
    return [*lines, ""]


def _variants(node: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for branch in node.get("allOf", []):
        then = branch.get("then")
        if isinstance(then, dict) and "properties" in then:
            found.append((then.get("title", ""), then))
    return found


def fields_markdown() -> str:
    _campctl_of_this_tree()
    from campctl.definitions.schema import json_schema

    schema = json_schema()
    lines: list[str] = []
    for kind, node in schema["$defs"].items():
        lines += [f"### {kind}", "", _cell(node.get("description", "")), ""]
        variants = _variants(node)
        if not variants:
            lines += _table(node)
        for title, variant in variants:
            lines += [f"#### {title}", "", _cell(variant.get("description", "")), ""]
            lines += _table(variant)
    return "\n".join(lines)


# --- the hook ------------------------------------------------------------------------------------

def changelog_markdown() -> str:
    return (ROOT / "CHANGELOG.md").read_text()


GENERATORS = {
    "<!-- generated: commands -->": commands_markdown,
    "<!-- generated: fields -->": fields_markdown,
    "<!-- generated: changelog -->": changelog_markdown,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, generate in GENERATORS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
