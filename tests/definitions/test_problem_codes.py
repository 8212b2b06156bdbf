"""Validation problems carry stable codes and levels: unique, documented, used by every check,
and shown in the text, JSON and github formats (and by apply)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from campctl.definitions.codes import BY_CODE, CODES, FALLBACK, FAMILIES, markdown_table

# Store-agnostic: validate and a refused apply stop before the state is opened.
pytestmark = pytest.mark.store_agnostic

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "campctl"
CORPUS = Path(__file__).parent / "invalid"
CODE_LITERAL = re.compile(r"""["'](CC\d{3})["']""")


def test_codes_are_unique_well_formed_and_grouped():
    codes = [c.code for c in CODES]
    assert len(codes) == len(set(codes)), "two problems share a code"
    summaries = [c.summary for c in CODES]
    assert len(summaries) == len(set(summaries)), "two codes describe the same problem"
    assert codes == sorted(codes), "keep the list in code order"
    for c in CODES:
        assert re.fullmatch(r"CC\d{3}", c.code), c
        assert c.level in ("error", "warning"), c
        assert c.code[:3] in FAMILIES, c
        assert (c.level == "warning") == c.code.startswith("CC9"), c


def test_every_code_is_documented_in_the_docs():
    page = (ROOT / "docs" / "definitions.md").read_text()
    assert markdown_table() in page, (
        "docs/definitions.md's table of validation codes is out of date; paste the output of\n"
        "python3 -c 'from campctl.definitions.codes import markdown_table as t; print(t())'")


def test_every_code_used_in_the_package_is_registered():
    used = set()
    for path in PACKAGE.rglob("*.py"):
        used |= set(CODE_LITERAL.findall(path.read_text()))
    assert used - set(BY_CODE) == set()
    # Every registered code except the fallback is produced somewhere.
    assert set(BY_CODE) - used - {FALLBACK} == set()


def _error_calls_without_code(path: Path) -> list[int]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "error"
                and not any(k.arg == "code" for k in node.keywords)):
            found.append(node.lineno)
    return found


def test_every_check_of_the_definitions_layer_names_its_code():
    missing = {str(p.relative_to(ROOT)): lines for p in (PACKAGE / "definitions").glob("*.py")
               if (lines := _error_calls_without_code(p))}
    assert not missing, f"ctx.error(...) without code= (pick one in codes.py): {missing}"


CORPUS_CODES = {
    "yaml_syntax": "CC005", "custom_tag": "CC007", "alias_bomb": "CC009",
    "duplicate_key": "CC012", "not_a_mapping": "CC014", "unknown_key": "CC101",
    "channel_foreign_key": "CC102", "missing_name": "CC103", "segment_in_scalar": "CC104",
    "bool_yes": "CC105", "port_octal": "CC106", "segment_match": "CC108",
    "port_range": "CC109", "audience_two_forms": "CC111", "unknown_kind": "CC112",
    "segment_rule_form": "CC113", "segment_missing_value": "CC114",
    "audience_all_false": "CC115", "bad_rate": "CC118", "webhook_url": "CC119",
    "literal_password": "CC121", "bad_name": "CC201", "duplicate_object": "CC202",
    "unknown_segment": "CC203", "plan_unknown_campaign": "CC204",
    "plan_stage_missing": "CC205", "plan_stage_not_controlled": "CC206",
    "stage_duplicate": "CC207", "scenario_end_id": "CC209",
    "scenario_duplicate_step": "CC210", "scenario_unknown_step": "CC211",
    "scenario_next_on_if": "CC212", "scenario_unreachable": "CC213", "bad_datetime": "CC301",
    "scenario_wait_bad": "CC302", "window_sexagesimal": "CC303", "unknown_timezone": "CC304",
    "cron_never": "CC305", "one_off_no_schedule": "CC306", "before_send_without_at": "CC307",
    "send_before_queue": "CC308", "until_before_start": "CC309", "after_closes": "CC310",
    "scenario_loop": "CC311", "template_syntax": "CC401",
}


@pytest.mark.parametrize("stem,code", sorted(CORPUS_CODES.items()))
def test_corpus_files_report_their_code(cli, stem, code):
    result = cli("validate", "--format", "json", str(CORPUS / f"{stem}.yaml"))
    assert result.exit_code == 1, result
    assert [(e["code"], e["level"]) for e in result.json["errors"]] == [(code, "error")], result


def test_whole_corpus_has_specific_registered_codes(cli):
    result = cli("validate", "--format", "json", str(CORPUS))
    errors = result.json["errors"]
    assert errors and all(e["code"] in BY_CODE and e["code"] != FALLBACK for e in errors), [
        e for e in errors if e["code"] not in BY_CODE or e["code"] == FALLBACK]


def test_missing_paths_and_unreadable_files_have_codes(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "latin1.yaml").write_bytes(b"kind: Segment\nname: caf\xe9\n")
    result = cli("validate", "--format", "json", str(tmp_path / "nope.yaml"),
                 str(tmp_path / "empty"), str(tmp_path / "latin1.yaml"))
    assert [e["code"] for e in result.json["errors"]] == ["CC001", "CC002", "CC004"], result


def test_text_and_github_formats_show_the_code(cli, write_yaml):
    path = write_yaml("k.yaml", "kind: Segment\nname: s\nrules: [{group: vip}]\nshedule: x\n")
    text = cli("validate", str(path))
    assert text.stdout.startswith(f"{path}:4:1: unknown key 'shedule'"), text
    assert text.stdout.endswith(" [CC101]\n") and text.stdout.count("\n") == 1, text
    github = cli("validate", "--format", "github", str(path))
    assert github.stdout.startswith("::error file=") and ",title=CC101,line=4,col=1::" in \
        github.stdout, github


HELD = """\
kind: Campaign
name: digest
type: date-triggered
timezone: UTC
channel: outbox
audience: {all: true}
message: {subject: "s", body: "b"}
schedule:
  start: {at: "2027-01-01T09:00"}
  cron: "0 9 * * *"
  send_start: {at: "2027-01-05T09:00"}
"""


def test_a_warning_carries_its_code_and_level_in_every_format(cli, write_yaml):
    path = write_yaml("held.yaml", HELD)
    now = ("--now", "2026-12-20T00:00:00Z")
    text = cli(*now, "validate", str(path))
    assert text.exit_code == 0, text
    assert f"{path}:1:1: warning: campaign digest: if launched now" in text.stdout
    assert text.stdout.splitlines()[0].endswith(" [CC901]"), text
    data = cli(*now, "validate", "--format", "json", str(path)).json
    assert [(w["code"], w["level"]) for w in data["warnings"]] == [("CC901", "warning")]
    github = cli(*now, "validate", "--format", "github", str(path)).stdout
    assert github.startswith("::warning file=") and ",title=CC901,line=1,col=1::" in github


def test_apply_lists_problems_with_their_codes(cli, write_yaml, state):
    path = write_yaml("a.yaml", "kind: Segment\nname: s\nmatch: every\nrules: [{group: vip}]\n")
    result = cli("apply", str(path))
    assert result.exit_code == 1, result
    assert f"{path}:3:8: match: must be one of all, any, got 'every' [CC108]\n" in result.stderr
    assert not state.exists()
