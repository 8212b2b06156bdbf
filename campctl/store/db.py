"""The only place that opens the state file: checks, pragmas, migrations and transactions."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from campctl.errors import StateFileError, StateLocked
from campctl.store.dialect import SQLITE, Dialect, PgError
from campctl.store.location import PgUrl, SqlitePath, StateLocation, parse_state
from campctl.store.schema import MIGRATIONS, SCHEMA_VERSION

SQLITE_HEADER = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT_MS = 5000


# What "the database said no" is, on either store (the CLI's exit 4, the tick's report).
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError, PgError)


class Database:
    """A connection in autocommit mode; writes happen only inside `atomic()`.

    `atomic()` opens `BEGIN IMMEDIATE` (a deferred BEGIN that later writes fails at once with
    'database is locked', ignoring the busy timeout); nested calls become savepoints.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path,
                 busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.conn = conn
        self.path = path
        self.location: StateLocation = SqlitePath(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._depth = 0
        self._gate: int | None = None
        self._gate_held = False

    d: Dialect = SQLITE

    @property
    def base_dir(self) -> Path:
        """Where relative paths in definitions (outbox folders) start: the state file's folder."""
        return self.path.parent

    def execute(self, sql: str, params: tuple | dict | list = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise _translate(exc, self.path) from exc

    def executemany(self, sql: str, rows) -> sqlite3.Cursor:
        try:
            return self.conn.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            raise _translate(exc, self.path) from exc

    def query(self, sql: str, params: tuple | dict | list = ()) -> list[sqlite3.Row]:
        return self.execute(sql, params).fetchall()

    def stream(self, sql: str, params: tuple | dict | list = ()) -> Iterator[sqlite3.Row]:
        """The rows one at a time, never all of them in memory (SQLite's cursor steps through
        the result as it is read). Read it to the end, or close it, inside the transaction."""
        yield from self.execute(sql, params)

    def one(self, sql: str, params: tuple | dict | list = ()) -> sqlite3.Row | None:
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: tuple | dict | list = ()):
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    # The claims of one channel per durable commit of hand-over marks (see engine.delivery):
    # 0 means `connections`, each record transaction marking the next message.
    handover_window = 0

    @contextlib.contextmanager
    def atomic(self, *, wait_ms: int | None = None, shared: bool = False,
               durable: bool = True) -> Iterator[Database]:
        """One write transaction (outermost) or a savepoint (nested).

        `wait_ms` shortens the wait for the write lock below the busy timeout: StateLocked is
        raised after it (used by a tick that must not sit on a lock another process waits for).
        `shared` (the delivery path: claim, hand-over marks, records, releases) and `durable`
        (False: a record whose loss the item's lease and key cover) matter on PostgreSQL only:
        on SQLite every transaction holds the one write lock, and commits are cheap.
        """
        if self._depth == 0:
            if wait_ms is None:
                self.execute("BEGIN IMMEDIATE")
            else:
                self.conn.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
                try:
                    self.execute("BEGIN IMMEDIATE")
                finally:
                    self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                self._release_gate()
                raise
            else:
                self._depth = 0
                try:
                    self.conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                    raise _translate(exc, self.path) from exc
                finally:
                    self._release_gate()
        else:
            name = f"sp{self._depth}"
            self.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                raise
            else:
                self._depth -= 1
                self.conn.execute(f"RELEASE {name}")

    # --- the hand-over gate -----------------------------------------------------------------
    # A delivery hands a claimed batch to a channel outside any transaction. So that a pause
    # never commits while a batch it should hold is on its way, every hand-over holds a shared
    # lock on `<state>-lock`, taken inside the claim transaction; a pause takes it exclusively
    # inside its own transaction. Holding the write lock, the pause stops new claims; holding the
    # gate, it waits for the batches claimed before it. The kernel drops the lock of a killed
    # process, so a crashed tick never blocks a pause.
    def _gate_fd(self) -> int:
        if self._gate is None:
            import fcntl  # noqa: F401 - fail here, not halfway, where there is no fcntl

            lock = self.path.with_name(self.path.name + "-lock")
            try:
                self._gate = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StateFileError(f"cannot open lock file {lock}: {exc.strerror}") from exc
        return self._gate

    def lock_channel(self, channel: str) -> None:
        """Inside a transaction: serialize with every other claim of `channel` until it ends
        (rate windows). On SQLite the write lock already does."""

    def lock_caps(self) -> None:
        """Inside a transaction: serialize with every other claim that applies frequency caps
        until it ends (a contact's last slot is given once). On SQLite the write lock already
        does."""

    def hand_over_begin(self) -> None:
        """Hold the gate shared (call inside the claim transaction); see `hand_over_end`."""
        import fcntl

        fcntl.flock(self._gate_fd(), fcntl.LOCK_SH)

    def hand_over_end(self) -> None:
        if self._gate is not None:
            import fcntl

            fcntl.flock(self._gate, fcntl.LOCK_UN)

    def wait_for_hand_overs(self) -> None:
        """Inside a write transaction: wait (up to the busy timeout) until no batch is being
        handed over, and keep others from starting one until this transaction ends.

        Raises StateLocked when a hand-over outlasts the busy timeout (nothing is changed)."""
        import fcntl

        if not self.in_transaction:
            raise RuntimeError("wait_for_hand_overs needs a transaction")
        fd = self._gate_fd()
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self.gate_busy() from None
                time.sleep(0.005)
        self._gate_held = True

    def gate_busy(self) -> StateLocked:
        """Another process kept handing messages over for longer than the busy timeout."""
        return StateLocked(
            f"another campctl process has been handing messages to a channel for longer than "
            f"the busy timeout ({self.busy_timeout_ms} ms); nothing was changed; try again, "
            "or raise CAMPCTL_BUSY_TIMEOUT (milliseconds)")

    def _release_gate(self) -> None:
        # The exclusive gate ends with the transaction; as with flock, where the exclusive lock
        # replaced this process's shared one, the shared one goes too (both stores).
        if self._gate_held:
            self._gate_held = False
            self.hand_over_end()

    def close(self) -> None:
        self.conn.close()
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None


def _translate(exc: sqlite3.OperationalError, path: Path) -> Exception:
    """An OperationalError that is a state-file problem, as a StateFileError (exit 4)."""
    text = str(exc).lower()
    code = getattr(exc, "sqlite_errorname", "") or ""
    if "locked" in text or "busy" in text:
        return StateLocked(
            f"state file {path} is locked by another campctl process for longer than the busy "
            "timeout; try again, or raise CAMPCTL_BUSY_TIMEOUT (milliseconds)"
        )
    if "readonly" in text or "read-only" in text or code.startswith("SQLITE_READONLY") or (
        _read_only_fs(path) and (code.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR")))
    ):
        return StateFileError(
            f"state file {path} is read-only ({exc}); make the file and its folder writable "
            "and rerun; nothing was written"
        )
    if "disk is full" in text or code.startswith("SQLITE_FULL"):
        return StateFileError(
            f"cannot write state file {path}: the disk is full or a file size limit was "
            f"reached ({exc}); free space and rerun; the interrupted transaction was rolled back"
        )
    if "disk i/o" in text or code.startswith("SQLITE_IOERR"):
        return StateFileError(
            f"cannot write state file {path}: input/output error ({exc}; a full disk, a file "
            "size limit or a failing disk); fix it and rerun; the interrupted transaction was "
            "rolled back"
        )
    if code.startswith("SQLITE_CANTOPEN"):
        return StateFileError(
            f"cannot open state file {path} ({exc}); its folder must be readable and writable "
            "(SQLite keeps -wal and -shm files beside it)"
        )
    return exc


def _read_only_fs(path: Path) -> bool:
    """True when the state file's folder is on a read-only mount (root ignores file modes)."""
    try:
        return bool(os.statvfs(os.path.abspath(path.parent)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror}") from exc
    if header != SQLITE_HEADER:
        raise StateFileError(
            f"{path} is not a campctl state file (not an SQLite database); it was left untouched"
        )


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite opens it, so -wal and -shm inherit the mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def open_state(
    location: StateLocation | str | os.PathLike,
    *,
    create: bool,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    migrate: bool = True,
) -> Database:
    """Open the state wherever it is: an SQLite file (`open_db`) or a PostgreSQL URL."""
    if not isinstance(location, SqlitePath | PgUrl):
        location = parse_state(os.fspath(location))
    if isinstance(location, SqlitePath):
        return open_db(location.path, create=create, busy_timeout_ms=busy_timeout_ms,
                       migrate=migrate)
    try:
        from campctl.store.pg import open_pg
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StateFileError(
            f"a PostgreSQL state ({location.display()}) needs psycopg 3: "
            "pip install 'campctl[postgres]'") from None
    return open_pg(location, create=create, busy_timeout_ms=busy_timeout_ms, migrate=migrate)


def open_db(
    path: str | os.PathLike,
    *,
    create: bool,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    migrate: bool = True,
) -> Database:
    """Open (and with `create`, create) the state file, refusing foreign or newer files."""
    if isinstance(parse_state(os.fspath(path)), PgUrl):
        # Not a file: opening it as one made directories named after the URL.
        raise ValueError("open_db takes an SQLite path; open a URL with open_state")
    path = Path(path)
    _prepare_file(path, create=create)
    conn = _connect(path, busy_timeout_ms)
    db = Database(conn, path, busy_timeout_ms)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        version = _check_version(conn, path)
        _set_pragmas(conn)
        if version < SCHEMA_VERSION and migrate:
            _migrate(db, version)
    except sqlite3.DatabaseError as exc:
        conn.close()
        translated = _translate(exc, path) if isinstance(exc, sqlite3.OperationalError) else None
        if isinstance(translated, StateFileError):
            raise translated from exc
        raise StateFileError(f"state file {path} is corrupt or unreadable: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return db


def _prepare_file(path: Path, *, create: bool) -> None:
    """Before SQLite sees the path: create a missing file 0600 (with `create`), or check that
    an existing one is an SQLite file, or an empty one that a writing command may initialise."""
    if not path.exists():
        if not create:
            raise StateFileError(f"no state file at {path} (run 'campctl init')")
        try:
            _create_private(path)
        except FileExistsError:
            pass  # another process created it meanwhile: check it like any existing file
        except OSError as exc:
            raise StateFileError(f"cannot create state file {path}: {exc.strerror}") from exc
        else:
            return
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror}") from exc
    if size > 0:
        _check_header(path)
    elif not create:
        # Opening it would make it a database (WAL switch, schema): only commands that
        # write may do that.
        raise StateFileError(
            f"state file {path} is empty (0 bytes) and was left untouched; run 'campctl "
            "init' to initialise it, or point --state at the right file")
    else:
        # A zero-length file is what another campctl process leaves between creating the
        # file and committing its schema, or one made by `touch`: SQLite treats it as an
        # empty database and the migration (under the write lock) initialises it exactly
        # once. It is made private first so that -wal and -shm inherit 0600.
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            str(path), isolation_level=None, timeout=busy_timeout_ms / 1000, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StateFileError(f"cannot open state file {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; refuses a newer or a foreign file before anything (even the
    WAL switch) writes to it."""
    # Version and tables read in one snapshot: a concurrent creator may commit in between.
    conn.execute("BEGIN")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        foreign = (version > 0 and not _is_campctl(conn)) or (version == 0 and _has_tables(conn))
    finally:
        # An I/O error may have ended the transaction already: COMMIT would then hide it.
        if conn.in_transaction:
            conn.execute("COMMIT")
    if version > SCHEMA_VERSION:
        raise StateFileError(
            f"state file {path} has schema version {version}, newer than this campctl "
            f"understands ({SCHEMA_VERSION}); upgrade campctl"
        )
    if foreign:
        raise StateFileError(f"{path} is an SQLite file but not a campctl state file")
    return version


def _set_pragmas(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0] > 0


def _is_campctl(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='objects'"
        ).fetchone()[0]
        == 1
    )


def _migrate(db: Database, current: int) -> None:
    try:
        with db.atomic():
            # Re-read inside the write lock: another process may have migrated meanwhile.
            current = db.scalar("PRAGMA user_version")
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as exc:
        raise StateFileError(
            f"migrating state file {db.path} from schema version {current} failed ({exc}); "
            "the file was left unchanged"
        ) from exc


def schema_version(db: Database) -> int:
    if db.d.is_postgres:
        return int(db.scalar("SELECT version FROM campctl_schema"))
    return db.scalar("PRAGMA user_version")


def backup_to(db: Database, target: str | os.PathLike) -> int:
    """Copy the live state file through SQLite's backup API (safe while others write).

    The copy is created 0600 like the state file; returns its size in bytes.
    """
    if db.d.is_postgres:
        raise StateFileError(
            "backup copies an SQLite state file; for PostgreSQL use pg_dump (pg_dump -Fc)")
    target = Path(target)
    if target.exists():
        raise StateFileError(f"{target} already exists; choose a new backup path")
    _create_private(target)
    try:
        dest = sqlite3.connect(str(target))
        try:
            db.conn.backup(dest)
            dest.execute("PRAGMA journal_mode = DELETE")
        finally:
            dest.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise StateFileError(f"backup to {target} failed: {exc}") from exc
    return target.stat().st_size
