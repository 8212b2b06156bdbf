"""campctl apply: created/updated/unchanged, versions, dry-run diff, refusals that write nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from objects_defs import BASE_YAML, DEFINITION_TABLES, NOW, table_dump
from store_support import query_rows, state_exists, write_marks

EXPECTED_CREATED = [
    "segment/vips created (version 1)",
    "channel/mail created (version 1)",
    "campaign/spring-sale created (version 1)",
    "plan/spring-launch created (version 1)",
    "scenario/onboarding created (version 1)",
]


def test_apply_creates_every_kind_with_initial_statuses(cli, base_file, rows):
    result = cli("apply", base_file)
    assert result.exit_code == 0, result
    assert result.stdout.splitlines() == EXPECTED_CREATED
    assert "5 created, 0 updated, 0 unchanged" in result.stderr
    objects = {r["name"]: r for r in rows("SELECT * FROM objects")}
    assert {n: (o["kind"], o["status"], o["version"]) for n, o in objects.items()} == {
        "vips": ("Segment", None, 1),
        "mail": ("Channel", None, 1),
        "spring-sale": ("Campaign", "draft", 1),
        "spring-launch": ("Plan", "draft", 1),
        "onboarding": ("Scenario", "inactive", 1),
    }
    assert objects["vips"]["description"] == "Customers in the VIP group"
    assert objects["spring-sale"]["created_at"] == NOW
    history = rows("SELECT kind, name, actor, action, to_status, at FROM history ORDER BY id")
    assert len(history) == 5
    assert all(h["actor"] == "tester" and h["action"] == "created" and h["at"] == NOW
               for h in history)
    versions = rows("SELECT kind, name, version, actor FROM object_versions")
    assert len(versions) == 5 and {v["version"] for v in versions} == {1}


def test_apply_json_lists_kind_name_action_version(cli, base_file):
    result = cli("apply", base_file, "-o", "json")
    assert result.exit_code == 0, result
    assert result.json[2] == {"kind": "campaign", "name": "spring-sale", "action": "created",
                              "version": 1}
    assert [r["action"] for r in result.json] == ["created"] * 5


def test_reapply_unchanged_is_a_no_op(cli, applied, state):
    before = table_dump(state)
    file_bytes = write_marks(state)
    again = cli("apply", applied, "--now", "2027-03-05T10:00:00Z", "--as", "someone-else")
    assert again.exit_code == 0, again
    assert again.stdout.splitlines() == [line.split(" created")[0] + " unchanged"
                                         for line in EXPECTED_CREATED]
    assert write_marks(state) == file_bytes  # not even a transaction
    assert table_dump(state) == before


def test_reapply_of_a_non_draft_unchanged_definition_is_allowed(cli, applied, state):
    assert cli("submit", "campaign", "spring-sale").exit_code == 0
    before = table_dump(state)
    again = cli("apply", applied)
    assert again.exit_code == 0, again
    assert "campaign/spring-sale unchanged" in again.stdout
    assert table_dump(state) == before


def test_update_bumps_version_and_keeps_previous_spec(cli, applied, write_yaml, rows):
    changed = BASE_YAML.replace('subject: "Hello {{ first_name }}"', 'subject: "Hi"')
    path = write_yaml("base.yaml", changed)
    result = cli("apply", path, "--as", "alice", "--note", "new subject",
                 "--now", "2027-03-02T08:00:00Z")
    assert result.exit_code == 0, result
    assert "campaign/spring-sale updated (version 2)" in result.stdout
    assert "segment/vips unchanged" in result.stdout
    obj = rows("SELECT version, spec FROM objects WHERE name = 'spring-sale'")[0]
    assert obj["version"] == 2 and '"Hi"' in obj["spec"]
    versions = rows("SELECT version, spec, actor, applied_at FROM object_versions "
                    "WHERE name = 'spring-sale' ORDER BY version")
    assert [v["version"] for v in versions] == [1, 2]
    assert "Hello {{ first_name }}" in versions[0]["spec"]
    assert versions[1]["actor"] == "alice" and versions[1]["applied_at"] == "2027-03-02T08:00:00Z"

    history = cli("history", "campaign", "spring-sale", "-o", "json")
    assert history.exit_code == 0, history
    assert [(h["action"], h["version"], h["actor"], h["note"]) for h in history.json] == [
        ("created", 1, "tester", None), ("updated", 2, "alice", "new subject")]
    old = cli("history", "campaign", "spring-sale", "--version", "1", "-o", "json")
    assert old.exit_code == 0, old
    assert old.json["spec"]["message"]["subject"] == "Hello {{ first_name }}"
    assert cli("history", "campaign", "spring-sale", "--version", "9").exit_code == 3
    table = cli("history", "campaign/spring-sale")
    assert table.exit_code == 0 and "updated" in table.stdout


def test_description_change_is_an_update(cli, applied, write_yaml):
    path = write_yaml("base.yaml", BASE_YAML.replace("Customers in the VIP group", "VIPs"))
    result = cli("apply", path, "-o", "json")
    assert result.exit_code == 0, result
    assert {(r["name"], r["action"]) for r in result.json if r["action"] != "unchanged"} == {
        ("vips", "updated")}


def test_dry_run_prints_a_diff_and_writes_nothing(cli, applied, write_yaml, state):
    changed = (BASE_YAML.replace('subject: "Hello {{ first_name }}"', 'subject: "Hi"')
               .replace("  - {group: vip}", "  - {group: vip}\n  - {group: gold}"))
    path = write_yaml("base.yaml", changed + "---\nkind: Segment\nname: newbies\nrules:\n"
                      "  - {group: new}\n")
    before = table_dump(state)
    result = cli("apply", path, "--dry-run")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert "(dry run) campaign/spring-sale updated (version 2)" in lines
    assert '(dry run)     message.subject: "Hello {{ first_name }}" → "Hi"' in lines
    assert '(dry run)     rules.1: (absent) → {"group": "gold"}' in lines
    assert "(dry run) segment/newbies created (version 1)" in lines
    assert "(dry run) plan/spring-launch unchanged" in lines
    assert "nothing was written" in result.stderr
    as_json = cli("apply", path, "--dry-run", "-o", "json")
    campaign = next(r for r in as_json.json if r["name"] == "spring-sale")
    assert campaign["changes"] == [{"path": "message.subject",
                                    "old": "Hello {{ first_name }}", "new": "Hi"}]
    assert table_dump(state) == before


@pytest.mark.pg_fresh
def test_dry_run_without_state_file_creates_nothing(cli, base_file, state):
    result = cli("apply", base_file, "--dry-run")
    assert result.exit_code == 0, result
    assert "campaign/spring-sale created (version 1)" in result.stdout
    assert not state_exists(state)


def test_changing_a_non_draft_campaign_is_refused_and_nothing_is_written(cli, applied, write_yaml,
                                                                         state):
    assert cli("submit", "campaign", "spring-sale").exit_code == 0
    changed = (BASE_YAML.replace('subject: "Hello {{ first_name }}"', 'subject: "Hi"')
               .replace("Customers in the VIP group", "changed too"))
    path = write_yaml("base.yaml", changed)
    before = table_dump(state)
    for extra in ([], ["--dry-run"]):
        result = cli("apply", path, *extra)
        assert result.exit_code == 1, result
        assert "campaign/spring-sale is pending-approval" in result.stderr
        assert "campctl revise campaign spring-sale" in result.stderr
        assert result.stderr.count("error:") == 1
        assert table_dump(state) == before


def test_changing_a_non_draft_plan_names_revise_plan(cli, fresh_copy, write_yaml, state):
    for verb in ("submit", "approve"):
        assert cli(verb, "campaign", "spring-sale").exit_code == 0
    assert cli("submit", "plan", "spring-launch").exit_code == 0
    path = write_yaml("p.yaml", BASE_YAML.replace("transition: completed", "transition: sent"))
    before = table_dump(state)
    result = cli("apply", path)
    assert result.exit_code == 1, result
    assert "campctl revise plan spring-launch" in result.stderr
    assert table_dump(state) == before
    # after revise the same change goes through
    assert cli("deny", "plan", "spring-launch").exit_code == 0
    assert cli("revise", "plan", "spring-launch").exit_code == 0
    again = cli("apply", path)
    assert again.exit_code == 0, again
    assert "plan/spring-launch updated (version 2)" in again.stdout


def test_invalid_files_are_reported_with_positions_and_nothing_is_written(cli, applied,
                                                                        write_yaml, state):
    good = write_yaml("good.yaml", BASE_YAML.replace("Spring is here.", "changed"))
    bad = write_yaml("bad.yaml", "kind: Segment\nname: broken\nrules: [\n")
    before = table_dump(state)
    result = cli("apply", good, bad)
    assert result.exit_code == 1, result
    assert f"{bad}:" in result.stderr
    position = next(line for line in result.stderr.splitlines() if line.startswith(f"{bad}:"))
    line_no, col = position[len(str(bad)) + 1:].split(":")[:2]
    assert line_no.isdigit() and col.isdigit()
    assert "nothing was applied" in result.stderr
    assert table_dump(state) == before


@pytest.mark.pg_fresh
def test_invalid_apply_on_missing_state_file_creates_no_file(cli, write_yaml, state):
    bad = write_yaml("bad.yaml", "kind: Nope\nname: x\n")
    result = cli("apply", bad)
    assert result.exit_code == 1, result
    assert not state_exists(state)
    missing = cli("apply", "does-not-exist.yaml")
    assert missing.exit_code == 1, missing
    assert not state_exists(state)


def test_duplicate_names_across_files_are_refused(cli, write_yaml, state):
    one = write_yaml("one.yaml", "kind: Segment\nname: dup\nrules:\n  - {group: a}\n")
    two = write_yaml("two.yaml", "kind: Segment\nname: dup\nrules:\n  - {group: b}\n")
    result = cli("apply", one, two)
    assert result.exit_code == 1, result
    assert "dup" in result.stderr
    assert not state_exists(state) or table_dump(state, DEFINITION_TABLES)["objects"] == []


def test_apply_a_directory_and_usage_errors(cli, base_file, write_yaml):
    result = cli("apply", write_yaml.folder)
    assert result.exit_code == 0, result
    assert len(result.stdout.splitlines()) == 5
    assert cli("apply").exit_code == 2


def test_deleted_then_recreated_object_continues_its_versions(cli, fresh_copy, write_yaml, rows):
    assert cli("delete", "plan", "spring-launch", "--note", "gone").exit_code == 0
    path = write_yaml("base.yaml", BASE_YAML)
    result = cli("apply", path)
    assert result.exit_code == 0, result
    assert "plan/spring-launch created (version 2)" in result.stdout
    assert rows("SELECT status, version FROM objects WHERE name='spring-launch'") == [
        {"status": "draft", "version": 2}]
    actions = [h["action"] for h in cli("history", "plan", "spring-launch", "-o", "json").json]
    assert actions == ["created", "deleted", "created"]


def test_unquoted_timestamps_reapply_as_unchanged(cli, write_yaml, rows):
    text = BASE_YAML.replace('closes_at: "2027-06-30T23:59"', "closes_at: 2027-06-30T23:59")
    path = write_yaml("base.yaml", text)
    assert cli("apply", path).exit_code == 0
    spec = rows("SELECT spec FROM objects WHERE name = 'spring-sale'")[0]["spec"]
    assert '"closes_at": "2027-06-30T23:59' in spec  # text, not a YAML 1.1 datetime
    again = cli("apply", path)
    assert again.exit_code == 0 and "campaign/spring-sale unchanged" in again.stdout


def test_concurrent_applies_create_each_object_once(base_file, state):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env.update(CAMPCTL_NOW=NOW, CAMPCTL_USER="tester")
    procs = [subprocess.Popen([sys.executable, "-m", "campctl", "--state", str(state), "apply",
                               str(base_file), "-o", "json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    actions = sorted(r["action"] for out, _ in outputs for r in json.loads(out))
    assert actions.count("created") == 5 and actions.count("unchanged") == 10
    assert query_rows(state, "SELECT count(*) AS n FROM object_versions") == [{"n": 5}]
    assert query_rows(state, "SELECT count(*) AS n FROM history") == [{"n": 5}]
