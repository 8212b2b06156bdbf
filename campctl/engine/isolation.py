"""One bad object never stops the rest: each object of a tick runs inside its own error boundary.

A campaign, plan, scenario, run or plan instance is processed inside a savepoint. When its
processing raises, the savepoint is rolled back (the object's half-done work disappears), the
object is set aside with the reason, and the tick carries on with the next object. How an object
is set aside depends on what it is:

- a run or a plan instance is finished as `failed` (the `fail` callback), with its log row and
  operator notification, once;
- a campaign, plan or scenario keeps its definition and its schedule, so it is retried at every
  tick: its first failure (and each change of reason) writes a `Processing Failed` log row and an
  operator notification, the row in `object_failures` counts the retries, and the first tick that
  gets through writes `Processing Recovered`.

Either way the tick reports it (`TickReport.object_failures`, one `warning:` line each) and exits
0. A problem of the state file itself (locked, full, read-only, malformed: `state_problem`) is
not an object's failure: it stops the tick as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from campctl.errors import CampctlError, StateFileError
from campctl.models import TickReport
from campctl.store import log as exec_log
from campctl.store import notifications, object_failures

ACTOR = "campctl"
# Object kinds retried at the next tick, with the exec_log column that names them.
RETRIED = {"Campaign": "campaign", "Plan": "plan", "Scenario": "scenario"}
_COUNTERS = ("fired", "built", "sent", "failed", "cancelled", "skipped")


def state_problem(exc: BaseException) -> bool:
    """A failure of the state file itself (locked, full, read-only, malformed): it stops the
    tick; an object cannot be set aside in a file that cannot be written."""
    import sqlite3

    from campctl.store.dialect import PgError

    if isinstance(exc, PgError):
        # As SQLite's OperationalError: a missing table or column, privileges, limits, the
        # server itself. Data (22) and constraint (23) errors stay one object's failure.
        return exc.sqlstate[:2] in _PG_STATE_CLASSES
    return isinstance(exc, StateFileError) or type(exc) in (
        sqlite3.DatabaseError, sqlite3.OperationalError, sqlite3.InternalError)


# SQLSTATE classes of a PostgreSQL error that stop the tick (see state_problem).
_PG_STATE_CLASSES = frozenset({"42", "54", "55", "58", "XX"})


def describe(exc: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(exc, CampctlError):
        text = exc.message
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:500]


@dataclass(frozen=True)
class Unit:
    """One object a tick processes: its `kind` and `name`; `fail` finishes it as failed (a run,
    a plan instance), None for a retried Campaign|Plan|Scenario; `key` names it in
    `object_failures` when one object has several phases (default: its kind)."""

    kind: str
    name: str
    fail: Callable[[str], None] | None = None
    key: str | None = None


@contextlib.contextmanager
def boundary(db, report: TickReport | None, unit: Unit, *, now: datetime,
             transaction: bool = True) -> Iterator[None]:
    """Process one object: its work in a savepoint (`transaction=False`: no savepoint, for work
    that only reads or writes single statements), a failure set aside as the module docstring
    says."""
    saved = _counters(report)
    try:
        if transaction:
            with db.atomic():
                yield
        else:
            yield
    except Exception as exc:
        if state_problem(exc):
            raise
        _restore(report, saved)
        set_aside(db, report, unit, reason=describe(exc), now=now)
    else:
        if unit.fail is None and unit.kind in RETRIED:
            _recovered(db, report, kind=unit.kind, name=unit.name, now=now,
                       key=unit.key or unit.kind)


def set_aside(db, report: TickReport | None, unit: Unit, *, reason: str, now: datetime) -> None:
    """Record an object's failure (see the module docstring) and report it."""
    kind, name = unit.kind, unit.name
    label = f"{kind.lower()} {name}"
    if report is not None:
        report.object_failures.append({"object": f"{kind.lower()}/{name}", "reason": reason})
    try:
        with db.atomic():
            if unit.fail is not None:
                unit.fail(reason)
            elif kind in RETRIED:
                _note_retried(db, kind=kind, name=name, reason=reason, now=now,
                              key=unit.key or kind)
    except Exception as exc:  # even setting it aside failed: say so, and keep going
        if state_problem(exc):
            raise
        reason += f" (and recording the failure failed: {describe(exc)})"
    if report is not None:
        then = "retried at the next tick" if unit.fail is None else "marked failed"
        report.warnings.append(f"{label}: {reason}; {then}, the other objects went on")


def _note_retried(db, *, kind: str, name: str, reason: str, now: datetime, key: str) -> None:
    if not object_failures.record(db, kind=key, name=name, reason=reason, now=now):
        return  # same failure as at the last tick: told once already
    column = RETRIED[kind]
    _log(db, kind=kind, name=name, now=now, event="Processing Failed",
         details=reason + "; retried at every tick until it goes through")
    notifications.add(db, now=now, kind=f"{column}-failed", object=f"{column}/{name}",
                      note=f"processing failed, retried at every tick: {reason}", actor=ACTOR)


def _log(db, *, kind: str, name: str, now: datetime, event: str, details: str) -> None:
    """One execution-log line about a retried object, naming it in its kind's column."""
    column = RETRIED[kind]
    exec_log.append(db, exec_log.LogEntry(
        event,
        exec_log.Subject(plan=name if column == "plan" else None,
                         campaign=name if column == "campaign" else None,
                         scenario=name if column == "scenario" else None),
        details=details), now=now)


def _recovered(db, report: TickReport | None, *, kind: str, name: str, now: datetime,
               key: str) -> None:
    if report is None:
        return
    if report.failing is None:
        report.failing = object_failures.failing(db)
    if (key, name) not in report.failing:
        return
    with db.atomic():
        row = object_failures.clear(db, kind=key, name=name)
        if row is not None:
            _log(db, kind=kind, name=name, now=now, event="Processing Recovered",
                 details=f"went through after {row['count']} failed tick(s) since "
                         f"{row['first_at']}")
    report.failing.discard((key, name))


def _counters(report: TickReport | None) -> tuple | None:
    if report is None:
        return None
    return (*(getattr(report, c) for c in _COUNTERS), len(report.notes))


def _restore(report: TickReport | None, saved: tuple | None) -> None:
    """Counters and notes of work that was rolled back are taken back too."""
    if report is None or saved is None:
        return
    for counter, value in zip(_COUNTERS, saved, strict=False):
        setattr(report, counter, value)
    del report.notes[saved[-1]:]
