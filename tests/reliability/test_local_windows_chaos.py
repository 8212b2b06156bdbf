"""Sending windows in each recipient's time zone (across the US spring-forward) under
concurrent ticks and SIGKILLs, counted at real receivers, on both stores at CI size (full size:
`python3 tests/reliability/full_size.py --only local_windows [--store URL]`).

The workload and its figures are in local_windows_workload.py.
"""

from __future__ import annotations

import local_windows_workload
import pytest


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def test_each_message_goes_once_inside_its_recipients_window_despite_sigkills(
        tmp_path, store, request):
    url = request.getfixturevalue("pg_state") if store == "pg" else None
    f = local_windows_workload.measure(tmp_path, size="small", seed=0, store=url)
    assert f["kills"] >= 2 and f["nonzero_exits_unkilled"] == 0, f
    assert f["integrity_failures"] == 0, f
    # Every arrival (a redelivery too) inside 09:00-10:00 of its recipient's zone, and no
    # message left waiting by a round without kills that found its window open.
    assert f["outside_window"] == 0 and f["missed_open_window"] == 0, f
    # Every message exactly once, modulo the same key again after a kill left it in doubt.
    assert f["lost"] == 0 and f["unknown_arrivals"] == 0, f
    assert f["second_key_for_recipient"] == 0 and f["resent_unexplained"] == 0, f
    assert f["messages"] == f["items"] > 0, f
    # Contacts without a valid zone fall back to the campaign's, and are counted.
    assert f["window_fallback"] == f["expected_window_fallback"] > 0, f
    assert f["ok"] is True, f
