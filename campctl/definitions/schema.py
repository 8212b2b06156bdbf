"""The JSON Schema (draft 2020-12) of definition files, generated from the validator's tables."""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "https://campctl.dev/schema/definition.json"


def json_schema() -> dict[str, Any]:
    from campctl.definitions.fields import DOCUMENT, KINDS

    top = DOCUMENT.schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "campctl definition",
        "description": "One YAML document of a campctl definition file (kind: Segment, Channel, "
                       "FrequencyCap, Campaign, Plan or Scenario). A file may hold several "
                       "documents (---).",
        **{k: v for k, v in top.items() if k != "description"},
        "$defs": {name: kind.schema() for name, kind in KINDS.items()},
    }
