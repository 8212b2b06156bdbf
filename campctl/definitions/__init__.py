"""YAML definitions: loading with line/column tracking, validation, JSON Schema.

Public contract (used by commands and tests):

    load_paths(paths, known=None) -> LoadResult
        Reads files/directories (recursively *.yaml, *.yml), validates every document of every
        file, and returns LoadResult(definitions=[Definition...], issues=[Issue...]).
        `known` maps (Kind value, name) -> spec dict for objects already in the state file, used
        to resolve references (segments, channels, campaign stages of plans).
        `definitions` is meaningful only when `issues` is empty.
"""

from campctl.definitions.loader import LoadResult, load_paths

__all__ = ["LoadResult", "load_paths"]
