"""contacts import: CSV and JSON Lines, typing, upserts, rejected rows, chunk atomicity."""

from __future__ import annotations

import json

import pytest
from store_support import is_pg, state_exists

from campctl.engine.audience import import_contacts

CSV = """id,email,phone,groups,opt_out,plan,age,score,vip,zip,signup
1,a@x.com,,vip;fr,promotional,premium,34,1.5,true,007,2027-02-01
2,b@x.com,+33 1,fr,,basic,-20,,FALSE,75001,2027-03-05
"""


def contact(rows, external_id):
    found = rows("SELECT * FROM contacts WHERE external_id = ?", (external_id,))
    assert len(found) == 1, found
    row = found[0]
    row["attrs"] = json.loads(row["attrs"])
    row["groups"] = sorted(
        r["grp"] for r in rows("SELECT grp FROM contact_groups WHERE contact_id = ?", (row["id"],))
    )
    row["opt_out"] = sorted(
        r["message_type"]
        for r in rows("SELECT message_type FROM contact_optouts WHERE contact_id = ?", (row["id"],))
    )
    return row


def test_csv_import_types_values_and_reports(cli, rows, datafile, state):
    result = cli("contacts", "import", datafile("c.csv", CSV), "-o", "json")
    assert result.exit_code == 0, result
    assert result.json == {"inserted": 2, "updated": 0, "rejected": 0, "errors": []}
    one = contact(rows, "1")
    assert one["email"] == "a@x.com" and one["phone"] is None
    assert one["attrs"] == {"plan": "premium", "age": 34, "score": 1.5, "vip": True,
                            "zip": "007", "signup": "2027-02-01"}
    assert one["groups"] == ["fr", "vip"] and one["opt_out"] == ["promotional"]
    two = contact(rows, "2")
    # empty cell = absent; leading-zero-free integers and negative numbers are numbers
    assert two["attrs"] == {"plan": "basic", "age": -20, "vip": False, "zip": 75001,
                            "signup": "2027-03-05"}
    assert two["phone"] == "+33 1" and two["opt_out"] == []
    # numbers are stored as JSON numbers, so SQL compares them as numbers
    if is_pg(state):
        assert rows("SELECT jsonb_typeof(attrs_j -> 'age') AS t FROM contacts ORDER BY id") == [
            {"t": "number"}, {"t": "number"}]
    else:
        assert rows("SELECT json_type(attrs, '$.age') AS t FROM contacts ORDER BY id") == [
            {"t": "integer"}, {"t": "integer"}]


def test_table_output_summary_on_stderr_and_nothing_on_stdout(cli, datafile):
    result = cli("contacts", "import", datafile("c.csv", CSV))
    assert result.exit_code == 0, result
    assert result.stdout == ""
    assert "2 inserted, 0 updated, 0 rejected" in result.stderr


def test_rejected_rows_have_line_numbers_and_reasons_and_valid_rows_import(cli, rows, datafile):
    text = (
        "id,email,city\n"                 # line 1
        "1,a@x.com,Paris\n"               # 2 ok
        ",b@x.com,Lyon\n"                 # 3 empty id
        "3,not-an-email,Nice\n"           # 4 bad email
        "4,d@x.com\n"                     # 5 too few fields
        "\n"                              # 6 blank: skipped, not an error
        '5,e@x.com,"multi\nline"\n'       # 7-8 ok, quoted newline
        "6,f@x.com,Lille,extra\n"         # 9 too many fields
        "7,g@x.com,Brest\n"               # 10 ok
    )
    result = cli("contacts", "import", datafile("c.csv", text), "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["inserted"] == 3 and result.json["rejected"] == 4
    assert result.json["errors"] == [
        {"line": 3, "reason": "id is empty"},
        {"line": 4, "reason": "invalid email 'not-an-email'"},
        {"line": 5, "reason": "2 fields, but the header has 3"},
        {"line": 9, "reason": "4 fields, but the header has 3"},
    ]
    assert [r["external_id"] for r in rows("SELECT external_id FROM contacts ORDER BY id")] == [
        "1", "5", "7"]
    table = cli("contacts", "import", datafile("c.csv", text))
    assert "c.csv:3: rejected: id is empty" in table.stderr


def test_invalid_utf8_rejects_only_that_row(cli, rows, datafile):
    data = b"id,name\n1,Ana\n2,Bj\xf6rn\n3,Chlo\xc3\xa9\n"
    result = cli("contacts", "import", datafile("c.csv", data), "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["errors"] == [{"line": 3, "reason": "not valid UTF-8"}]
    assert contact(rows, "3")["attrs"] == {"name": "Chloé"}


def test_bom_header_is_accepted(cli, rows, datafile):
    result = cli("contacts", "import", datafile("c.csv", "\ufeffid,x\n1,2\n"), "-o", "json")
    assert result.exit_code == 0 and result.json["inserted"] == 1, result


def test_jsonl_import_keeps_json_types_and_rejects_bad_lines(cli, rows, datafile):
    lines = [
        json.dumps({"id": "a", "email": "a@x.com", "groups": ["g1", "g2"], "opt_out": ["news"],
                    "age": "34", "tags": ["x", "y"], "n": 2.5, "ok": True}),
        "{not json",
        json.dumps(["id", "b"]),
        json.dumps({"email": "c@x.com"}),
        "",
        json.dumps({"id": 42, "phone": "+1"}),
        json.dumps({"id": "d", "groups": "g1"}),
        json.dumps({"id": True}),
    ]
    result = cli("contacts", "import", datafile("c.jsonl", "\n".join(lines) + "\n"), "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["inserted"] == 2 and result.json["rejected"] == 5
    assert [e["line"] for e in result.json["errors"]] == [2, 3, 4, 7, 8]
    reasons = [e["reason"] for e in result.json["errors"]]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1:] == ["not a JSON object", "no id", "groups must be a list of strings",
                           "id must be a string"]
    a = contact(rows, "a")
    assert a["attrs"] == {"age": "34", "tags": ["x", "y"], "n": 2.5, "ok": True}
    assert a["groups"] == ["g1", "g2"] and a["opt_out"] == ["news"]
    assert contact(rows, "42")["phone"] == "+1"


def test_format_option_and_ndjson_extension(cli, datafile):
    assert cli("contacts", "import", datafile("c.ndjson", '{"id": "1"}\n')).exit_code == 0
    odd = datafile("contacts.txt", "id\n1\n")
    unknown = cli("contacts", "import", odd)
    assert unknown.exit_code == 2 and "--format" in unknown.stderr, unknown
    assert cli("contacts", "import", odd, "--format", "csv").exit_code == 0
    assert cli("contacts", "import", odd, "--format", "xml").exit_code == 2


def test_upsert_merges_attributes_and_replaces_carried_fields(cli, rows, datafile):
    assert cli("contacts", "import", datafile("c.csv", CSV)).exit_code == 0
    # A file without groups/opt_out columns leaves them alone; empty cells change nothing.
    second = "id,email,plan,city\n1,new@x.com,basic,Paris\n2,,,\n"
    result = cli("contacts", "import", datafile("d.csv", second), "-o", "json",
                 "--now", "2027-03-02T09:00:00Z")
    assert result.json == {"inserted": 0, "updated": 2, "rejected": 0, "errors": []}
    one = contact(rows, "1")
    assert one["email"] == "new@x.com"
    assert one["attrs"]["plan"] == "basic" and one["attrs"]["city"] == "Paris"
    assert one["attrs"]["age"] == 34
    assert one["groups"] == ["fr", "vip"] and one["opt_out"] == ["promotional"]
    assert one["created_at"] == "2027-03-01T09:00:00Z"
    assert one["updated_at"] == "2027-03-02T09:00:00Z"
    assert contact(rows, "2")["email"] == "b@x.com"
    # A groups value replaces the set; JSON null removes an attribute or clears a field.
    third = json.dumps({"id": "1", "groups": ["new"], "opt_out": [], "city": None,
                        "phone": None, "email": None})
    assert cli("contacts", "import", datafile("e.jsonl", third + "\n")).exit_code == 0
    one = contact(rows, "1")
    assert one["groups"] == ["new"] and one["opt_out"] == []
    assert "city" not in one["attrs"] and one["email"] is None


def test_same_id_twice_in_a_file_last_row_wins(cli, rows, datafile):
    text = "id,groups,plan\n1,a,x\n1,b,y\n"
    result = cli("contacts", "import", datafile("c.csv", text), "-o", "json")
    assert result.json["inserted"] == 1 and result.json["updated"] == 1
    one = contact(rows, "1")
    assert one["groups"] == ["b"] and one["attrs"] == {"plan": "y"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("email,name\na@x.com,A\n", "no id column"),
        ("id,name,name\n1,a,b\n", "appears twice"),
        ('id,"na""me"\n1,a\n', "quotes"),
        ("id,,x\n1,2,3\n", "has no name"),
    ],
)
def test_unreadable_files_exit_1_and_import_nothing(cli, rows, datafile, text, message):
    result = cli("contacts", "import", datafile("c.csv", text))
    assert result.exit_code == 1, result
    assert result.stderr.startswith("error:") and message in result.stderr
    assert rows("SELECT count(*) AS n FROM contacts") == [{"n": 0}]


@pytest.mark.pg_fresh  # on PostgreSQL, "missing" is a database without campctl's schema
def test_missing_file_is_a_usage_error(cli, tmp_path, state):
    result = cli("contacts", "import", tmp_path / "nope.csv")
    assert result.exit_code == 2 and "no such file" in result.stderr, result
    assert not state_exists(state)


def test_a_failure_mid_import_leaves_only_whole_chunks(db, now, tmp_path):
    """The import commits per chunk: an interruption keeps whole rows (with their groups) and a
    second run completes the file."""
    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("id,groups,n\n")
        for i in range(5000):
            handle.write(f"{i},g{i % 3};all,{i}\n")

    class Interrupted(Exception):
        pass

    def progress(done: int) -> None:
        if done > path.stat().st_size // 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        import_contacts(db, path, now=now, progress=progress, chunk_rows=300)
    count = db.scalar("SELECT count(*) FROM contacts")
    assert 0 < count < 5000 and count % 300 == 0
    # every committed contact has both of its groups: no half-upserted row
    assert db.scalar("SELECT count(*) FROM contact_groups") == 2 * count
    report = import_contacts(db, path, now=now, chunk_rows=300)
    assert (report.inserted, report.updated) == (5000 - count, count)
    assert db.scalar("SELECT count(*) FROM contact_groups WHERE grp = 'all'") == 5000


def test_import_is_streamed_in_chunks(db, now, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": str(i)}) + "\n" for i in range(2500)))
    report = import_contacts(db, path, now=now, chunk_rows=1000)
    assert report.inserted == 2500
    assert db.scalar("SELECT count(*) FROM contacts") == 2500


def test_a_row_the_csv_reader_refuses_is_rejected_alone_with_its_line(cli, rows, datafile):
    text = "id,note\n1,a\n2," + "x" * 140_000 + "\n3,b\n\n4,c\n"
    result = cli("contacts", "import", datafile("c.csv", text), "-o", "json")
    assert result.exit_code == 0, result
    assert result.json == {"inserted": 3, "updated": 0, "rejected": 1, "errors": [
        {"line": 3, "reason": "malformed CSV: field larger than field limit (131072)"}]}
    assert [r["external_id"] for r in rows("SELECT external_id FROM contacts ORDER BY id")] == [
        "1", "3", "4"]


@pytest.mark.parametrize("limit", [None, 11])
def test_new_contacts_keep_file_order_across_multi_row_inserts(db, now, tmp_path, limit,
                                                                monkeypatch):
    """A chunk of new contacts goes in by multi-row INSERTs (500 rows each, fewer under a low
    limit on parameters): ids follow the file, attributes with nulls lose them, groups and
    opt-outs land on the right contact, and foreign-key checks are back on after."""
    import sqlite3

    from campctl.store import contacts as contacts_store

    if limit is not None and db.d.is_postgres:  # PostgreSQL's limit is a constant (65,535)
        monkeypatch.setattr(contacts_store, "_PG_MAX_PARAMETERS", limit)
    elif limit is not None:
        db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(
        {"id": f"n{i}", "n": i, "gone": None, "sub": {"a": None, "b": i}}
        | ({"groups": [f"g{i % 3}"], "opt_out": ["all"]} if i % 7 == 0 else {})) + "\n"
        for i in range(1203)))
    report = import_contacts(db, path, now=now, chunk_rows=1100)
    assert (report.inserted, report.updated, report.rejected) == (1203, 0, 0)
    got = db.query("SELECT id, external_id, attrs FROM contacts ORDER BY id")
    assert [r["external_id"] for r in got] == [f"n{i}" for i in range(1203)]
    assert [r["id"] for r in got] == list(range(got[0]["id"], got[0]["id"] + 1203))
    assert [json.loads(r["attrs"]) for r in got[:2]] == [
        {"n": 0, "sub": {"b": 0}}, {"n": 1, "sub": {"b": 1}}]
    members = db.query("SELECT c.external_id AS id, g.grp FROM contact_groups g "
                       "JOIN contacts c ON c.id = g.contact_id ORDER BY c.id")
    assert [(r["id"], r["grp"]) for r in members] == [
        (f"n{i}", f"g{i % 3}") for i in range(0, 1203, 7)]
    assert db.scalar("SELECT count(*) FROM contact_optouts") == len(range(0, 1203, 7))
    if not db.d.is_postgres:  # PostgreSQL never turns its foreign-key checks off
        assert db.scalar("PRAGMA foreign_keys") == 1
        assert db.query("PRAGMA foreign_key_check") == []


def test_memory_stays_flat_in_the_file_size(db, now, tmp_path):
    """Streaming: importing 10× more rows must not need 10× more memory. The peak is flat (about
    0.9 MB on SQLite, 2 MB on PostgreSQL, at either size); a list of the 30k parsed rows alone
    takes 14 MB, far above the bound (twice the small peak + 1 MB)."""
    import tracemalloc

    def peak(rows: int) -> int:
        path = tmp_path / f"m{rows}.csv"
        with path.open("w") as handle:
            handle.write("id,email,groups,plan,age\n")
            for i in range(rows):
                handle.write(f"m{rows}-{i},u{i}@x.org,all,premium,{i % 90}\n")
        tracemalloc.start()
        try:
            report = import_contacts(db, path, now=now, chunk_rows=1000)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert report.inserted == rows

    small, large = peak(3000), peak(30000)  # 3 and 30 chunks of 1,000 rows
    assert large < small * 2 + 1_000_000, (small, large)


def test_progress_reports_bytes_read_up_to_the_file_size(db, now, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,n\n" + "".join(f"{i},{i}\n" for i in range(30000)))
    seen: list[int] = []
    import_contacts(db, path, now=now, progress=seen.append)
    assert seen == sorted(seen) and len(seen) > 1
    assert seen[-1] == path.stat().st_size
