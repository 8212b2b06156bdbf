"""Audiences on PostgreSQL (issue 15): contacts import, segments and a campaign built from them.

Every flow runs against the test database (`state` is its URL) and against a SQLite file; the
JSON outputs must be equal, contact ids and message ids included.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pg_support import query

pytestmark = pytest.mark.pg

NOW = "2027-03-01T09:00:00Z"

CSV = (
    "id,email,phone,plan,score,country,term_end,vip,groups,opt_out\n"
    "c1,c1@example.com,+3312,premium,10,FR,2027-03-05,true,newsletter;vip,\n"
    "c2,c2@example.com,,basic,35,BE,2027-01-01,false,newsletter,promotional\n"
    "c3,,,basic,55.5,DE,,1,,all\n"
    "c4,c4@example.com,,premium,0,FR,2027-03-20T10:00,,vip,\n"
    "c5,not-an-email,,basic,1,FR,,,,\n"
    "c1,c1.new@example.com,,,12,,,,newsletter,\n"
)
JSONL = (
    '{"id": "c2", "interests": ["shoes", "bags"], "score": null, "lucky": [7, 8.0]}\n'
    '{"id": "c6", "email": "c6@example.com", "profile": {"a": 1, "b": null, "c": {"d": null}},'
    ' "interests": ["hats"], "groups": ["vip"], "opt_out": ["service"], "name": "Zoë \\"Z\\""}\n'
    '{"id": "c3", "groups": [], "opt_out": null}\n'
    '{"id": "c7", "score": "high", "term_end": "2027-02-25", "plan": "basic"}\n'
    '{"id": 8, "score": 1.0, "vip": true, "plan": "basic", "email": "eight@example.com"}\n'
    '{"id": "c6", "profile": {"b": 2, "a": null}, "country": "NL"}\n'
    "not json\n"
)
LATE = "id,email,plan\nc9,c9@example.com,premium\n"
# All new: the multi-row INSERT, with attributes given as JSON objects (nulls dropped).
FRESH = (
    '{"id": "d1", "x": {"y": null, "z": [null, 1e16, 0.1]}, "n": null, "t": "\\u001f\\u00e9"}\n'
    '{"id": "d2", "groups": ["vip", "new"], "opt_out": ["all"]}\n'
)

# One segment per operator family (and the column fields, match any, a sample).
SEGMENT_RULES = {
    "eq-text": "[{attr: plan, op: eq, value: premium}]",
    "eq-number": "[{attr: score, op: eq, value: 10}]",
    "eq-one": "[{attr: vip, op: eq, value: 1}]",
    "eq-bool": "[{attr: vip, op: eq, value: true}]",
    "ne": "[{attr: plan, op: ne, value: premium}]",
    "in-mixed": "[{attr: score, op: in, value: [12, high, 1, false]}]",
    "not-in": "[{attr: country, op: not_in, value: [FR, NL]}]",
    "gt-number": "[{attr: score, op: gt, value: 10}]",
    "lte-number": "[{attr: score, op: lte, value: 35}]",
    "gte-float": "[{attr: score, op: gte, value: 55.5}]",
    "gt-text": "[{attr: term_end, op: gt, value: '2027-03-01'}]",
    "lt-text": "[{attr: plan, op: lt, value: c}]",
    "contains-text": "[{attr: country, op: contains, value: E}]",
    "contains-element": "[{attr: interests, op: contains, value: shoes}]",
    "contains-number": "[{attr: lucky, op: contains, value: 8}]",
    "exists": "[{attr: profile, op: exists}]",
    "not-exists": "[{attr: score, op: not_exists}]",
    "within-days": "[{attr: term_end, op: within_days, value: 30}]",
    "older-than-days": "[{attr: term_end, op: older_than_days, value: 10}]",
    "group": "[{group: vip}]",
    "event": "[{event: form_submitted, within: 7d}]",
    "column-id": "[{attr: id, op: eq, value: 8}]",
    "column-email": "[{attr: email, op: contains, value: new@}]",
    "column-exists": "[{attr: email, op: not_exists}]",
    "column-text": "[{attr: id, op: gte, value: c4}]",
}
# Who each segment selects (checked by hand against the files above, at NOW).
EXPECTED = {
    "eq-text": ["c1", "c4", "c9"], "eq-number": [], "eq-one": ["c3"], "eq-bool": ["c1", "8"],
    "ne": ["c2", "c3", "c6", "c7", "8"], "in-mixed": ["c1", "c7", "8"],
    "not-in": ["c2", "c3", "c7", "8", "c9"], "gt-number": ["c1", "c3"],
    "lte-number": ["c1", "c4", "8"], "gte-float": ["c3"], "gt-text": ["c1", "c4"],
    "lt-text": ["c2", "c3", "c7", "8"], "contains-text": ["c2", "c3"],
    "contains-element": ["c2"], "contains-number": ["c2"], "exists": ["c6"],
    "not-exists": ["c2", "c6", "c9"], "within-days": ["c1", "c4"], "older-than-days": ["c2"],
    "group": ["c4", "c6"], "event": [], "column-id": ["8"], "column-email": ["c1"],
    "column-exists": ["c3", "c7"], "column-text": ["c4", "c6", "c7", "c9"],
    "any-of": ["c1", "c2", "c4", "c9"],
}


def _definitions(folder: Path) -> Path:
    segments = [
        f"kind: Segment\nname: {name}\nrules: {rules}\n" for name, rules in SEGMENT_RULES.items()
    ]
    segments.append("kind: Segment\nname: any-of\nmatch: any\nrules:\n"
                    "  - {attr: plan, op: eq, value: premium}\n  - {group: newsletter}\n")
    segments.append("kind: Segment\nname: sampled\nrules: [{attr: email, op: exists}]\n"
                    "limit_percent: 50\n")
    campaign = (
        "kind: Campaign\nname: hello\ntimezone: Europe/Paris\ncloses_at: 2027-04-30T23:59\n"
        "message_type: promotional\naudience: {segment: any-of}\n"
        "message:\n  subject: 'Hello {{ id }}'\n"
        "  body: 'plan {{ plan }}'\n"
        "type: one-off\nschedule:\n  queue: immediately\n  send: immediately\n"
    )
    folder.mkdir()
    (folder / "segments.yaml").write_text("---\n".join(segments))
    (folder / "campaign.yaml").write_text(campaign)
    return folder


def ok(result):
    assert result.exit_code == 0, result
    return result


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {"csv": tmp_path / "contacts.csv", "jsonl": tmp_path / "more.jsonl",
             "late": tmp_path / "late.csv", "fresh": tmp_path / "fresh.jsonl"}
    files["csv"].write_text(CSV)
    files["jsonl"].write_text(JSONL)
    files["late"].write_text(LATE)
    files["fresh"].write_text(FRESH)
    if not (tmp_path / "defs").exists():
        _definitions(tmp_path / "defs")
    return files


def _import_flow(cli, state, files: dict[str, Path]) -> dict[str, object]:
    at = ("--state", str(state), "--now", NOW)
    out: dict[str, object] = {}
    ok(cli(*at, "init"))
    out["csv"] = ok(cli(*at, "-o", "json", "contacts", "import", str(files["csv"]))).json
    out["jsonl"] = ok(cli(*at, "-o", "json", "contacts", "import", str(files["jsonl"]))).json
    out["again"] = ok(cli(*at, "-o", "json", "contacts", "import", str(files["csv"]))).json
    out["late"] = ok(cli(*at, "-o", "json", "contacts", "import", str(files["late"]))).json
    out["fresh"] = ok(cli(*at, "-o", "json", "contacts", "import", str(files["fresh"]))).json
    out["list"] = ok(cli(*at, "-o", "json", "contacts", "list", "--limit", "0")).json
    out["vip"] = ok(cli(*at, "-o", "json", "contacts", "list", "-g", "vip")).json
    out["show"] = ok(cli(*at, "-o", "json", "contacts", "show", "c6")).json
    return out


def _sqlite_ids(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT id, external_id FROM contacts ORDER BY id")]
    finally:
        conn.close()


def _pg_ids(state: str) -> list[tuple[int, str]]:
    return [(r["id"], r["external_id"]) for r in query(
        state, "SELECT id, external_id FROM contacts ORDER BY id")]


def test_import_csv_jsonl_and_reimport_as_on_sqlite(cli, state, tmp_path):
    files = _files(tmp_path)
    on_pg = _import_flow(cli, state, files)
    on_sqlite = _import_flow(cli, tmp_path / "ref.db", files)
    for step in on_sqlite:
        assert on_pg[step] == on_sqlite[step], step
    assert {k: on_pg["csv"][k] for k in ("inserted", "updated", "rejected")} == {  # type: ignore[index]
        "inserted": 4, "updated": 1, "rejected": 1}
    assert {k: on_pg["jsonl"][k] for k in ("inserted", "updated", "rejected")} == {  # type: ignore[index]
        "inserted": 3, "updated": 3, "rejected": 1}
    assert {k: on_pg["again"][k] for k in ("inserted", "updated", "rejected")} == {  # type: ignore[index]
        "inserted": 0, "updated": 5, "rejected": 1}
    # Ids as SQLite gives them: AUTOINCREMENT spends one on every upserted row, updates included.
    ids = _pg_ids(state)
    assert ids == _sqlite_ids(tmp_path / "ref.db")
    assert ids == [(1, "c1"), (2, "c2"), (3, "c3"), (4, "c4"), (7, "c6"), (9, "c7"), (10, "8"),
                   (17, "c9"), (18, "d1"), (19, "d2")]
    by_id = {c["id"]: c for c in on_pg["list"]}  # type: ignore[attr-defined]
    assert by_id["c6"]["attributes"] == {"profile": {"c": {}, "b": 2}, "interests": ["hats"],
                                         "name": 'Zoë "Z"', "country": "NL"}
    assert by_id["c6"]["groups"] == ["vip"] and by_id["c6"]["opt_out"] == ["service"]
    assert by_id["c3"]["groups"] == [] and by_id["c3"]["opt_out"] == ["all"]  # CSV again
    assert by_id["c2"]["opt_out"] == ["promotional"]
    assert by_id["c1"]["email"] == "c1.new@example.com"
    assert by_id["c1"]["groups"] == ["newsletter"]
    # The stored text is json_patch's: compact, keys in their first order.
    assert by_id["d1"]["attributes"] == {"x": {"z": [None, 1e16, 0.1]}, "t": "\x1f\xe9"}
    assert by_id["d2"]["groups"] == ["new", "vip"] and by_id["d2"]["opt_out"] == ["all"]
    sql = "SELECT external_id, attrs FROM contacts ORDER BY id"
    conn = sqlite3.connect(tmp_path / "ref.db")
    try:
        reference = [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()
    assert [(r["external_id"], r["attrs"]) for r in query(state, sql)] == reference


def _segment_counts(cli, state, files: dict[str, Path]) -> dict[str, object]:
    at = ("--state", str(state), "--now", NOW)
    ok(cli(*at, "init"))
    for name in ("csv", "jsonl", "late"):
        ok(cli(*at, "contacts", "import", str(files[name])))
    ok(cli(*at, "apply", str(files["csv"].parent / "defs")))
    out: dict[str, object] = {}
    for name in [*SEGMENT_RULES, "any-of", "sampled"]:
        counted = ok(cli(*at, "-o", "json", "contacts", "count", "-s", name)).json
        listed = ok(cli(*at, "-o", "json", "contacts", "list", "-s", name)).json
        out[name] = (counted["count"], [c["id"] for c in listed])
    return out


def test_segment_counts_for_each_operator_as_on_sqlite(cli, state, tmp_path):
    files = _files(tmp_path)
    on_pg = _segment_counts(cli, state, files)
    on_sqlite = _segment_counts(cli, tmp_path / "ref.db", files)
    assert on_pg == on_sqlite
    assert {name: on_pg[name][1] for name in EXPECTED} == EXPECTED  # type: ignore[index]
    assert all(on_pg[name][0] == len(EXPECTED[name]) for name in EXPECTED)  # type: ignore[index]
    assert 0 < on_pg["sampled"][0] < 6  # type: ignore[index]


def _campaign_flow(cli, state, files: dict[str, Path]) -> dict[str, object]:
    at = ("--state", str(state))
    ok(cli(*at, "--now", NOW, "init"))
    for name in ("csv", "jsonl", "late"):
        ok(cli(*at, "--now", NOW, "contacts", "import", str(files[name])))
    ok(cli(*at, "--now", NOW, "apply", str(files["csv"].parent / "defs")))
    for verb in ("submit", "approve", "start"):
        ok(cli(*at, "--now", NOW, verb, "campaign", "hello"))
    out: dict[str, object] = {}
    out["tick"] = ok(cli(*at, "--now", NOW, "tick")).stdout
    out["outbox"] = ok(cli(*at, "--now", NOW, "-o", "json", "outbox", "list", "--limit", "0")).json
    out["status"] = ok(cli(*at, "--now", NOW, "-o", "json", "status")).json
    out["log"] = ok(cli(*at, "--now", NOW, "-o", "json", "log")).json
    out["contact"] = ok(cli(*at, "--now", NOW, "-o", "json", "contacts", "show", "c1")).json
    return out


def test_segment_campaign_ticks_to_the_outbox_as_on_sqlite(cli, state, tmp_path):
    files = _files(tmp_path)
    on_pg = _campaign_flow(cli, state, files)
    on_sqlite = _campaign_flow(cli, tmp_path / "ref.db", files)
    for step in on_sqlite:
        assert on_pg[step] == on_sqlite[step], step
    # any-of: premium or newsletter, less c2 (opted out of promotional messages).
    sent = [(m["message_id"], m["contact"], m["subject"])
            for m in on_pg["outbox"]]  # type: ignore[attr-defined]
    assert sent == [("r1-c1", "c1", "Hello c1"), ("r1-c4", "c4", "Hello c4"),
                    ("r1-c12", "c9", "Hello c9")]
