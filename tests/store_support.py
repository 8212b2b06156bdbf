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


class DirectState:
    """One autocommit connection straight to the state (either store), for tests that arrange
    rows or break them by hand. SQL in SQLite's words; `insert()` returns the new row's id
    (`RETURNING id`: psycopg has no lastrowid); `transaction()` groups statements."""

    def __init__(self, state: Any) -> None:
        self.pg = is_pg(state)
        if self.pg:
            from pg_support import connect

            self.conn: Any = connect(os.fspath(state))
        else:
            self.conn = sqlite3.connect(os.fspath(state), isolation_level=None)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> DirectState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: Any = ()) -> Any:
        if self.pg:
            text, values = _pg_sql(sql, params)
            return self.conn.execute(text, values)
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> None:
        if self.pg:
            from campctl.store.dialect import numbered_params, to_pyformat

            text, numbered = to_pyformat(sql)
            with self.conn.cursor() as cur:
                cur.executemany(text, [numbered_params(r) if numbered else r for r in rows])
            return
        self.conn.executemany(sql, rows)

    def sqlite_pragma(self, pragma: str) -> None:
        """A connection PRAGMA on SQLite; nothing on PostgreSQL (foreign keys always hold)."""
        if not self.pg:
            self.conn.execute(f"PRAGMA {pragma}")

    def insert(self, sql: str, params: Any = ()) -> int:
        """An INSERT (without RETURNING); the id of the row it wrote."""
        return int(self.execute(sql + " RETURNING id", params).fetchone()[0])

    def rows(self, sql: str, params: Any = ()) -> list[dict]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def transaction(self) -> Any:
        if self.pg:
            return self.conn.transaction()
        return _sqlite_transaction(self.conn)


class _sqlite_transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def dump_lines(state: Any) -> list[str]:
    """Every row of the state as text: SQLite's `iterdump()`, or on PostgreSQL one line per row
    (`table: (values)`) of every table in the schema, sorted."""
    if not is_pg(state):
        conn = sqlite3.connect(os.fspath(state))
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    lines = []
    with DirectState(state) as direct:
        for (table,) in direct.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " ORDER BY tablename").fetchall():
            lines += sorted(f"{table}: {row!r}"
                            for row in direct.execute(f'SELECT * FROM "{table}"').fetchall())
    return lines


def tables_holding(state: Any, text: str) -> set[str]:
    """The tables of the state with a row whose text holds `text`."""
    with DirectState(state) as direct:
        tables = [r[0] for r in direct.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()" if direct.pg
            else "SELECT name FROM sqlite_master WHERE type='table'").fetchall()]
        return {t for t in tables
                if any(text in str(row) for row in direct.execute(f'SELECT * FROM "{t}"'))}


def state_exists(state: Any) -> bool:
    """The state is there: the file (SQLite), campctl's schema in the database (PostgreSQL)."""
    if not is_pg(state):
        return os.path.exists(os.fspath(state))
    with DirectState(state) as direct:
        return direct.execute("SELECT to_regclass('campctl_schema') IS NOT NULL").fetchone()[0]


def sqlite_json(text: str) -> str:
    """SQLite's canonical text of a JSON value (`json(?)`), as an oracle for either store."""
    conn = sqlite3.connect(":memory:")
    try:
        return conn.execute("SELECT json(?)", (text,)).fetchone()[0]
    finally:
        conn.close()
