"""A no-op tick loads nothing beyond sqlite3 and datetime: no time zone database, no JSON, no
dataclasses (their import alone is a third of the floor), no declared dependency (each costs
milliseconds on every cron minute)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .campaign_texts import campaign

LIGHT = ("zoneinfo", "json", "dateutil", "sqlite_utils", "typer", "rich", "jinja2", "yaml",
         "croniter", "http.client", "urllib.request", "dataclasses", "psycopg")


@pytest.mark.sqlite_only("the fast no-op tick probes a SQLite file; PostgreSQL takes the full tick")
def test_no_op_tick_imports_only_what_the_probe_needs(launch, tick, state):
    launch(campaign("type: date-triggered\n"), at="2027-03-01T08:00:00Z")
    tick("2027-03-01T08:00:00Z")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    code = ("import sys; before = set(sys.modules); from campctl.__main__ import main; "
            f"rc = main(['--state', {str(state)!r}, '--now', '2027-03-01T08:30:00Z', 'tick']); "
            f"loaded = sorted(m for m in {LIGHT!r} if m in set(sys.modules) - before); "
            "print(rc, loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "nothing due" in out.stdout, out
    assert out.stdout.strip().endswith("0 []"), out
