"""What differs between SQLite and PostgreSQL SQL, kept in one place (no psycopg import here).

- `to_pyformat(sql)`: the store's SQLite placeholders (`?`, `?N`, `:name`) as psycopg's
  (`%s`, `%(pN)s`, `%(name)s`), with a literal `%` doubled; cached per SQL text.
- `Row`: a tuple with `keys()`, `row["col"]` and `dict(row)`, as `sqlite3.Row`.
- `Dialect` (`db.d`): the fragments whose text differs, for the store modules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar


class PgError(Exception):
    """A PostgreSQL statement failed for a reason campctl does not map (store.pg raises it in
    place of psycopg's own errors, so that nothing outside store/pg.py needs psycopg)."""

    sqlstate: str = ""


# A quoted literal or identifier (copied as is, `%` doubled), a `::` cast, `?N`, `?`,
# `:name`, or a bare `%`.
_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|\?(\d+)|\?|(?<![\w:]):([A-Za-z_]\w*)|%")


@functools.lru_cache(maxsize=4096)
def to_pyformat(sql: str) -> tuple[str, bool]:
    """SQLite SQL (qmark, numeric `?N` or named `:name`) as psycopg SQL.

    The flag is True when `?N` was used: the caller then passes `numbered_params(params)`.
    """
    numbered = False

    def sub(m: re.Match[str]) -> str:
        nonlocal numbered
        t = m.group(0)
        if t[0] in "'\"" or t == "::":
            return t.replace("%", "%%")
        if m.group(1):
            numbered = True
            return f"%(p{int(m.group(1))})s"
        if t == "?":
            return "%s"
        if m.group(2):
            return f"%({m.group(2)})s"
        return "%%"

    return _TOKENS.sub(sub, sql), numbered


def numbered_params(params: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """Positional parameters for SQL translated from `?N` (1-based, as SQLite)."""
    if isinstance(params, Mapping):
        return dict(params)
    return {f"p{i + 1}": value for i, value in enumerate(params)}


class Row(tuple):
    """A result row as `sqlite3.Row` gives it: by position, by column name, `keys()`, `dict()`."""

    __slots__ = ()
    _names: ClassVar[tuple[str, ...]] = ()
    _index: ClassVar[dict[str, int]] = {}

    def keys(self) -> list[str]:
        return list(self._names)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                key = self._index[key]
            except KeyError:
                raise IndexError(f"No item with that key: {key!r}") from None
        return tuple.__getitem__(self, key)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self, strict=True))!r})"


@functools.lru_cache(maxsize=1024)
def row_class(names: tuple[str, ...]) -> type[Row]:
    """The Row subclass for one set of column names (cached)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
        index.setdefault(name.lower(), i)
    return type("Row", (Row,), {"__slots__": (), "_names": names, "_index": index})


def make_row(names: Sequence[str], values: Iterable[Any]) -> Row:
    return row_class(tuple(names))(values)


class Dialect:
    """SQL fragments for SQLite (this class) and PostgreSQL (`PG`); the store reads `db.d`."""

    name: ClassVar[str] = "sqlite"
    is_postgres: ClassVar[bool] = False

    # The claim's subquery (store.delivery.claim): its channel column, order and row locks.
    # SQLite's write lock serializes claims, and its planner reads the run's due rows in rowid
    # order without a sort: `+` keeps it on the run's index, off queue_items_claim (channel, id),
    # which would walk the queued items of every run of the channel (a paused run's too).
    claim_channel: ClassVar[str] = "+q.channel"
    claim_order: ClassVar[str] = ""
    claim_lock: ClassVar[str] = ""

    def ids_in(self, column: str) -> str:
        """`column` is one of the ids passed with `ids_param` as one parameter."""
        return f"{column} IN (SELECT value FROM json_each(?))"

    def ids_param(self, ids: Iterable[int]) -> Any:
        import json  # not at module level: the fast no-op tick imports this module (PgError)

        return json.dumps([int(i) for i in ids])

    def is_(self, left: str, right: str) -> str:
        """Null-safe equality."""
        return f"{left} IS {right}"

    def is_not(self, left: str, right: str) -> str:
        return f"{left} IS NOT {right}"

    def group_concat(self, expr: str, sep: str = "?") -> str:
        return f"group_concat({expr}, {sep})"

    def contains(self, haystack: str, needle: str = "?") -> str:
        """True when text `needle` occurs in `haystack` (case-sensitive)."""
        return f"instr({haystack}, {needle}) > 0"

    def last_id(self, table: str) -> str:
        """SQL giving the id of the row this connection inserted last into `table`."""
        return "SELECT last_insert_rowid()"

    def json_field(self, column: str, path: Sequence[str]) -> str:
        """The text/number at `path` (keys) inside a JSON text column, as SQL."""
        return f"json_extract({column}, '$." + ".".join(path) + "')"

    def in_doubt(self, prefix: str, lease_s: int) -> str:
        """True for a queue item that may have reached its channel although no outcome was
        recorded (`handover_begun`; prefix: the table alias with its dot). On SQLite every mark
        is taken just before its message goes: a mark is a hand-over begun."""
        return f"{prefix}handover_begun <> 0"


class PgDialect(Dialect):
    name: ClassVar[str] = "postgresql"
    is_postgres: ClassVar[bool] = True
    # Claims run side by side under the shared SERIAL lock: each skips the rows another claim
    # holds; the order follows the partial index queue_items_claim (channel, id).
    claim_channel: ClassVar[str] = "q.channel"
    claim_order: ClassVar[str] = " ORDER BY q.id"
    claim_lock: ClassVar[str] = " FOR UPDATE OF q SKIP LOCKED"

    def ids_in(self, column: str) -> str:
        return f"{column} = ANY(?)"

    def ids_param(self, ids: Iterable[int]) -> Any:
        return [int(i) for i in ids]

    def is_(self, left: str, right: str) -> str:
        return f"{left} IS NOT DISTINCT FROM {right}"

    def is_not(self, left: str, right: str) -> str:
        return f"{left} IS DISTINCT FROM {right}"

    def group_concat(self, expr: str, sep: str = "?") -> str:
        return f"string_agg({expr}, {sep})"

    def contains(self, haystack: str, needle: str = "?") -> str:
        return f"strpos({haystack}, {needle}) > 0"

    def last_id(self, table: str) -> str:
        return f"SELECT currval(pg_get_serial_sequence('{table}', 'id'))"

    def json_field(self, column: str, path: Sequence[str]) -> str:
        return f"(CAST({column} AS jsonb) #>> '{{" + ",".join(path) + "}')"

    def in_doubt(self, prefix: str, lease_s: int) -> str:
        """2: the message was about to go (an asynchronous commit just before it went); 1: a
        mark taken ahead in one durable commit. A campctl process that dies loses no commit the
        server has, so a mark without the start never went, unless the server itself restarted
        since the claim (taken `lease_s` before `claimed_until`): its last asynchronous commits
        may be lost, and then every mark is in doubt (docs/delivery.md)."""
        p = prefix
        return (f"({p}handover_begun = 2 OR ({p}handover_begun = 1 AND ({p}claimed_until IS NULL"
                f" OR pg_postmaster_start_time() > CAST({p}claimed_until AS timestamptz)"
                f" - interval '{int(lease_s)} seconds')))")


SQLITE = Dialect()
PG = PgDialect()
