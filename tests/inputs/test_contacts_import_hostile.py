"""One hostile row of a contacts import is rejected with its line; the other rows import."""

from __future__ import annotations

import pytest

HOSTILE_JSONL = {
    "nan": '{"id": "h", "score": NaN}',
    "infinity": '{"id": "h", "score": -Infinity}',
    "overflowing float": '{"id": "h", "score": 1e999}',
    "huge integer": '{"id": "h", "score": 99999999999999999999999}',
    "5000 digits": '{"id": "h", "score": ' + "9" * 5000 + "}",
    "lone surrogate": '{"id": "h", "name": "\\ud800"}',
    "lone surrogate id": '{"id": "\\udfff"}',
    "lone surrogate key": '{"id": "h", "\\ud800": 1}',
    "lone surrogate group": '{"id": "h", "groups": ["\\ud800"]}',
    "deep nesting": '{"id": "h", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "nesting beyond SQLite": '{"id": "h", "deep": ' + "[" * 500 + "]" * 500 + "}",
}


@pytest.mark.parametrize("row", HOSTILE_JSONL.values(), ids=HOSTILE_JSONL.keys())
def test_a_hostile_json_line_is_rejected_alone(cli, rows, tmp_path, row):
    path = tmp_path / "contacts.jsonl"
    path.write_text('{"id": "a", "score": 1}\n' + row + '\n{"id": "b", "score": 2.5}\n')
    result = cli("contacts", "import", str(path))
    assert result.exit_code == 0, result
    assert f"{path}:2: rejected: " in result.stderr, result
    assert "2 inserted, 0 updated, 1 rejected" in result.stderr, result
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    ids = [r["external_id"] for r in rows("SELECT external_id FROM contacts ORDER BY id")]
    assert ids == ["a", "b"]
    # The imported rows stay usable by segment queries.
    assert cli("contacts", "list", "-o", "json").exit_code == 0


def test_a_csv_with_out_of_range_numbers_imports_them_as_text(cli, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("id,big,wide\n"
                    f"a,{'9' * 5000},1{'0' * 400}.5\n"
                    "b,12,0.5\n")
    result = cli("contacts", "import", str(path))
    assert result.exit_code == 0, result
    assert "2 inserted, 0 updated, 0 rejected" in result.stderr, result
    shown = cli("-o", "json", "contacts", "show", "a").json["attributes"]
    assert shown["big"] == "9" * 5000 and shown["wide"].startswith("1000")
    assert cli("-o", "json", "contacts", "show", "b").json["attributes"] == {"big": 12,
                                                                              "wide": 0.5}
