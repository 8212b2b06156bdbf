"""Reading and writing a test's state directly, on either store.

`state` is a SQLite path or a PostgreSQL URL (the parametrized fixture in tests/conftest.py).
SQL is written in SQLite's words (`?`, `?N`, `:name`); on PostgreSQL it goes through the store's
own placeholder translator, so one test text serves both stores.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from campctl.store.location import PgUrl, parse_state


def is_pg(state: Any) -> bool:
    return isinstance(parse_state(os.fspath(state)), PgUrl)


def _pg_sql(sql: str, params: Any) -> tuple[str, Any]:
    from campctl.store.dialect import numbered_params, to_pyformat

    text, numbered = to_pyformat(sql)
    if numbered:
        params = numbered_params(params)
    return text, (params if params else None)


def query_rows(state: Any, sql: str, params: Any = ()) -> list[dict]:
    """Rows of one query as dicts, from a SQLite file or a PostgreSQL database."""
    if is_pg(state):
        from pg_support import query

        text, values = _pg_sql(sql, params)
        return query(os.fspath(state), text, values or ())
    conn = sqlite3.connect(os.fspath(state))
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def execute_sql(state: Any, sql: str, params: Any = ()) -> int:
    """One statement in its own committed transaction; returns the row count."""
    if is_pg(state):
        from pg_support import connect

        text, values = _pg_sql(sql, params)
        with connect(os.fspath(state)) as conn:
            return conn.execute(text, values).rowcount
    conn = sqlite3.connect(os.fspath(state))
    try:
        with conn:
            return conn.execute(sql, params).rowcount
    finally:
        conn.close()


def state_exists(state: Any) -> bool:
    """Whether a command created the state: the file, or any table in the PostgreSQL schema."""
    if is_pg(state):
        rows = query_rows(state, "SELECT count(*) AS n FROM pg_tables"
                                 " WHERE schemaname = current_schema()")
        return rows[0]["n"] > 0
    return os.path.exists(os.fspath(state))
