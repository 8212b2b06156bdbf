"""Schema migrations: forward, in one transaction, and comparable to a fresh file."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

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
    assert _schema_dump(old)
    with closing(sqlite3.connect(old)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*schema.MIGRATIONS, V2_TEST])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(schema.MIGRATIONS) + 1)
    migrated = dbmod.open_db(old, create=False)
    assert migrated.scalar("PRAGMA user_version") == len(schema.MIGRATIONS) + 1
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


RELEASED_V1 = Path(__file__).parent / "fixtures" / "state-v1-demo.db"
KEPT_TABLES = ("objects", "runs", "queue_items", "history", "plan_instances", "scenario_profiles",
               "exec_log", "outbox")


def _counts(path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in KEPT_TABLES if t in names}
    finally:
        conn.close()


@pytest.mark.sqlite_only("the v1 fixture is a SQLite file")
def test_a_state_file_of_the_first_release_opens_with_every_row_intact(tmp_path, cli):
    """tests/fixtures/state-v1-demo.db: `campctl demo` (7 days) as released at schema 1."""
    copy = tmp_path / "released.db"
    shutil.copyfile(RELEASED_V1, copy)
    before = _counts(copy)
    assert before["runs"] > 0 and before["queue_items"] > 0 and before["history"] > 0
    result = cli("--state", str(copy), "get", "runs", "-o", "json")
    assert result.exit_code == 0, result
    assert len(result.json) == before["runs"]
    assert _counts(copy) == before
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert cli("--state", str(copy), "tick").exit_code == 0
