"""PostgreSQL for the tests: the database URL, and resetting that database between tests.

`CAMPCTL_TEST_PG_URL` names an empty database the tests may reset (`.ci/run` starts a throw-away
cluster and exports it). It is read once, at import: tests/conftest.py drops every `CAMPCTL_*`
variable from each test's environment. psycopg is imported only by the functions that talk to
PostgreSQL, so that a run without a URL (and the SQLite path under test) never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

REQUIRE_PG: bool = os.environ.get("CAMPCTL_TEST_REQUIRE_PG") == "1"
# `pytest -n N` (pytest-xdist): each worker resets its own database, `<db>_<worker>` beside the
# named one (made on first use by ensure_database()), since a reset ends every other session.
# Not used by CI yet: under `-n 2` the table-rendering tests see an 80-column console (25
# failures in tests/display, why, simulate, users...), see the commit that added this.
WORKER: str | None = os.environ.get("PYTEST_XDIST_WORKER") or None


def worker_url(url: str, worker: str) -> str:
    """The URL naming the worker's database: the database name with `_<worker>` appended."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    name = parts.path.lstrip("/") or parts.username or "postgres"
    return urlunsplit(parts._replace(path=f"/{name}_{worker}"))


BASE_URL: str | None = os.environ.get("CAMPCTL_TEST_PG_URL") or None
PG_URL: str | None = (worker_url(BASE_URL, WORKER) if BASE_URL and WORKER else BASE_URL)
if PG_URL is not None:
    # Modules that read the variable themselves (tests/store/test_pg_schema.py) see the same.
    os.environ["CAMPCTL_TEST_PG_URL"] = PG_URL

# Sessions other than ours (a daemon a test left behind, a killed tick's connection) would hold
# locks or rows across the reset: end them first.
_TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
# (campctl schema version or None, number of tables) of the current schema.
_PROBE = """
SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()),
       to_regclass('campctl_schema') IS NOT NULL
"""
# Foreign keys between tables of the current schema (child, parent), for the DELETE order.
_FOREIGN_KEYS = """
SELECT c.relname, p.relname FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
 WHERE k.contype = 'f' AND c.relnamespace = to_regnamespace(current_schema())
"""
_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
_IDENTITIES = """
SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE a.attidentity <> '' AND c.relnamespace = to_regnamespace(current_schema())
 ORDER BY 1, 2
"""

# Tables a reset keeps: the schema version row.
_KEEP = frozenset({"campctl_schema"})
# url -> (probe key, the reset statements): the catalog is read once per schema layout.
_cache: dict[str, tuple[tuple[Any, ...], str]] = {}


def connect(url: str):
    """A psycopg connection in autocommit mode (use it as a context manager)."""
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


# url -> one autocommit connection the helpers below share, kept from test to test: a
# connection costs milliseconds (a server process, cold catalog caches), and a test reads the
# database hundreds of times. Always idle between statements (autocommit: no transaction, no
# lock held); never a prepared statement (a migration test changes a table's columns); the
# reset spares it (it is the reset's own session).
_shared: dict[str, Any] = {}


def shared_connection(url: str):
    """The shared autocommit connection to `url`, opened again when it was closed or broken.
    Not for a transaction or a session setting (use connect())."""
    conn = _shared.get(url)
    if conn is None or conn.closed or conn.broken:
        import psycopg

        conn = psycopg.connect(url, autocommit=True, connect_timeout=10, prepare_threshold=None)
        _shared[url] = conn
    return conn


def on_shared(url: str, work: Callable[[Any], Any]) -> Any:
    """`work(connection)` on the shared connection; once more on a new one when the shared one
    turns out dead (a benchmark's reset or a test's own pg_terminate_backend ended it while it
    was idle: the statement never reached a server process)."""
    import psycopg

    conn = shared_connection(url)
    try:
        return work(conn)
    except psycopg.OperationalError:
        if not conn.broken:
            raise
    return work(shared_connection(url))


def query(url: str, sql: str, params: Any = ()) -> list[dict]:
    """Rows of one query as dicts (psycopg placeholders: %s)."""
    from psycopg.rows import dict_row

    def run(conn: Any) -> list[dict]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params or None)
            return list(cur.fetchall()) if cur.description else []

    return on_shared(url, run)


def execute(url: str, sql: str, params: Any = ()) -> None:
    """One statement (or several, without parameters) in its own transaction."""
    on_shared(url, lambda conn: conn.execute(sql, params or None))


def ensure_database() -> None:
    """Create the worker's database (`pytest -n`) when it does not exist yet; nothing without
    xdist. From template0: nobody is ever connected to it, so parallel creations cannot clash."""
    if BASE_URL is None or PG_URL == BASE_URL:
        return
    from urllib.parse import urlsplit

    from psycopg import sql

    name = urlsplit(PG_URL).path.lstrip("/")
    with connect(BASE_URL) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(name)))


def reset_pg(url: str, *, fresh: bool = False) -> None:
    """Make the database at `url` ready for one test.

    Ordinary: when the campctl schema is there at this campctl's version, DELETE every row of
    every table and restart every identity (one round trip, milliseconds). Otherwise, and with
    `fresh` (tests of init, migrations or a foreign database): an empty schema (`DROP SCHEMA ...
    CASCADE; CREATE SCHEMA ...`), which the test's first `campctl init` fills.
    """
    on_shared(url, lambda conn: conn.execute(_TERMINATE))
    conn = shared_connection(url)  # the only session now
    if not fresh:
        statements = _reset_statements(url, conn)
        if statements is not None:
            conn.execute(statements)
            return
    _cache.pop(url, None)
    conn.execute(_drop_schema(conn))


def _drop_schema(conn) -> str:
    from psycopg import sql

    row = conn.execute("SELECT coalesce(current_schema(), 'public')").fetchone()
    name = sql.Identifier(row[0]).as_string(conn)
    return f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"


def _reset_statements(url: str, conn) -> str | None:
    """The DELETE/identity statements for the current schema, or None when it needs dropping."""
    from campctl.store.schema import SCHEMA_VERSION

    tables, has_version = conn.execute(_PROBE).fetchone()
    if not has_version:
        return None
    row = conn.execute("SELECT max(version) FROM campctl_schema").fetchone()
    if row is None or row[0] != SCHEMA_VERSION:
        return None
    key = (tables, row[0])
    cached = _cache.get(url)
    if cached is not None and cached[0] == key:
        return cached[1]
    statements = _statements_from_schema_pg()
    if statements is None:
        statements = _statements_from_catalog(conn)
    if statements is None:
        return None
    _cache[url] = (key, statements)
    return statements


def _statements_from_schema_pg() -> str | None:
    """campctl's own reset statements when store/schema_pg.py provides them."""
    try:
        from campctl.store import schema_pg  # type: ignore[attr-defined]
    except ImportError:
        return None
    reset = getattr(schema_pg, "reset_statements", None)
    if reset is None:
        return None
    statements = reset()
    if isinstance(statements, str):
        return statements
    return ";\n".join(s.rstrip().rstrip(";") for s in statements)


def _statements_from_catalog(conn) -> str | None:
    """DELETE children before parents (from the catalog's foreign keys), then restart identities."""
    from psycopg import sql

    tables = [r[0] for r in conn.execute(_TABLES)]
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in conn.execute(_FOREIGN_KEYS):
        if child != parent and child in parents and parent in parents:
            parents[child].add(parent)
    children_first: list[str] = []
    remaining = dict(parents)
    while remaining:
        # A table no remaining table refers to can go now.
        referenced = {p for ps in remaining.values() for p in ps}
        free = sorted(t for t in remaining if t not in referenced)
        if not free:
            return None  # a cycle: drop the schema instead
        for t in free:
            children_first.append(t)
            del remaining[t]
    parts = [f"DELETE FROM {sql.Identifier(t).as_string(conn)}" for t in children_first
             if t not in _KEEP]
    setvals = [
        "setval(pg_get_serial_sequence("
        f"{sql.Literal(sql.Identifier(table).as_string(conn)).as_string(conn)}, "
        f"{sql.Literal(column).as_string(conn)}), 1, false)"
        for table, column in conn.execute(_IDENTITIES)
    ]
    if setvals:
        parts.append("SELECT " + ", ".join(setvals))
    return ";\n".join(parts)
