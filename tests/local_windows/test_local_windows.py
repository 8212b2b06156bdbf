"""`schedule.window_timezone: contact`: each message waits for its own recipient's window, read
in the contact's `timezone` attribute (missing or invalid: the campaign's zone, counted as
window_fallback). Through the CLI with --now, on both stores."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from local_windows.support import ZONES, launch, ok, sent

# 2027-03-01 is before both DST changes: Tokyo +9, Berlin +1, UTC, New York -5. A 09:00-17:00
# window opens at 00:00Z (Tokyo), 08:00Z (Berlin), 09:00Z (UTC) and 14:00Z (New York).
T0 = "2027-02-28T22:00:00Z"


def _inside(contact: str, at: str, start: int = 9, end: int = 17) -> bool:
    local = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONES[contact]))
    return start <= local.hour < end


def test_each_contact_is_sent_only_inside_its_own_window(cli, tmp_path, write_yaml, rows):
    launch(cli, tmp_path, write_yaml, T0)
    first = ok(cli, T0, "tick", "-o", "json").json
    assert (first["built"], first["sent"]) == (5, 0)
    zones = {r["external_id"]: (r["window_zone"], r["window_fallback"]) for r in rows(
        "SELECT c.external_id, q.window_zone, q.window_fallback FROM queue_items q"
        " JOIN contacts c ON c.id = q.contact_id")}
    assert zones == {"ny": ("America/New_York", 0), "be": ("Europe/Berlin", 0),
                     "tk": ("Asia/Tokyo", 0), "none": ("UTC", 1), "bad": ("UTC", 1)}
    # The run sleeps until the earliest opening (Tokyo, 00:00Z): a tick before it does nothing.
    (wake,) = rows("SELECT next_due_at FROM schedule_state WHERE kind = 'Run'")
    assert wake["next_due_at"].startswith("2027-03-01T00:00:00")
    assert ok(cli, "2027-02-28T23:59:00Z", "tick", "-o", "json").json["sent"] == 0
    expected = [("2027-03-01T00:30:00Z", {"tk"}), ("2027-03-01T07:59:00Z", set()),
                ("2027-03-01T08:30:00Z", {"be"}), ("2027-03-01T09:30:00Z", {"none", "bad"}),
                ("2027-03-01T13:59:00Z", set()), ("2027-03-01T14:00:00Z", {"ny"})]
    for now, new in expected:
        before = set(sent(rows))
        ok(cli, now, "tick")
        assert set(sent(rows)) - before == new, now
    assert all(_inside(c, at) for c, at in sent(rows).items()), sent(rows)
    (run,) = ok(cli, "2027-03-01T14:01:00Z", "get", "runs", "-o", "json").json
    assert (run["status"], run["sent"], run["window_fallback"]) == ("completed", 5, 2)
