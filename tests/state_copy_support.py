"""Helpers of the `state copy` tests (tests/test_state_copy.py, tests/pg/test_state_copy.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "state-v1-demo.db"


def dump(path: Path) -> dict[str, list[str]]:
    """Every row of every table (the outbox with its rowid, sqlite_sequence too), sorted."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(repr(r) for r in conn.execute(
            f"SELECT *{', rowid' if t == 'outbox' else ''} FROM {t}")) for t in tables}
    finally:
        conn.close()


def ok(result):
    assert result.exit_code == 0, result
    return result
