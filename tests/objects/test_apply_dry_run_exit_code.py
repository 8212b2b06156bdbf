"""apply --dry-run: every line says it is a dry run; --exit-code tells CI that changes are
pending (exit 10) from "all unchanged" (0) and from a failure (1-4)."""

from __future__ import annotations

import pytest
from objects_defs import BASE_YAML, table_dump
from store_support import state_exists

CHANGES_PENDING = 10


def test_every_dry_run_line_is_marked(cli, applied, write_yaml):
    path = write_yaml("base.yaml", BASE_YAML.replace('subject: "Hello {{ first_name }}"',
                                                     'subject: "Hi"'))
    result = cli("apply", path, "--dry-run")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("(dry run) ") for line in lines), lines
    assert "(dry run) campaign/spring-sale updated (version 2)" in lines
    assert result.stderr.startswith("dry run: ")
    as_json = cli("apply", path, "--dry-run", "-o", "json").json
    assert as_json and all(row["dry_run"] is True for row in as_json)
    real = cli("apply", path)
    assert real.exit_code == 0 and "(dry run)" not in real.stdout + real.stderr
    assert all("dry_run" not in row for row in cli("apply", path, "-o", "json").json)


def test_exit_code_reports_pending_changes(cli, applied, write_yaml, state):
    unchanged = cli("apply", applied, "--dry-run", "--exit-code")
    assert unchanged.exit_code == 0, unchanged
    path = write_yaml("changed.yaml", BASE_YAML.replace("Customers in the VIP group", "VIPs"))
    before = table_dump(state)
    pending = cli("apply", path, "--dry-run", "--exit-code")
    assert pending.exit_code == CHANGES_PENDING, pending
    assert "error:" not in pending.stderr
    assert "(dry run) segment/vips updated (version 2)" in pending.stdout.splitlines()
    assert table_dump(state) == before
    # Without --exit-code the dry run stays 0, whatever it finds.
    assert cli("apply", path, "--dry-run").exit_code == 0


@pytest.mark.pg_fresh
def test_exit_code_on_a_fresh_state_counts_creations(cli, base_file, state):
    result = cli("apply", base_file, "--dry-run", "--exit-code")
    assert result.exit_code == CHANGES_PENDING, result
    assert not state_exists(state)


def test_a_refusal_or_invalid_file_still_exits_1(cli, applied, write_yaml):
    assert cli("submit", "campaign", "spring-sale").exit_code == 0
    refused = cli("apply", write_yaml("b.yaml", BASE_YAML.replace(
        'subject: "Hello {{ first_name }}"', 'subject: "Hi"')), "--dry-run", "--exit-code")
    assert refused.exit_code == 1 and "revise campaign spring-sale" in refused.stderr
    invalid = cli("apply", write_yaml("bad.yaml", "kind: Segment\nname: s\nmatch: every\n"),
                  "--dry-run", "--exit-code")
    assert invalid.exit_code == 1, invalid


@pytest.mark.pg_fresh
def test_exit_code_without_dry_run_is_a_usage_error(cli, base_file, state):
    result = cli("apply", base_file, "--exit-code")
    assert result.exit_code == 2, result
    assert result.stderr.startswith("error: --exit-code goes with --dry-run")
    assert not state_exists(state)
