"""benchmarks/bench_pg.py runs through at a tiny size against the test database (its figures
mean nothing there: the CI cluster runs with fsync off; this only keeps the script working)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pg

ROOT = Path(__file__).resolve().parents[2]


def test_bench_pg_runs_at_a_tiny_size(pg_state):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env["CAMPCTL_BENCH_PG_URL"] = pg_state  # the reset test database, not a cluster of its own
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_pg.py"), "--items", "100",
         "--processes", "1", "--records", "10", "--window", "4"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for needle in ("1. claims", "2. deliveries", "3. the per-message record cost",
                   "4. bloat", "every id once", "synchronous_commit = off", "n_tup_hot_upd",
                   "manual VACUUM"):
        assert needle in out, out
    assert out.count("every id once") == 3, out  # SQLite, PostgreSQL and the bloat pass
