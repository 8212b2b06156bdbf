"""Four `campctl tick` processes acting as four hosts against one PostgreSQL database, with
SIGKILLs at random moments, counted at real SMTP and webhook receivers on 127.0.0.1 (CI size;
full size: `python3 tests/reliability/full_size.py --only hosts --store URL`).

The workload and its figures are in hosts_workload.py; it also runs on a SQLite file (four
processes on one host), which the other workloads of this folder already cover in CI.
"""

from __future__ import annotations

import hosts_workload
import pytest
from hosts_workload import SIZES


@pytest.mark.slow
@pytest.mark.pg
def test_four_hosts_with_sigkills_on_one_postgresql_database(tmp_path, pg_state):
    size = SIZES["small"]
    f = hosts_workload.measure(tmp_path, size="small", seed=0, store=pg_state)
    assert f["kills"] >= size["kills"] + size["paused_kills"], f
    assert f["nonzero_exits_unkilled"] == 0 and f["operator_errors"] == 0, f
    # Lost 0: every item sent (the stopped run's: sent or cancelled), every sent item arrived,
    # every run built with its whole audience.
    assert f["lost"] == 0 and f["unknown_arrivals"] == 0 and f["arrived_not_sent"] == 0, f
    assert f["items_by_status"].get("sent", 0) + f["stopped_cancelled"] == f["items"], f
    # Duplicates 0: never a second key for one recipient of a run; a key again only after a
    # kill left it in doubt, and at most once per such kill.
    assert f["second_key_for_recipient"] == 0 and f["resent_unexplained"] == 0, f
    # One run per occurrence, whichever host fired it.
    assert f["every_runs"] == f["expected_every_runs"] >= 2, f
    assert f["runs_not_one_per_occurrence"] == 0 and f["duplicate_occurrences"] == 0, f
    # Nothing after a pause or a stop returned, both given while the hosts handed the run over.
    assert f["pause_during_hand_over"] is True and f["stop_during_hand_over"] is True, f
    assert f["delivered_while_paused"] == 0 and f["delivered_after_stop"] == 0, f
    assert f["messages"] > 0 and f["ok"] is True, f
