"""`campctl state copy` between two SQLite files (tests/pg/test_state_copy.py: via PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from state_copy_support import FIXTURE, dump, ok

# Every test names its own files; the [pg] twins live in tests/pg/test_state_copy.py.
pytestmark = pytest.mark.sqlite_only("copies between two SQLite files")


def test_a_demo_state_copies_to_a_new_file_row_for_row(cli, tmp_path):
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    ok(cli("--state", source, "demo"))
    result = ok(cli("state", "copy", source, target, "-o", "json"))
    report = json.loads(result.stdout)
    assert report["match"] and report["from"] == str(source) and report["to"] == str(target)
    counts = {t["table"]: (t["from"], t["to"]) for t in report["tables"]}
    assert counts["outbox"][0] > 0 and all(a == b for a, b in counts.values())
    assert dump(target) == dump(source)
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.db")) == ["b.db"]
    for command in (("status", "-o", "json"), ("get", "runs", "-o", "json")):
        assert ok(cli("--state", target, *command)).stdout == \
            ok(cli("--state", source, *command)).stdout


def test_the_v1_fixture_is_migrated_then_copied_into_a_0_byte_file(cli, tmp_path):
    source, target = tmp_path / "v1.db", tmp_path / "empty.db"
    shutil.copy(FIXTURE, source)
    target.touch()
    result = ok(cli("state", "copy", source, target))
    assert "outbox" in result.stdout and "copied" in result.stderr
    assert dump(target) == dump(source)  # the source was migrated when it was opened


def test_a_non_empty_target_is_refused_and_left_alone(cli, tmp_path):
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    ok(cli("--state", source, "init"))
    ok(cli("--state", target, "config", "set", "four_eyes", "true"))
    before = target.read_bytes()
    result = cli("state", "copy", source, target)
    assert result.exit_code == 4, result
    assert result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1, result
    assert target.read_bytes() == before
    assert not (tmp_path / "b.db.partial").exists()


def test_a_missing_source_exits_4_and_writes_nothing(cli, tmp_path):
    result = cli("state", "copy", tmp_path / "none.db", tmp_path / "b.db")
    assert result.exit_code == 4, result
    assert not list(tmp_path.glob("b.db*"))


def test_items_claimed_by_a_running_tick_are_counted_in_a_warning(cli, tmp_path):
    import sqlite3

    source, target = tmp_path / "a.db", tmp_path / "b.db"
    ok(cli("--state", source, "demo"))
    conn = sqlite3.connect(source)
    with conn:
        conn.execute("UPDATE queue_items SET claimed_until = '2999-01-01T00:00:00Z' "
                     "WHERE id IN (SELECT id FROM queue_items ORDER BY id LIMIT 2)")
    conn.close()
    result = ok(cli("state", "copy", source, target))
    assert "warning: 2 queue items were claimed" in result.stderr, result
    assert dump(target) == dump(source)
