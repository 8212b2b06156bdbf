"""Read-only look-ups for shell completion: names in a state file, which is never created,
migrated or written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# A completion runs at every TAB: never wait long for a busy writer, never list thousands.
_BUSY_TIMEOUT_S = 0.2
_LIMIT = 500


def object_names(path: Path, kind: str, prefix: str = "") -> list[str]:
    """Names of the objects of `kind` ('Plan', ...) starting with `prefix`, sorted; empty when
    the file is missing or unreadable."""
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return []
    try:
        rows = conn.execute(
            "SELECT name FROM objects WHERE kind = ? AND substr(name, 1, ?) = ? "
            "ORDER BY name LIMIT ?",
            (kind, len(prefix), prefix, _LIMIT),
        ).fetchall()
    except sqlite3.Error:  # not a state file, or an old one without the table
        return []
    finally:
        conn.close()
    return [name for (name,) in rows]
