"""validate reports every error of a document: a missing or unknown type (or kind) does not hide
the problems of the fields that every type shares, nor unknown keys."""

from __future__ import annotations

import re

import pytest

# Store-agnostic: validate reads definition files only.
pytestmark = pytest.mark.store_agnostic

NO_TYPE = """kind: Campaign
name: Spring_Sale
timezone: Europe/Pariss
closesat: 2027-01-01T00:00
audience: {all: true}
message: {body: hi}
"""


def _messages(result) -> list[str]:
    """The message of each problem line, without its location and its code."""
    return [re.sub(r" \[CC\d{3}\]$", "", line.split(": ", 1)[1])
            for line in result.stdout.splitlines()]


@pytest.mark.parametrize("type_line", ["", "type: oneoff\n", "type: [one-off]\n"])
def test_a_campaign_without_a_known_type_reports_its_other_errors(cli, tmp_path, type_line):
    path = tmp_path / "c.yaml"
    path.write_text(NO_TYPE + type_line)
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    text = result.stdout
    assert "type" in text
    assert "unknown timezone 'Europe/Pariss' (did you mean 'Europe/Paris'?)" in text, text
    assert "unknown key 'closesat' (did you mean 'closes_at'?)" in text, text
    assert "invalid name 'Spring_Sale'" in text, text
    assert len(result.stdout.splitlines()) == 4, text
    json_out = cli("validate", "--format", "json", str(path)).json
    assert len(json_out["errors"]) == 4


def test_required_common_keys_and_keys_of_other_types(cli, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: Campaign\nname: c\nschedule: {send: immediately}\ntrigger: {}\n")
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    messages = _messages(result)
    assert "missing required key 'audience'" in messages
    assert "missing required key 'message'" in messages
    # schedule and trigger belong to some campaign type: without a type they are not judged.
    assert len(messages) == 3, messages


def test_a_document_without_kind_still_checks_its_name_and_keys(cli, tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("kidn: Channel\nname: Mail\n---\nkind: Chanel\nname: x y\n")
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    text = result.stdout
    assert "missing required key 'kind'" in text
    assert "unknown key 'kidn' (did you mean 'kind'?)" in text
    assert "invalid name 'Mail'" in text
    assert "unknown kind 'Chanel' (did you mean 'Channel'?)" in text
    assert "invalid name 'x y'" in text


def test_a_channel_without_type_checks_its_name_only(cli, tmp_path):
    path = tmp_path / "ch.yaml"
    path.write_text("kind: Channel\nname: Mail\nhost: localhost\nport: 99999999\n")
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    messages = _messages(result)
    assert messages[0].startswith("missing required key 'type'")
    assert any("invalid name 'Mail'" in m for m in messages)
    assert len(messages) == 2, messages
