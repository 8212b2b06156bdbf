"""Benchmark: deliver N queue items through the outbox (with rendering) vs. the raw SQL floor.

    python benchmarks/bench_delivery.py [--items 200000] [--keep PATH]

Arranges contacts, a run and its queue items directly in a fresh state file, then times
`engine.delivery.deliver_due` (claim in batches, render subject and body per contact, outbox
row + mark sent per batch) against one `UPDATE … SET status = 'sent'` over the same number of
rows (the floor: no claiming, no rendering, no outbox). Prints items/s, the ratio and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campctl.engine.delivery import deliver_due
from campctl.store.db import open_db
from campctl.timeutil import parse_instant

T0 = "2027-03-01T09:00:00Z"
SPEC = {
    "campaign": "bench", "stage": "main", "code": "bench", "timezone": "UTC", "channel": "outbox",
    "message_type": "promotional", "audience": {"all": True}, "include_opted_out": False,
    "message": {"subject": "Hello {{ first_name }}",
                "body": "Dear {{ first_name }},\nyour plan {{ plan }} ends on {{ term_end }}.\n"
                        "Contact id {{ id }}; groups: {{ groups|join(', ') }}.\n"},
    "window": None, "campaign_version": 1,
}


def arrange(path: Path, items: int) -> tuple[int, int]:
    open_db(path, create=True).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -200000")
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO contacts (external_id, email, attrs, created_at, updated_at)"
        " SELECT 'c' || i, 'c' || i || '@example.com',"
        " json_object('first_name', 'Name' || i, 'plan', 'premium', 'term_end', '2027-04-01'),"
        " ?, ? FROM n", (items, T0, T0))
    conn.execute("INSERT INTO contact_groups SELECT 'vip', id FROM contacts WHERE id % 10 = 0")
    runs = []
    for _ in range(2):
        cur = conn.execute(
            "INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at)"
            " VALUES ('bench', 'main', 'queued', ?, ?, ?)", (json.dumps(SPEC), T0, T0))
        run = cur.lastrowid
        runs.append(run)
        conn.execute(
            "INSERT INTO queue_items (message_id, run_id, contact_id, channel, message_type,"
            " created_at) SELECT 'r' || ? || '-' || id, ?, id, 'outbox', 'promotional', ?"
            " FROM contacts", (run, run, T0))
    conn.execute("COMMIT")
    conn.close()
    return runs[0], runs[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--keep", help="write the state file here instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.db"
        started = time.perf_counter()
        delivered_run, floor_run = arrange(path, args.items)
        print(f"arranged {args.items} contacts and 2 x {args.items} queue items in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr)

        db = open_db(path, create=False)
        started = time.perf_counter()
        report = deliver_due(db, now=parse_instant(T0), run_ids=[delivered_run],
                             scenario_items=False, environ={})
        deliver_s = time.perf_counter() - started
        assert report.sent == args.items, report

        started = time.perf_counter()
        with db.atomic():
            db.execute("UPDATE queue_items SET status = 'sent', sent_at = ? WHERE run_id = ?"
                       " AND status = 'queued'", (T0, floor_run))
        floor_s = time.perf_counter() - started
        outbox = db.scalar("SELECT count(*) FROM outbox")
        db.close()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"deliver {args.items} via outbox (render + outbox row + mark sent): "
          f"{deliver_s:.2f}s = {args.items / deliver_s:,.0f} items/s ({outbox} outbox rows)")
    print(f"raw floor (one UPDATE marking {args.items} rows sent): {floor_s:.2f}s = "
          f"{args.items / floor_s:,.0f} rows/s")
    print(f"ratio delivery / floor: {deliver_s / floor_s:.1f}x")
    print(f"peak RSS: {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
