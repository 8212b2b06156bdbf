"""Reading YAML files into Definitions (provisional: safe load, kind/name checks only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from campctl.models import Definition, Issue, Kind, SourcePos


@dataclass
class LoadResult:
    definitions: list[Definition] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.issues


def expand_paths(paths: list[str]) -> tuple[list[Path], list[Issue]]:
    files: list[Path] = []
    issues: list[Issue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            issues.append(Issue(str(path), 0, 0, "no such file or directory"))
    return files, issues


def load_paths(paths: list[str], known: dict | None = None) -> LoadResult:
    import yaml

    files, issues = expand_paths(paths)
    result = LoadResult(issues=issues)
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            result.issues.append(Issue(str(path), line, col, f"invalid YAML: {exc}"))
            continue
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "name" not in doc:
                result.issues.append(Issue(str(path), 1, 1, "a document needs kind and name"))
                continue
            try:
                kind = Kind(doc["kind"])
            except ValueError:
                result.issues.append(Issue(str(path), 1, 1, f"unknown kind {doc['kind']!r}"))
                continue
            spec = {k: v for k, v in doc.items() if k not in ("kind", "name", "description")}
            result.definitions.append(
                Definition(kind, str(doc["name"]), spec, SourcePos(str(path), 1, 1),
                           doc.get("description"))
            )
    return result
