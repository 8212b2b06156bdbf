"""Tables show each time in its object's zone with the abbreviation; JSON keeps UTC with Z."""

from __future__ import annotations

import pytest

from tests.display.conftest import T0, T1, UTC_TEXT

# Store-agnostic: how instants are shown in each object's zone: rendering, not storage.
pytestmark = pytest.mark.store_agnostic

# Each screen, and the zone abbreviation every one of its rows must carry.
SCREENS = [
    (["log", "--campaign", "paris"], "CET"),
    (["log", "--campaign", "newyork"], "EST"),
    (["log", "--scenario", "tokyo"], "JST"),
    (["outbox", "list", "--campaign", "paris"], "CET"),
    (["outbox", "list", "--scenario", "tokyo"], "JST"),
    (["get", "runs", "--campaign", "newyork"], "EST"),
    (["history", "campaign", "newyork"], "EST"),
    (["history", "scenario", "tokyo"], "JST"),
    (["describe", "campaign", "paris"], "CET"),
    (["describe", "scenario", "tokyo"], "JST"),
    (["describe", "run", "1"], "EST"),
    (["profiles", "scenario", "tokyo"], "JST"),
    (["stats", "scenario", "tokyo"], "JST"),
    (["notifications"], "EST"),
    (["worklist", "--all"], "EST"),
]


def _time_cells(text: str) -> list[str]:
    """Every 'YYYY-MM-DD HH:MM ZONE' shown."""
    import re

    return re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} [A-Z]{3,4}", text)


@pytest.mark.parametrize(("args", "abbreviation"), SCREENS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else v)
def test_a_screen_shows_its_object_zone_only(cli, zoned, args, abbreviation):
    result = cli("--now", T1, *args)
    assert result.exit_code == 0, result
    assert not UTC_TEXT.search(result.stdout), result.stdout
    cells = _time_cells(result.stdout)
    assert cells, result.stdout
    assert {c.rsplit(" ", 1)[1] for c in cells} == {abbreviation}, result.stdout


def test_a_screen_mixing_zones_labels_each_row(cli, zoned):
    log = cli("--now", T1, "log").stdout
    assert not UTC_TEXT.search(log), log
    for line in log.splitlines():
        if "paris" in line:
            assert "CET" in line and "EST" not in line, line
        if "newyork" in line:
            assert "EST" in line and "CET" not in line, line
        if "Profiles Captured" in line:  # the detail's instant too
            assert line.count("JST") == 2, line
    outbox = cli("--now", T1, "outbox", "list").stdout
    assert {c.rsplit(" ", 1)[1] for c in _time_cells(outbox)} == {"CET", "EST", "JST"}


def test_status_shows_next_occurrences_in_their_zone(cli, zoned):
    result = cli("--now", T1, "status")
    assert result.exit_code == 0, result
    assert not UTC_TEXT.search(result.stdout), result.stdout
    next_rows = result.stdout.split("Next occurrences", 1)[1]
    assert "2027-03-03 18:00 JST" in next_rows
    assert "UTC" not in result.stdout


def test_a_row_of_no_object_says_utc(cli, zoned):
    assert cli("--now", T0, "events", "emit", "signed_up", "--contact", "c1").exit_code == 0
    result = cli("--now", T1, "events", "list")
    assert "2027-03-01 09:00 UTC" in result.stdout, result


def test_a_deleted_object_keeps_its_zone_in_history(cli, zoned, write_yaml):
    assert cli("--now", T1, "apply", write_yaml("gone.yaml", """\
kind: Campaign
name: gone
timezone: America/New_York
audience: {all: true}
message: {subject: "x", body: "x"}
type: one-off
schedule: {send: immediately}
""")).exit_code == 0
    assert cli("--now", T1, "delete", "campaign", "gone").exit_code == 0
    result = cli("--now", T1, "history", "campaign", "gone")
    assert result.exit_code == 0, result
    assert "2027-03-02 04:00 EST" in result.stdout, result


@pytest.mark.parametrize("args", [
    ["log"], ["outbox", "list"], ["get", "runs"], ["notifications"], ["events", "list"],
    ["history", "campaign", "paris"], ["profiles", "scenario", "tokyo"],
])
def test_json_keeps_utc_with_z(cli, zoned, args):
    assert cli("--now", T0, "events", "emit", "signed_up", "--contact", "c1").exit_code == 0
    result = cli("--now", T1, "-o", "json", *args)
    assert result.exit_code == 0, result
    assert UTC_TEXT.search(result.stdout), result.stdout
    assert "CET" not in result.stdout and "EST" not in result.stdout


def test_preview_shows_local_with_abbreviation_beside_utc(cli, zoned):
    result = cli("--now", T1, "preview", "scenario", "tokyo", "--next", "1")
    assert result.exit_code == 0, result
    assert "2027-03-03 18:00 JST" in result.stdout and "2027-03-03 09:00 UTC" in result.stdout
    assert not UTC_TEXT.search(result.stdout), result.stdout
    as_json = cli("--now", T1, "-o", "json", "preview", "scenario", "tokyo", "--next", "1").json
    assert as_json == [{"local": "2027-03-03T18:00:00+09:00", "utc": "2027-03-03T09:00:00Z",
                        "dst": None}]


def test_dry_run_notes_quote_times_in_the_zone_of_their_object(cli, zoned):
    day3 = "2027-03-03T09:00:00Z"
    result = cli("--now", day3, "tick", "--dry-run")
    assert result.exit_code == 0, result
    notes = [line for line in result.stdout.splitlines() if line.startswith("  scenario tokyo")]
    assert any("2027-03-03 18:00 JST" in line for line in notes), result.stdout
    as_json = cli("--now", day3, "-o", "json", "tick", "--dry-run").json
    assert any("2027-03-03T09:00:00Z" in note for note in as_json["notes"]), as_json


def test_an_unusable_stored_zone_falls_back_to_utc_labelled(cli, zoned, state):
    import sqlite3

    conn = sqlite3.connect(state)
    with conn:
        conn.execute("UPDATE runs SET spec = json_set(spec, '$.timezone', 'Mars/Base')"
                     " WHERE id = 2")
    conn.close()
    for args in (["get", "runs"], ["describe", "run", "2"]):
        result = cli("--now", T1, *args)
        assert result.exit_code == 0, result
        assert "2027-03-01 09:00 UTC" in result.stdout, result
