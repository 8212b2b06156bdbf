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
