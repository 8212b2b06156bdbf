"""`campctl state copy` into PostgreSQL and back (issue 15): ids, history, the outbox and the
sequences survive SQLite -> PostgreSQL -> SQLite, and commands on the copy answer as on the
source. `state` is the URL of the reset test database (an all-empty campctl schema, or with
`pg_fresh` no tables at all)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from pg_support import execute, query
from state_copy_support import FIXTURE, dump, ok
from store_support import table_names

from campctl.store.schema_pg import IDENTITY_COLUMNS

pytestmark = pytest.mark.pg

SECRET = "s3cr3t-Pa55"


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def round_trip(cli, state, source: Path, tmp_path: Path) -> Path:
    there = json.loads(ok(cli("state", "copy", source, state, "-o", "json")).stdout)
    assert there["match"] and there["to"] == state
    back = tmp_path / "back.db"
    again = json.loads(ok(cli("state", "copy", state, back, "-o", "json")).stdout)
    assert again["match"] and again["tables"] == there["tables"]
    return back


@pytest.mark.pg_fresh
def test_a_demo_state_goes_to_postgres_and_back_unchanged(cli, state, tmp_path):
    source = tmp_path / "a.db"
    ok(cli("--state", source, "demo"))
    back = round_trip(cli, state, source, tmp_path)
    assert dump(back) == dump(source)  # every row, the outbox's rowids and sqlite_sequence
    for command in (("status", "-o", "json"), ("get", "runs", "-o", "json"),
                    ("outbox", "list", "-o", "json")):
        assert ok(cli("--state", state, *command)).stdout == \
            ok(cli("--state", source, *command)).stdout, command


def test_the_migrated_v1_fixture_copies_into_an_empty_campctl_schema(cli, state, tmp_path):
    source = tmp_path / "v1.db"
    shutil.copy(FIXTURE, source)
    ok(cli("--state", source, "status"))  # migrates it
    ok(cli("init"))  # the target: the campctl schema, every table empty
    back = round_trip(cli, state, source, tmp_path)
    assert dump(back) == dump(source)


def test_sequences_never_hand_out_a_copied_or_spent_id(cli, state, tmp_path):
    source = tmp_path / "a.db"
    ok(cli("--state", source, "demo"))
    conn = sqlite3.connect(source)
    with conn:  # the last contacts and events are gone, their ids spent
        conn.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events)")
        for child in ("contact_optouts", "contact_groups"):
            conn.execute(f"DELETE FROM {child} WHERE contact_id = (SELECT max(id) FROM contacts)")
        conn.execute("DELETE FROM contacts WHERE id = (SELECT max(id) FROM contacts)")
    seq = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    conn.close()
    ok(cli("state", "copy", source, state))
    for table, column in IDENTITY_COLUMNS.items():
        (sequence,) = query(state, "SELECT pg_get_serial_sequence(%s, %s) AS s", (table, column))
        (row,) = query(state, f"SELECT last_value, is_called FROM {sequence['s']}")
        (top,) = query(state, f"SELECT coalesce(max({column}), 0) AS top FROM {table}")
        handed = row["last_value"] if row["is_called"] else 0
        assert handed == max(top["top"], seq.get(table, 0)), table
    (contact,) = query(state, "SELECT min(external_id) AS id FROM contacts")
    ok(cli("events", "emit", "signup", "--contact", contact["id"]))
    (event,) = query(state, "SELECT max(id) AS id FROM events")
    assert event["id"] == seq["events"] + 1


def test_a_non_empty_target_is_refused_with_exit_4(cli, state, tmp_path):
    source = tmp_path / "a.db"
    ok(cli("--state", source, "init"))
    ok(cli("config", "set", "four_eyes", "true"))
    result = cli("state", "copy", source, with_password(state, SECRET))
    assert result.exit_code == 4, result
    assert result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1, result
    assert "config" in result.stderr and SECRET not in result.stdout + result.stderr
    assert query(state, "SELECT key, value FROM config") == [
        {"key": "four_eyes", "value": "true"}]


def test_a_foreign_database_is_refused_and_left_alone(cli, state, tmp_path):
    source = tmp_path / "a.db"
    ok(cli("--state", source, "init"))
    execute(state, "DROP TABLE campctl_schema CASCADE")
    result = cli("state", "copy", source, state)
    assert result.exit_code == 4 and "not a campctl state" in result.stderr, result


@pytest.mark.pg_fresh
def test_a_password_in_either_url_is_never_printed(cli, state, tmp_path):
    source, back = tmp_path / "a.db", tmp_path / "back.db"
    ok(cli("--state", source, "demo"))
    url = with_password(state, SECRET)  # the test cluster trusts 127.0.0.1: any password works
    outputs = [cli("state", "copy", source, url), cli("state", "copy", url, back, "-o", "json"),
               cli("state", "copy", url, back)]  # the last one refused: back.db exists
    assert [r.exit_code for r in outputs] == [0, 0, 4], outputs
    for result in outputs:
        assert SECRET not in result.stdout + result.stderr, result
    assert "campctl@" in outputs[0].stderr
    assert dump(back) == dump(source)


def test_a_nul_character_is_refused_naming_the_row_and_nothing_is_written(cli, state, tmp_path):
    source = tmp_path / "a.db"
    ok(cli("--state", source, "config", "set", "four_eyes", "true", "--note", "x"))
    conn = sqlite3.connect(source)
    with conn:
        conn.execute("UPDATE history SET note = 'a' || char(0) || 'b'")
    conn.close()
    result = cli("state", "copy", source, state)
    assert result.exit_code == 4, result
    assert "history row 1" in result.stderr and "note" in result.stderr, result
    # No config table at all when this test runs first on an empty database.
    assert "config" not in table_names(state) or query(
        state, "SELECT count(*) AS n FROM config") == [{"n": 0}]
