"""Event ids are never reused: consumers read events by id after a cursor, so an id handed out
again after `contacts forget` would sit behind every cursor and never be read."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta as td
from pathlib import Path

from scenario_support import at

from campctl.store import db as dbmod

ON_SIGNUP = """\
kind: Scenario
name: welcome
reentry: parallel
launch: {type: event, event: signed_up}
steps:
  - id: hello
    send: {subject: "Hi", body: "Hello"}
"""

RELEASED_V1 = Path(__file__).parent.parent / "fixtures" / "state-v1-demo.db"


def test_an_event_after_forgetting_the_newest_event_still_captures(scn):
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(ON_SIGNUP)
    scn.activate("welcome")
    scn.event("signed_up", "ann", at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))
    scn.ok("contacts", "forget", "ann", "--now", at(td(minutes=3)))
    scn.event("signed_up", "bob", at(td(minutes=4)))
    scn.tick(at(td(minutes=5)))
    assert [p["contact"] for p in scn.profiles("welcome")] == [None, "bob"]
    assert scn.rows("SELECT contact FROM outbox ORDER BY sent_at")[-1]["contact"] == "bob"


def test_a_schema_1_file_numbers_new_events_above_every_cursor(tmp_path):
    copy = tmp_path / "released.db"
    shutil.copyfile(RELEASED_V1, copy)
    conn = sqlite3.connect(copy)
    top = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    passed = conn.execute("SELECT max(last_event_id) FROM event_cursors").fetchone()[0]
    assert passed == top
    conn.execute("DELETE FROM events WHERE id = ?", (top,))  # what forget did under schema 1
    conn.commit()
    kept = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
    conn.close()
    db = dbmod.open_db(copy, create=False)
    try:
        assert [tuple(r) for r in db.query("SELECT * FROM events ORDER BY id")] == kept
        with db.atomic():
            new_id = db.scalar(
                "INSERT INTO events (name, contact_id, at, recorded_at) "
                "VALUES ('x', NULL, 'now', 'now') RETURNING id")
        assert new_id > passed
    finally:
        db.close()
