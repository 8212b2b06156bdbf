"""Small helpers the reliability workloads share (plain functions, no pytest).

A workload's state is a SQLite path or a PostgreSQL URL: `state_in(place, name)` gives one
(`place` is the work directory, or the URL of a database where each state gets a schema of its
own), and `query`, `dump` and `integrity_ok` read either store.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:  # store_support / pg_support, also when run as a script
    sys.path.append(_TESTS)


def iso(at: datetime) -> str:
    """An aware UTC datetime as campctl's `--now` takes it."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_env(user: str | None = None) -> dict[str, str]:
    """This process's environment without CAMPCTL_* settings (and with CAMPCTL_USER=user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    if user is not None:
        env["CAMPCTL_USER"] = user
    return env


def is_pg(state: Path | str) -> bool:
    """Whether `state` is a PostgreSQL URL (else a SQLite path)."""
    return str(state).startswith(("postgresql://", "postgres://"))


def state_in(place: Path | str, name: str) -> Path | str:
    """A new, empty state called `name`: `place/name.db`, or, when `place` is a PostgreSQL URL,
    that database with a schema `name` of its own (dropped and created again here)."""
    if not is_pg(place):
        return Path(place) / f"{name}.db"
    from pg_support import execute

    execute(str(place), f'DROP SCHEMA IF EXISTS "{name}" CASCADE; CREATE SCHEMA "{name}"')
    joiner = "&" if "?" in str(place) else "?"
    return f"{place}{joiner}options=-csearch_path%3D{name}"


def drop_state(state: Path | str) -> None:
    """Drop the schema of a PostgreSQL state made by `state_in` (a file stays in its dir)."""
    if is_pg(state) and "csearch_path%3D" in str(state):
        from pg_support import execute

        name = str(state).rpartition("csearch_path%3D")[2]
        execute(str(state), f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def dump(state: Path | str) -> list[str]:
    """Every table of the state as text lines, for before/after comparisons (SQLite: its SQL
    dump; PostgreSQL: each table's rows, sorted)."""
    if is_pg(state):
        tables = [t for (t,) in query(state, "SELECT tablename FROM pg_tables"
                                             " WHERE schemaname = current_schema()"
                                             " ORDER BY tablename")]
        lines: list[str] = []
        for table in tables:
            rows = query(state, f'SELECT * FROM "{table}"')
            lines += sorted(f"{table}: {row!r}" for row in rows)
        return lines
    conn = sqlite3.connect(state)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def integrity_ok(state: Path | str) -> bool:
    """SQLite: `PRAGMA integrity_check` says ok. PostgreSQL has no such check of its files from
    a client (its WAL makes a killed client harmless): True."""
    if is_pg(state):
        return True
    return query(state, "PRAGMA integrity_check") == [("ok",)]


def campctl_argv(state: Path, now: datetime, *args: str) -> list[str]:
    """The command line of one campctl command on `state` at the virtual instant `now`."""
    return [sys.executable, "-m", "campctl", "--state", str(state), "--now", iso(now), *args]


def run_campctl(state: Path, now: datetime, *args: str,
                env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one campctl command that must succeed (a RuntimeError with its stderr otherwise)."""
    proc = subprocess.run(campctl_argv(state, now, *args), capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"campctl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def run_in_process(state: Path | str, now: datetime, *args: str, user: str) -> str:
    """Run one campctl command in this process (no interpreter start: setting a workload up
    costs milliseconds, not a process each); a RuntimeError with its output unless it exits 0.
    Not for commands that must run beside others: it swaps sys.stdout while it runs."""
    from typer.testing import CliRunner

    from campctl.__main__ import main

    argv = ["--state", str(state), "--now", iso(now), *args]
    with CliRunner().isolation(env={"CAMPCTL_USER": user}) as (out, err, *_):
        code = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    if code != 0:
        raise RuntimeError(f"campctl {' '.join(args)} exited {code}: {stderr}")
    return stdout


def query(state: Path | str, sql: str, params=()) -> list[tuple]:
    """Rows of one read of the state, on a connection of its own (SQL in SQLite's words; on
    PostgreSQL through the store's placeholder translator)."""
    if is_pg(state):
        # Tuples, not dicts: columns of one name (several `count(*)`) must all stay.
        from pg_support import connect
        from store_support import _pg_sql

        text, values = _pg_sql(sql, params)
        with connect(str(state)) as conn:
            cur = conn.execute(text, values)
            return [tuple(row) for row in cur.fetchall()] if cur.description else []
    conn = sqlite3.connect(state, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class Operator:
    """Lands an operator command (pause, stop) in the middle of a run's hand-over, however slow
    the machine: once `seen_before` messages of a watched campaign have reached a receiver,
    each further one is held there until that campaign's command has started, and then until it
    has returned or `hold_seconds` have passed (the command waits for the messages in flight,
    so a message must not be held until it returns). Receivers call `arrived(campaign)`; the
    workload sets `started[c]` / `returned[c]` around the command, and `release()` at the end."""

    def __init__(self, campaigns: tuple[str, ...], *, seen_before: int,
                 hold_seconds: float) -> None:
        self.armed = False
        self.seen_before = seen_before
        self.hold_seconds = hold_seconds
        self.seen: Counter = Counter()
        self.started = {c: threading.Event() for c in campaigns}
        self.returned = {c: threading.Event() for c in campaigns}
        self._lock = threading.Lock()

    def arrived(self, campaign: str | None) -> None:
        if not self.armed or campaign not in self.started:
            return
        with self._lock:
            self.seen[campaign] += 1
            hold = self.seen[campaign] > self.seen_before
        if hold:
            self.started[campaign].wait(timeout=60)
            self.returned[campaign].wait(timeout=self.hold_seconds)

    def release(self) -> None:
        self.armed = False
        for event in (*self.started.values(), *self.returned.values()):
            event.set()
