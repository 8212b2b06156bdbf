"""--state: a postgresql:// URL selects PostgreSQL, anything else is an SQLite path; a URL's
password never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from campctl.store.location import PgUrl, SqlitePath, is_pg_url, parse_state


@pytest.mark.parametrize("text", [
    "campctl.db", "/var/lib/campctl/state.db", "postgresql.db", "./postgresql:/x",
    "postgresql:/x", "mysql://u@h/db", "", "C:\\state.db", "file:state.db"])
def test_anything_but_a_pg_url_is_an_sqlite_path(text):
    location = parse_state(text)
    assert isinstance(location, SqlitePath)
    assert location.path == Path(text)
    assert not location.is_postgres
    assert location.display() == str(Path(text))


@pytest.mark.parametrize("text", [
    "postgresql://campctl@127.0.0.1:5432/campctl", "postgres://h/db", "POSTGRESQL://h/db",
    "postgresql:///campctl?host=/run/postgresql"])
def test_pg_urls(text):
    location = parse_state(text)
    assert isinstance(location, PgUrl)
    assert location.is_postgres and is_pg_url(text)
    assert location.url == text


def test_a_path_object_stays_a_path():
    assert parse_state(Path("postgresql://x")) == SqlitePath(Path("postgresql://x"))


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://campctl:s3cret@db.example:5433/camp",
     "postgresql://campctl@db.example:5433/camp"),
    ("postgresql://:s3cret@db/camp", "postgresql://db/camp"),
    ("postgresql://campctl@db/camp?password=s3cret&sslmode=require",
     "postgresql://campctl@db/camp?sslmode=require"),
    ("postgresql://u%40x:p%3As3cret@db/camp", "postgresql://u%40x@db/camp"),
    ("postgresql://campctl@db/camp", "postgresql://campctl@db/camp"),
])
def test_display_drops_the_password(url, shown):
    location = PgUrl(url)
    assert location.display() == shown
    assert "s3cret" not in location.display()
    assert "s3cret" not in repr(location) and "s3cret" not in str(location)


def test_host_port_and_database_for_messages():
    location = PgUrl("postgresql://campctl:pw@db.example:5433/camp%20x")
    assert (location.host, location.port, location.dbname) == ("db.example", 5433, "camp x")
    assert location.where == "db.example:5433"
    default = PgUrl("postgresql:///camp")
    assert (default.host, default.port) == ("localhost", 5432)
