"""The PostgreSQL schema (store/schema_pg.py) against the SQLite one (store/schema.py).

The drift tests build both schemas, SQLite by replaying store.schema.MIGRATIONS as `init` does
and PostgreSQL with create_schema, and compare what the store relies on: tables, columns, types
(mapped), NOT NULL, defaults, unique keys, foreign keys and index names. The PostgreSQL tests use
a schema of their own in the CAMPCTL_TEST_PG_URL database and drop it afterwards.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from campctl.store import schema_pg
from campctl.store.schema import MIGRATIONS, SCHEMA_VERSION

# Read at import: the autouse fixture drops every CAMPCTL_* variable from the environment.
PG_URL = os.environ.get("CAMPCTL_TEST_PG_URL")

# Marked `pg` (deselected by the conftest without a URL) and skipped here too, so that this
# file also runs where that conftest rule is absent.


# --- SQLite side ------------------------------------------------------------------------------

@pytest.fixture
def lite(tmp_path) -> Iterator[sqlite3.Connection]:
    """A SQLite state at the current version, built as `campctl init` builds it."""
    conn = sqlite3.connect(tmp_path / "state.db")
    try:
        with conn:
            for migration in MIGRATIONS:
                for statement in migration:
                    conn.execute(statement)
        yield conn
    finally:
        conn.close()


def lite_tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence' "
        "ORDER BY name")]


def lite_columns(conn: sqlite3.Connection, table: str) -> dict[str, dict[str, Any]]:
    """name -> type, notnull (a primary key column counts as NOT NULL, as on PostgreSQL),
    default as written."""
    return {name: {"type": ctype.upper(), "notnull": bool(notnull or pk), "default": default}
            for _cid, name, ctype, notnull, default, pk
            in conn.execute(f"PRAGMA table_info({table})")}


def lite_indexes(conn: sqlite3.Connection) -> dict[str, tuple[str, tuple[str, ...], bool, bool]]:
    """Named indexes (CREATE INDEX): name -> (table, columns, unique, partial)."""
    out = {}
    for name, table, sql in conn.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' "
            "AND sql IS NOT NULL"):
        cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
        out[name] = (table, cols, sql.upper().startswith("CREATE UNIQUE"), " WHERE " in sql)
    return out


def lite_keys(conn: sqlite3.Connection, table: str) -> set[tuple[str, ...]]:
    """The column lists of the table's PRIMARY KEY and UNIQUE constraints."""
    keys = set()
    pk = [r for r in conn.execute(f"PRAGMA table_info({table})") if r[5]]
    if pk:
        keys.add(tuple(r[1] for r in sorted(pk, key=lambda r: r[5])))
    for _seq, name, unique, origin, _partial in conn.execute(f"PRAGMA index_list({table})"):
        if unique and origin in ("u", "pk"):
            keys.add(tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})")))
    return keys


def lite_foreign_keys(conn: sqlite3.Connection, table: str) -> set[tuple[str, str, str, str]]:
    """(column, referenced table, referenced column, on delete)."""
    return {(r[3], r[2], r[4], r[6].upper())
            for r in conn.execute(f"PRAGMA foreign_key_list({table})")}


# --- checks that need no PostgreSQL ------------------------------------------------------------

def test_pg_version_follows_sqlite():
    # A SQLite migration V<n> needs its PostgreSQL twin PG_MIGRATIONS[n] in the same change.
    assert schema_pg.PG_SCHEMA_VERSION == SCHEMA_VERSION
    assert sorted(schema_pg.PG_MIGRATIONS) == list(
        range(schema_pg.PG_BASELINE_VERSION + 1, SCHEMA_VERSION + 1))


def test_pg_tables_lists_every_sqlite_table_once(lite):
    assert len(set(schema_pg.PG_TABLES)) == len(schema_pg.PG_TABLES)
    assert sorted(schema_pg.PG_TABLES) == lite_tables(lite)


def test_pg_tables_is_foreign_key_safe(lite):
    # Every table comes after the tables it references (SQLite's own declarations).
    position = {table: i for i, table in enumerate(schema_pg.PG_TABLES)}
    for table in schema_pg.PG_TABLES:
        for _col, parent, _pcol, _on_delete in lite_foreign_keys(lite, table):
            assert position[parent] <= position[table], (table, parent)


def test_identity_columns_are_the_sqlite_rowid_ids(lite):
    # Every `id INTEGER PRIMARY KEY` (SQLite's rowid alias) is an identity on PostgreSQL; outbox
    # orders by its implicit rowid, which becomes a real identity column.
    expected = {table: "id" for table in lite_tables(lite)
                if lite_keys(lite, table) & {("id",)}
                and lite_columns(lite, table)["id"]["type"] == "INTEGER"}
    expected["outbox"] = "rowid"
    assert schema_pg.IDENTITY_COLUMNS == expected


def test_reset_statements_empty_every_table_children_first():
    statements = schema_pg.reset_statements()
    deletes = [s.removeprefix("DELETE FROM ") for s in statements if s.startswith("DELETE")]
    assert deletes == list(reversed(schema_pg.PG_TABLES))
    assert schema_pg.META_TABLE not in deletes
    assert sum("setval" in s for s in statements) == len(schema_pg.IDENTITY_COLUMNS)


# --- PostgreSQL ---------------------------------------------------------------------------------

@pytest.fixture
def pg() -> Iterator[Any]:
    """A raw psycopg connection whose search_path is a new, empty schema (dropped afterwards)."""
    psycopg = pytest.importorskip("psycopg")
    assert PG_URL
    schema = f"campctl_t_{uuid.uuid4().hex[:12]}"
    conn = psycopg.connect(PG_URL, autocommit=True)
    try:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.autocommit = False
        yield conn
    finally:
        conn.rollback()
        conn.autocommit = True
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture
def pg_created(pg) -> Any:
    schema_pg.create_schema(pg)
    pg.commit()
    return pg


def pg_columns(conn, table: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT column_name, data_type, collation_name, is_nullable, column_default, "
        "is_identity, is_generated FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s", (table,)).fetchall()
    return {name: {"type": dtype, "collation": coll, "notnull": nullable == "NO",
                   "default": default, "identity": ident == "YES", "generated": gen != "NEVER"}
            for name, dtype, coll, nullable, default, ident, gen in rows}


def pg_indexes(conn) -> dict[str, tuple[str, tuple[str, ...], bool, bool]]:
    """name -> (table, columns, unique, partial), for every index of the current schema."""
    rows = conn.execute(
        "SELECT i.relname, t.relname, x.indisunique, x.indpred IS NOT NULL, "
        "ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n) "
        "      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid "
        "WHERE t.relnamespace = current_schema()::regnamespace").fetchall()
    return {name: (table, tuple(cols), unique, partial)
            for name, table, unique, partial, cols in rows}


def pg_foreign_keys(conn) -> set[tuple[str, str, str, str, str]]:
    """(table, column, referenced table, referenced column, on delete) of single-column FKs."""
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, "
        "fa.attname, c.confdeltype FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1] "
        "WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace").fetchall()
    on_delete = {"a": "NO ACTION", "c": "CASCADE", "r": "RESTRICT", "n": "SET NULL",
                 "d": "SET DEFAULT"}
    return {(t, col, ft, fcol, on_delete[d]) for t, col, ft, fcol, d in rows}


def same_default(lite_default: str | None, pg_default: str | None) -> bool:
    if lite_default is None or pg_default is None:
        return lite_default == pg_default
    return re.sub(r"::(text|bigint|integer)$", "", pg_default) == lite_default


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="CAMPCTL_TEST_PG_URL is not set")
def test_every_sqlite_table_and_column_exists_on_pg(lite, pg_created):
    pg_tables = {r[0] for r in pg_created.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema()").fetchall()}
    assert pg_tables == set(schema_pg.PG_TABLES) | {schema_pg.META_TABLE}
    problems = []
    for table in lite_tables(lite):
        lcols, pcols = lite_columns(lite, table), pg_columns(pg_created, table)
        extra = set(pcols) - set(lcols)
        if extra != set(schema_pg.PG_ONLY_COLUMNS.get(table, ())):
            problems.append(f"{table}: columns only on PostgreSQL {sorted(extra)}")
        for name, lcol in lcols.items():
            pcol = pcols.get(name)
            if pcol is None:
                problems.append(f"{table}.{name}: missing on PostgreSQL")
                continue
            expected_type = {"INTEGER": "bigint", "TEXT": "text"}[lcol["type"]]
            if pcol["type"] != expected_type:
                problems.append(f"{table}.{name}: {pcol['type']}, expected {expected_type}")
            if expected_type == "text" and pcol["collation"] != "C":
                problems.append(f"{table}.{name}: collation {pcol['collation']}, expected C")
            if pcol["notnull"] != lcol["notnull"]:
                problems.append(f"{table}.{name}: NOT NULL {pcol['notnull']} on PostgreSQL")
            if not same_default(lcol["default"], pcol["default"]):
                problems.append(f"{table}.{name}: default {pcol['default']!r} on PostgreSQL, "
                                f"{lcol['default']!r} on SQLite")
            if pcol["identity"] != (schema_pg.IDENTITY_COLUMNS.get(table) == name):
                problems.append(f"{table}.{name}: identity {pcol['identity']}")
    assert not problems, "\n".join(problems)


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="CAMPCTL_TEST_PG_URL is not set")
def test_every_sqlite_index_and_key_exists_on_pg(lite, pg_created):
    pg_idx = pg_indexes(pg_created)
    lite_idx = lite_indexes(lite)
    assert {n: pg_idx.get(n) for n in lite_idx} == lite_idx
    # PRIMARY KEY and UNIQUE constraints: a unique index over the same columns on PostgreSQL.
    for table in lite_tables(lite):
        pg_unique = {cols for t, cols, unique, partial in pg_idx.values()
                     if t == table and unique and not partial}
        assert lite_keys(lite, table) <= pg_unique, table
    # Foreign keys, with their ON DELETE.
    expected = {(table, *fk)
                for table in lite_tables(lite) for fk in lite_foreign_keys(lite, table)}
    assert pg_foreign_keys(pg_created) == expected


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="CAMPCTL_TEST_PG_URL is not set")
def test_queue_items_is_set_up_against_bloat(pg_created):
    options = pg_created.execute(
        "SELECT reloptions FROM pg_class WHERE oid = 'queue_items'::regclass").fetchone()[0]
    assert "fillfactor=70" in options
    assert "autovacuum_vacuum_scale_factor=0.02" in options
    # Claims and marks update only these columns: kept out of every index, they stay HOT.
    indexed = {c for t, cols, _u, _p in pg_indexes(pg_created).values() if t == "queue_items"
               for c in cols}
    assert indexed.isdisjoint({"claimed_until", "claim_token", "handover_begun"})


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="CAMPCTL_TEST_PG_URL is not set")
def test_schema_version_new_created_and_foreign(pg):
    assert schema_pg.schema_version(pg) is None
    schema_pg.create_schema(pg)
    assert schema_pg.schema_version(pg) == schema_pg.PG_SCHEMA_VERSION == SCHEMA_VERSION
    pg.rollback()  # DDL is transactional: nothing of it is left
    assert schema_pg.schema_version(pg) is None
    pg.execute("CREATE TABLE somebody_elses (x int)")
    with pytest.raises(schema_pg.ForeignSchemaError, match="no campctl_schema"):
        schema_pg.schema_version(pg)


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="CAMPCTL_TEST_PG_URL is not set")
def test_migrate_from_the_current_version_changes_nothing(pg_created):
    schema_pg.migrate(pg_created, schema_pg.PG_SCHEMA_VERSION)
    assert schema_pg.schema_version(pg_created) == schema_pg.PG_SCHEMA_VERSION
    with pytest.raises(ValueError, match="version 1"):
        schema_pg.migrate(pg_created, 1)
    with pytest.raises(ValueError):
        schema_pg.migrate(pg_created, schema_pg.PG_SCHEMA_VERSION + 1)


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="CAMPCTL_TEST_PG_URL is not set")
def test_reset_empties_tables_restarts_ids_and_keeps_the_version(pg_created):
    db = pg_created
    db.execute("INSERT INTO contacts (external_id, attrs, created_at, updated_at) "
               "VALUES ('c1', '{\"a\": 1}', 't', 't'), ('c2', '{}', 't', 't')")
    db.execute("INSERT INTO contact_groups (grp, contact_id) "
               "SELECT 'g', id FROM contacts")
    db.execute("INSERT INTO outbox (message_id, channel, sent_at) VALUES ('m1', 'email', 't')")
    assert db.execute("SELECT attrs_j -> 'a' FROM contacts WHERE id = 1").fetchone()[0] == 1
    db.commit()
    db.execute("; ".join(schema_pg.reset_statements()))
    db.commit()
    for table in schema_pg.PG_TABLES:
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    assert schema_pg.schema_version(db) == schema_pg.PG_SCHEMA_VERSION
    db.execute("INSERT INTO contacts (external_id, created_at, updated_at) VALUES ('c3', 't', 't')")
    db.execute("INSERT INTO outbox (message_id, channel, sent_at) VALUES ('m2', 'email', 't')")
    assert db.execute("SELECT id, attrs FROM contacts").fetchall() == [(1, "{}")]
    assert db.execute("SELECT rowid FROM outbox").fetchall() == [(1,)]


@pytest.mark.pg
@pytest.mark.skipif(not PG_URL, reason="CAMPCTL_TEST_PG_URL is not set")
def test_text_sorts_as_on_sqlite(lite, pg_created):
    # COLLATE "C": byte order, as SQLite's BINARY (the default collation sorts these otherwise).
    names = ["b", "-y", "B", "_x", "a", "a b", "ä", "Z9"]
    for conn, mark in ((lite, "?"), (pg_created, "%s")):
        for name in names:
            conn.execute(f"INSERT INTO config (key, value) VALUES ({mark}, 'v')", (name,))
    lite_order = [r[0] for r in lite.execute("SELECT key FROM config ORDER BY key")]
    pg_order = [r[0] for r in pg_created.execute("SELECT key FROM config ORDER BY key")]
    assert pg_order == lite_order
