"""Fuzzed CSV and JSON Lines imports: a clear outcome and exit code, never a traceback."""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campctl.__main__ import main

CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "1", "007", "1.5", "true", "NO", "a;b", '"', "\x00", "é", "-1e999"]),
)
CSV_ROW = st.lists(CELL, min_size=0, max_size=6)
HEADER = st.lists(st.sampled_from(["id", "email", "groups", "opt_out", "plan", "x", ""]),
                  min_size=0, max_size=6)


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=HEADER, rows=st.lists(CSV_ROW, max_size=8), raw=st.binary(max_size=80))
def test_fuzzed_csv_never_crashes(tmp_path, capsys, header, rows, raw):
    state = tmp_path / "fuzz.db"
    source = tmp_path / "contacts.csv"
    text = ",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    source.write_bytes(text.encode("utf-8", "surrogatepass") + raw)
    code, err = _run(["--state", str(state), "--now", "2027-03-01T09:00:00Z",
                      "contacts", "import", str(source)], capsys)
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    if state.exists():
        conn = sqlite3.connect(state)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


JSON_LINE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(['{"id": "a"}', '{"id": 1}', '{"id": "b", "groups": "x"}', "[]", "null",
                     '{"id": "c", "opt_out": [1, 2]}', '{"id": "d", "email": {"a": 1}}',
                     '{"id": "e", "plan": [1, {"x": null}]}', "{", '{"id": ""}']),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(JSON_LINE, max_size=8))
def test_fuzzed_jsonl_never_crashes(tmp_path, capsys, lines):
    state = tmp_path / "fuzz.db"
    source = tmp_path / "contacts.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    code, err = _run(["--state", str(state), "--now", "2027-03-01T09:00:00Z",
                      "contacts", "import", str(source)], capsys)
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
