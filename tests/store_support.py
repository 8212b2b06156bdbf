"""Reading and writing a test's state directly, on either store.

`state` is a SQLite path or a PostgreSQL URL (the parametrized fixture in tests/conftest.py).
SQL is written in SQLite's words (`?`, `?N`, `:name`); on PostgreSQL it goes through the store's
own placeholder translator, so one test text serves both stores.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from campctl.store.location import PgUrl, parse_state


def is_pg(state: Any) -> bool:
    return isinstance(parse_state(os.fspath(state)), PgUrl)


def handover_started(state: Any) -> int:
    """The `handover_begun` value a delivery writes just before a message goes: PostgreSQL
    marks ahead (1) and notes each start (2); on SQLite every mark is a start (1)."""
    return 2 if is_pg(state) else 1


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
        from pg_support import on_shared

        text, values = _pg_sql(sql, params)
        return on_shared(os.fspath(state), lambda conn: conn.execute(text, values).rowcount)
    conn = sqlite3.connect(os.fspath(state))
    try:
        with conn:
            return conn.execute(sql, params).rowcount
    finally:
        conn.close()


def insert_contacts(state: Any, specs: Any, created_at: str) -> None:
    """Insert contacts straight into the state, in one transaction, on either store.

    Each spec is a dict {id, email?, groups?, opt_out?, **attributes} (attributes stored as JSON).
    """
    import json

    contact = ("INSERT INTO contacts (external_id, email, attrs, created_at, updated_at) "
               "VALUES (?, ?, ?, ?, ?) RETURNING id")
    group = "INSERT INTO contact_groups (grp, contact_id) VALUES (?, ?)"
    optout = "INSERT INTO contact_optouts (contact_id, message_type) VALUES (?, ?)"
    pg = is_pg(state)
    if pg:
        from pg_support import connect

        conn: Any = connect(os.fspath(state))
        contact, group, optout = (_pg_sql(s, ())[0] for s in (contact, group, optout))
    else:
        conn = sqlite3.connect(os.fspath(state))
    try:
        if pg:
            tx: Any = conn.transaction()
        else:
            tx = conn
        with tx:
            for spec in specs:
                spec = dict(spec)
                ext = spec.pop("id")
                groups = spec.pop("groups", [])
                opt_out = spec.pop("opt_out", [])
                email = spec.pop("email", f"{ext}@example.com")
                cid = conn.execute(contact, (ext, email, json.dumps(spec), created_at,
                                             created_at)).fetchone()[0]
                for g in groups:
                    conn.execute(group, (g, cid))
                for t in opt_out:
                    conn.execute(optout, (cid, t))
    finally:
        conn.close()


@contextlib.contextmanager
def open_rows(state: Any) -> Iterator[Callable[..., list[dict]]]:
    """One connection for many reads: `with open_rows(state) as rows: rows(sql, params)`."""
    if is_pg(state):  # every read goes through the connection the test helpers share
        yield lambda sql, params=(): query_rows(state, sql, params)
        return
    conn = sqlite3.connect(os.fspath(state))
    conn.row_factory = sqlite3.Row
    try:
        yield lambda sql, params=(): [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def state_exists(state: Any) -> bool:
    """Whether a command created the state: the file, or any table in the PostgreSQL schema."""
    if is_pg(state):
        rows = query_rows(state, "SELECT count(*) AS n FROM pg_tables"
                                 " WHERE schemaname = current_schema()")
        return rows[0]["n"] > 0
    return os.path.exists(os.fspath(state))


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


def sqlite_json(text: str) -> str:
    """SQLite's canonical text of a JSON value (`json(?)`), as an oracle for either store."""
    conn = sqlite3.connect(":memory:")
    try:
        return conn.execute("SELECT json(?)", (text,)).fetchone()[0]
    finally:
        conn.close()


def table_names(state: Any, rows: Callable[..., list[dict]] | None = None) -> list[str]:
    """The tables of the state, by name (SQLite's own `sqlite_*` tables left out); `rows`: an
    `open_rows` reader of the same state, to read through it."""
    if is_pg(state):
        sql = ("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() "
               "ORDER BY tablename")
    else:
        sql = ("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
               "ORDER BY name")
    return [r["name"] for r in (rows(sql) if rows else query_rows(state, sql))]


def write_marks(state: Any) -> Any:
    """What any write changes: the file's bytes (SQLite); every row's version, `xmin`
    (PostgreSQL: an UPDATE that sets the same values still makes a new row version)."""
    if is_pg(state):
        with open_rows(state) as rows:
            return {t: sorted(r["v"] for r in rows(f"SELECT xmin::text AS v FROM {t}"))
                    for t in table_names(state, rows)}
    with open(os.fspath(state), "rb") as f:
        return f.read()
