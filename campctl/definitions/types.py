"""Field types of definition files: one table drives both validation and the JSON Schema.

Each type checks a located node (collecting every problem, never stopping at the first) and
returns the plain JSON-compatible value for `Definition.spec`, or INVALID. Each type also
describes itself as JSON Schema, so `campctl schema` cannot drift from `campctl validate`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from campctl.definitions.codes import BY_CODE, FALLBACK
from campctl.definitions.yamlsrc import Node
from campctl.models import Issue
from campctl.timeutil import shorten

# Integers must fit SQLite's 64-bit INTEGER (rule values are bound as query parameters).
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"

    def __bool__(self) -> bool:
        return False


INVALID: Any = _Invalid()


@dataclass
class Ctx:
    """Where problems go while one file is checked."""

    file: str
    issues: list[Issue] = field(default_factory=list)

    def error(self, at: Node | tuple[int, int], message: str, *, code: str = FALLBACK) -> None:
        """`code`: the problem's id in campctl.definitions.codes (a test checks each call)."""
        line, col = at.pos if isinstance(at, Node) else at
        self.issues.append(Issue(self.file, line, col, message, code, BY_CODE[code].level))


def label(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(node: Node) -> str:
    if node.kind == "map":
        return "a mapping"
    if node.kind == "seq":
        return "a list"
    if node.value is None:
        return "nothing"
    return repr(shorten(node.text))


def _yaml11_note(node: Node) -> str:
    """Why a plain scalar may surprise: what YAML 1.1 tools make of it."""
    if node.quoted:
        return ""
    if node.tag11 == "bool" and not isinstance(node.value, bool):
        return f" (YAML 1.1 reads {node.text} as a boolean; write true or false, or quote text)"
    if node.tag11 == "int" and not isinstance(node.value, int):
        return f" (YAML 1.1 reads {node.text} as a number; quote it)"
    if node.tag11 == "float" and not isinstance(node.value, float):
        return f" (YAML 1.1 reads {node.text} as a number; quote it)"
    return ""


class Type:
    description = ""

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def schema(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_doc(self, schema: dict) -> dict:
        if self.description:
            schema = {"description": self.description, **schema}
        return schema


class Text(Type):
    """A string; a plain scalar is taken as its source text (so `code: 0755` is "0755").

    `validate` returns an error message or None; `pattern` is its JSON Schema twin.
    """

    def __init__(self, description: str = "", *,
                 validate: Callable[[str], str | None] | None = None,
                 pattern: str | None = None, fmt: str | None = None, min_length: int = 1,
                 examples: list | None = None,
                 code: str | Callable[[str], str] = FALLBACK) -> None:
        self.description = description
        self.validate = validate
        self.code = code  # of what `validate` reports (or a function of its message)
        self.pattern = pattern
        self.fmt = fmt
        self.min_length = min_length
        self.examples = examples

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind != "scalar" or (node.value is None and not node.quoted):
            ctx.error(node, label(path, f"expected a string, got {describe(node)}"), code="CC104")
            return INVALID
        text = node.text
        if len(text) < self.min_length:
            ctx.error(node, label(path, "must not be empty"), code="CC107")
            return INVALID
        if self.validate is not None:
            problem = self.validate(text)
            if problem:
                code = self.code if isinstance(self.code, str) else self.code(problem)
                ctx.error(node, label(path, problem + _yaml11_note(node)), code=code)
                return INVALID
        return text

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "string"}
        if self.min_length:
            out["minLength"] = self.min_length
        if self.pattern:
            out["pattern"] = self.pattern
        if self.fmt:
            out["format"] = self.fmt
        if self.examples:
            out["examples"] = self.examples
        return self.with_doc(out)


class Enum(Type):
    def __init__(self, values: tuple[str, ...], description: str = "") -> None:
        self.values = values
        self.description = description

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind == "scalar" and node.text in self.values and node.value is not None:
            return node.text
        shown = describe(node)
        hint = did_you_mean(node.text, self.values) if node.kind == "scalar" else ""
        ctx.error(node, label(path, f"must be one of {', '.join(self.values)}, got {shown}{hint}"),
                  code="CC108")
        return INVALID

    def schema(self) -> dict:
        if len(self.values) == 1:
            return self.with_doc({"const": self.values[0]})
        return self.with_doc({"enum": list(self.values)})


class Bool(Type):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind == "scalar" and isinstance(node.value, bool) and not node.quoted:
            return node.value
        if node.kind == "scalar" and node.quoted and node.text.lower() in ("true", "false"):
            ctx.error(node, label(path, f"expected true or false, got the string {node.text!r}; "
                                        "remove the quotes"), code="CC105")
            return INVALID
        note = ""
        if node.kind == "scalar" and node.tag11 == "bool" and not node.quoted:
            note = " (yes/no/on/off are YAML 1.1 booleans; campctl accepts only true and false)"
        ctx.error(node, label(path, f"expected true or false, got {describe(node)}{note}"),
                  code="CC105")
        return INVALID

    def schema(self) -> dict:
        return self.with_doc({"type": "boolean"})


class Number(Type):
    def __init__(self, description: str = "", *, integer: bool = False,
                 minimum: float | None = None,
                 maximum: float | None = None, exclusive_minimum: float | None = None) -> None:
        self.description = description
        self.integer = integer
        self.minimum = minimum
        self.maximum = maximum
        self.exclusive_minimum = exclusive_minimum

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if not self._is_number(node, ctx, path) or not self._in_range(node, ctx, path):
            return INVALID
        return node.value

    def _is_number(self, node: Node, ctx: Ctx, path: str) -> bool:
        """An unquoted, finite number of the wanted type (else the error says what it is)."""
        want = "an integer" if self.integer else "a number"
        ok_types = (int,) if self.integer else (int, float)
        value = node.value
        if node.kind == "scalar" and not node.quoted and isinstance(value, float) and (
                value != value or value in (float("inf"), float("-inf"))):  # NaN / inf / huge
            ctx.error(node, label(path, f"number {describe(node)} is out of range"), code="CC109")
            return False
        if node.kind != "scalar" or node.quoted or isinstance(value, bool) or not isinstance(
                value, ok_types):
            ctx.error(node, label(path, f"expected {want}, got {describe(node)}"
                                        f"{_number_note(node)}"), code="CC106")
            return False
        if value != value or value in (float("inf"), float("-inf")):  # NaN / inf
            ctx.error(node, label(path, f"expected {want}, got {node.text!r}"), code="CC106")
            return False
        return True

    def _in_range(self, node: Node, ctx: Ctx, path: str) -> bool:
        value = node.value
        if self.minimum is not None and value < self.minimum:
            ctx.error(node, label(path, f"must be at least {_num(self.minimum)}, got "
                                        f"{shorten(node.text)}"), code="CC109")
            return False
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            ctx.error(node, label(path, f"must be greater than {_num(self.exclusive_minimum)}, "
                                        f"got {shorten(node.text)}"), code="CC109")
            return False
        if self.maximum is not None and value > self.maximum:
            ctx.error(node, label(path, f"must be at most {_num(self.maximum)}, got "
                                        f"{shorten(node.text)}"), code="CC109")
            return False
        if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            ctx.error(node, label(path, f"number {describe(node)} is out of range"),
                      code="CC109")
            return False
        return True

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            out["exclusiveMinimum"] = self.exclusive_minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return self.with_doc(out)


def _number_note(node: Node) -> str:
    """Why a scalar that looks like a number is not read as one."""
    if node.kind == "scalar" and not node.quoted and (
            node.tag11 in ("int", "float") or re.match(r"^[-+]?0[0-9_]+$", node.text)):
        return " (write it in plain decimal, without leading zeros, _ or :)"
    if node.kind == "scalar" and node.quoted and isinstance(node.value, str):
        return " (remove the quotes)" if _looks_numeric(node.value) else ""
    return ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Scalar(Type):
    """Any string, number or boolean (segment rule values), typed the YAML 1.2 way."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind != "scalar" or (node.value is None and not node.quoted):
            ctx.error(node, label(path, "expected a string, number or boolean, got "
                                        f"{describe(node)}"), code="CC104")
            return INVALID
        value = node.value
        if isinstance(value, float) and (value != value or value in (float("inf"),
                                                                      float("-inf"))):
            ctx.error(node, label(path, f"number {describe(node)} is out of range"), code="CC109")
            return INVALID
        if isinstance(value, int) and not isinstance(value, bool) and not (
                INT_MIN <= value <= INT_MAX):
            ctx.error(node, label(path, f"number {describe(node)} is out of range"), code="CC109")
            return INVALID
        return value

    def schema(self) -> dict:
        return self.with_doc({"type": ["string", "number", "boolean"]})


class ListOf(Type):
    def __init__(self, item: Type, description: str = "", *, min_items: int = 0) -> None:
        self.item = item
        self.description = description
        self.min_items = min_items

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind != "seq":
            ctx.error(node, label(path, f"expected a list, got {describe(node)}"), code="CC104")
            return INVALID
        if len(node.items) < self.min_items:
            ctx.error(node, label(path, f"needs at least {self.min_items} item"
                                        f"{'s' if self.min_items > 1 else ''}"), code="CC110")
            return INVALID
        # Invalid items stay in place as INVALID, so positions of the others keep their index.
        return [self.item.check(n, ctx, f"{path}[{i + 1}]") for i, n in enumerate(node.items)]

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            out["minItems"] = self.min_items
        return self.with_doc(out)


@dataclass
class F:
    """A field of a mapping."""

    type: Type
    required: bool = False


class Map(Type):
    """A mapping with known keys; unknown keys are reported with a did-you-mean.

    `one_of`: groups of keys of which exactly one must be present (audience forms).
    `values`: for free mappings (webhook headers), the type of every value.
    `elsewhere`: key -> where it belongs, to explain keys that are valid in another variant.
    """

    def __init__(self, fields: dict[str, F] | None = None, description: str = "", *,
                 one_of: tuple[str, ...] = (), values: Type | None = None,
                 elsewhere: dict[str, str] | None = None, title: str = "",
                 schema_extra: dict | None = None) -> None:
        self.schema_extra = schema_extra or {}
        self.fields = fields or {}
        self.description = description
        self.one_of = one_of
        self.values = values
        self.elsewhere = elsewhere or {}
        self.title = title

    def common_fields(self) -> dict[str, F]:
        return dict(self.fields)

    def all_keys(self) -> set[str]:
        return set(self.fields)

    def extended(self, fields: dict[str, F], **kw) -> Map:
        return Map({**self.fields, **fields}, kw.pop("description", self.description),
                   one_of=kw.pop("one_of", self.one_of), values=self.values, **kw)

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind != "map":
            ctx.error(node, label(path, f"expected a mapping, got {describe(node)}"), code="CC104")
            return INVALID
        out: dict[str, Any] = {}
        for key, value in node.items:
            sub = f"{path}.{key.text}" if path else key.text
            field_type = self._type_of(key, ctx, path)
            if field_type is None:
                continue
            checked = field_type.check(value, ctx, sub)
            if checked is not INVALID:
                out[key.text] = checked
        present = {k.text for k, _ in node.items}
        self._check_presence(node, present, ctx, path)
        # Partial on error: semantic checks still see the valid parts (all errors in one run);
        # the document's definition is dropped anyway when it has any issue.
        return out

    def _type_of(self, key: Node, ctx: Ctx, path: str) -> Type | None:
        """The type of a key's value; None (and the error) for a key that does not belong."""
        if self.values is not None:
            return self.values
        if key.text in self.fields:
            return self.fields[key.text].type
        where = f" in {path}" if path else ""
        if key.text in self.elsewhere:
            ctx.error(key, f"key {key.text!r}{where} {self.elsewhere[key.text]}", code="CC102")
        else:
            hint = did_you_mean(key.text, self.fields) or (
                f" (allowed: {', '.join(self.fields)})" if self.fields else "")
            ctx.error(key, f"unknown key {key.text!r}{where}{hint}", code="CC101")
        return None

    def _check_presence(self, node: Node, present: set[str], ctx: Ctx, path: str) -> None:
        """Required keys are there, and exactly one key of `one_of`."""
        for name, spec in self.fields.items():
            if spec.required and name not in present:
                ctx.error(node, label(path, f"missing required key {name!r}") if path
                          else f"missing required key {name!r}", code="CC103")
        if self.one_of:
            chosen = [k for k in self.one_of if k in present]
            if len(chosen) != 1:
                forms = " or ".join(self.one_of)
                message = (f"needs one of {forms}" if not chosen
                           else f"takes only one of {forms}, got {' and '.join(chosen)}")
                ctx.error(node, label(path, message), code="CC111")

    def schema(self) -> dict:
        out: dict[str, Any] = {"type": "object"}
        if self.title:
            out["title"] = self.title
        if self.values is not None:
            out["additionalProperties"] = self.values.schema()
            return self.with_doc(out)
        out["properties"] = {k: f.type.schema() for k, f in self.fields.items()}
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        if self.one_of:
            out["oneOf"] = [{"required": [k]} for k in self.one_of]
        out.update(self.schema_extra)
        return self.with_doc(out)


class Choice(Type):
    """A keyword (`immediately`) or one of several single-purpose mappings (`{at: ...}`)."""

    def __init__(self, words: tuple[str, ...], maps: dict[str, Type],
                 description: str = "") -> None:
        self.words = words
        self.maps = maps  # key that selects the form -> type of that mapping
        self.description = description

    def _forms(self) -> str:
        return " | ".join([*self.words, *(f"{{{k}: ...}}" for k in self.maps)])

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind == "scalar" and node.text in self.words and not (
                node.value is None and not node.quoted):
            return node.text
        if node.kind == "map":
            keys = [k.text for k, _ in node.items]
            chosen = [k for k in keys if k in self.maps]
            if len(chosen) == 1:
                return self.maps[chosen[0]].check(node, ctx, path)
            if len(chosen) > 1:
                ctx.error(node, label(path, f"takes only one of {' or '.join(chosen)}"),
                          code="CC111")
                return INVALID
            first = node.items[0][0] if node.items else node
            hint = did_you_mean(first.text, self.maps) if node.items else ""
            ctx.error(first, label(path, f"expected {self._forms()}, got key "
                                         f"{first.text!r}{hint}" if node.items
                                   else f"expected {self._forms()}, got an empty mapping"),
                      code="CC111")
            return INVALID
        hint = did_you_mean(node.text, self.words) if node.kind == "scalar" else ""
        ctx.error(node, label(path, f"expected {self._forms()}, got {describe(node)}{hint}"),
                  code="CC111")
        return INVALID

    def schema(self) -> dict:
        options: list[dict] = []
        if self.words:
            options.append({"enum": list(self.words)} if len(self.words) > 1
                           else {"const": self.words[0]})
        options += [m.schema() for m in self.maps.values()]
        return self.with_doc({"oneOf": options})


class Tagged(Type):
    """A mapping whose fields depend on a discriminator key (`type`, `kind`)."""

    def __init__(self, key: str, variants: dict[str, Map], description: str = "", *,
                 noun: str = "", ref_prefix: str | None = None) -> None:
        self.key = key
        self.variants = variants
        self.description = description
        self.noun = noun
        self.ref_prefix = ref_prefix  # top level: variants live in $defs
        if ref_prefix:
            return
        # A key valid in another variant gets a precise message instead of "unknown key".
        for name, variant in variants.items():
            owners: dict[str, list[str]] = {}
            for other, ov in variants.items():
                for k in ov.fields if other != name else ():
                    if k not in variant.fields:
                        owners.setdefault(k, []).append(other)
            variant.elsewhere = {k: f"is not used by {noun or key} {name} (only by {', '.join(v)})"
                                 for k, v in owners.items()}

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind != "map":
            ctx.error(node, label(path, f"expected a mapping, got {describe(node)}"), code="CC104")
            return INVALID
        tag = node.get(self.key)
        choices = ", ".join(self.variants)
        if tag is None:
            ctx.error(node, label(path, f"missing required key {self.key!r} ({choices})"),
                      code="CC103")
            self._check_common(node, ctx, path)
            return INVALID
        if tag.kind != "scalar" or tag.text not in self.variants:
            hint = did_you_mean(tag.text, self.variants) if tag.kind == "scalar" else ""
            shown = repr(shorten(tag.text)) if tag.kind == "scalar" else describe(tag)
            ctx.error(tag, f"unknown {self.noun or self.key} {shown}{hint}; use one of {choices}",
                      code="CC112")
            self._check_common(node, ctx, path)
            return INVALID
        return self.variants[tag.text].check(node, ctx, path)

    def common_fields(self) -> dict[str, F]:
        """The fields every variant has (by key; the first variant's type checks them)."""
        tables = [v.common_fields() for v in self.variants.values()]
        return {k: f for k, f in tables[0].items() if all(k in t for t in tables[1:])}

    def all_keys(self) -> set[str]:
        return set().union(*(v.all_keys() for v in self.variants.values()))

    def _check_common(self, node: Node, ctx: Ctx, path: str) -> None:
        """Without a known variant, still check what does not depend on it: the fields common
        to all variants, and keys that no variant knows (so one run reports every error)."""
        common = self.common_fields()
        known = self.all_keys()
        where = f" in {path}" if path else ""
        for key, value in node.items:
            if key.text == self.key:
                continue
            if key.text in common:
                common[key.text].type.check(value, ctx, f"{path}.{key.text}" if path
                                            else key.text)
            elif key.text not in known:
                hint = did_you_mean(key.text, known)
                ctx.error(key, f"unknown key {key.text!r}{where}{hint}", code="CC101")
        present = {k.text for k, _ in node.items}
        for name in common:
            if name != self.key and name not in present and all(
                    v.common_fields()[name].required for v in self.variants.values()):
                ctx.error(node, label(path, f"missing required key {name!r}"), code="CC103")

    def schema(self) -> dict:
        names = list(self.variants)
        out: dict[str, Any] = {
            "type": "object",
            "required": [self.key],
            "properties": {self.key: {"enum": names}},
            "allOf": [
                {
                    "if": {"properties": {self.key: {"const": n}}, "required": [self.key]},
                    "then": ({"$ref": f"{self.ref_prefix}{n}"} if self.ref_prefix
                             else self.variants[n].schema()),
                }
                for n in names
            ],
        }
        return self.with_doc(out)
