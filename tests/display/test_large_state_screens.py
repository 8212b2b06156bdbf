"""A large state: `status` summarises what does not fit a screen, long listings are plain rows
under the table's column names (JSON keeps every row and key)."""

from __future__ import annotations

from datetime import UTC, datetime

from campctl.commands.common import PLAIN_ABOVE
from campctl.commands.status_screen import SCREEN_ROWS

LAUNCHED = datetime(2027, 3, 1, 7, 0, tzinfo=UTC)
COUNT = PLAIN_ABOVE + 30


def _many_campaigns(state, count: int = COUNT) -> None:
    from campctl.store import object_failures
    from campctl.store import objects as object_store
    from campctl.store.db import open_state

    db = open_state(state, create=True)
    with db.atomic():
        for n in range(count):
            spec = {"type": "date-triggered", "timezone": "Europe/Paris",
                    "audience": {"all": True}, "message": {"subject": "s", "body": "b"},
                    "schedule": {"cron": "0 10 * * *"}}
            object_store.insert_object(db, object_store.NewVersion("Campaign", f"c{n:04d}", 1,
                                                                   spec),
                                       status="draft" if n % 10 == 0 else "approved",
                                       now=LAUNCHED)
            object_store.set_launched(db, f"c{n:04d}", now=LAUNCHED)
        object_failures.record(db, kind="Campaign", name="c0007", reason="set aside",
                               now=LAUNCHED)
    db.close()


def test_status_summarises_a_long_section_and_all_lists_it(cli, state):
    _many_campaigns(state)
    short = cli("--now", "2027-03-01T08:00:00Z", "status")
    assert short.exit_code == 0, short
    drafts = (COUNT + 9) // 10
    assert f"Campaigns: {COUNT} ({COUNT - drafts - 1} approved, {drafts} draft, 1 failing)" \
        in short.stdout
    attention = short.stdout.split("Campaigns needing attention")[1].split("more not shown")[0]
    assert "c0007" in attention and "c0008" not in attention
    assert f"... {COUNT - 1} more not shown: campctl status --all, or campctl get campaigns" \
        in short.stdout
    assert "c0150" not in short.stdout
    full = cli("--now", "2027-03-01T08:00:00Z", "status", "--all")
    assert full.exit_code == 0, full
    lines = full.stdout.splitlines()
    header = lines.index("Campaigns") + 1
    assert lines[header].split() == ["NAME", "STATUS", "TYPE", "LAUNCHED", "NEXT"]
    assert lines[header + 2].split()[:6] == ["c0001", "approved", "date-triggered",
                                             "2027-03-01", "08:00", "CET"]
    as_json = cli("--now", "2027-03-01T08:00:00Z", "-o", "json", "status")
    assert len(as_json.json["campaigns"]) == COUNT


def test_a_short_section_is_a_table_as_before(cli, state):
    _many_campaigns(state, SCREEN_ROWS)
    result = cli("--now", "2027-03-01T08:00:00Z", "status")
    assert result.exit_code == 0, result
    assert "more not shown" not in result.stdout
    assert "┃ NAME" in result.stdout and "c0019" in result.stdout


def test_a_long_listing_is_plain_rows_under_the_same_columns(cli, state):
    _many_campaigns(state)
    result = cli("--now", "2027-03-01T08:00:00Z", "get", "campaigns")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CODE", "STATUS", "TYPE", "CLOSES", "NEXT", "VERSION",
                                "TAGS"]
    assert len(lines) == COUNT + 1
    assert lines[1].split() == ["c0000", "c0000", "draft", "date-triggered", "-", "-", "1", "-"]
    assert lines[2].split()[5:8] == ["2027-03-01", "10:00", "CET"]  # in the campaign's zone
    assert lines[2].index("approved") == lines[0].index("STATUS")  # aligned columns
    as_json = cli("--now", "2027-03-01T08:00:00Z", "-o", "json", "get", "campaigns")
    assert len(as_json.json) == COUNT and as_json.json[1]["next_occurrence"] == \
        "2027-03-01T09:00:00Z"
