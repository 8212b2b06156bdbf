"""A listing filter naming something unknown exits 3 with one error line; --limit 0 means all."""

from __future__ import annotations

import json

import pytest

from tests.display.conftest import T1

UNKNOWN = [
    ["log", "--plan", "nope"],
    ["log", "--campaign", "nope"],
    ["log", "--scenario", "nope"],
    ["log", "--run", "999"],
    ["log", "--instance", "999"],
    ["get", "runs", "--campaign", "nope"],
    ["get", "runs", "--instance", "999"],
    ["get", "instances", "--plan", "nope"],
    ["get", "launches", "--scenario", "nope"],
    ["outbox", "list", "--campaign", "nope"],
    ["outbox", "list", "--scenario", "nope"],
    ["outbox", "list", "--run", "999"],
    ["outbox", "list", "--contact", "nope"],
    ["outbox", "list", "--channel", "nope"],
    ["contacts", "list", "--segment", "nope"],
    ["contacts", "count", "--segment", "nope"],
    ["profiles", "scenario", "nope"],
    ["profiles", "scenario", "tokyo", "--step", "nope"],
    ["stats", "scenario", "nope"],
    ["failures", "scenario", "tokyo", "--step", "nope"],
    ["failures", "run", "999"],
    ["worklist", "--user", "nope"],
]


@pytest.mark.parametrize("args", UNKNOWN, ids=" ".join)
@pytest.mark.parametrize("output", ["table", "json"])
def test_an_unknown_name_in_a_filter_exits_3(cli, zoned, args, output):
    result = cli("--now", T1, "-o", output, *args)
    assert result.exit_code == 3, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result


@pytest.mark.parametrize("args", [
    ["log", "--campaign", "paris"], ["outbox", "list", "--channel", "outbox"],
    ["get", "runs", "--campaign", "paris"], ["outbox", "list", "--contact", "c1"],
])
def test_a_known_name_still_lists(cli, zoned, args):
    result = cli("--now", T1, "-o", "json", *args)
    assert result.exit_code == 0, result
    assert result.json


def test_a_deleted_campaign_keeps_its_rows_reachable(cli, zoned, write_yaml):
    assert cli("--now", T1, "apply", write_yaml("gone.yaml", """\
kind: Campaign
name: gone
timezone: UTC
audience: {all: true}
message: {subject: "x", body: "x"}
type: one-off
schedule: {send: immediately}
""")).exit_code == 0
    assert cli("--now", T1, "delete", "campaign", "gone").exit_code == 0
    for args in (["log", "--campaign", "gone"], ["get", "runs", "--campaign", "gone"],
                 ["outbox", "list", "--campaign", "gone"]):
        result = cli("--now", T1, "-o", "json", *args)
        assert result.exit_code == 0, result
        assert result.json == []


def test_limit_zero_means_all_for_every_listing(cli, zoned, tmp_path, rows):
    lines = [json.dumps({"event": "signed_up", "contact": f"c{1 + n % 3}",
                         "at": f"2027-02-{1 + n % 28:02d}T10:00:00Z"}) for n in range(60)]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    assert cli("--now", T1, "events", "import", str(events)).exit_code == 0
    totals = {
        ("events", "list"): rows("SELECT count(*) AS n FROM events")[0]["n"],
        ("log",): rows("SELECT count(*) AS n FROM exec_log")[0]["n"],
        ("outbox", "list"): rows("SELECT count(*) AS n FROM outbox")[0]["n"],
        ("contacts", "list"): rows("SELECT count(*) AS n FROM contacts")[0]["n"],
    }
    assert totals[("events", "list")] == 60  # more than the default 50
    for args, total in totals.items():
        result = cli("--now", T1, "-o", "json", *args, "--limit", "0")
        assert result.exit_code == 0, result
        assert len(result.json) == total, args
        one = cli("--now", T1, "-o", "json", *args, "--limit", "1")
        assert len(one.json) == 1, args


@pytest.mark.parametrize("args", [["log"], ["events", "list"], ["outbox", "list"],
                                  ["contacts", "list"], ["failures", "run", "1"]])
def test_a_negative_limit_is_a_usage_error(cli, zoned, args):
    result = cli("--now", T1, *args, "--limit", "-1")
    assert result.exit_code == 2, result


def test_a_deleted_plan_answers_like_a_deleted_campaign(cli, zoned, write_yaml):
    plan = write_yaml("plan.yaml", """\
kind: Campaign
name: staged
timezone: UTC
audience: {all: true}
message: {subject: "x", body: "x"}
type: one-off
stages:
  - {name: main, controlled_by_plan: true}
---
kind: Plan
name: gone-plan
schedule: {type: manual}
stages:
  - {campaign: staged, stage: main}
""")
    applied = cli("--now", T1, "apply", str(plan))
    assert applied.exit_code == 0, applied
    assert cli("--now", T1, "delete", "plan", "gone-plan").exit_code == 0
    for args in (["get", "instances", "--plan", "gone-plan"], ["log", "--plan", "gone-plan"]):
        result = cli("--now", T1, "-o", "json", *args)
        assert result.exit_code == 0, result
        assert result.json == []
