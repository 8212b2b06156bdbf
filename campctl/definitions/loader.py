"""Reading definition files: every document of every file checked, every error collected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campctl.models import Definition, Issue, Kind, SourcePos

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
    kind: str | None
    name: str | None
    spec: dict | None
    root: Any
    ctx: Any
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
    from campctl.definitions import fields, semantics
    from campctl.definitions.types import INVALID, Ctx
    from campctl.definitions.yamlsrc import parse

    known = dict(known or {})
    docs: list[_Doc] = []
    contexts: list[Ctx] = []
    refs: list[semantics.Ref] = []
    for name, text, problem in texts:
        ctx = Ctx(name)
        contexts.append(ctx)
        if text is None:
            ctx.error((1, 1), problem or "cannot read file",
                      code=(read_codes or {}).get(name, "CC003"))
            continue
        parsed, stop = parse(text)
        for doc in parsed:
            for p in doc.problems:
                ctx.error((p.line, p.col), p.message, code=p.code)
            if doc.root is None:
                continue
            root = doc.root
            if root.kind != "map":
                if root.kind == "scalar" and root.value is None:
                    continue  # an empty document (a stray ---)
                ctx.error(root, "a definition must be a mapping with kind and name", code="CC014")
                continue
            spec = fields.DOCUMENT.check(root, ctx, "")
            kind_node, name_node = root.get("kind"), root.get("name")
            kind = kind_node.text if kind_node is not None and kind_node.text in fields.KINDS \
                else None
            obj_name = spec.get("name") if isinstance(spec, dict) else None
            if spec is INVALID or not isinstance(spec, dict):
                spec = None
            if kind is not None and spec is not None:
                semantics.check(kind, spec, root, ctx, refs)
            docs.append(_Doc(kind, obj_name if name_node is not None else None, spec, root, ctx,
                             spec.get("description") if spec else None))
        if stop is not None:
            ctx.error((stop.line, stop.col), stop.message, code=stop.code)
    # Objects by (kind, name): the files win over the state file; the first file wins over later.
    specs: dict[tuple[str, str], Any] = dict(known)
    firsts: dict[tuple[str, str], _Doc] = {}
    for doc in docs:
        if doc.kind is None or not isinstance(doc.name, str):
            continue
        key = (doc.kind, doc.name)
        if key in firsts:
            first = firsts[key]
            where = first.root.get("name")
            doc.ctx.error(doc.root.get("name"),
                          f"duplicate {doc.kind} {doc.name!r} (first defined at "
                          f"{first.ctx.file}:{where.line}:{where.col})", code="CC202")
            continue
        firsts[key] = doc
        specs[key] = doc.spec
    semantics.resolve(refs, specs)
    result = LoadResult()
    for ctx in contexts:
        result.issues.extend(sorted(ctx.issues, key=lambda i: (i.line, i.col)))
    if result.issues:
        return result  # definitions are meaningful only when there is no issue at all
    for doc in docs:
        if doc.spec is None or doc.kind is None:
            continue
        spec = {k: v for k, v in doc.spec.items() if k not in ("kind", "name", "description")}
        result.definitions.append(Definition(
            Kind(doc.kind), str(doc.name), spec,
            SourcePos(doc.ctx.file, doc.root.line, doc.root.col), doc.description))
    return result
