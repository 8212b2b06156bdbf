"""The JSON Schema agrees with the validator: on every example and on structurally invalid files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from campctl.definitions import json_schema, load_paths
from campctl.definitions.yamlsrc import parse, to_plain

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "plans").rglob("*.yaml"))
CORPUS = Path(__file__).parent / "invalid"

# Corpus files whose errors are about structure, types and formats — what a JSON Schema can say.
# (References, dates in order, cron semantics, step graphs and template syntax are the validator's.)
STRUCTURAL = [
    "unknown_key", "unknown_kind", "missing_kind", "missing_name", "bad_name", "port_range",
    "port_octal", "bool_yes", "bool_quoted", "channel_type", "channel_foreign_key", "webhook_url",
    "bad_rate", "literal_password", "smtp_missing_from", "segment_op", "segment_in_scalar",
    "segment_days", "segment_exists_value", "segment_missing_value", "segment_limit",
    "segment_limit_high", "segment_rule_form", "segment_match", "segment_event_within",
    "one_off_no_send", "one_off_no_schedule", "queue_form", "date_only", "audience_two_forms",
    "audience_all_false",
    "stage_unknown_key", "campaign_type_foreign", "event_no_trigger", "build_window",
    "window_sexagesimal", "plan_once_no_tz", "plan_recurrent_no_cron", "plan_overlap",
    "plan_transition", "scenario_two_actions", "scenario_launch_event", "scenario_launch_type",
    "scenario_reentry", "scenario_if_form", "scenario_if_event_rule", "scenario_wait_bad",
    "scenario_schedule_audience", "many_errors",
]


@pytest.fixture(scope="module")
def validator():
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def documents(path: Path) -> list:
    docs, problem = parse(path.read_text())
    assert problem is None
    return [to_plain(d.root) for d in docs if d.root is not None]


def test_schema_is_valid_draft_2020_12(validator):
    assert validator.schema["$id"].endswith("definition.json")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_passes_schema_and_validator(validator, path):
    assert load_paths([str(ROOT / "plans")]).valid
    for doc in documents(path):
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (path, doc.get("name"), errors)
    # A YAML 1.1 tool (PyYAML) reads the examples the same way: they quote what needs quoting.
    for doc in yaml.safe_load_all(path.read_text()):
        assert not list(validator.iter_errors(doc)), (path, doc.get("name"))


@pytest.mark.parametrize("name", STRUCTURAL)
def test_schema_rejects_what_the_validator_rejects(validator, name):
    path = CORPUS / f"{name}.yaml"
    assert not load_paths([str(path)]).valid
    docs = documents(path)
    assert any(list(validator.iter_errors(doc)) for doc in docs), name


def test_agreement_on_mutated_examples(validator):
    """Drop each top-level key of each example in turn: both sides agree on required keys."""
    from campctl.definitions import load_texts

    everything = load_paths([str(ROOT / "plans")])
    known = {d.key: d.spec for d in everything.definitions}
    for path in EXAMPLES:
        for doc in documents(path):
            for key in list(doc):
                if key == "kind":
                    continue
                mutated = {k: v for k, v in doc.items() if k != key}
                others = {k: v for k, v in known.items() if k != (doc["kind"], doc["name"])}
                result = load_texts([("m.yaml", yaml.safe_dump(mutated), None)], others)
                schema_ok = not list(validator.iter_errors(mutated))
                if key == "name":
                    assert not schema_ok and result.issues
                    continue
                assert schema_ok == result.valid, (path.name, doc["name"], key, result.issues)
