"""YAML definitions: loading with line/column tracking, validation, JSON Schema.

Public contract (used by commands and tests):

    load_paths(paths, known=None) -> LoadResult
        Reads files/directories (recursively *.yaml, *.yml), validates every document of every
        file, and returns LoadResult(definitions=[Definition...], issues=[Issue...]).
        `known` maps (Kind value, name) -> spec dict for objects already in the state file, used
        to resolve references (segments, channels, campaign stages of plans).
        `definitions` is meaningful only when `issues` is empty.
    load_texts([(file, text, None), ...], known=None) -> LoadResult   (same, from strings)
    json_schema() -> dict   (draft 2020-12, generated from the validator's field tables)
"""

from campctl.definitions.loader import LoadResult, load_paths, load_texts


def json_schema() -> dict:
    from campctl.definitions.schema import json_schema as build

    return build()


__all__ = ["LoadResult", "json_schema", "load_paths", "load_texts"]
