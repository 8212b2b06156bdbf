"""Concurrent ticks, catch-up after a long silence, repeated and backward ticks, at CI size (full
size: tests/reliability/full_size.py)."""

from __future__ import annotations

import ticks_workload


def test_concurrent_ticks_catch_up_and_repeated_ticks_at_small_size(tmp_path):
    figures = ticks_workload.measure(tmp_path, size="small")
    assert figures["runs"] == figures["expected_runs"] == 6, figures
    assert figures["duplicate_occurrences"] == 0, figures
    assert figures["nonzero_exits"] == 0 and figures["locked_errors"] == 0, figures
    assert figures["messages"] == figures["expected_messages"], figures
    assert figures["duplicates"] == 0 and figures["lost"] == 0, figures
    assert (figures["catchup_72h_fired"], figures["catchup_72h_skipped"]) == (1, 71), figures
    assert figures["catchup_72h_skips_without_reason"] == 0, figures
    assert figures["catchup_10k_skipped"] >= 9_990, figures
    assert figures["repeat_tick_changed_lines"] == 0, figures
    assert figures["clock_back_new_runs"] == 0 and figures["clock_back_resends"] == 0, figures
    assert figures["ok"] is True
