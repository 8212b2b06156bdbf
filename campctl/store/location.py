"""Where the state lives: an SQLite file (the default) or a PostgreSQL database (a URL).

`parse_state(text)` reads `--state`/`CAMPCTL_STATE`: `postgresql://` or `postgres://` selects
PostgreSQL, anything else is an SQLite path as it always was. A URL's password is kept for the
connection only: `display()` (what messages and JSON show) never contains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

PG_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class SqlitePath:
    """A state file on this machine."""

    path: Path
    is_postgres: ClassVar[bool] = False

    def display(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def __str__(self) -> str:
        return self.display()


@dataclass(frozen=True)
class PgUrl:
    """A PostgreSQL database, as a libpq URL (credentials: PGPASSWORD, ~/.pgpass, PGSSLMODE)."""

    url: str = field(repr=False)
    is_postgres: ClassVar[bool] = True

    def display(self) -> str:
        """The URL without its password (user, host, port, database and options stay)."""
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}@{hostport}" if user else hostport
        return urlunsplit((parts.scheme, netloc, parts.path, _without_password(parts.query),
                           parts.fragment))

    def exists(self) -> bool:
        """Unknown without connecting: the database says so when it is opened."""
        return True

    @property
    def host(self) -> str:
        parts = urlsplit(self.url)
        try:
            host = parts.hostname
        except ValueError:
            host = None
        return unquote(host) if host else "localhost"

    @property
    def port(self) -> int:
        try:
            return urlsplit(self.url).port or 5432
        except ValueError:
            return 5432

    @property
    def where(self) -> str:
        """host:port, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def dbname(self) -> str:
        return unquote(urlsplit(self.url).path.lstrip("/"))

    def __repr__(self) -> str:
        return f"PgUrl({self.display()!r})"

    def __str__(self) -> str:
        return self.display()


StateLocation = SqlitePath | PgUrl


def _without_password(query: str) -> str:
    if not query:
        return query
    kept = [p for p in query.split("&") if p.split("=", 1)[0].lower() != "password"]
    return "&".join(kept)


def is_pg_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in PG_SCHEMES


def parse_state(text: str | Path) -> StateLocation:
    """`postgresql://…`/`postgres://…` is a PostgreSQL state; anything else an SQLite path."""
    if isinstance(text, Path):
        return SqlitePath(text)
    if is_pg_url(text):
        return PgUrl(text)
    return SqlitePath(Path(text))
