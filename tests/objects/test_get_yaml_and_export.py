"""`get KIND NAME -o yaml` prints a definition as applied (apply reads it back unchanged), and
`export DIR` writes every definition so that `apply DIR` rebuilds them in another state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_support import query_rows

EXAMPLES = Path(__file__).resolve().parents[2] / "plans"
PLURAL = {"Segment": "segments", "Channel": "channels", "Campaign": "campaigns",
          "Plan": "plans", "Scenario": "scenarios", "FrequencyCap": "frequencycaps"}

# Values that YAML 1.1 tools or a naive dump would turn into something else.
TRAPS = """\
kind: Segment
name: traps
description: "Ratio: 12.5% of 'gold' members, on: yes"
match: any
limit_percent: 12.5
rules:
  - {attr: country, op: in, value: ["NO", "on", "0755", "1.10", "9:00", "", "x: y"]}
  - {attr: score, op: gt, value: 3}
  - {attr: vip, op: eq, value: true}
  - {attr: note, op: eq, value: "- leading dash"}
---
kind: Channel
name: hook
type: webhook
url: "https://crm.example.com/hook"
headers: {X-Token: "${CRM_TOKEN}", X-Mode: "on", Content-Type: application/json}
timeout: 2.5
---
kind: Campaign
name: traps
code: 0755
timezone: Europe/Paris
channel: hook
message_type: promotional
audience: {groups: [vip, "007"], include_opted_out: false}
message:
  subject: "Hé {{ first_name }}: ça marche"
  body: |
    Line one: {{ first_name }}
      indented line
    last line
type: date-triggered
schedule:
  start: {at: "2027-04-01T09:00"}
  cron: "0 9 * * 1-5"
  window: "09:00-17:30"
  until: "2027-05-01T00:00"
"""


def _objects(state) -> list[tuple]:
    return sorted((r["kind"], r["name"], json.loads(r["spec"]), r["description"], r["version"])
                  for r in query_rows(state, "SELECT kind, name, spec, description, version "
                                             "FROM objects"))


@pytest.fixture
def examples_applied(cli):
    result = cli("apply", str(EXAMPLES))
    assert result.exit_code == 0, result
    return result


def test_get_yaml_round_trips_every_example_of_every_kind(cli, examples_applied, state, tmp_path):
    objects = _objects(state)
    assert {o[0] for o in objects} == set(PLURAL), "the examples cover every kind"
    for kind, name, *_ in objects:
        shown = cli("get", PLURAL[kind], name, "-o", "yaml")
        assert shown.exit_code == 0, shown
        assert shown.stdout.startswith(f"kind: {kind}\nname: {name}\n"), shown.stdout
        again = cli("get", f"{kind.lower()}/{name}", "-o", "yaml")
        assert again.stdout == shown.stdout, "the same object prints the same text"
        path = tmp_path / f"{kind}-{name}.yaml"
        path.write_text(shown.stdout)
        result = cli("apply", str(path))
        assert result.exit_code == 0, result
        assert result.stdout == f"{kind.lower()}/{name} unchanged\n", (kind, name, shown.stdout)
    assert _objects(state) == objects


def test_get_yaml_keeps_values_that_yaml_1_1_would_change(cli, write_yaml, tmp_path, state):
    assert cli("apply", str(write_yaml("traps.yaml", TRAPS))).exit_code == 0
    before = _objects(state)
    for kind, name in (("segment", "traps"), ("channel", "hook"), ("campaign", "traps")):
        shown = cli("get", kind, name, "-o", "yaml")
        assert shown.exit_code == 0 and shown.stderr == "", shown
        path = tmp_path / f"{kind}.yaml"
        path.write_text(shown.stdout)
        result = cli("apply", str(path))
        assert result.stdout == f"{kind}/{name} unchanged\n", (result, shown.stdout)
    assert _objects(state) == before
    campaign = cli("get", "campaign", "traps", "-o", "yaml").stdout
    assert "body: |\n    Line one: {{ first_name }}\n      indented line\n" in campaign
    assert campaign.startswith('kind: Campaign\nname: traps\ncode: "0755"\n'), campaign
    segment = cli("get", "segment", "traps", "-o", "yaml").stdout
    assert segment.startswith("kind: Segment\nname: traps\ndescription: ") and \
        segment.index("description:") < segment.index("match:"), segment


def test_get_kind_yaml_is_a_stream_that_applies_unchanged(cli, examples_applied, tmp_path):
    shown = cli("get", "campaigns", "-o", "yaml")
    assert shown.exit_code == 0, shown
    names = [line.split(": ", 1)[1] for line in shown.stdout.splitlines()
             if line.startswith("name: ")]
    assert names == sorted(names) and len(names) == shown.stdout.count("\n---\n") + 1
    path = tmp_path / "campaigns.yaml"
    path.write_text(shown.stdout)
    result = cli("apply", str(path))
    assert result.exit_code == 0 and all(line.endswith(" unchanged")
                                         for line in result.stdout.splitlines()), result


def test_yaml_output_errors(cli, examples_applied):
    missing = cli("get", "campaign", "nope", "-o", "yaml")
    assert missing.exit_code == 3 and missing.stdout == "", missing
    for args in (("get", "runs", "-o", "yaml"), ("status", "-o", "yaml"),
                 ("-o", "yaml", "describe", "campaign", "spring-sale")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result)
        assert result.stderr.startswith("error:") and "yaml" in result.stderr, (args, result)
        assert "Traceback" not in result.stderr


def test_literal_credentials_are_masked_with_a_warning(cli, write_yaml):
    hook = ("kind: Channel\nname: hook\ntype: webhook\nurl: \"https://crm.example.com/h\"\n"
            "headers: {Authorization: \"Bearer s3cr3t-token\"}\n")
    assert cli("apply", str(write_yaml("hook.yaml", hook))).exit_code == 0
    shown = cli("get", "channel", "hook", "-o", "yaml")
    assert shown.exit_code == 0, shown
    assert "s3cr3t-token" not in shown.stdout and "***" in shown.stdout
    assert shown.stderr.startswith("warning: channel/hook: literal credentials are masked")


def test_export_writes_one_file_per_object_and_apply_rebuilds_them(cli, examples_applied, state,
                                                                    tmp_path):
    out = tmp_path / "export"
    result = cli("export", str(out))
    assert result.exit_code == 0, result
    objects = _objects(state)
    expected = sorted(f"{PLURAL[k]}/{n}.yaml" for k, n, *_ in objects)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == expected
    assert sorted(Path(p).relative_to(out).as_posix() for p in result.stdout.split()) == expected
    assert f"exported {len(objects)} definitions to {out}" in result.stderr
    fresh = tmp_path / "fresh.db"
    rebuilt = cli("--state", str(fresh), "apply", str(out))
    assert rebuilt.exit_code == 0, rebuilt
    strip = [o[:4] for o in objects]  # versions start again at 1 in the new state
    assert [o[:4] for o in _objects(fresh)] == strip
    assert cli("apply", str(out)).stdout.count(" unchanged\n") == len(objects)


def test_export_refuses_a_non_empty_directory_unless_forced(cli, examples_applied, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "README").write_text("mine\n")
    refused = cli("export", str(out))
    assert refused.exit_code == 1, refused
    assert "is not empty" in refused.stderr and "--force" in refused.stderr
    assert [p.name for p in out.iterdir()] == ["README"]
    (out / "segments").mkdir()
    (out / "segments" / "vip.yaml").write_text("stale\n")
    forced = cli("export", str(out), "--force", "-o", "json")
    assert forced.exit_code == 0, forced
    assert {"kind": "segment", "name": "vip", "path": str(out / "segments" / "vip.yaml")} in \
        forced.json
    assert (out / "segments" / "vip.yaml").read_text().startswith("kind: Segment\nname: vip\n")
    assert (out / "README").read_text() == "mine\n"
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.pg_fresh
def test_export_of_an_empty_state_and_a_missing_state(cli, tmp_path, state):
    missing = cli("export", str(tmp_path / "a"))
    assert missing.exit_code == 4 and not (tmp_path / "a").exists(), missing
    assert cli("init").exit_code == 0
    empty = cli("export", str(tmp_path / "b"))
    assert empty.exit_code == 0 and empty.stdout == "", empty
    assert "nothing exported" in empty.stderr
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert cli("export", str(a_file)).exit_code == 2
