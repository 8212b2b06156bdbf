"""The error boundary itself: what it sets aside and what it lets through."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from campctl.engine import isolation
from campctl.errors import StateLocked
from campctl.models import TickReport
from campctl.store.db import open_state

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)


@pytest.fixture
def db(state):
    database = open_state(state, create=True)
    yield database
    database.close()


def test_an_object_failure_is_rolled_back_and_set_aside(db):
    report = TickReport(now=NOW)
    with isolation.boundary(db, report, isolation.Unit(kind="Campaign", name="promo"), now=NOW):
        report.fired += 1
        report.notes.append("half done")
        db.execute("INSERT INTO notifications (at, kind, object) VALUES ('x', 'probe', 'p')")
        raise KeyError("stage")
    assert (report.fired, report.notes) == (0, [])
    assert [f["object"] for f in report.object_failures] == ["campaign/promo"]
    kinds = [r[0] for r in db.query("SELECT kind FROM notifications")]
    assert kinds == ["campaign-failed"]  # the probe row went with the rollback


@pytest.mark.parametrize("problem", [
    StateLocked("locked"), sqlite3.DatabaseError("database disk image is malformed"),
    sqlite3.OperationalError("no such table: runs"),
])
def test_a_state_file_problem_stops_the_tick(db, problem):
    report = TickReport(now=NOW)
    with pytest.raises(type(problem)), isolation.boundary(db, report, isolation.Unit(
            kind="Campaign", name="promo"), now=NOW):
        raise problem
    assert report.object_failures == []


def test_data_errors_of_one_object_are_its_own(db):
    report = TickReport(now=NOW)
    for problem in (sqlite3.IntegrityError("UNIQUE"), sqlite3.InterfaceError("type"),
                    OverflowError("date value out of range"), RecursionError()):
        with isolation.boundary(db, report, isolation.Unit(
                kind="run", name="7", fail=lambda r: None), now=NOW):
            raise problem
    assert len(report.object_failures) == 4


def test_a_failed_statement_leaves_the_transaction_usable_for_the_next_object(db):
    """A statement that fails inside one object's boundary (a duplicate key) is rolled back to
    its savepoint; the next object's writes commit with the tick's transaction (PostgreSQL
    aborts a whole transaction on an error unless a savepoint catches it)."""
    report = TickReport(now=NOW)
    with db.atomic():
        db.execute("INSERT INTO config (key, value) VALUES ('notify_to', 'a@example.com')")
        with isolation.boundary(db, report, isolation.Unit(
                kind="run", name="1", fail=lambda reason: None), now=NOW):
            db.execute("INSERT INTO notifications (at, kind, object) VALUES ('x', 'probe', '1')")
            db.execute("INSERT INTO config (key, value) VALUES ('notify_to', 'b@example.com')")
        with isolation.boundary(db, report, isolation.Unit(kind="run", name="2"), now=NOW):
            db.execute("INSERT INTO notifications (at, kind, object) VALUES ('x', 'probe', '2')")
    assert [f["object"] for f in report.object_failures] == ["run/1"]
    assert [r[0] for r in db.query("SELECT object FROM notifications")] == ["2"]
    assert [r[0] for r in db.query("SELECT value FROM config")] == ["a@example.com"]


def test_a_missing_table_stops_the_tick_on_either_store(db):
    """A statement on a table that is not there is a problem of the state (SQLite's
    OperationalError, PostgreSQL's SQLSTATE class 42), never one object's failure."""
    report = TickReport(now=NOW)
    with pytest.raises(Exception) as raised, db.atomic(), isolation.boundary(
            db, report, isolation.Unit(kind="Campaign", name="promo"), now=NOW):
        db.execute("SELECT * FROM no_such_table")
    assert isolation.state_problem(raised.value)
    assert report.object_failures == []
