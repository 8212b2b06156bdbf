"""SIGKILL chaos with `connections: 4` on real SMTP and webhook receivers, on a SQLite file and on
PostgreSQL (CI size; full size: `python3 tests/reliability/full_size.py --only connections`,
`--store URL` for PostgreSQL).

Ticks are killed at seeded random moments, during start-up and in the middle of hand-overs with
four messages in flight; a pause and a stop are given while their runs are handed over. The
workload and its figures are in connections_workload.py.
"""

from __future__ import annotations

import connections_workload
import pytest
from connections_workload import CONNECTIONS, SIZES


@pytest.mark.parametrize("store", ["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def test_sigkill_chaos_with_four_connections_at_small_size(tmp_path, store, request):
    size = SIZES["small"]
    url = request.getfixturevalue("pg_state") if store == "pg" else None
    f = connections_workload.measure(tmp_path, size="small", seed=0, store=url)
    assert f["kills"] >= size["kills"] + size["paused_kills"], f
    assert f["kills_by_mode"].get("message", 0) >= 2, f  # kills in the middle of hand-overs
    assert f["integrity_failures"] == 0 and f["nonzero_exits_unkilled"] == 0, f
    # Nothing lost: every item sent (the stopped run's: sent or cancelled), every sent arrived.
    assert f["lost"] == 0 and f["unknown_arrivals"] == 0 and f["arrived_not_sent"] == 0, f
    assert f["items_by_status"].get("sent", 0) + f["stopped_cancelled"] == f["items"], f
    # Messages in doubt after a kill: at most one per connection, and some kills left several
    # (the connections really were in flight together).
    assert f["in_doubt_max"] <= CONNECTIONS, f
    assert f["kills_leaving_several_in_doubt"] >= 1, f
    # Repeats only of messages a kill left in doubt, at most `connections` per kill, each under
    # its own key (never a second key for one recipient).
    assert f["resent_unexplained"] == 0 and f["resent_max_per_kill"] <= CONNECTIONS, f
    assert f["second_key_for_recipient"] == 0, f
    # Nothing after a pause or a stop returned, both given while their run was handed over.
    assert f["pause_during_hand_over"] is True and f["stop_during_hand_over"] is True, f
    assert f["operator_errors"] == 0, f
    assert f["delivered_while_paused"] == 0 and f["delivered_after_stop"] == 0, f
    assert f["messages"] > 0 and min(f["messages_by_channel"].values()) > 0, f
    assert f["ok"] is True, f
