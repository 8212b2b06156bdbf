"""Scenario benchmark (not a test): N profiles waiting on one step all wake and move in one tick.

The journey after the wait is `if` (event within 7d) → send → end, so one tick wakes every
profile, branches them, queues one message each and completes them: five set-based statements
per step, whatever N is.

    python benchmarks/bench_scenarios.py                   # 100,000 profiles
    python benchmarks/bench_scenarios.py --profiles 20000  # a quick run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campctl.engine import scenarios
from campctl.models import TickReport
from campctl.store.db import open_db

NOW = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
SPEC = {
    "reentry": "once",
    "launch": {"type": "event", "event": "signed_up"},
    "steps": [
        {"id": "pause", "wait": "3d"},
        {"id": "bought", "if": {"event": "purchased", "within": "7d"},
         "then": "thanks", "else": "nudge"},
        {"id": "nudge", "send": {"subject": "Still thinking?", "body": "Hi {{ id }}"},
         "next": "end"},
        {"id": "thanks", "send": {"subject": "Thanks", "body": "Hi {{ id }}"}},
    ],
}

# Bulk set-up straight in SQL (the benchmark measures the tick, not the set-up).
SETUP = [
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
    "INSERT INTO contacts (external_id, email, attrs, created_at, updated_at) "
    "SELECT 'c' || i, 'c' || i || '@example.com', '{}', :t, :t FROM n",
    "INSERT INTO scenario_profiles (scenario, contact_id, step, status, entered_at, wake_at, "
    "updated_at, capture_key) SELECT 'bench', id, 'pause', 'waiting', :t, :t, :t, 'bench' "
    "FROM contacts",
    # a tenth of the contacts bought something: they take the other branch
    "INSERT INTO events (name, contact_id, at, recorded_at) SELECT 'purchased', id, :t, :t "
    "FROM contacts WHERE id % 10 = 0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        db = open_db(path, create=True)
        t = "2027-03-07T09:00:00Z"
        with db.atomic():
            db.execute(
                "INSERT INTO objects (kind, name, version, spec, status, created_at, updated_at) "
                "VALUES ('Scenario', 'bench', 1, ?, 'active', ?, ?)", (json.dumps(SPEC), t, t))
            for statement in SETUP:
                db.execute(statement, {"n": args.profiles, "t": t})
        report = TickReport(now=NOW)
        started, cpu = time.perf_counter(), time.process_time()
        scenarios.advance(db, now=NOW, report=report)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        moved = db.scalar("SELECT count(*) FROM scenario_profiles WHERE status = 'completed'")
        queued = db.scalar("SELECT count(*) FROM queue_items WHERE scenario = 'bench'")
        again = time.perf_counter()
        scenarios.advance(db, now=NOW, report=TickReport(now=NOW))
        idle = time.perf_counter() - again
        db.close()
    print(f"python {platform.python_version()}, sqlite {__import__('sqlite3').sqlite_version}")
    print(f"{args.profiles:,} waiting profiles: woke, branched, queued {queued:,} messages and "
          f"completed {moved:,} in {elapsed:.2f} s wall, {cpu:.2f} s CPU "
          f"({args.profiles / elapsed:,.0f} profiles/s)")
    print(f"a second tick at the same time (nothing to do): {idle * 1000:.1f} ms")
    if moved != args.profiles or queued != args.profiles:
        sys.exit("benchmark: not every profile moved")


if __name__ == "__main__":
    main()
