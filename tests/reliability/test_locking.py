"""A write lock held by another connection: a tick waits for it, or gives up with exit 4.

The holder is another connection in a writing transaction: `BEGIN IMMEDIATE` on SQLite, the
SERIAL advisory lock on PostgreSQL (what every campctl transaction takes first, design §4.2)."""

from __future__ import annotations

import threading
import time

from store_support import dump_lines

from campctl.store.db import open_state


def _hold_write_lock(state, seconds: float, started: threading.Event) -> None:
    db = open_state(state, create=False)
    try:
        with db.atomic():
            db.execute("INSERT INTO config (key, value) VALUES ('notify_to', 'held@example.com')")
            started.set()
            time.sleep(seconds)
    finally:
        db.close()


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
    before = dump_lines(state)
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
    after = dump_lines(state)
    # Only the holder's own row appeared; the refused command wrote nothing.
    assert [line for line in after if line not in before] == [
        line for line in after if "held@example.com" in line
    ]
