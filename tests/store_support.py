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


def table_names(state: Any) -> list[str]:
    """The tables of the state, by name (SQLite's own `sqlite_*` tables left out)."""
    if is_pg(state):
        sql = ("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() "
               "ORDER BY tablename")
    else:
        sql = ("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
               "ORDER BY name")
    return [r["name"] for r in query_rows(state, sql)]


def state_created(state: Any) -> bool:
    """Whether a campctl state is there: the file exists (SQLite); the schema does (PostgreSQL:
    run the test with `pg_fresh`, or an earlier test's schema counts)."""
    if is_pg(state):
        probe = "SELECT to_regclass('campctl_schema') IS NOT NULL AS t"
        return bool(query_rows(state, probe)[0]["t"])
    return os.path.exists(os.fspath(state))


def write_marks(state: Any) -> Any:
    """What any write changes: the file's bytes (SQLite); every row's version, `xmin`
    (PostgreSQL: an UPDATE that sets the same values still makes a new row version)."""
    if is_pg(state):
        return {t: sorted(r["v"] for r in query_rows(state, f"SELECT xmin::text AS v FROM {t}"))
                for t in table_names(state)}
    with open(os.fspath(state), "rb") as f:
        return f.read()
