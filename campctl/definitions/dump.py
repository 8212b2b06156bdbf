"""Definitions back to YAML: the text `get -o yaml` prints and `export` writes, which `apply`
reads back to the same spec (so re-applying it reports "unchanged").

Key order: kind, name, description, then the spec's keys as applied. Strings are written plain
only when nothing (YAML 1.1 included) could read them as another type; times, windows, cron
expressions and anything with a colon are quoted; multi-line text is a literal block.
"""

from __future__ import annotations

import re
from typing import Any

from campctl.models import Kind

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./ -]*")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}


def _dumper():
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        if "\n" in value:
            style = "|"
        elif (_PLAIN.fullmatch(value) and value.lower() not in _YAML11_WORDS
              and not value.endswith((" ", "-", "."))):
            style = None
        else:
            style = '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def document(kind: Kind, name: str, description: str | None, spec: dict[str, Any]) -> dict:
    """The document as applied: kind and name first, the spec's own keys after."""
    doc: dict[str, Any] = {"kind": kind.value, "name": name}
    if description is not None:
        doc["description"] = description
    doc.update((k, v) for k, v in spec.items() if k not in ("kind", "name", "description"))
    return doc


def definition_yaml(kind: Kind, name: str, description: str | None,
                    spec: dict[str, Any]) -> str:
    """One YAML document (no `---`), ending with a newline."""
    import yaml

    return yaml.dump(document(kind, name, description, spec), Dumper=_dumper(),
                     sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
