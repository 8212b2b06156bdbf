"""Cron checks reach the operator: validate rejects expressions that cannot fire, with a
position."""

from __future__ import annotations

PLAN = """\
kind: Plan
name: never
schedule:
  type: recurrent
  cron: "{cron}"
  timezone: Europe/Paris
stages:
  - {{campaign: spring, stage: main}}
"""


def test_validate_rejects_a_cron_that_never_fires(cli, write_yaml):
    path = write_yaml("plan.yaml", PLAN.format(cron="0 0 31 2 *"))
    result = cli("validate", str(path), "--format", "json")
    assert result.exit_code == 1, result
    errors = result.json["errors"]
    cron_errors = [e for e in errors if "never fires" in e["message"]]
    assert cron_errors and cron_errors[0]["line"] == 5


def test_validate_rejects_six_fields_and_bad_values(cli, write_yaml):
    for cron, words in (("0 9 * * * *", "6 fields"), ("0 24 * * *", "invalid cron")):
        path = write_yaml("plan.yaml", PLAN.format(cron=cron))
        result = cli("validate", str(path))
        assert result.exit_code == 1, result
        assert words in result.stdout + result.stderr
