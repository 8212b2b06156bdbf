"""The error boundary itself: what it sets aside and what it lets through."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from campctl.engine import isolation
from campctl.errors import StateLocked
from campctl.models import TickReport
from campctl.store.db import open_db

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "state.db", create=True)
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
