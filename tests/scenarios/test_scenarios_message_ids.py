"""Scenario message ids are unique for the life of the state file, across clears and scenarios."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta as td
from pathlib import Path

from scenario_support import at

from campctl.store import db as dbmod

HELLO = """\
kind: Scenario
name: {name}
reentry: once
launch: {{type: manual}}
steps:
  - id: hello
    send: {{subject: "Hi", body: "Hello"}}
  - id: later
    wait: 1d
"""

RELEASED_V1 = Path(__file__).parent.parent / "fixtures" / "state-v1-demo.db"


def _sent(scn) -> list[tuple[str, str]]:
    return [(r["message_id"], r["contact"]) for r in scn.rows(
        "SELECT o.message_id, o.contact FROM outbox o WHERE o.scenario IS NOT NULL "
        "ORDER BY o.message_id")]


def test_a_cleared_scenario_sends_again_to_new_profiles(scn):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(HELLO.format(name="c3"))
    scn.activate("c3")
    scn.ok("start", "scenario", "c3", "--all", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    assert len(_sent(scn)) == 2
    scn.ok("clear", "scenario", "c3", "--now", at(td(minutes=2)))
    scn.ok("start", "scenario", "c3", "--all", "--yes", "--now", at(td(minutes=3)))
    scn.tick(at(td(minutes=4)))
    sent = _sent(scn)
    assert len(sent) == 4, sent
    assert sorted(c for _, c in sent) == ["ann", "ann", "bob", "bob"]
    assert len({m for m, _ in sent}) == 4
    items = scn.rows("SELECT status, count(*) AS n FROM queue_items GROUP BY status")
    assert [(r["status"], r["n"]) for r in items] == [("sent", 4)]


def test_a_removed_profile_id_is_not_reused_by_another_scenario(scn):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(HELLO.format(name="first"))
    scn.apply(HELLO.format(name="second"))
    scn.activate("first")
    scn.activate("second")
    # bob's profile in `second` has the largest id; it gets its message, then is removed.
    scn.ok("start", "scenario", "first", "--contact", "ann", "--yes", "--now", at())
    scn.ok("start", "scenario", "first", "--contact", "bob", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    scn.ok("start", "scenario", "second", "--contact", "bob", "--yes",
           "--now", at(td(minutes=2)))
    scn.tick(at(td(minutes=2)))
    scn.ok("remove-profile", "scenario", "second", "bob", "--now", at(td(minutes=3)))
    scn.ok("start", "scenario", "second", "--contact", "ann", "--yes",
           "--now", at(td(minutes=4)))
    scn.tick(at(td(minutes=5)))
    ids = [r["id"] for r in scn.rows("SELECT id FROM scenario_profiles ORDER BY id")]
    assert len(ids) == len(set(ids))
    second = scn.rows("SELECT contact FROM outbox WHERE scenario = 'second' ORDER BY rowid")
    assert [r["contact"] for r in second] == ["bob", "ann"]
    statuses = scn.rows("SELECT q.status FROM queue_items q JOIN contacts c ON c.id = q.contact_id"
                        " WHERE q.scenario = 'second' ORDER BY q.id")
    assert [r["status"] for r in statuses] == ["sent", "sent"]


def test_a_schema_1_file_keeps_its_message_ids_and_never_reuses_a_deleted_profile_id(tmp_path):
    copy = tmp_path / "released.db"
    shutil.copyfile(RELEASED_V1, copy)
    conn = sqlite3.connect(copy)
    top = conn.execute("SELECT max(id) FROM scenario_profiles").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM queue_items WHERE profile_id = ?",
                        (top,)).fetchone()[0] > 0
    # What `clear` did under schema 1: the newest profile row is gone, its message stays.
    conn.execute("DELETE FROM scenario_profiles WHERE id = ?", (top,))
    conn.commit()
    before = conn.execute(
        "SELECT id, message_id, profile_id FROM queue_items ORDER BY id").fetchall()
    profiles = conn.execute("SELECT * FROM scenario_profiles ORDER BY id").fetchall()
    conn.close()
    db = dbmod.open_db(copy, create=False)
    try:
        assert [tuple(r) for r in db.query(
            "SELECT id, message_id, profile_id FROM queue_items ORDER BY id")] == before
        assert [tuple(r)[:15] for r in db.query(
            "SELECT * FROM scenario_profiles ORDER BY id")] == profiles
        with db.atomic():
            new_id = db.scalar(
                "INSERT INTO scenario_profiles (scenario, contact_id, step, status, entered_at, "
                "updated_at) VALUES ('onboarding', 1, 'x', 'completed', 'now', 'now') "
                "RETURNING id")
        assert new_id > top
    finally:
        db.close()
