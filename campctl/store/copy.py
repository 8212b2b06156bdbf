"""`campctl state copy FROM TO`: a whole state into an empty one, SQLite or PostgreSQL either way.

The source opens like any state (and is migrated), then is read in one snapshot (SQLite: one
read transaction, which WAL keeps; PostgreSQL: REPEATABLE READ READ ONLY). The target must be
empty: an SQLite file that does not exist or has 0 bytes (written to `TO.partial`, 0600, then
renamed over it), or a PostgreSQL schema with no tables or an all-empty campctl schema (written
in one transaction, the schema's DDL included). Tables go in `PG_TABLES` order (foreign-key
safe), each by id; the outbox by its rowid, which is copied. Ids never come back: PostgreSQL's
sequences are set to greatest(max(id), SQLite's `sqlite_sequence`), SQLite's `sqlite_sequence`
rows to what the sequences had handed out. Messages show locations without their password.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campctl.errors import StateFileError
from campctl.store.db import DEFAULT_BUSY_TIMEOUT_MS, Database, open_db, open_state
from campctl.store.location import PgUrl, SqlitePath, StateLocation
from campctl.store.schema_pg import IDENTITY_COLUMNS, PG_ONLY_COLUMNS, PG_TABLES

_BATCH = 1000
# How many rows holding a NUL a refused copy names (the count says how many more).
_NUL_ROWS_NAMED = 20
# A \u0000 escape in JSON text: preceded by an even number of backslashes (`\\u0000` is a
# backslash followed by the text u0000, which PostgreSQL's jsonb takes).
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# The one PostgreSQL column computed from another: never written.
_GENERATED = {"contacts": ("attrs_j",)}


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int


@dataclass
class CopyResult:
    source: str
    target: str
    tables: list[TableCount] = field(default_factory=list)
    sequences: dict[str, int] = field(default_factory=dict)
    live_claims: int = 0
    source_counts: dict[str, int] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        return all(t.source == t.target for t in self.tables)


# --- opening ------------------------------------------------------------------------------------
def _pg():
    try:
        from campctl.store import pg
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StateFileError("a PostgreSQL state needs psycopg 3: "
                             "pip install 'campctl[postgres]'") from None
    return pg


@contextlib.contextmanager
def _pg_errors(location: PgUrl) -> Iterator[None]:
    """psycopg's errors as campctl's (the module never imports psycopg itself)."""
    try:
        yield
    except Exception as exc:
        translated = _pg().translate(exc, location)
        if translated is exc:
            raise
        raise translated from exc


def _columns(db: Database, table: str) -> list[str]:
    """The columns a copy carries: SQLite's (and the outbox's rowid), never generated ones."""
    if db.d.is_postgres:
        names = [r[0] for r in db.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]
        return [n for n in names if n not in _GENERATED.get(table, ())]
    names = [r[1] for r in db.query(f"PRAGMA table_info({table})")]
    return names + [c for c in PG_ONLY_COLUMNS.get(table, ()) if c not in _GENERATED.get(table, ())]


def _order(table: str, columns: list[str]) -> str:
    key = IDENTITY_COLUMNS.get(table)
    if key is not None:
        return f" ORDER BY {key}"
    return " ORDER BY " + ", ".join(str(i) for i in range(1, len(columns) + 1))


def _source_sequences(db: Database) -> dict[str, int]:
    """The last id each table handed out (its sequence: SQLite's sqlite_sequence)."""
    if not db.d.is_postgres:
        return {r[0]: int(r[1]) for r in db.query("SELECT name, seq FROM sqlite_sequence")
                if r[1] is not None}
    result = {}
    for table, column in IDENTITY_COLUMNS.items():
        seq = db.scalar("SELECT pg_get_serial_sequence(?, ?)", (table, column))
        row = db.one(f"SELECT last_value, is_called FROM {seq}")
        if row is not None:
            value = int(row[0]) if row[1] else int(row[0]) - 1
            if value > 0:
                result[table] = value
    return result


@contextlib.contextmanager
def _snapshot(db: Database) -> Iterator[None]:
    """One read-only snapshot of the source for everything the copy reads."""
    if db.d.is_postgres:
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    else:
        db.execute("BEGIN")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            db.execute("COMMIT")


def _nul_columns(columns: list[str], row: Any) -> list[str]:
    """The columns of `row` PostgreSQL cannot take: text holding a NUL, or JSON text (an object
    or array, as every JSON column holds) with a \\u0000 escape, which jsonb refuses."""
    found = []
    for name, value in zip(columns, row, strict=True):
        if isinstance(value, str) and ("\x00" in value or (
                value[:1] in "{[" and "\\u0000" in value and _JSON_NUL.search(value))):
            found.append(name)
    return found


@dataclass
class _NulRows:
    """The source rows that hold a NUL: (table, key, columns), the first few of them."""

    named: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, table: str, key: Any, columns: list[str]) -> None:
        self.count += 1
        if len(self.named) < _NUL_ROWS_NAMED:
            self.named.append(f"{table} row {key!r} ({', '.join(columns)})")

    def refuse(self) -> None:
        if not self.count:
            return
        more = self.count - len(self.named)
        raise StateFileError(
            f"{self.count} source row(s) hold a NUL character (U+0000), which PostgreSQL "
            f"cannot store: {'; '.join(self.named)}{f'; and {more} more' if more else ''}; "
            "fix or forget those rows first; nothing was written")


# --- the copy -----------------------------------------------------------------------------------
def copy_state(source: StateLocation, target: StateLocation, *, now_text: str,
               busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> CopyResult:
    """Copy every row of `source` into the empty `target`; returns both sides' counts."""
    if isinstance(target, SqlitePath):
        _check_sqlite_target(target.path)
    src = open_state(source, create=False, busy_timeout_ms=busy_timeout_ms)
    try:
        result = CopyResult(source.display(), target.display())
        if isinstance(target, PgUrl):
            _into_pg(src, target, result, now_text, busy_timeout_ms)
        else:
            _into_sqlite(src, target.path, result, now_text, busy_timeout_ms)
    finally:
        src.close()
    _count_target(target, result, busy_timeout_ms)
    return result


def _read(src: Database, result: CopyResult, now_text: str, *, nul: _NulRows | None = None):
    """Per table: (table, columns, an iterator of row batches). Inside the source snapshot.

    With `nul` (a copy into PostgreSQL) every row is checked for NUL characters; once one is
    found nothing more is yielded (the copy will be refused), but every row is still read, so
    that the refusal lists them all."""
    result.sequences = _source_sequences(src)
    result.live_claims = int(src.scalar(
        "SELECT count(*) FROM queue_items WHERE claimed_until > ?", (now_text,)))
    for table in PG_TABLES:
        columns = _columns(src, table)
        result.source_counts[table] = int(src.scalar(f"SELECT count(*) FROM {table}"))
        key = columns.index(IDENTITY_COLUMNS.get(table, columns[0]))
        sql = f"SELECT {', '.join(columns)} FROM {table}{_order(table, columns)}"

        def batches(sql=sql, table=table, columns=columns, key=key) -> Iterator[list[Any]]:
            cursor = src.execute(sql)
            while True:
                rows = cursor.fetchmany(_BATCH)
                if not rows:
                    return
                if nul is not None:
                    for row in rows:
                        if bad := _nul_columns(columns, row):
                            nul.add(table, row[key], bad)
                    if nul.count:
                        continue  # rows whose parents were left out must not be written
                yield [tuple(r) for r in rows]

        yield table, columns, batches


def _into_pg(src: Database, target: PgUrl, result: CopyResult, now_text: str,
             busy_timeout_ms: int) -> None:
    pg = _pg()
    from campctl.store import schema_pg

    with _pg_errors(target):
        conn = pg.connect(target)
    db = pg.PgDatabase(conn, target, busy_timeout_ms)
    try:
        with _pg_errors(target):
            db.ns = pg.lock_namespace(str(db.scalar("SELECT current_schema()")))
        with db.atomic(), _pg_errors(target):
            try:
                version = schema_pg.schema_version(conn)
            except schema_pg.ForeignSchemaError as exc:
                raise StateFileError(f"{target.display()} is not a campctl state ({exc}); "
                                     "it was left untouched") from None
            if version is None:
                schema_pg.create_schema(conn)
            elif version > schema_pg.PG_SCHEMA_VERSION:
                raise StateFileError(
                    f"PostgreSQL state {target.display()} has schema version {version}, newer "
                    f"than this campctl understands ({schema_pg.PG_SCHEMA_VERSION})")
            else:
                _refuse_rows(db, target.display())
                schema_pg.migrate(conn, version)
            nul = _NulRows()
            with _snapshot(src):
                for table, columns, batches in _read(src, result, now_text, nul=nul):
                    names = ", ".join(columns)
                    with conn.cursor() as cur, cur.copy(
                            f"COPY {table} ({names}) FROM STDIN") as copy:
                        for rows in batches():
                            for row in rows:
                                copy.write_row(row)
            nul.refuse()  # before the sequences: the whole transaction is rolled back
            for table, column in IDENTITY_COLUMNS.items():
                highest = max(int(db.scalar(f"SELECT coalesce(max({column}), 0) FROM {table}")),
                              result.sequences.get(table, 0))
                if highest > 0:
                    db.execute("SELECT setval(pg_get_serial_sequence(?, ?), ?, true)",
                               (table, column, highest))
    finally:
        db.close()


def _refuse_rows(db: Database, where: str) -> None:
    for table in PG_TABLES:
        if db.scalar(f"SELECT EXISTS (SELECT 1 FROM {table})"):
            raise StateFileError(f"target {where} is not empty (table {table} has rows); "
                                 "state copy writes only into an empty state; nothing was written")


def _check_sqlite_target(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateFileError(f"cannot read target {path}: {exc.strerror}") from exc
    if size > 0:
        raise StateFileError(f"target {path} is not empty ({size} bytes); state copy writes "
                             "only a new or 0-byte file; nothing was written")


def _into_sqlite(src: Database, path: Path, result: CopyResult, now_text: str,
                 busy_timeout_ms: int) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise StateFileError(f"{partial} exists (another copy running, or one interrupted); "
                             "remove it and try again") from None
    except OSError as exc:
        raise StateFileError(f"cannot create {partial}: {exc.strerror}") from exc
    done = False
    try:
        dest = open_db(partial, create=True, busy_timeout_ms=busy_timeout_ms)
        try:
            with dest.atomic(), _snapshot(src):
                for table, columns, batches in _read(src, result, now_text):
                    marks = ", ".join("?" for _ in columns)
                    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                    for rows in batches():
                        dest.executemany(sql, rows)
                autoincrement = {r[0] for r in dest.query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE "
                    "'%AUTOINCREMENT%'")}
                for table, seq in result.sequences.items():
                    if table in autoincrement:
                        # Inserting explicit ids left max(id) there already; keep the larger.
                        dest.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
                        column = IDENTITY_COLUMNS.get(table, "id")
                        dest.execute(
                            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, max(coalesce("
                            f"(SELECT max({column}) FROM {table}), 0), ?)", (table, seq))
        finally:
            dest.close()
        for suffix in ("-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)
        os.replace(partial, path)
        done = True
    finally:
        if not done:
            for suffix in ("", "-wal", "-shm"):
                Path(str(partial) + suffix).unlink(missing_ok=True)


def _count_target(target: StateLocation, result: CopyResult, busy_timeout_ms: int) -> None:
    """The target's counts, read back after the copy committed, beside the source's."""
    db = open_state(target, create=False, busy_timeout_ms=busy_timeout_ms)
    try:
        result.tables = [TableCount(t, result.source_counts.get(t, 0),
                                    int(db.scalar(f"SELECT count(*) FROM {t}")))
                         for t in PG_TABLES]
    finally:
        db.close()
