"""`Database.stream`: rows one batch at a time on both stores, and the launch check's
`targeted_contacts` through it (on PostgreSQL a server-side cursor, never the whole result)."""

from __future__ import annotations

import os

import pytest
from store_support import is_pg

from campctl.store import scenarios as store
from campctl.store.db import open_state


@pytest.fixture
def db(cli, state, tmp_path):
    rows = ["id,email,groups,plan"] + [
        f"c{i:04d},c{i}@example.org,{'vip;news' if i % 2 else ''},p{i % 3}" for i in range(2500)]
    path = tmp_path / "contacts.csv"
    path.write_text("\n".join(rows) + "\n")
    assert cli("contacts", "import", str(path)).exit_code == 0
    database = open_state(os.fspath(state), create=False)
    yield database
    database.close()


def _open_cursors(db, state) -> list[tuple[str, bool]]:
    if not is_pg(state):
        return []
    return [(r[0], bool(r[1])) for r in db.query(
        "SELECT name, is_holdable FROM pg_cursors WHERE name LIKE 'campctl_stream_%'")]


def test_a_stream_inside_a_transaction_reads_every_row_through_a_server_cursor(db, state):
    with db.atomic():
        rows = db.stream("SELECT id, external_id FROM contacts WHERE id > ? ORDER BY id", (0,))
        first = next(rows)
        cursors = _open_cursors(db, state)
        rest = list(rows)
        assert _open_cursors(db, state) == []  # read to the end: closed
    assert [first["external_id"]] + [r["external_id"] for r in rest] == [
        f"c{i:04d}" for i in range(2500)]
    if is_pg(state):
        assert len(cursors) == 1 and cursors[0][1] is False, cursors


def test_a_stream_outside_a_transaction_holds_its_rows_until_read(db, state):
    rows = db.stream("SELECT external_id FROM contacts ORDER BY id")
    assert next(rows)["external_id"] == "c0000"
    cursors = _open_cursors(db, state)
    assert sum(1 for _ in rows) == 2499
    if is_pg(state):
        assert len(cursors) == 1 and cursors[0][1] is True, cursors


def test_a_stream_left_unread_does_not_outlive_its_transaction(db, state):
    with db.atomic():
        rows = db.stream("SELECT id FROM contacts ORDER BY id")
        next(rows)
    rows.close()  # after the commit: nothing to close, and no error
    with db.atomic():
        assert db.scalar("SELECT count(*) FROM contacts") == 2500
    assert _open_cursors(db, state) == []


@pytest.mark.parametrize("in_transaction", [True, False])
def test_targeted_contacts_streams_every_contact_with_its_groups(db, in_transaction):
    sql, params = store.contacts_source(all_contacts=False, groups=["vip"])
    if in_transaction:
        with db.atomic():
            contexts = list(store.targeted_contacts(db, sql, params))
    else:
        contexts = list(store.targeted_contacts(db, sql, params))
    assert len(contexts) == 1250
    assert contexts[0] == {"plan": "p1", "id": "c0001", "email": "c1@example.org",
                           "phone": None, "groups": ["news", "vip"]}
    assert [c["id"] for c in contexts[:3]] == ["c0001", "c0003", "c0005"]
