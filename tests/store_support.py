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
    if is_pg(state):
        from pg_support import connect
        from psycopg.rows import dict_row

        pg_conn = connect(os.fspath(state))
        try:
            def read_pg(sql: str, params: Any = ()) -> list[dict]:
                text, values = _pg_sql(sql, params)
                with pg_conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(text, values)
                    return list(cur.fetchall()) if cur.description else []

            yield read_pg
        finally:
            pg_conn.close()
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
