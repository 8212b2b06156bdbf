"""Across a DST change each zone's window follows its own wall clock: the US spring-forward
week (New York moves to UTC-4 while Berlin is still UTC+1) and the EU fall-back week (Berlin
moves to UTC+1 while New York is still UTC-4). The run sleeps until the earliest opening."""

from __future__ import annotations

import pytest

from local_windows.support import launch, ok, sent

CONTACTS = """\
id,email,timezone
ny,ny@example.com,America/New_York
be,be@example.com,Europe/Berlin
"""


@pytest.mark.parametrize(("start", "openings"), [
    # 2027-03-14: New York springs forward at 07:00Z; 09:00 EDT is 13:00Z (not 14:00Z).
    ("2027-03-14T05:00:00Z", [("2027-03-14T08:00:00Z", "be"), ("2027-03-14T13:00:00Z", "ny")]),
    # 2027-10-31: Berlin falls back at 01:00Z; 09:00 CET is 08:00Z (not 07:00Z as the day
    # before), New York (EDT until 7 November) opens at 13:00Z.
    ("2027-10-30T12:00:00Z", [("2027-10-30T13:00:00Z", "ny"), ("2027-10-31T08:00:00Z", "be")]),
], ids=["us-spring-forward", "eu-fall-back"])
def test_each_zone_opens_at_its_own_wall_clock_across_dst(cli, tmp_path, write_yaml, rows,
                                                           start, openings):
    launch(cli, tmp_path, write_yaml, start, window="09:00-10:00", contacts=CONTACTS)
    ok(cli, start, "tick")
    for opens, contact in openings:
        (wake,) = rows("SELECT next_due_at FROM schedule_state WHERE kind = 'Run'")
        assert wake["next_due_at"].startswith(opens.rstrip("Z")), (opens, wake)
        before = set(sent(rows))
        minute_before = _minus_minute(opens)
        assert ok(cli, minute_before, "tick", "-o", "json").json["sent"] == 0
        ok(cli, opens, "tick")
        assert set(sent(rows)) - before == {contact}, opens
    assert sorted(sent(rows)) == ["be", "ny"]


def _minus_minute(text: str) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(text.replace("Z", "+00:00")) - timedelta(minutes=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
