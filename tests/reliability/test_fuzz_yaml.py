"""Fuzzed definitions of all five kinds, and fuzzed CSV / JSON Lines imports: exit 0
or 1 with a message, never a traceback; a failed apply leaves the state file unchanged."""

from __future__ import annotations

import fuzz_workload as fuzz


def test_fuzzed_yaml_and_imports_small(tmp_path):
    figures = fuzz.measure(tmp_path, size="small")
    assert figures["first_problems"] == "none", figures["first_problems"]
    assert figures["yaml_inputs"] >= 300 and figures["csv_jsonl_inputs"] >= 100, figures
    assert figures["tracebacks"] == 0 and figures["wrong_exit_codes"] == 0, figures
    assert figures["state_changed_after_failed_apply"] == 0, figures
    assert figures["validate_apply_disagree"] == 0, figures
    # every failed apply was compared with a dump at small size
    assert figures["failed_apply_dumps_compared"] == figures["apply_refused"] > 0, figures
    assert figures["valid"] > 0 and figures["rejected"] > 0 and figures["ok"] is True, figures


def test_mutations_cover_every_kind_and_the_traps():
    kinds = {line.split(":", 1)[1].strip() for doc in fuzz.examples()
             for line in doc.splitlines() if line.startswith("kind:")}
    assert kinds == {"Segment", "Channel", "Campaign", "Plan", "Scenario",
                     "FrequencyCap"}
    assert {"9:00", "on", "NO", "0755", "2024-03-10 02:30:00"} <= set(fuzz.TRAPS)
    assert any(tag.startswith("!!python/") for tag in fuzz.TAGS) and "*a" in fuzz.BOMB
