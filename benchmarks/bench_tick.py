"""Benchmarks of `campctl tick`: a no-op tick against the sqlite3 floor, and a tick with 10,000
armed date-triggered campaigns of which 100 are due.

    python benchmarks/bench_tick.py [--runs 15] [--campaigns 10000] [--due 100]

Targets: no-op tick <= 1.3 x the floor (floor and tick run alternately, medians of wall and
CPU time); the 100-due tick <= 1 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from timing import medians


def _prepare(path: Path, *, campaigns: int, due: int, contacts: int) -> None:
    from campctl.engine.tick import tick
    from campctl.store import objects as object_store
    from campctl.store.db import open_db

    db = open_db(path, create=True)
    launched = datetime(2027, 3, 1, 7, 0, tzinfo=UTC)
    csv = path.with_suffix(".csv")
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.org\n" for i in range(contacts)))
    from campctl.engine.audience import import_contacts

    import_contacts(db, csv, now=launched)
    with db.atomic():
        for n in range(campaigns):
            spec = {"type": "date-triggered", "timezone": "Europe/Paris",
                    "audience": {"all": True}, "message": {"subject": "s", "body": "b"},
                    # 100 fire at 10:00 Paris (09:00Z); the others at 11:00 Paris
                    "schedule": {"cron": "0 10 * * *" if n < due else "0 11 * * *"}}
            new = object_store.NewVersion("Campaign", f"c{n:05d}", 1, spec)
            object_store.insert_object(db, new, status="approved", now=launched)
            object_store.set_launched(db, f"c{n:05d}", now=launched)
    # Arm every schedule (computes next_due_at once; not measured).
    tick(db, now=launched, environ={})
    db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--campaigns", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--contacts", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        _prepare(db, campaigns=args.campaigns, due=args.due, contacts=args.contacts)
        (floor, floor_cpu, _), (noop, noop_cpu, _) = medians([
            [sys.executable, "-c", f"import sqlite3; sqlite3.connect({str(db)!r})"
             ".execute('select 1')"],
            [sys.executable, "-m", "campctl", "--state", str(db), "--now",
             "2027-03-01T08:30:00Z", "tick"],
        ], args.runs)
        print(f"floor (python + sqlite3 connect + select 1): {floor * 1000:7.1f} ms wall, "
              f"{floor_cpu * 1000:6.1f} ms CPU")
        print(f"no-op campctl tick ({args.campaigns} armed campaigns): {noop * 1000:7.1f} ms "
              f"wall, {noop_cpu * 1000:6.1f} ms CPU = {noop / floor:.2f} x floor wall, "
              f"{noop_cpu / floor_cpu:.2f} x CPU (target <= 1.3)")
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "campctl", "--state", str(db), "--now",
                              "2027-03-01T09:00:00Z", "-o", "json", "tick"],
                             check=True, capture_output=True, text=True)
        busy = time.perf_counter() - started
        print(f"tick with {args.due} of {args.campaigns} due ({args.contacts} contacts each): "
              f"{busy * 1000:7.1f} ms (target <= 1000) -> {out.stdout.strip()!s:.0}", end="")
        import json

        report = json.loads(out.stdout)
        print(f"fired {report['fired']}, built {report['built']}, sent {report['sent']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
