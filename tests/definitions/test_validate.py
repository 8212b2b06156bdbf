"""campctl validate and campctl schema through the CLI: formats, exit codes, all errors at once,
references resolved against the files and the state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_support import state_exists

PLANS = Path(__file__).resolve().parents[2] / "plans"

SEGMENT = "kind: Segment\nname: vip\nrules:\n  - {group: vip}\n"
CAMPAIGN_USING_VIP = """kind: Campaign
name: uses-vip
type: one-off
audience: {segment: vip}
message: {body: hi}
schedule: {send: immediately}
"""


def test_examples_are_valid_in_every_format(cli):
    text = cli("validate", str(PLANS))
    assert text.exit_code == 0, text
    assert text.stdout.startswith("ok: ") and " definitions in " in text.stdout
    as_json = cli("validate", "--format", "json", str(PLANS))
    assert as_json.exit_code == 0, as_json
    assert as_json.json == {"valid": True, "errors": []}
    github = cli("validate", "--format", "github", str(PLANS))
    assert github.exit_code == 0 and github.stdout == "", github


def test_examples_cover_every_kind_type_and_schedule_form():
    from campctl.definitions import load_paths

    result = load_paths([str(PLANS)])
    assert result.valid, result.issues
    by_kind: dict[str, list] = {}
    for d in result.definitions:
        by_kind.setdefault(d.kind.value, []).append(d)
    assert set(by_kind) == {"Segment", "Channel", "Campaign", "Plan", "Scenario", "FrequencyCap"}
    campaigns = by_kind["Campaign"]
    assert {c.spec["type"] for c in campaigns} == {"one-off", "date-triggered", "event-triggered"}
    one_off = [c.spec.get("schedule", {}) for c in campaigns if c.spec["type"] == "one-off"]
    queues = {json.dumps(s.get("queue", "default"))[:15] for s in one_off}
    assert any("before_send" in q for q in queues) and any('"at"' in q for q in queues)
    assert '"immediately"' in queues and '"default"' in queues
    sends = {json.dumps(s["send"])[:8] for s in one_off if "send" in s}
    assert {'"immedia', '"after_q', '{"at": "'} <= sends
    events = [c.spec["schedule"] for c in campaigns if c.spec["type"] == "event-triggered"]
    assert {e["queue_every"] for e in events} >= {"on_event", "0 8 * * 5"}
    assert any("build_window" in e and "window" in e for e in events)
    dated = [c.spec["schedule"] for c in campaigns if c.spec["type"] == "date-triggered"]
    assert any({"start", "send_start", "until", "window"} <= set(d) for d in dated)
    plans = {p.spec["schedule"]["type"] for p in by_kind["Plan"]}
    assert plans == {"manual", "once", "recurrent"}
    launches = {s.spec["launch"]["type"] for s in by_kind["Scenario"]}
    assert launches == {"event", "schedule", "manual"}
    channels = {c.spec["type"]: c.spec for c in by_kind["Channel"]}
    assert channels["smtp"]["password"] == "${SMTP_PASSWORD}"
    assert set(channels) == {"outbox", "smtp", "webhook"} and "dir" in channels["outbox"]
    # The demo starts its clock on 2027-03-01: every closing date is after that.
    assert all(c.spec["closes_at"] > "2027-03-08" for c in campaigns)


def test_all_errors_of_all_files_in_one_run(cli, write_yaml):
    write_yaml("a.yaml", "kind: Segment\nname: Bad\nrules: [{group: vip}]\nextra: 1\n")
    write_yaml("sub/b.yml", "kind: Plan\nname: p\nschedule: {type: sometimes}\nstages: []\n")
    write_yaml("ignored.txt", "not yaml at all: [")
    result = cli("validate", "--format", "json", str(write_yaml.folder))
    assert result.exit_code == 1, result
    errors = result.json["errors"]
    assert [(Path(e["file"]).name, e["line"], e["col"]) for e in errors] == [
        ("a.yaml", 2, 7), ("a.yaml", 4, 1), ("b.yml", 3, 18), ("b.yml", 4, 9)]
    assert "unknown key 'extra'" in errors[1]["message"]
    assert "unknown schedule type 'sometimes'" in errors[2]["message"]
    assert "needs at least 1 item" in errors[3]["message"]
    assert result.stderr == "error: 4 errors in 2 files; fix them and run campctl validate again\n"


def test_text_format_lines_and_summary(cli, write_yaml):
    path = write_yaml("x.yaml", "kind: Segment\nname: s\nmatch: every\nrules: [{group: vip}]\n")
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert result.stdout == (f"{path}:3:8: match: must be one of all, any, got 'every' [CC108]\n")
    assert result.stderr.startswith("error: 1 error in 1 file")


def test_github_format_escapes_annotations(cli, write_yaml):
    path = write_yaml("g,h.yaml", "kind: Segment\nname: s\nmatch: '100%'\nrules: [{group: vip}]\n")
    result = cli("validate", "--format", "github", str(path))
    assert result.exit_code == 1
    file_prop = str(path).replace(",", "%2C").replace(":", "%3A")
    assert result.stdout == (
        f"::error file={file_prop},title=CC108,line=3,col=8::match: must be one of all, any, "
        "got '100%25'\n")


def test_global_json_output_selects_json_format(cli, write_yaml):
    path = write_yaml("ok.yaml", SEGMENT)
    result = cli("-o", "json", "validate", str(path))
    assert result.exit_code == 0 and result.json == {"valid": True, "errors": []}
    assert "ok: 1 definition in 1 file" in result.stderr


def test_missing_path_and_empty_directory(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("validate", "--format", "json", str(tmp_path / "nope.yaml"),
                 str(tmp_path / "empty"))
    assert result.exit_code == 1
    messages = [e["message"] for e in result.json["errors"]]
    assert messages == ["no such file or directory", "no *.yaml or *.yml files in this directory"]


def test_bad_format_is_a_usage_error(cli, write_yaml):
    result = cli("validate", "--format", "xml", str(write_yaml("a.yaml", SEGMENT)))
    assert result.exit_code == 2


@pytest.mark.pg_fresh
def test_needs_no_state_file_and_creates_none(cli, state, write_yaml):
    assert cli("validate", str(write_yaml("a.yaml", SEGMENT))).exit_code == 0
    assert not state_exists(state)


def test_references_resolve_against_the_state_file(cli, state, write_yaml):
    campaign = write_yaml("campaign.yaml", CAMPAIGN_USING_VIP)
    alone = cli("validate", str(campaign))
    assert alone.exit_code == 1 and "unknown segment 'vip'" in alone.stdout
    segment = write_yaml("segment.yaml", SEGMENT)
    together = cli("validate", str(campaign), str(segment))
    assert together.exit_code == 0, together
    applied = cli("apply", str(segment))
    assert applied.exit_code == 0, applied
    with_state = cli("validate", str(campaign))
    assert with_state.exit_code == 0, with_state


def test_plan_stage_checked_against_state_campaign(cli, write_yaml, tmp_path):
    campaign = write_yaml("c.yaml", CAMPAIGN_USING_VIP + "stages:\n  - {name: teaser}\n")
    assert cli("apply", str(write_yaml("s.yaml", SEGMENT)), str(campaign)).exit_code == 0
    plan = tmp_path / "plan.yaml"
    plan.write_text("kind: Plan\nname: p\nschedule: {type: manual}\nstages:\n"
                    "  - {campaign: uses-vip, stage: teaser}\n")
    result = cli("validate", str(plan))
    assert result.exit_code == 1
    assert "stage 'teaser' of campaign 'uses-vip' is not controlled_by_plan: true" in result.stdout


def test_duplicate_across_files_points_at_the_second(cli, write_yaml):
    first = write_yaml("one.yaml", SEGMENT)
    second = write_yaml("two.yaml", "# again\n" + SEGMENT)
    result = cli("validate", "--format", "json", str(first), str(second))
    assert result.exit_code == 1
    [error] = result.json["errors"]
    assert (error["file"], error["line"], error["col"]) == (str(second), 3, 7)
    assert error["message"] == f"duplicate Segment 'vip' (first defined at {first}:2:7)"


def test_spec_keeps_source_text_and_no_defaults():
    from campctl.definitions import load_texts

    text = """kind: Campaign
name: c
description: d
code: 0755
timezone: Europe/Paris
closes_at: 2027-06-30 23:59:00
audience: {all: true}
message: {subject: '1.10', body: hi}
type: one-off
schedule:
  send: {at: 2027-04-02T10:00}
  window: "09:00-17:00"
"""
    result = load_texts([("c.yaml", text, None)])
    assert result.valid, result.issues
    [d] = result.definitions
    assert d.description == "d" and d.name == "c"
    assert d.spec == {
        "code": "0755", "timezone": "Europe/Paris", "closes_at": "2027-06-30 23:59:00",
        "audience": {"all": True}, "message": {"subject": "1.10", "body": "hi"},
        "type": "one-off",
        "schedule": {"send": {"at": "2027-04-02T10:00"}, "window": "09:00-17:00"},
    }
    assert (d.pos.file, d.pos.line, d.pos.col) == ("c.yaml", 1, 1)
    json.dumps(d.spec)  # JSON-compatible: no datetimes slipped through


def test_schema_command_prints_json_schema(cli):
    result = cli("schema")
    assert result.exit_code == 0, result
    schema = result.json
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["$defs"]) == {"Segment", "Channel", "Campaign", "Plan", "Scenario",
                                   "FrequencyCap"}


@pytest.mark.parametrize("args", [("validate",), ("validate", "--format")])
def test_usage_errors(cli, args):
    assert cli(*args).exit_code == 2


def test_scenario_step_template_errors_are_positioned(cli, write_yaml):
    path = write_yaml("sc.yaml", """kind: Scenario
name: sc
launch: {type: manual}
steps:
  - id: hi
    send:
      subject: "ok {{ first_name }}"
      body: "{% for x in y %}never closed"
""")
    result = cli("validate", "--format", "json", str(path))
    assert result.exit_code == 1
    [error] = result.json["errors"]
    assert (error["line"], error["col"]) == (8, 13)
    assert error["message"].startswith("steps[1].send.body: template error:")


@pytest.mark.pg_fresh
def test_validate_in_a_real_process(run_subprocess, write_yaml, state):
    bad = write_yaml("bad.yaml", "kind: Segment\nname: s\nrules: [{group: vip}]\nmatch: some\n")
    result = run_subprocess("validate", "--format", "github", str(bad))
    assert result.exit_code == 1, result
    assert result.stdout.startswith("::error file=") and ",line=4,col=8::" in result.stdout
    assert result.stderr.startswith("error: 1 error in 1 file")
    assert not state_exists(state)
