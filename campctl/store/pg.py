"""A PostgreSQL state: `PgDatabase`, the one module that imports psycopg.

Every transaction is READ COMMITTED and starts by taking one transaction-level advisory lock
(SERIAL), the equivalent of `BEGIN IMMEDIATE`. SERIAL is a reader/writer lock: the delivery path
(claims, hand-over marks, records, releases: `atomic(shared=True)`) takes it shared, so that
several hosts deliver at once (claims use FOR UPDATE SKIP LOCKED, a rated channel's claims are
serialized by `lock_channel`); everything else takes it exclusively, as on SQLite. The hand-over
gate is a session-level shared advisory lock that a pause takes exclusively (as the flock gate),
after SERIAL: a waiting exclusive request queues new shared ones behind it, so pauses never
starve.
The store's SQL is translated once per text (`dialect.to_pyformat`), rows are `dialect.Row`.
"""

from __future__ import annotations

import contextlib
import itertools
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.numeric import Int8Dumper

from campctl.errors import NoState, StateFileError, StateLocked
from campctl.store.db import DEFAULT_BUSY_TIMEOUT_MS, Database
from campctl.store.dialect import PG, PgError, numbered_params, row_class, to_pyformat
from campctl.store.location import PgUrl

# Advisory lock keys (two-int form): (namespace of this schema, what).
SERIAL = 1
GATE = 2
RATE = 3  # + crc32(channel): one key per rated channel
CAPS = 4  # every claim that applies frequency caps
_NS_BASE = 0x63616D70  # "camp"

# Rows a streamed (server-side) cursor fetches per round trip.
STREAM_ITERSIZE = 2000
_stream_names = itertools.count(1)

# Server settings each connection asks for: a dead host's locks go after ~25 s of missed
# keepalives; a transaction left open by a hung process ends after a minute.
_SERVER_OPTIONS = ("-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
                   "-c tcp_keepalives_count=3 -c idle_in_transaction_session_timeout=60s")


def _lock_sql(function: str) -> str:
    return f"SELECT {function}(CAST(%s AS integer), CAST(%s AS integer))"


def _row_factory(cursor: Any):
    names = tuple(c.name for c in cursor.description or ())
    cls = row_class(names)
    return cls


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def _params(params: Any, numbered: bool) -> Any:
    if numbered:
        params = numbered_params(params)
    if isinstance(params, Mapping):
        return {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
    return [int(v) if isinstance(v, bool) else v for v in params]


class PgDatabase(Database):
    """A psycopg connection in autocommit mode, with `Database`'s API (it subclasses it so that
    the store's type hints hold; every SQLite-specific method is replaced here)."""

    d = PG
    # Hand-over marks are durable, records not (synchronous_commit off): one durable commit
    # marks this many messages ahead, so that each message costs about one async round trip.
    handover_window = 16

    def __init__(self, conn: psycopg.Connection, location: PgUrl,
                 busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, ns: int = _NS_BASE) -> None:
        self.conn = None  # type: ignore[assignment]  # sqlite3's; see pgconn
        self.pgconn = conn
        self.location: PgUrl = location
        self.path = Path("postgresql")
        self.busy_timeout_ms = busy_timeout_ms
        self.ns = ns
        self._depth = 0
        self._gate = None
        self._gate_held = False
        self._shared_held = False
        self.created = False

    @property
    def base_dir(self) -> Path:
        return Path.cwd()

    # --- statements ---------------------------------------------------------------------------
    def execute(self, sql: str, params: tuple | dict | list = ()) -> Any:
        text, numbered = to_pyformat(sql)
        try:
            return self.pgconn.execute(text, _params(params, numbered))
        except psycopg.Error as exc:
            raise self.translate(exc) from exc

    def executemany(self, sql: str, rows) -> Any:
        text, numbered = to_pyformat(sql)
        cur = self.pgconn.cursor()
        try:
            cur.executemany(text, [_params(r, numbered) for r in rows])
        except psycopg.Error as exc:
            raise self.translate(exc) from exc
        return cur

    def stream(self, sql: str, params: tuple | dict | list = ()) -> Iterator[Any]:
        """A server-side (named) cursor, fetched STREAM_ITERSIZE rows at a time, so that a
        large result is never held whole here (a plain psycopg cursor fetches all of it).
        Inside a transaction it lives in it; outside one (autocommit) it is declared WITH HOLD,
        the only kind autocommit allows, and the server keeps its rows until it is closed."""
        text, numbered = to_pyformat(sql)
        name = f"campctl_stream_{next(_stream_names)}"
        try:
            with self.pgconn.cursor(name=name, withhold=not self._depth) as cur:
                cur.itersize = STREAM_ITERSIZE
                cur.execute(text, _params(params, numbered))
                yield from cur
        except psycopg.Error as exc:
            raise self.translate(exc) from exc

    def _raw(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self.pgconn.execute(sql, params)
        except psycopg.Error as exc:
            raise self.translate(exc) from exc

    # --- transactions ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic(self, *, wait_ms: int | None = None, shared: bool = False,
               durable: bool = True) -> Iterator[Database]:
        if self._depth:
            name = f"sp{self._depth}"
            self._raw(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                with contextlib.suppress(psycopg.Error):
                    self.pgconn.execute(f"ROLLBACK TO {name}")
                    self.pgconn.execute(f"RELEASE {name}")
                raise
            else:
                self._depth -= 1
                self._raw(f"RELEASE {name}")
            return
        self._begin(self.busy_timeout_ms if wait_ms is None else wait_ms, shared=shared,
                    durable=durable)
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self._rollback()
            self._release_gate()
            raise
        else:
            self._depth = 0
            try:
                self.pgconn.execute("COMMIT")
            except psycopg.Error as exc:
                self._rollback()
                raise self.translate(exc) from exc
            finally:
                self._release_gate()

    def _begin(self, wait_ms: int, *, shared: bool = False, durable: bool = True) -> None:
        """BEGIN (READ COMMITTED) and the SERIAL lock (shared or exclusive), waiting at most
        `wait_ms`; not `durable`: this commit does not wait for its WAL flush."""
        lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        try:
            self.pgconn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            self.pgconn.execute(f"SET LOCAL lock_timeout = '{max(int(wait_ms), 1)}ms'")
            self.pgconn.execute(_lock_sql(lock), (self.ns, SERIAL))
            busy = max(int(self.busy_timeout_ms), 1)
            self.pgconn.execute(f"SET LOCAL lock_timeout = '{busy}ms'")
            if not durable:
                # A server crash may lose this commit (never a campctl or host crash: the
                # server flushes it within 3 x wal_writer_delay); see docs/delivery.md.
                self.pgconn.execute("SET LOCAL synchronous_commit = off")
        except psycopg.Error as exc:
            self._rollback()
            raise self.translate(exc) from exc

    def _rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.pgconn.execute("ROLLBACK")

    def lock_channel(self, channel: str) -> None:
        """Serialize the claims of `channel` across hosts until this transaction ends."""
        if not self.in_transaction:
            raise RuntimeError("lock_channel needs a transaction")
        key = _int32(RATE + zlib.crc32(channel.encode()))
        self._raw(_lock_sql("pg_advisory_xact_lock"), (self.ns, key))

    def lock_caps(self) -> None:
        """Serialize the claims that apply frequency caps (any channel) across hosts until this
        transaction ends: the counts a claim reads stay true until it commits."""
        if not self.in_transaction:
            raise RuntimeError("lock_caps needs a transaction")
        self._raw(_lock_sql("pg_advisory_xact_lock"), (self.ns, CAPS))

    # --- the hand-over gate ---------------------------------------------------------------------
    # A session-level shared advisory lock, taken inside the claim transaction and held past
    # its COMMIT until the batch is handed over; a pause takes it exclusively at transaction
    # level. The server drops a killed session's locks at once (a dead host's after keepalives).
    def hand_over_begin(self) -> None:
        if not self._shared_held:
            self._raw(_lock_sql("pg_advisory_lock_shared"), (self.ns, GATE))
            self._shared_held = True

    def hand_over_end(self) -> None:
        if self._shared_held:
            self._shared_held = False
            with contextlib.suppress(psycopg.Error):  # a broken connection has lost it anyway
                self.pgconn.execute(_lock_sql("pg_advisory_unlock_shared"),
                                  (self.ns, GATE))

    def wait_for_hand_overs(self) -> None:
        if not self.in_transaction:
            raise RuntimeError("wait_for_hand_overs needs a transaction")
        self._raw("SAVEPOINT gate")
        try:
            self._raw(_lock_sql("pg_advisory_xact_lock"), (self.ns, GATE))
        except StateLocked:
            with contextlib.suppress(psycopg.Error):
                self.pgconn.execute("ROLLBACK TO gate")
                self.pgconn.execute("RELEASE gate")
            raise self.gate_busy() from None
        self._raw("RELEASE gate")
        self._gate_held = True

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.pgconn.close()

    def schema_version(self) -> int:
        return int(self.scalar("SELECT version FROM campctl_schema"))

    # --- errors ---------------------------------------------------------------------------------
    def translate(self, exc: Exception) -> Exception:
        return translate(exc, self.location)


def translate(exc: Exception, location: PgUrl) -> Exception:
    """A psycopg error as campctl's: state problems become StateFileError/StateLocked (exit 4),
    the rest PgError (a statement that failed: an object problem, or a bug)."""
    code = getattr(exc, "sqlstate", None) or ""
    where = location.where
    detail = " ".join(str(exc).split())
    if code in ("55P03", "57014"):
        return StateLocked(
            f"PostgreSQL state {location.display()} is locked by another campctl process for "
            "longer than the busy timeout; try again, or raise CAMPCTL_BUSY_TIMEOUT (milliseconds)")
    if code in ("40001", "40P01"):
        return StateLocked(f"PostgreSQL ended the transaction ({detail}); nothing was "
                           "changed; try again")
    if not code and isinstance(exc, psycopg.OperationalError):  # at connect: libpq's text only
        if f'database "{location.dbname}" does not exist' in detail:
            code = "3D000"
        elif "authentication failed" in detail or "password" in detail or (
                "role" in detail and "does not exist" in detail):
            code = "28000"
    if code.startswith("28"):
        return StateFileError(
            f"PostgreSQL at {where} refused the login ({detail}); set PGPASSWORD or add the "
            "password to ~/.pgpass (never into --state)")
    if code == "3D000":
        return StateFileError(f"PostgreSQL at {where} has no database {location.dbname!r}; "
                              f"create it with: createdb -h {location.host} -p {location.port} "
                              f"{location.dbname}")
    if code == "25006":
        return StateFileError(f"PostgreSQL at {where} is read-only (a standby?); point --state "
                              "at the primary; nothing was written")
    if code.startswith("53"):
        return StateFileError(f"PostgreSQL at {where} is out of resources ({detail}); the "
                              "interrupted transaction was rolled back")
    if code.startswith(("08", "57P")) or (
            isinstance(exc, psycopg.OperationalError) and not code):
        return StateFileError(f"cannot reach PostgreSQL at {where}: {detail}")
    if isinstance(exc, psycopg.Error):
        error = PgError(f"{code}: {detail}" if code else detail)
        error.sqlstate = code
        return error
    return exc


def lock_namespace(schema: str) -> int:
    return _int32(_NS_BASE ^ zlib.crc32(schema.encode()))


def connect(location: PgUrl) -> psycopg.Connection:
    params = conninfo_to_dict(location.url)
    params.setdefault("application_name", "campctl")
    params.setdefault("connect_timeout", "10")
    params.setdefault("keepalives", "1")
    params.setdefault("keepalives_idle", "10")
    params.setdefault("keepalives_interval", "5")
    params.setdefault("keepalives_count", "3")
    given = str(params.get("options") or "")
    params["options"] = f"{given} {_SERVER_OPTIONS}".strip()
    try:
        conn = psycopg.connect(make_conninfo("", **params), autocommit=True)
    except psycopg.Error as exc:
        raise translate(exc, location) from exc
    conn.row_factory = _row_factory
    conn.adapters.register_dumper(int, Int8Dumper)
    return conn


def open_pg(location: PgUrl, *, create: bool, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
            migrate: bool = True) -> PgDatabase:
    """Connect; create the schema (`create`), migrate an older one, refuse a newer or foreign
    one. Schema changes run in one transaction under the SERIAL lock."""
    from campctl.store import schema_pg

    conn = connect(location)
    db = PgDatabase(conn, location, busy_timeout_ms)
    try:
        db.ns = lock_namespace(str(db.scalar("SELECT current_schema()")))
        version = _read_version(db)
        if _needs_change(db, version, create=create, migrate=migrate):
            with db.atomic():
                version = _read_version(db)  # another process may have done it meanwhile
                if _needs_change(db, version, create=create, migrate=migrate):
                    if version is None:
                        schema_pg.create_schema(conn)
                        db.created = True
                    else:
                        schema_pg.migrate(conn, version)
    except psycopg.Error as exc:
        db.close()
        raise StateFileError(f"PostgreSQL state {location.display()}: schema change failed "
                             f"({' '.join(str(exc).split())}); nothing was changed") from exc
    except BaseException:
        db.close()
        raise
    return db


def _read_version(db: PgDatabase) -> int | None:
    """The schema version, None for an empty schema; refuses a foreign one."""
    from campctl.store import schema_pg

    try:
        return schema_pg.schema_version(db.pgconn)
    except schema_pg.ForeignSchemaError as exc:
        raise StateFileError(f"{db.location.display()} is not a campctl state ({exc}); it was "
                             "left untouched") from None
    except psycopg.Error as exc:
        raise db.translate(exc) from exc


def _needs_change(db: PgDatabase, version: int | None, *, create: bool, migrate: bool) -> bool:
    from campctl.store.schema_pg import PG_SCHEMA_VERSION

    where = db.location.display()
    if version is None:
        if not create:
            raise NoState(f"no campctl state in {where} (run 'campctl init')")
        return True
    if version > PG_SCHEMA_VERSION:
        raise StateFileError(
            f"PostgreSQL state {where} has schema version {version}, newer than this campctl "
            f"understands ({PG_SCHEMA_VERSION}); upgrade campctl")
    return version < PG_SCHEMA_VERSION and migrate
