"""Benchmark of the interactive commands on a large state: `status`, `get campaigns` and
`describe campaign`, as a table and as JSON, against the python + sqlite3 floor (a fresh
interpreter that connects and reads every object row) measured in the same run.

    python benchmarks/bench_interactive.py [--runs 5] [--campaigns 10000]

The state holds N campaigns (most date-triggered and armed, some drafts, some stopped), 100 of
them fired with a run each (10 contacts), a few runs paused, and two objects set aside by the
tick. Output is piped (not a terminal), as in a script or a CI log.

Target: every command within 10 x the floor, table or JSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from timing import medians

NOW = "2027-03-01T09:30:00Z"
TARGET = 10.0


def _prepare(path: Path, *, campaigns: int, due: int, contacts: int) -> None:
    from campctl.engine.audience import import_contacts
    from campctl.engine.context import Budget
    from campctl.engine.tick import tick
    from campctl.store import object_failures
    from campctl.store import objects as object_store
    from campctl.store.db import open_db

    db = open_db(path, create=True)
    launched = datetime(2027, 3, 1, 7, 0, tzinfo=UTC)
    csv = path.with_suffix(".csv")
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.org\n" for i in range(contacts)))
    import_contacts(db, csv, now=launched)
    with db.atomic():
        for n in range(campaigns):
            status = "draft" if n % 50 == 7 else "stopped" if n % 97 == 5 else "approved"
            spec = {"type": "date-triggered", "timezone": "Europe/Paris" if n % 2 else
                    "America/New_York", "audience": {"all": True},
                    "message": {"subject": "s", "body": "b"},
                    # `due` of them fire at 10:00 Paris (09:00Z); the others at 11:00 local
                    "schedule": {"cron": "0 10 * * *" if n < due else "0 11 * * *"},
                    "send_schedule": {"window": {"start": "08:00", "end": "20:00"}}}
            new = object_store.NewVersion("Campaign", f"c{n:05d}", 1, spec)
            object_store.insert_object(db, new, status=status, now=launched)
            if status == "approved":
                object_store.set_launched(db, f"c{n:05d}", now=launched)
    tick(db, now=launched, environ={})  # arms every schedule
    # The due ones fire and build; a third of their runs are paused before delivery.
    tick(db, now=datetime(2027, 3, 1, 9, 0, tzinfo=UTC), environ={},
         budget=Budget(max_messages=1))
    with db.atomic():
        db.execute("UPDATE runs SET status = 'paused' WHERE id % 3 = 0 "
                   "AND status IN ('queued', 'sending')")
        for name in ("c00003", "c00004"):
            object_failures.record(db, kind="Campaign", name=name, reason="bench: set aside",
                                   now=launched)
    db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--campaigns", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--contacts", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        started = time.perf_counter()
        _prepare(db, campaigns=args.campaigns, due=args.due, contacts=args.contacts)
        print(f"state: {args.campaigns} campaigns, {args.due} runs "
              f"(built in {time.perf_counter() - started:.1f} s)")
        floor = [sys.executable, "-c",
                 f"import sqlite3; db = sqlite3.connect({str(db)!r}); "
                 "rows = db.execute('SELECT * FROM objects').fetchall()"]
        base = [sys.executable, "-m", "campctl", "--state", str(db), "--now", NOW]
        cases = {
            "status": ["status"],
            "status -o json": ["-o", "json", "status"],
            "get campaigns": ["get", "campaigns"],
            "get campaigns -o json": ["-o", "json", "get", "campaigns"],
            "describe campaign": ["describe", "campaign", "c00042"],
            "describe campaign -o json": ["-o", "json", "describe", "campaign", "c00042"],
        }
        timings = medians([floor] + [base + argv for argv in cases.values()], args.runs)
        floor_wall, floor_cpu, _ = timings[0]
        print(f"floor (python + sqlite3, read every object row): {floor_wall * 1000:7.1f} ms "
              f"wall, {floor_cpu * 1000:6.1f} ms CPU")
        worst = worst_cpu = 0.0
        for label, (wall, cpu, size) in zip(cases, timings[1:], strict=True):
            worst, worst_cpu = max(worst, wall / floor_wall), max(worst_cpu, cpu / floor_cpu)
            print(f"  {label:26s} {wall * 1000:7.1f} ms wall {wall / floor_wall:5.1f} x  "
                  f"{cpu * 1000:6.1f} ms CPU {cpu / floor_cpu:5.1f} x  ({size / 1024:.0f} KiB out)")
        print(f"worst: {worst:.1f} x floor wall, {worst_cpu:.1f} x CPU (target <= {TARGET:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
