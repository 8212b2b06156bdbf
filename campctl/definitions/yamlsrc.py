"""YAML source to located nodes: safe composition, tag and alias guards, YAML 1.2-style scalars.

PyYAML speaks YAML 1.1, where `9:00` is 540, `no` is False and `0755` is 493. We never let its
constructor type anything: documents are *composed* (safe, C-accelerated when available) and each
scalar keeps its source text. Scalars are then typed with YAML 1.2 core-schema rules (only
`true`/`false` are booleans, only plain decimal numbers are numbers, dates stay text), and the
field tables decide what a string field takes (always the source text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_FILE_BYTES = 2_000_000
MAX_NODES = 20_000  # per document, counting every alias expansion (billion-laughs guard)
MAX_DEPTH = 64

YAML_TAG = "tag:yaml.org,2002:"
ALLOWED_EXPLICIT = {YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}

_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|(0|[1-9][0-9]*)(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


class YamlProblem(Exception):
    """A document that cannot be turned into nodes; carries a 1-based position."""

    def __init__(self, line: int, col: int, message: str, code: str = "CC005") -> None:
        super().__init__(message)
        self.line = line
        self.col = col
        self.message = message
        self.code = code  # campctl.definitions.codes


@dataclass
class Node:
    """One YAML node with its 1-based position.

    kind: "map" (items: list of (key Node, value Node), duplicates already removed), "seq"
    (items: list of Node) or "scalar" (text: the scalar's string, value: YAML 1.2 typed value,
    quoted: written with quotes or as a block, tag11: what YAML 1.1 would have made of it).
    """

    kind: str
    line: int
    col: int
    items: list = field(default_factory=list)
    text: str = ""
    value: Any = None
    quoted: bool = False
    tag11: str = "str"

    def get(self, key: str) -> Node | None:
        if self.kind != "map":
            return None
        for k, v in self.items:
            if k.text == key:
                return v
        return None

    def key_node(self, key: str) -> Node | None:
        if self.kind != "map":
            return None
        for k, _ in self.items:
            if k.text == key:
                return k
        return None

    @property
    def pos(self) -> tuple[int, int]:
        return (self.line, self.col)


@dataclass
class Document:
    root: Node | None
    line: int
    col: int
    problems: list[YamlProblem]


def _loader_class():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _type12(text: str) -> Any:
    if _NULL.match(text):
        return None
    if _BOOL.match(text):
        return text.lower() == "true"
    if _INT.match(text):
        if len(text) > 40:  # beyond any bound (and int() refuses 4,300 digits): out of range
            return float("-inf") if text.startswith("-") else float("inf")
        return int(text)
    if _FLOAT.match(text) and any(ch.isdigit() for ch in text):
        return float(text)
    return text


def _explicit(value: str, target: str, line: int, col: int) -> Any:
    """A scalar with an explicit standard tag (`!!str 0755`, `!!int "12"`)."""
    name = target[len(YAML_TAG):]
    if name == "str":
        return value
    typed: Any = _type12(value.strip())
    expected: dict[str, Any] = {  # a class or a tuple of classes, for isinstance
        "int": int, "float": (int, float), "bool": bool, "null": type(None)}
    accepted = expected[name]
    if isinstance(typed, bool) and name != "bool":
        typed = value
    if not isinstance(typed, accepted):
        raise YamlProblem(line, col, f"{value!r} is not a valid !!{name}", "CC008")
    return float(typed) if name == "float" else typed


class _Builder:
    def __init__(self, resolver) -> None:
        self.resolver = resolver
        self.count = 0
        self.problems: list[YamlProblem] = []

    def build(self, ynode, depth: int = 0) -> Node:
        import yaml

        self.count += 1
        line, col = ynode.start_mark.line + 1, ynode.start_mark.column + 1
        if self.count > MAX_NODES:
            raise YamlProblem(line, col, f"document too large: more than {MAX_NODES} nodes after "
                              "expanding aliases; remove nested aliases or split the file", "CC009")
        if depth > MAX_DEPTH:
            raise YamlProblem(line, col, f"document nested deeper than {MAX_DEPTH} levels "
                              "(or a recursive alias)", "CC010")
        if isinstance(ynode, yaml.ScalarNode):
            return self._scalar(ynode, line, col)
        if isinstance(ynode, yaml.SequenceNode):
            if ynode.tag != YAML_TAG + "seq":
                raise YamlProblem(line, col, f"tag {ynode.tag!r} is not allowed (safe YAML only: "
                                  "plain strings, numbers, booleans, lists and mappings)", "CC007")
            return Node("seq", line, col, items=[self.build(n, depth + 1) for n in ynode.value])
        if isinstance(ynode, yaml.MappingNode):
            if ynode.tag != YAML_TAG + "map":
                raise YamlProblem(line, col, f"tag {ynode.tag!r} is not allowed (safe YAML only: "
                                  "plain strings, numbers, booleans, lists and mappings)", "CC007")
            return self._mapping(ynode, line, col, depth)
        raise YamlProblem(line, col, "unsupported YAML node")  # pragma: no cover

    def _scalar(self, ynode, line: int, col: int) -> Node:
        import yaml

        style = ynode.style or None
        value = ynode.value
        plain = style is None
        implicit = self.resolver.resolve(yaml.ScalarNode, value, (plain, not plain))
        tag11 = implicit[len(YAML_TAG):] if implicit.startswith(YAML_TAG) else "str"
        if ynode.tag != implicit:
            if ynode.tag not in ALLOWED_EXPLICIT:
                raise YamlProblem(line, col, f"tag {ynode.tag!r} is not allowed (safe YAML only: "
                                  "plain strings, numbers, booleans, lists and mappings)", "CC007")
            typed = _explicit(value, ynode.tag, line, col)
            # An explicit !!str reads like a quoted string; !!int etc. like a plain typed value.
            return Node("scalar", line, col, text=value, value=typed,
                        quoted=ynode.tag == YAML_TAG + "str", tag11=tag11)
        typed = _type12(value) if plain else value
        return Node("scalar", line, col, text=value, value=typed, quoted=not plain, tag11=tag11)

    def _mapping(self, ynode, line: int, col: int, depth: int) -> Node:
        items: list[tuple[Node, Node]] = []
        seen: dict[str, Node] = {}
        merged: list[tuple[Node, Node]] = []
        for knode, vnode in ynode.value:
            if knode.tag == YAML_TAG + "merge":
                merged.extend(self._merge_sources(vnode, depth))
                continue
            key = self.build(knode, depth + 1)
            if key.kind != "scalar":
                self.problems.append(YamlProblem(key.line, key.col,
                                                 "mapping keys must be plain strings", "CC011"))
                continue
            if key.text in seen:
                first = seen[key.text]
                self.problems.append(YamlProblem(
                    key.line, key.col,
                    f"duplicate key {key.text!r} (first at {first.line}:{first.col})", "CC012"))
                self.count += 1
                continue
            seen[key.text] = key
            items.append((key, self.build(vnode, depth + 1)))
        for key, value in merged:  # explicit keys win over merged ones (YAML merge semantics)
            if key.text not in seen:
                seen[key.text] = key
                items.append((key, value))
        return Node("map", line, col, items=items)

    def _merge_sources(self, vnode, depth: int) -> list[tuple[Node, Node]]:
        source = self.build(vnode, depth + 1)
        maps = [source] if source.kind == "map" else source.items if source.kind == "seq" else []
        out: list[tuple[Node, Node]] = []
        for m in maps:
            if m.kind != "map":
                raise YamlProblem(m.line, m.col,
                                  "a merge key (<<) needs a mapping or a list of mappings", "CC013")
            out.extend(m.items)
        return out


def _hint(problem: str, snippet: str) -> str:
    if "alias" in problem and snippet.lstrip().startswith("*"):
        return " (a value starting with * is read as an alias: quote it, e.g. cron: \"* * * * *\")"
    if "tag" in problem or "could not determine a constructor" in problem:
        return " (only safe YAML is accepted)"
    return ""


def parse(text: str) -> tuple[list[Document], YamlProblem | None]:
    """All documents of one file as located nodes, and a syntax problem that stopped reading.

    Documents before a syntax error are still returned, so their errors are reported too.
    """
    import yaml

    docs: list[Document] = []
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        return docs, YamlProblem(1, 1, f"file larger than {MAX_FILE_BYTES} bytes; split it",
                                 "CC006")
    loader = _loader_class()(text)
    resolver = yaml.resolver.Resolver()
    try:
        while loader.check_node():
            ynode = loader.get_node()
            if ynode is None:
                continue
            builder = _Builder(resolver)
            line, col = ynode.start_mark.line + 1, ynode.start_mark.column + 1
            try:
                root = builder.build(ynode)
            except YamlProblem as stop:
                docs.append(Document(None, line, col, [*builder.problems, stop]))
                continue
            docs.append(Document(root, line, col, builder.problems))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        context = " ".join(str(exc.context or "").split())
        lines = text.splitlines()
        snippet = lines[line - 1][col - 1:] if 0 < line <= len(lines) else ""
        hint = _hint(f"{problem} {context}", snippet)
        return docs, YamlProblem(line, col, f"invalid YAML: {problem}{hint}")
    except yaml.YAMLError as exc:
        return docs, YamlProblem(1, 1, f"invalid YAML: {' '.join(str(exc).split())}")
    except RecursionError:
        return docs, YamlProblem(1, 1, "invalid YAML: nested too deeply")
    finally:
        loader.dispose()
    return docs, None


def to_plain(node: Node | None) -> Any:
    """Plain data of a node (YAML 1.2 typing), for tools that want the raw document."""
    if node is None:
        return None
    if node.kind == "map":
        return {k.text: to_plain(v) for k, v in node.items}
    if node.kind == "seq":
        return [to_plain(v) for v in node.items]
    return node.value
