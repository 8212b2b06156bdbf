"""Reading definition files: every document of every file checked, every error collected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campctl.models import Definition, Issue, Kind, SourcePos

if TYPE_CHECKING:  # the definitions layer is imported when a file is read, not at start-up
    from campctl.definitions.semantics import Ref
    from campctl.definitions.types import Ctx
    from campctl.definitions.yamlsrc import Node

SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    definitions: list[Definition] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.issues


def expand_paths(paths: list[str]) -> tuple[list[Path], list[Issue]]:
    """Files as given, and directories searched recursively for *.yaml / *.yml (hidden skipped)."""
    files: list[Path] = []
    issues: list[Issue] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.suffix in SUFFIXES and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                issues.append(Issue(str(path), 0, 0, "no *.yaml or *.yml files in this directory",
                                    "CC002"))
        elif path.is_file():
            found = [path]
        else:
            issues.append(Issue(str(path), 0, 0, "no such file or directory", "CC001"))
            found = []
        for item in found:
            key = item.resolve()
            if key not in seen:
                seen.add(key)
                files.append(item)
    return files, issues


@dataclass
class _Doc:
    """One document read: its kind and name when valid, its checked spec (None if invalid)."""

    kind: str | None
    name: str | None
    spec: dict | None
    root: Node
    ctx: Ctx
    description: str | None = None


def load_paths(paths: list[str], known: dict | None = None) -> LoadResult:
    """Read and validate every document of every file; see campctl.definitions for the contract."""
    files, issues = expand_paths(list(paths))
    result = LoadResult(issues=list(issues), files=[str(f) for f in files])
    texts: list[tuple[str, str | None, str | None]] = []
    read_codes: dict[str, str] = {}
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            texts.append((str(path), None, f"cannot read file: {exc.strerror}"))
            read_codes[str(path)] = "CC003"
            continue
        try:
            texts.append((str(path), data.decode("utf-8-sig"), None))
        except UnicodeDecodeError as exc:
            texts.append((str(path), None, f"not UTF-8 text (byte {exc.start})"))
            read_codes[str(path)] = "CC004"
    loaded = load_texts(texts, known, read_codes=read_codes)
    result.definitions = loaded.definitions
    result.issues.extend(loaded.issues)
    return result


def load_texts(texts: list[tuple[str, str | None, str | None]], known: dict | None = None, *,
               read_codes: dict[str, str] | None = None) -> LoadResult:
    """Validate (file name, text or None, read problem) triples, in order. `read_codes`: the
    code of each file's read problem (default CC003, cannot read)."""
    from campctl.definitions import semantics
    from campctl.definitions.types import Ctx

    docs: list[_Doc] = []
    contexts: list[Ctx] = []
    refs: list[semantics.Ref] = []
    for name, text, problem in texts:
        ctx = Ctx(name)
        contexts.append(ctx)
        if text is None:
            ctx.error((1, 1), problem or "cannot read file",
                      code=(read_codes or {}).get(name, "CC003"))
        else:
            docs.extend(_read_file(text, ctx, refs))
    semantics.resolve(refs, _objects(docs, known))
    result = LoadResult()
    for ctx in contexts:
        result.issues.extend(sorted(ctx.issues, key=lambda i: (i.line, i.col)))
    if not result.issues:  # definitions are meaningful only when there is no issue at all
        result.definitions = _definitions(docs)
    return result


def _read_file(text: str, ctx: Ctx, refs: list[Ref]) -> list[_Doc]:
    """Every document of one file, checked on its own; problems go to `ctx`."""
    from campctl.definitions.yamlsrc import parse

    docs: list[_Doc] = []
    parsed, stop = parse(text)
    for document in parsed:
        for p in document.problems:
            ctx.error((p.line, p.col), p.message, code=p.code)
        if document.root is not None:
            doc = _read_document(document.root, ctx, refs)
            if doc is not None:
                docs.append(doc)
    if stop is not None:
        ctx.error((stop.line, stop.col), stop.message, code=stop.code)
    return docs


def _read_document(root: Node, ctx: Ctx, refs: list[Ref]) -> _Doc | None:
    """One document's fields and rules; None for an empty document or one that is no mapping."""
    from campctl.definitions import fields, semantics
    from campctl.definitions.types import INVALID

    if root.kind != "map":
        if not (root.kind == "scalar" and root.value is None):  # else a stray ---
            ctx.error(root, "a definition must be a mapping with kind and name", code="CC014")
        return None
    checked = fields.DOCUMENT.check(root, ctx, "")
    kind_node, name_node = root.get("kind"), root.get("name")
    kind = kind_node.text if kind_node is not None and kind_node.text in fields.KINDS else None
    spec = checked if isinstance(checked, dict) and checked is not INVALID else None
    if kind is not None and spec is not None:
        semantics.check(kind, spec, root, ctx, refs)
    name = checked.get("name") if isinstance(checked, dict) and name_node is not None else None
    return _Doc(kind, name, spec, root, ctx, spec.get("description") if spec else None)


def _objects(docs: list[_Doc], known: dict | None) -> dict[tuple[str, str], Any]:
    """Specs by (kind, name): the files win over the state file (`known`); the first file wins
    over later ones, which are reported as duplicates."""
    specs: dict[tuple[str, str], Any] = dict(known or {})
    firsts: dict[tuple[str, str], _Doc] = {}
    for doc in docs:
        if doc.kind is None or not isinstance(doc.name, str):
            continue
        key = (doc.kind, doc.name)
        first = firsts.get(key)
        if first is None:
            firsts[key] = doc
            specs[key] = doc.spec
            continue
        where = first.root.get("name")
        here = doc.root.get("name")
        assert where is not None and here is not None  # both have a valid name
        doc.ctx.error(here, f"duplicate {doc.kind} {doc.name!r} (first defined at "
                            f"{first.ctx.file}:{where.line}:{where.col})", code="CC202")
    return specs


def _definitions(docs: list[_Doc]) -> list[Definition]:
    definitions = []
    for doc in docs:
        if doc.spec is None or doc.kind is None:
            continue
        spec = {k: v for k, v in doc.spec.items() if k not in ("kind", "name", "description")}
        definitions.append(Definition(
            Kind(doc.kind), str(doc.name), spec,
            SourcePos(doc.ctx.file, doc.root.line, doc.root.col), doc.description))
    return definitions
