"""`state copy` into PostgreSQL refuses a source holding NUL characters, listing every such row.

PostgreSQL's text holds no NUL, and its jsonb no `\\u0000` escape. A SQLite state written before
imports refused them can hold either: the copy names each row (table, key, columns), exits 4 and
writes nothing; the same text with an escaped backslash (`\\\\u0000`, the text "\\u0000") copies.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from pg_support import query
from state_copy_support import ok
from store_support import table_names

pytestmark = pytest.mark.pg


def _source(cli, tmp_path, contacts: int = 3):
    source = tmp_path / "a.db"
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email,plan\n" + "".join(
        f"c{i},c{i}@example.org,basic\n" for i in range(1, contacts + 1)))
    ok(cli("--state", source, "contacts", "import", csv))
    ok(cli("--state", source, "config", "set", "four_eyes", "true", "--note", "x"))
    return source


def _write(source, *statements):
    conn = sqlite3.connect(source)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def test_every_row_with_a_nul_is_listed_and_nothing_is_written(cli, state, tmp_path):
    source = _source(cli, tmp_path)
    _write(source,
           ("UPDATE contacts SET attrs = ? WHERE external_id = 'c2'", ('{"plan":"a\\u0000"}',)),
           ("UPDATE contacts SET phone = ? WHERE external_id = 'c3'", ("+33\x00",)),
           ("UPDATE history SET note = ?", ("a\x00b",)))
    result = cli("state", "copy", source, state)
    assert result.exit_code == 4, result
    message = " ".join(result.stderr.split())
    assert "3 source row(s) hold a NUL character (U+0000)" in message, result
    for row in ("history row 1 (note)", "contacts row 2 (attrs)", "contacts row 3 (phone)"):
        assert row in message, result
    assert "nothing was written" in message
    tables = table_names(state)  # none when this test runs first on an empty database
    for table in ("config", "history", "contacts"):
        assert table not in tables or query(state, f"SELECT count(*) AS n FROM {table}") == [
            {"n": 0}], table


def test_a_long_list_names_the_first_rows_and_counts_the_rest(cli, state, tmp_path):
    source = _source(cli, tmp_path, contacts=25)
    _write(source, ("UPDATE contacts SET email = email || ?", ("\x00",)))
    result = cli("state", "copy", source, state)
    assert result.exit_code == 4, result
    message = " ".join(result.stderr.split())
    assert "25 source row(s)" in message and "contacts row 20 (email)" in message, result
    assert "contacts row 21" not in message and "and 5 more" in message, result


def test_an_escaped_backslash_before_u0000_is_text_and_copies(cli, state, tmp_path):
    source = _source(cli, tmp_path)
    attrs = json.dumps({"path": "C:\\u0000"}, separators=(",", ":"))  # the text \u0000
    _write(source, ("UPDATE contacts SET attrs = ? WHERE external_id = 'c1'", (attrs,)),
           ("UPDATE history SET note = ?", ("not JSON: \\u0000",)))
    ok(cli("state", "copy", source, state))
    assert query(state, "SELECT attrs FROM contacts WHERE external_id = 'c1'") == [
        {"attrs": attrs}]
    assert ok(cli("--state", state, "contacts", "list", "-o", "json")).stdout == \
        ok(cli("--state", source, "contacts", "list", "-o", "json")).stdout
