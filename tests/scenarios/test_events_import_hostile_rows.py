"""`events import`: one hostile line is rejected with its number; every other line imports."""

from __future__ import annotations

import json

GOOD = b'{"event": "visited", "contact": "ann"}'

HOSTILE = [
    b'{"event": "visited", "contact": "ann", "data": {"v": NaN}}',
    b'{"event": "visited", "contact": "ann", "data": {"v": Infinity}}',
    b'{"event": "visited", "contact": "ann", "data": {"v": -Infinity}}',
    b'{"event": "visited", "contact": "ann", "data": {"v": 1e999}}',
    b'{"event": "visited", "contact": "ann", "data": {"v": "\\ud800"}}',
    b'{"event": "visited", "contact": "\\udfff"}',
    b'{"event": "visited", "contact": "ann", "data": {"v": "\xff\xfe"}}',
    b'{"event": "visited", "contact": "ann", "data": ' + b'[' * 100_000 + b']' * 100_000 + b'}',
    b'{"event": "visited", "contact": "ann", "data": ' + b'{"k": ' * 40 + b'1' + b'}' * 40 + b'}',
    b'{"event": "visited", "contact": "ann", "at": "0001-01-01T00:00:00+01:00"}',
    b'{"event": "visited", "contact": "ann", "at": "0001-01-01T00:00:00Z"}',
    b'{"event": "visited", "contact": "ann", "at": "9999-12-31T23:59:59-05:00"}',
    b'{"event": "visited", "contact": "ann", "at": "99999-01-01T00:00:00Z"}',
    b'{"event": "visited", "contact": "ann", "at": 1700000000}',
    b'{"event": "visited", "contact": ["ann"]}',
    b'{"event": "visited", "contact": true}',
]


def _file(tmp_path, lines: list[bytes]):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_each_hostile_line_is_rejected_alone(scn, tmp_path):
    scn.contacts({"id": "ann"})
    lines = [GOOD]
    for bad in HOSTILE:
        lines += [bad, GOOD]
    path = _file(tmp_path, lines)
    result = scn.cli("events", "import", str(path), "-o", "json")
    assert result.exit_code == 0, result
    report = result.json
    assert report["imported"] == len(HOSTILE) + 1
    assert report["rejected"] == len(HOSTILE)
    assert [e["line"] for e in report["errors"]] == [2 * i + 2 for i in range(len(HOSTILE))]
    assert all(e["reason"] for e in report["errors"])
    stored = scn.rows("SELECT at, data FROM events")
    assert len(stored) == len(HOSTILE) + 1
    assert {r["at"] for r in stored} == {"2027-03-01T09:00:00Z"}
    # What is stored reads back: `events list` works on the whole table.
    listed = scn.ok("events", "list", "--limit", "100", "-o", "json")
    assert len(listed.json) == len(HOSTILE) + 1


def test_text_output_names_file_and_line_and_exits_0_like_contacts_import(scn, tmp_path):
    scn.contacts({"id": "ann"})
    path = _file(tmp_path, [GOOD, HOSTILE[0], b"not json", GOOD])
    result = scn.cli("events", "import", str(path))
    assert result.exit_code == 0, result
    assert f"{path}:2: rejected: " in result.stderr
    assert f"{path}:3: rejected: " in result.stderr
    assert "imported 2, rejected 2" in result.stderr


def test_json_report_is_plain_json(scn, tmp_path):
    scn.contacts({"id": "ann"})
    path = _file(tmp_path, [HOSTILE[4], HOSTILE[6]])
    result = scn.cli("events", "import", str(path), "-o", "json")
    assert result.exit_code == 0, result
    json.loads(result.stdout)  # the reasons carry no lone surrogate
    assert result.json["rejected"] == 2


def test_emit_refuses_hostile_data_with_exit_2(scn):
    scn.contacts({"id": "ann"})
    for data in ('{"v": NaN}', '{"v": 1e999}', '{"v": "\\ud800"}',
                 '{"k": ' * 40 + '1' + '}' * 40, '[' * 5000 + ']' * 5000, '[1]'):
        result = scn.cli("events", "emit", "visited", "--contact", "ann", "--data", data)
        assert result.exit_code == 2, (data[:20], result)
        assert result.stderr.startswith("error: --data"), result
    assert scn.rows("SELECT count(*) AS n FROM events")[0]["n"] == 0
    ok = scn.cli("events", "emit", "visited", "--contact", "ann", "--data", '{"v": [1, 2.5]}')
    assert ok.exit_code == 0, ok
