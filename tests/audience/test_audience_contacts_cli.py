"""contacts list|count|show|forget and segment count through the CLI."""

from __future__ import annotations

import json

import pytest
from audience_helpers import add_event, new_run, store_segment
from store_support import state_exists

from campctl.engine.audience import AudienceQuery, RunItems, build_queue

CSV = """id,email,groups,opt_out,plan,age
a,a@x.com,vip;fr,promo,premium,34
b,b@x.com,fr,,basic,20
c,c@x.com,,,premium,51
d,,vip,,,
"""


def setup(cli, datafile):
    result = cli("contacts", "import", datafile("c.csv", CSV))
    assert result.exit_code == 0, result


def test_list_json_shape_and_filters(cli, datafile, db):
    setup(cli, datafile)
    listed = cli("contacts", "list", "-o", "json")
    assert listed.exit_code == 0, listed
    assert [c["id"] for c in listed.json] == ["a", "b", "c", "d"]
    assert listed.json[0] == {
        "id": "a", "email": "a@x.com", "phone": None, "groups": ["fr", "vip"],
        "opt_out": ["promo"], "attributes": {"plan": "premium", "age": 34},
        "created_at": "2027-03-01T09:00:00Z", "updated_at": "2027-03-01T09:00:00Z",
    }
    by_group = cli("contacts", "list", "--group", "vip", "-o", "json")
    assert [c["id"] for c in by_group.json] == ["a", "d"]
    two_groups = cli("contacts", "list", "--group", "vip", "--group", "fr", "-o", "json")
    assert [c["id"] for c in two_groups.json] == ["a", "b", "d"]
    store_segment(db, "older", {"rules": [{"attr": "age", "op": "gt", "value": 30}]})
    by_segment = cli("contacts", "list", "--segment", "older", "-o", "json")
    assert [c["id"] for c in by_segment.json] == ["a", "c"]
    both = cli("contacts", "list", "--segment", "older", "--group", "vip", "-o", "json")
    assert [c["id"] for c in both.json] == ["a"]
    table = cli("contacts", "list")
    assert table.exit_code == 0 and "a@x.com" in table.stdout and "plan=premium" in table.stdout


def test_list_limit_says_how_many_were_left_out(cli, datafile):
    setup(cli, datafile)
    limited = cli("contacts", "list", "--limit", "2", "-o", "json")
    assert [c["id"] for c in limited.json] == ["a", "b"]
    assert "showing 2 of 4" in limited.stderr
    assert len(cli("contacts", "list", "--limit", "0", "-o", "json").json) == 4


def test_count_and_segment_count(cli, datafile, db):
    setup(cli, datafile)
    assert cli("contacts", "count").stdout.strip() == "4"
    assert cli("contacts", "count", "--group", "fr", "-o", "json").json == {"count": 2}
    store_segment(db, "premium", {"match": "any", "rules": [
        {"attr": "plan", "op": "eq", "value": "premium"}, {"group": "vip"}]})
    result = cli("segment", "count", "premium")
    assert result.exit_code == 0 and result.stdout.strip() == "3", result
    typed = cli("segment", "count", "premium", "--message-type", "promo", "-o", "json")
    assert typed.json == {"segment": "premium", "count": 2, "limit_percent": None}
    assert cli("contacts", "count", "--segment", "premium").stdout.strip() == "3"


def test_segment_from_apply_counts(cli, datafile, write_yaml):
    setup(cli, datafile)
    path = write_yaml("seg.yaml", "kind: Segment\nname: fr-premium\nmatch: all\nrules:\n"
                      "  - {attr: plan, op: eq, value: premium}\n  - {group: fr}\n")
    applied = cli("apply", path)
    assert applied.exit_code == 0, applied
    assert cli("segment", "count", "fr-premium").stdout.strip() == "1"


@pytest.mark.pg_fresh  # on PostgreSQL, "missing" is a database without campctl's schema
def test_not_found_and_missing_state(cli, datafile, state):
    for args in (("contacts", "list"), ("contacts", "count"), ("contacts", "forget", "a"),
                 ("segment", "count", "x")):
        missing = cli(*args)
        assert missing.exit_code == 4 and "campctl init" in missing.stderr, (args, missing)
    assert not state_exists(state)
    setup(cli, datafile)
    for args in (("contacts", "show", "zz"), ("contacts", "forget", "zz"),
                 ("segment", "count", "nope"), ("contacts", "list", "--segment", "nope")):
        result = cli(*args)
        assert result.exit_code == 3, (args, result)
        assert result.stderr.startswith("error:")


def test_show_one_contact(cli, datafile, db):
    setup(cli, datafile)
    add_event(db, "a", "visited", "2027-02-28T10:00:00Z")
    shown = cli("contacts", "show", "a", "-o", "json")
    assert shown.exit_code == 0, shown
    assert shown.json["email"] == "a@x.com" and shown.json["events"] == 1
    assert "premium" in cli("contacts", "show", "a").stdout


def test_forget_erases_the_person_and_keeps_counts(cli, datafile, db, rows, now):
    setup(cli, datafile)
    add_event(db, "a", "visited", "2027-02-28T10:00:00Z")
    run = new_run(db)
    build_queue(db, AudienceQuery({"all": True}, sample_key="k"), RunItems(run, "outbox"),
                now=now)
    pk = {r["external_id"]: r["id"] for r in rows("SELECT id, external_id FROM contacts")}
    # a was already sent (with an outbox copy); b is still queued
    with db.atomic():
        db.execute("UPDATE queue_items SET status = 'sent' WHERE contact_id = ?", (pk["a"],))
        db.execute(
            "INSERT INTO outbox (message_id, channel, run_id, contact, recipient, subject, body, "
            "sent_at) SELECT message_id, 'outbox', run_id, 'a', 'a@x.com', 'Hi Ana', 'Body', "
            "'2027-03-01T09:00:00Z' FROM queue_items WHERE contact_id = ?", (pk["a"],))
    before = rows("SELECT status, count(*) AS n FROM queue_items GROUP BY status ORDER BY status")
    result = cli("contacts", "forget", "a", "--note", "GDPR-12", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json == {"forgotten": "a", "events_deleted": 1, "queue_items_cancelled": 0,
                           "outbox_redacted": 1, "profiles_exited": 0}
    assert rows("SELECT count(*) AS n FROM contacts WHERE external_id = 'a'") == [{"n": 0}]
    for table in ("contact_groups", "contact_optouts", "events"):
        assert rows(f"SELECT count(*) AS n FROM {table} WHERE contact_id = ?", (pk["a"],)) == [
            {"n": 0}]
    assert rows("SELECT status, count(*) AS n FROM queue_items GROUP BY status "
                "ORDER BY status") == before
    outbox = rows("SELECT * FROM outbox")
    assert len(outbox) == 1
    assert (outbox[0]["recipient"], outbox[0]["contact"], outbox[0]["subject"],
            outbox[0]["body"]) == (None, None, None, None)
    dump = json.dumps(rows("SELECT * FROM history")) + json.dumps(rows("SELECT * FROM outbox"))
    assert "a@x.com" not in dump and "GDPR-12" in dump
    # a queued item of a forgotten contact is cancelled, so the run's counts still add up
    queued = cli("contacts", "forget", "b", "-o", "json")
    assert queued.json["queue_items_cancelled"] == 1
    assert rows("SELECT status, last_error FROM queue_items WHERE contact_id = ?",
                (pk["b"],)) == [{"status": "cancelled", "last_error": "contact forgotten"}]
    # the id is free again and a re-import is a new person with a new number
    again = cli("contacts", "import", datafile("again.csv", "id,email\na,new@x.com\n"), "-o",
                "json")
    assert again.json["inserted"] == 1
    assert rows("SELECT id FROM contacts WHERE external_id = 'a'")[0]["id"] > max(pk.values())


def test_forgotten_contacts_exit_their_scenarios(cli, datafile, db, rows):
    setup(cli, datafile)
    with db.atomic():
        db.execute(
            "INSERT INTO scenario_profiles (scenario, contact_id, step, status, entered_at, "
            "wake_at, error, updated_at) SELECT 'onb', id, 'wait', 'waiting', "
            "'2027-02-01T00:00:00Z', '2027-03-05T00:00:00Z', 'x', '2027-02-01T00:00:00Z' "
            "FROM contacts WHERE external_id = 'c'")
    result = cli("contacts", "forget", "c", "-o", "json")
    assert result.json["profiles_exited"] == 1
    profile = rows("SELECT status, wake_at, exited_at, error FROM scenario_profiles")[0]
    assert profile == {"status": "exited", "wake_at": None,
                       "exited_at": "2027-03-01T09:00:00Z", "error": None}


def test_import_progress_counts_rows_when_stderr_is_a_terminal(cli, datafile):
    """The bar follows the file's bytes and counts rows with their rate; forced here as rich
    allows (TTY_COMPATIBLE=1), absent when stderr is not a terminal."""
    text = "id,plan\n" + "".join(f"p{i},basic\n" for i in range(12000))
    shown = cli("contacts", "import", datafile("p.csv", text),
                env={"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"})
    assert shown.exit_code == 0, shown
    assert "12,000 rows" in shown.stderr and "rows/s" in shown.stderr, shown.stderr
    assert "12000 inserted, 0 updated, 0 rejected" in shown.stderr
    plain = cli("contacts", "import", datafile("p.csv", text), env={"TTY_COMPATIBLE": "0"})
    assert plain.exit_code == 0, plain
    assert "rows/s" not in plain.stderr
    assert plain.stderr.strip() == "0 inserted, 12000 updated, 0 rejected"
