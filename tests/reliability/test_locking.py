"""A write lock held by another connection: a tick waits for it, or gives up with exit 4."""

from __future__ import annotations

import sqlite3
import threading
import time


def _hold_write_lock(path, seconds: float, started: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO config (key, value) VALUES ('notify_to', 'held@example.com')")
    started.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def _dump(path) -> list:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_tick_waits_for_a_short_lock_and_succeeds(run_subprocess, state):
    assert run_subprocess("init").exit_code == 0
    started = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(state, 2.0, started))
    holder.start()
    started.wait(5)
    result = run_subprocess(
        "config", "set", "four_eyes", "true", env={"CAMPCTL_NOW": "2027-03-01T09:00:00Z"}
    )
    holder.join()
    assert result.exit_code == 0, result
    tick = run_subprocess("tick", env={"CAMPCTL_NOW": "2027-03-01T09:00:00Z"})
    assert tick.exit_code == 0, tick


def test_lock_longer_than_the_busy_timeout_exits_4_and_changes_nothing(run_subprocess, state):
    assert run_subprocess("init").exit_code == 0
    before = _dump(state)
    started = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(state, 3.0, started))
    holder.start()
    started.wait(5)
    result = run_subprocess(
        "config", "set", "four_eyes", "true",
        env={"CAMPCTL_NOW": "2027-03-01T09:00:00Z", "CAMPCTL_BUSY_TIMEOUT": "500"},
    )
    holder.join()
    assert result.exit_code == 4, result
    assert result.stderr.startswith("error:") and "locked" in result.stderr
    assert "Traceback" not in result.stderr
    after = _dump(state)
    # Only the holder's own row appeared; the refused command wrote nothing.
    assert [line for line in after if line not in before] == [
        line for line in after if "held@example.com" in line
    ]
