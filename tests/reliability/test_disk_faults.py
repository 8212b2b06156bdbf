"""Full and read-only disks under the state file and the outbox folder.

The workload (disk_workload.py) runs every fault at small size; the tests below pin the two
product fixes it found on their own, with the file size limit that works on every machine.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta

import disk_workload as disk


def test_disk_faults_small(tmp_path):
    figures = disk.measure(tmp_path, size="small")
    assert figures["failures"] == 0, figures["first_failures"]
    assert figures["faults"] >= 30 and figures["faults_survived"] == figures["faults"], figures
    assert figures["exit_4"] >= 10 and figures["outbox_items_retried"] > 0, figures
    assert figures["ok"] is True, figures


def test_state_file_that_cannot_grow_is_exit_4_not_corrupt(tmp_path):
    base = disk.prepare(tmp_path, 20)
    # 1 KiB: SQLite cannot even size its -shm file; the I/O error surfaced while the opening
    # read was rolled back and used to be hidden by 'cannot commit - no transaction is active'.
    proc = disk.campctl(base, disk.T0 + timedelta(minutes=1), "tick", fsize=1024)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: cannot write state file")
    assert "corrupt" not in proc.stderr and "no transaction" not in proc.stderr
    problems, counts = disk.recover(base, 20)
    assert problems == [] and counts["sent"] == counts["jsonl"] == 20


def test_outbox_write_cut_short_leaves_no_half_line(tmp_path):
    base = disk.prepare(tmp_path, 20)
    jsonl = base / "out" / f"{disk.CHANNEL}.jsonl"
    jsonl.parent.mkdir()
    limit = 8 * 1024 * 1024
    with open(jsonl, "wb") as handle:  # sparse: 100 bytes of room left under the limit
        handle.truncate(limit - 100)
    proc = disk.campctl(base, disk.T0 + timedelta(minutes=1), "tick", fsize=limit)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("warning: cannot write outbox file"), proc.stderr
    assert "20 message(s) will be retried" in proc.stderr
    assert jsonl.stat().st_size == limit - 100  # the 100 bytes written were taken back
    conn = sqlite3.connect(base / "s.db")
    queued = conn.execute("SELECT count(*) FROM queue_items WHERE status = 'queued'").fetchone()
    conn.close()
    assert queued[0] == 20
    os.truncate(jsonl, 0)
    problems, counts = disk.recover(base, 20)
    assert problems == [] and counts["sent"] == counts["jsonl"] == 20
