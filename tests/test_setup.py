"""Global conventions: state file, init, config, exit codes, errors."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from campctl.store.schema import SCHEMA_VERSION


@pytest.mark.sqlite_only("file mode and WAL of the state file"
                         " (PostgreSQL: tests/pg/test_cli_on_postgres.py)")
def test_init_creates_private_wal_file(cli, state):
    old = os.umask(0o022)
    try:
        result = cli("init")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    conn = sqlite3.connect(state)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    again = cli("init")
    assert again.exit_code == 0, again
    assert "exists" in again.stderr


@pytest.mark.sqlite_only("a missing state file"
                         " (PostgreSQL: tests/pg/test_cli_on_postgres.py)")
def test_read_command_on_missing_state_exits_4(cli, state):
    result = cli("config", "get")
    assert result.exit_code == 4, result
    assert result.stderr.startswith("error: no state file at")
    assert "campctl init" in result.stderr
    assert not state.exists()


@pytest.mark.sqlite_only("a foreign file")
def test_non_sqlite_file_exits_4_and_is_untouched(cli, state):
    state.write_bytes(b"hello, not a database\n" * 10)
    before = state.read_bytes()
    result = cli("config", "set", "four_eyes", "true")
    assert result.exit_code == 4, result
    assert "not a campctl state file" in result.stderr
    assert state.read_bytes() == before


@pytest.mark.sqlite_only("the newer version is written with sqlite3"
                         " (PostgreSQL: tests/pg/test_cli_on_postgres.py)")
def test_newer_schema_refused_with_exit_4(cli, state):
    assert cli("init").exit_code == 0
    conn = sqlite3.connect(state)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    result = cli("config", "set", "four_eyes", "true")
    assert result.exit_code == 4, result
    assert "newer" in result.stderr and "upgrade campctl" in result.stderr


@pytest.mark.sqlite_only("a corrupt file")
def test_corrupt_sqlite_file_exits_4(cli, state):
    assert cli("init").exit_code == 0
    data = bytearray(state.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    state.write_bytes(bytes(data))
    before = state.read_bytes()
    result = cli("config", "get")
    assert result.exit_code == 4, result
    assert result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr
    assert state.read_bytes() == before


def test_config_set_get_and_history(cli, rows):
    assert cli("init").exit_code == 0
    assert cli("config", "set", "four_eyes", "TRUE", "--note", "audit").exit_code == 0
    got = cli("config", "get", "four_eyes", "-o", "json")
    assert got.json == {"key": "four_eyes", "value": "true"}
    history = rows("SELECT actor, action, note, to_status FROM history WHERE kind='config'")
    assert history == [{"actor": "tester", "action": "set", "note": "audit", "to_status": "true"}]


def test_config_errors(cli):
    assert cli("init").exit_code == 0
    bad_key = cli("config", "set", "nope", "1")
    assert bad_key.exit_code == 2 and "unknown setting" in bad_key.stderr
    bad_bool = cli("config", "set", "four_eyes", "maybe")
    assert bad_bool.exit_code == 2, bad_bool


def test_usage_errors_exit_2_with_one_line(cli):
    result = cli("no-such-command")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")
    bad_output = cli("-o", "xml", "config", "get")
    assert bad_output.exit_code == 2


def test_bad_now_is_a_usage_error(cli):
    result = cli("--now", "yesterday", "config", "set", "four_eyes", "true")
    assert result.exit_code == 2, result
    assert "CAMPCTL_NOW" in result.stderr


def test_global_options_anywhere_and_env(cli, state, monkeypatch):
    monkeypatch.setenv("CAMPCTL_STATE", str(state))
    assert cli("init", "--state", str(state)).exit_code == 0
    result = cli("config", "get", "-o", "json")
    assert result.exit_code == 0 and isinstance(result.json, list)


def test_actor_from_as_option(cli, rows):
    assert cli("init").exit_code == 0
    assert cli("config", "set", "notify_to", "ops@example.com", "--as", "alice").exit_code == 0
    assert rows("SELECT actor FROM history")[-1]["actor"] == "alice"


@pytest.mark.sqlite_only("the console script creates the file"
                         " (PostgreSQL: tests/pg/test_cli_on_postgres.py)")
def test_console_script_subprocess(run_subprocess, state):
    result = run_subprocess("init", env={"CAMPCTL_NOW": "2027-01-01T00:00:00Z"})
    assert result.exit_code == 0, result
    assert state.exists()


@pytest.mark.sqlite_only("the backup API (PostgreSQL: pg_dump)")
def test_backup_is_a_consistent_private_copy(cli, state, tmp_path):
    assert cli("init").exit_code == 0
    assert cli("config", "set", "notify_to", "ops@example.com").exit_code == 0
    target = tmp_path / "copy.db"
    old = os.umask(0o022)
    try:
        result = cli("backup", str(target))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT value FROM config WHERE key='notify_to'").fetchone()[0] == (
        "ops@example.com"
    )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    again = cli("backup", str(target))
    assert again.exit_code == 4 and "already exists" in again.stderr
