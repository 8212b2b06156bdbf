"""Frequency caps under concurrent ticks and SIGKILLs, counted at real receivers, on both stores
at CI size (full size: `python3 tests/reliability/full_size.py --only caps [--store URL]`).

The workload and its figures are in caps_workload.py.
"""

from __future__ import annotations

import caps_workload
import pytest


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def test_caps_hold_per_contact_under_concurrent_ticks_and_sigkills(tmp_path, store, request):
    url = request.getfixturevalue("pg_state") if store == "pg" else None
    f = caps_workload.measure(tmp_path, size="small", seed=0, store=url)
    assert f["kills"] >= 3 and f["nonzero_exits_unkilled"] == 0, f
    assert f["integrity_failures"] == 0, f
    # Never more than `max` messages of a cap's types per contact in any rolling `per`, each
    # message id counted once at its first arrival.
    assert f["over_cap"] == 0, f
    # Nothing lost: sent and arrived, dropped (cancelled `capped`) by the drop cap and never
    # handed over, or still deferred; both policies did something.
    assert f["lost"] == 0 and f["arrived_not_sent"] == 0 and f["unknown_arrivals"] == 0, f
    assert f["dropped"] > 0 and f["deferred_then_sent"] > 0, f
    assert f["capped_counted_by_runs"] >= f["dropped"], f
    # Never a second key for one recipient; a key again only after a kill left it in doubt.
    assert f["second_key_for_recipient"] == 0 and f["resent_unexplained"] == 0, f
    # The highest priority takes a contact's freed slot first.
    assert f["priority_inversions"] == 0 and f["priority_contests"] > 0, f
    assert f["ok"] is True, f
