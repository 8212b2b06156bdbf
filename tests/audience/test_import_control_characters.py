"""An id with a control character is rejected with its line; the rest of the file imports."""

from __future__ import annotations


def test_an_id_with_a_nul_is_rejected_and_a_second_import_still_works(cli, rows, tmp_path):
    path = tmp_path / "contacts.jsonl"
    path.write_text('{"id": "i\\u0000"}\n{"id": "ok"}\n')
    first = cli("contacts", "import", str(path))
    assert first.exit_code == 0, first
    assert "control character" in first.stderr
    again = cli("contacts", "import", str(path))
    assert again.exit_code == 0, again
    assert [r["external_id"] for r in rows("SELECT external_id FROM contacts")] == ["ok"]


def test_a_csv_id_with_a_control_character_is_rejected_too(cli, rows, tmp_path):
    """As in JSON Lines: a CSV id with a NUL or another control character is no one's id (and
    would be cut at the NUL by SQLite's JSON functions, miscounting a second import)."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"id,email\na\x01b,x@y.org\nc\x00d,z@y.org\nok,o@y.org\nn\xc2\xa0b,n@y.org\n")
    first = cli("contacts", "import", str(path))
    assert first.exit_code == 0, first
    assert f"{path}:2: rejected: id contains a control character" in first.stderr
    assert f"{path}:3: rejected: id contains a control character" in first.stderr
    assert "2 inserted, 0 updated, 2 rejected" in first.stderr
    again = cli("contacts", "import", str(path))
    assert "0 inserted, 2 updated, 2 rejected" in again.stderr, again
    assert [r["external_id"] for r in rows("SELECT external_id FROM contacts ORDER BY id")] == [
        "ok", "n\u00a0b"]
