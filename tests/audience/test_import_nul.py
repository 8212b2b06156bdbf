"""U+0000 in any imported value rejects its row, on both stores, and nothing else changes.

PostgreSQL's text holds no NUL and its jsonb no \\u0000 escape, so such a value is refused
everywhere (the same file imports the same way on SQLite and on PostgreSQL): the row is reported
with its line number and field, the other rows import, and a second import counts the same.
"""

from __future__ import annotations

import json

import pytest

PROBLEM = "contains a NUL (U+0000) control character"


def _import_twice(cli, path):
    first = cli("-o", "json", "contacts", "import", str(path))
    assert first.exit_code == 0, first
    again = cli("-o", "json", "contacts", "import", str(path))
    assert again.exit_code == 0, again
    return first.json, again.json


@pytest.mark.parametrize(("cells", "field"), [
    ("n1,a\x00b@example.org,,,,", "email"),
    ("n1,n1@example.org,+33\x00,,,", "phone"),
    ("n1,n1@example.org,,pl\x00us,,", "attribute 'plan'"),
    ("n1,n1@example.org,,,vip;b\x00d,", "groups"),
    ("n1,n1@example.org,,,,news\x00", "opt_out"),
])
def test_a_csv_cell_with_a_nul_rejects_its_row(cli, rows, tmp_path, cells, field):
    path = tmp_path / "contacts.csv"
    path.write_bytes(("id,email,phone,plan,groups,opt_out\n"
                      "ok,ok@example.org,+331,basic,vip,\n" + cells + "\n"
                      "ok2,ok2@example.org,,basic,,\n").encode())
    first, again = _import_twice(cli, path)
    assert first["errors"] == [{"line": 3, "reason": f"{field} {PROBLEM}"}]
    assert (first["inserted"], first["updated"], first["rejected"]) == (2, 0, 1)
    assert (again["inserted"], again["updated"], again["rejected"]) == (0, 2, 1)
    stored = rows("SELECT external_id, attrs FROM contacts ORDER BY id")
    assert [(r["external_id"], r["attrs"]) for r in stored] == [
        ("ok", '{"plan":"basic"}'), ("ok2", '{"plan":"basic"}')]
    groups = rows("SELECT grp FROM contact_groups ORDER BY grp")
    assert [r["grp"] for r in groups] == ["vip"]


def test_a_repeated_csv_cell_with_a_nul_is_rejected_every_time(cli, rows, tmp_path):
    """A column remembers the cells it has seen; a refused one is never remembered."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"id,plan\na,x\x00\nb,x\x00\nc,x\n")
    first, _ = _import_twice(cli, path)
    assert [e["line"] for e in first["errors"]] == [2, 3]
    assert [r["external_id"] for r in rows("SELECT external_id FROM contacts")] == ["c"]


@pytest.mark.parametrize(("obj", "reason"), [
    ({"id": "n1", "email": "a\u0000@example.org"}, f"email {PROBLEM}"),
    ({"id": "n1", "phone": "+33\u0000"}, f"phone {PROBLEM}"),
    ({"id": "n1", "plan": "pl\u0000us"}, f"plan {PROBLEM}"),
    ({"id": "n1", "prefs": {"news": {"lang": ["fr", "e\u0000n"]}}}, f"prefs {PROBLEM}"),
    ({"id": "n1", "prefs": {"k\u0000": 1}}, f"prefs {PROBLEM}"),
    ({"id": "n1", "p\u0000": 1}, f"field name 'p\\x00' {PROBLEM}"),
    ({"id": "n1", "groups": ["vip", "b\u0000d"]}, f"groups {PROBLEM}"),
    ({"id": "n1", "opt_out": ["n\u0000"]}, f"opt_out {PROBLEM}"),
    ({"id": "n\u00001"}, f"id {PROBLEM}"),
])
def test_a_json_lines_value_with_a_nul_rejects_its_row(cli, rows, tmp_path, obj, reason):
    path = tmp_path / "contacts.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "ok", "plan": "basic", "prefs": {"a": "\\u0000 as text is fine"}}),
        json.dumps(obj),
        json.dumps({"id": "ok2", "groups": ["vip"]}),
    ]) + "\n")
    first, again = _import_twice(cli, path)
    assert first["errors"] == [{"line": 2, "reason": reason}]
    assert (first["inserted"], first["rejected"]) == (2, 1)
    assert (again["updated"], again["rejected"]) == (2, 1)
    stored = rows("SELECT external_id, attrs FROM contacts ORDER BY id")
    assert [(r["external_id"], json.loads(r["attrs"])) for r in stored] == [
        ("ok", {"plan": "basic", "prefs": {"a": "\\u0000 as text is fine"}}), ("ok2", {})]


@pytest.mark.parametrize(("line", "reason"), [
    ('{"event": "signup", "contact": "c\\u0000"}', f"contact {PROBLEM}"),
    ('{"event": "signup", "contact": "ok", "data": {"note": ["x", "a\\u0000"]}}',
     f"data.note[1] {PROBLEM}"),
    ('{"event": "signup", "contact": "ok", "data": {"k\\u0000": 1}}',
     f"a key in data {PROBLEM}"),
])
def test_an_event_with_a_nul_is_rejected_and_the_rest_imports(cli, rows, tmp_path, line, reason):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id\nok\n")
    assert cli("contacts", "import", str(contacts)).exit_code == 0
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([
        '{"event": "signup", "contact": "ok", "data": {"path": "C:\\\\u0000"}}',
        line,
        '{"event": "visit", "contact": "ok"}',
    ]) + "\n")
    result = cli("-o", "json", "events", "import", str(path))
    assert result.exit_code == 0, result
    assert result.json["errors"] == [{"line": 2, "reason": reason}]
    assert result.json["imported"] == 2
    stored = rows("SELECT name, data FROM events ORDER BY id")
    assert [(r["name"], r["data"] and json.loads(r["data"])) for r in stored] == [
        ("signup", {"path": "C:\\u0000"}), ("visit", None)]
