"""The PostgreSQL seam's pure parts: the placeholder translator and the row class."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campctl.store.dialect import PG, SQLITE, make_row, numbered_params, to_pyformat


@pytest.mark.parametrize(("sql", "expected", "numbered"), [
    ("SELECT 1", "SELECT 1", False),
    ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s", False),
    ("SELECT ?1, ?2, ?1", "SELECT %(p1)s, %(p2)s, %(p1)s", True),
    ("SELECT * FROM t WHERE a = :name AND b = :b2",
     "SELECT * FROM t WHERE a = %(name)s AND b = %(b2)s", False),
    ("SELECT x::text, CAST(? AS BIGINT)", "SELECT x::text, CAST(%s AS BIGINT)", False),
    ("SELECT 'a?b :c %d' || ?", "SELECT 'a?b :c %%d' || %s", False),
    ("SELECT 'it''s ?' , ?", "SELECT 'it''s ?' , %s", False),
    ('SELECT "we?ird:col%" FROM t WHERE a LIKE ?', 'SELECT "we?ird:col%%" FROM t WHERE a LIKE %s',
     False),
    ("SELECT a % 2, ? FROM t", "SELECT a %% 2, %s FROM t", False),
    ("SELECT '{a,b}', x #>> '{a}'", "SELECT '{a,b}', x #>> '{a}'", False),
])
def test_translation(sql, expected, numbered):
    assert to_pyformat(sql) == (expected, numbered)


def test_numbered_parameters_become_a_mapping():
    assert numbered_params(["x", 2]) == {"p1": "x", "p2": 2}
    assert numbered_params({"a": 1}) == {"a": 1}


# Pieces of SQL text: plain words, placeholders, casts, percent signs and quoted literals
# (which may hold any of those).
_literal_text = st.text(alphabet="ab ?:%'\"1_", max_size=8)
_piece = st.one_of(
    st.sampled_from(["SELECT", " ", "a", "=", "?", "?1", "?12", ":x", ":name_2", "::", "%",
                     "(", ")", ",", "1", "b_c"]),
    _literal_text.map(lambda t: "'" + t.replace("'", "''") + "'"),
    _literal_text.map(lambda t: '"' + t.replace('"', '""') + '"'),
)


@given(st.lists(_piece, max_size=25))
def test_translation_keeps_literals_and_maps_every_placeholder(pieces):
    sql = "".join(pieces)
    out, numbered = to_pyformat(sql)
    # Undo the translation token by token: the original text comes back.
    back = re.sub(r"%\(p(\d+)\)s", r"?\1", out)
    back = re.sub(r"%\((\w+)\)s", r":\1", back)
    back = back.replace("%s", "?").replace("%%", "%")
    assert back == sql
    # psycopg's view: every % outside a placeholder is doubled.
    assert re.sub(r"%\(\w+\)s|%s|%%", "", out).count("%") == 0
    assert numbered == bool(re.search(r"%\(p\d+\)s", out))


def test_rows_behave_like_sqlite_rows():
    row = make_row(["id", "name"], (3, "x"))
    assert row[0] == 3 and row["name"] == "x" and row[-1] == "x"
    assert row.keys() == ["id", "name"]
    assert dict(row) == {"id": 3, "name": "x"}
    assert tuple(row) == (3, "x") and row == (3, "x")
    a, b = row
    assert (a, b) == (3, "x")
    with pytest.raises(IndexError):
        row["missing"]


def test_fragments_differ_only_where_they_must():
    assert SQLITE.is_("a", "?") == "a IS ?"
    assert PG.is_("a", "?") == "a IS NOT DISTINCT FROM ?"
    assert SQLITE.is_not("a", "b") == "a IS NOT b"
    assert PG.is_not("a", "b") == "a IS DISTINCT FROM b"
    assert SQLITE.ids_in("q.id") == "q.id IN (SELECT value FROM json_each(?))"
    assert SQLITE.ids_param([3, 1]) == "[3, 1]"
    assert PG.ids_in("q.id") == "q.id = ANY(?)" and PG.ids_param((3, 1)) == [3, 1]
    assert SQLITE.group_concat("g") == "group_concat(g, ?)"
    assert PG.group_concat("g") == "string_agg(g, ?)"
    assert SQLITE.contains("spec") == "instr(spec, ?) > 0"
    assert PG.contains("spec") == "strpos(spec, ?) > 0"
