"""Only the object address after a verb is read as `KIND/NAME`: file paths and notes stay whole."""

from __future__ import annotations

from pathlib import Path

import pytest

KINDS = ("plan", "campaign", "scenario", "segment", "channel", "run", "instance", "launch")
WORDS = [w for kind in KINDS for w in (kind, kind + "s", kind.capitalize())]
SEGMENT = "kind: Segment\nname: vip\nrules:\n  - {group: vip}\n"


def _segment_file(folder: str) -> str:
    path = Path(folder) / "vip.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SEGMENT)
    return str(path)


@pytest.mark.parametrize("word", WORDS)
def test_a_path_under_a_folder_named_like_a_kind_is_a_path(cli, word):
    path = _segment_file(word)
    checked = cli("validate", path)
    assert checked.exit_code == 0, checked
    applied = cli("apply", path)
    assert applied.exit_code == 0, applied
    assert "segment/vip created" in applied.stdout
    assert cli("apply", "--dry-run", path).exit_code == 0


@pytest.mark.parametrize("word", WORDS)
def test_a_note_shaped_like_an_address_is_kept_whole(cli, rows, word):
    assert cli("apply", _segment_file("defs")).exit_code == 0
    deleted = cli("delete", "segment/vip", "--note", f"{word}/vip")
    assert deleted.exit_code == 0, deleted
    notes = [r["note"] for r in rows("SELECT note FROM history WHERE kind = 'Segment'")]
    assert f"{word}/vip" in notes


def test_the_address_after_a_verb_still_splits(cli):
    assert cli("apply", _segment_file("defs")).exit_code == 0
    shown = cli("get", "segment/vip", "-o", "json")
    assert shown.exit_code == 0 and shown.json["name"] == "vip", shown
    assert cli("history", "segments/vip").exit_code == 0
    missing = cli("describe", "run/99")
    assert missing.exit_code == 3, missing
