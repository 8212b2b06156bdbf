"""`campctl doctor` on PostgreSQL: the integrity check's dead-tuple warning for queue_items."""

from __future__ import annotations

import re

import pytest
from pg_support import connect

from campctl.engine.doctor import DEAD_TUPLES_MIN

pytestmark = pytest.mark.pg

T0 = "2027-03-01T09:00:00Z"


def _integrity(cli) -> dict:
    result = cli("--now", T0, "-o", "json", "doctor")
    assert result.exit_code == 0, result  # a warning is not a problem
    [check] = [c for c in result.json["checks"] if c["name"] == "integrity"]
    return check


def test_dead_tuples_of_queue_items_are_a_warning(cli, state):
    assert cli("--now", T0, "init").exit_code == 0
    count = DEAD_TUPLES_MIN + 1000
    with connect(state) as conn:
        # Autovacuum (tuned aggressive for this table) must not clean up before doctor looks.
        conn.execute("ALTER TABLE queue_items SET (autovacuum_enabled = false)")
        try:
            conn.execute(
                "INSERT INTO queue_items (message_id, channel, created_at) SELECT 'pad-' || g,"
                " 'outbox', %s FROM generate_series(1, %s) AS g", (T0, count))
            conn.execute("DELETE FROM queue_items WHERE message_id LIKE 'pad-%%'")
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.close()  # the statistics of this session are flushed when it ends
            check = _integrity(cli)
        finally:
            with connect(state) as other:  # leave no dead tuples to the next tests' doctor
                other.execute("DELETE FROM queue_items WHERE message_id LIKE 'pad-%%'")
                other.execute("ALTER TABLE queue_items RESET (autovacuum_enabled)")
                other.execute("VACUUM queue_items")
    assert check["severity"] == "warning", check
    found = re.search(r"queue_items (\d+) live, (\d+) dead tuples \(autovacuum is behind\)$",
                      check["detail"])
    assert found is not None, check
    # The live count is a statistic: rows of earlier tests on this database may still show in it.
    assert int(found[2]) >= count, check
    assert check["advice"] == ("run VACUUM (ANALYZE) queue_items, or tune autovacuum for that "
                               "table")
