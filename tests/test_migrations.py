"""Schema migrations: forward, in one transaction, and comparable to a fresh file."""

from __future__ import annotations

import sqlite3

import pytest

from campctl.errors import StateFileError
from campctl.store import db as dbmod
from campctl.store import schema


def _schema_dump(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return sorted(
            conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )
    finally:
        conn.close()


V2_TEST = [
    "ALTER TABLE objects ADD COLUMN labels TEXT",
    "CREATE INDEX objects_status ON objects (kind, status)",
]


def test_old_file_is_migrated_in_place_and_matches_a_fresh_one(tmp_path, monkeypatch):
    old = tmp_path / "old.db"
    db = dbmod.open_db(old, create=True)
    with db.atomic():
        db.execute(
            "INSERT INTO config (key, value) VALUES ('four_eyes', 'true')"
        )
    db.close()
    assert _schema_dump(old) and sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == 1

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*schema.MIGRATIONS, V2_TEST])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(schema.MIGRATIONS) + 1)
    migrated = dbmod.open_db(old, create=False)
    assert migrated.scalar("PRAGMA user_version") == 2
    assert migrated.scalar("SELECT value FROM config WHERE key='four_eyes'") == "true"
    migrated.close()
    fresh = tmp_path / "fresh.db"
    dbmod.open_db(fresh, create=True).close()
    assert _schema_dump(old) == _schema_dump(fresh)


def test_a_failing_migration_leaves_the_file_at_its_old_version(tmp_path, monkeypatch):
    old = tmp_path / "old.db"
    dbmod.open_db(old, create=True).close()
    before = _schema_dump(old)
    broken = ["ALTER TABLE objects ADD COLUMN labels TEXT", "CREATE TABLE config (x)"]
    monkeypatch.setattr(dbmod, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(schema.MIGRATIONS) + 1)
    with pytest.raises(StateFileError, match="left unchanged"):
        dbmod.open_db(old, create=False)
    assert _schema_dump(old) == before
    conn = sqlite3.connect(old)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
    conn.close()


def test_foreign_sqlite_file_is_refused(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE stuff (x)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    with pytest.raises(StateFileError, match="not a campctl state file"):
        dbmod.open_db(other, create=True)
    assert other.read_bytes() == before
