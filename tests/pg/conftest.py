"""CLI tests on PostgreSQL: `state` is the URL of the reset test database instead of a file.

The root fixtures (`cli`, `run_subprocess`) pass `--state str(state)`, so they run the same
commands against PostgreSQL here. `rows` reads the database with psycopg (`%s` placeholders).
"""

from __future__ import annotations

import pytest
from pg_support import query


@pytest.fixture(autouse=True)
def _no_state_file(tmp_path):
    """A URL taken for a SQLite path would create a file named `postgresql:...`: never."""
    yield
    stray = sorted(str(p) for p in tmp_path.rglob("postgresql*"))
    assert not stray, f"a PostgreSQL URL was opened as a SQLite file: {stray}"


@pytest.fixture
def state(pg_state) -> str:
    return pg_state


@pytest.fixture
def rows(state):
    """rows('SELECT ...', params) -> list[dict], straight from the test database."""

    def run(sql: str, params=()):
        return query(state, sql, params)

    return run
