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
    # Moving after the build changes nothing for this run (the zone is fixed at build).
    moved = tmp_path / "moved.csv"
    moved.write_text("id,email,timezone\nny,ny@example.com,Asia/Tokyo\n")
    ok(cli, T0, "contacts", "import", str(moved))
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


def test_describe_why_status_and_simulate_show_the_zones(cli, tmp_path, write_yaml, rows):
    launch(cli, tmp_path, write_yaml, T0)
    at = "2027-03-01T08:30:00Z"  # Tokyo closed again, Berlin open, UTC and New York not yet
    ok(cli, T0, "tick")
    # simulate from T0 on a copy: the holds are per zone (Berlin's message goes at once)
    sim = ok(cli, "2027-03-01T08:30:00Z", "simulate", "--days", "1", "-o", "json").json
    (obj,) = [o for o in sim["objects"] if o["object"] == "campaign/local"]
    assert (obj["sent"], obj["held_window"]) == (5, 4)
    ok(cli, at, "tick")
    assert set(sent(rows)) == {"be"}
    (run,) = ok(cli, at, "get", "runs", "-o", "json").json
    desc = ok(cli, at, "describe", "run", str(run["id"]), "-o", "json").json
    assert desc["window_timezone"] == "contact" and desc["window_fallback"] == 2
    zones = {z["zone"]: z for z in desc["window_zones"]}
    assert zones["UTC"] == {"zone": "UTC", "queued": 2, "sent": 0, "failed": 0, "cancelled": 0,
                            "window_fallback": 2, "open": False, "opens": "2027-03-01T09:00:00Z"}
    assert zones["Europe/Berlin"]["sent"] == 1 and zones["Europe/Berlin"]["opens"] is None
    assert zones["Asia/Tokyo"]["opens"] == "2027-03-02T00:00:00Z"
    assert zones["America/New_York"]["opens"] == "2027-03-01T14:00:00Z"
    table = ok(cli, at, "describe", "run", str(run["id"]))
    assert "America/New_York: 1 queued, 0 sent" in table.stdout
    # why: the hold in the contact's zone with its opening, and the fallback
    (ny,) = ok(cli, at, "why", "ny", "campaign", "local", "-o", "json").json["objects"]
    assert ny["verdict"] == "waiting" and ny["hold"]["window_zone"] == "America/New_York"
    assert ny["hold"]["not_before"] == "2027-03-01T14:00:00Z"
    assert "in the contact's zone America/New_York" in ny["reason"]
    (bad,) = ok(cli, at, "why", "bad", "campaign", "local", "-o", "json").json["objects"]
    assert bad["hold"]["window_fallback"] is True and "fallback" in bad["reason"]
    assert bad["hold"]["not_before"] == "2027-03-01T09:00:00Z"
    # status: what the run waits for
    (waiting,) = ok(cli, at, "status", "-o", "json").json["runs"]
    assert waiting["waits_for"] == ("window 09:00-17:00 (3 zones, 4 messages), next opens "
                                    "2027-03-01T09:00:00Z")


def test_without_the_option_the_whole_run_waits_for_the_campaign_zone(cli, tmp_path,
                                                                        write_yaml, rows):
    launch(cli, tmp_path, write_yaml, T0, extra="  window_timezone: campaign\n")
    ok(cli, T0, "tick")
    ok(cli, "2027-03-01T08:30:00Z", "tick")  # Berlin's 09:30, but the window is UTC's
    assert sent(rows) == {}
    assert rows("SELECT count(*) AS n FROM queue_items WHERE window_zone IS NOT NULL") == [
        {"n": 0}]
    ok(cli, "2027-03-01T09:00:00Z", "tick")
    assert len(sent(rows)) == 5
    (run,) = ok(cli, "2027-03-01T09:00:00Z", "get", "runs", "-o", "json").json
    assert run["window_fallback"] == 0
    desc = ok(cli, "2027-03-01T09:00:00Z", "describe", "run", str(run["id"]), "-o", "json").json
    assert (desc["window_timezone"], desc["window_zones"]) == ("campaign", None)



def test_resume_missed_skip_reads_each_zone(cli, tmp_path, write_yaml, rows):
    launch(cli, tmp_path, write_yaml, T0)
    ok(cli, T0, "tick")
    (run,) = ok(cli, T0, "get", "runs", "-o", "json").json
    ok(cli, T0, "pause", "run", str(run["id"]))
    # Paused from 22:00Z to 08:30Z: Tokyo's window (00:00Z) and Berlin's (08:00Z) opened
    # meanwhile; UTC's (09:00Z) and New York's (14:00Z) are still to come.
    dry = ok(cli, "2027-03-01T08:30:00Z", "resume", "run", str(run["id"]), "--missed", "skip",
             "--dry-run", "-o", "json").json["missed"]
    assert (dry["missed"], dry["released"]) == (2, 3), dry
    ok(cli, "2027-03-01T08:30:00Z", "resume", "run", str(run["id"]), "--missed", "skip")
    assert rows("SELECT window_zone FROM queue_items WHERE last_error = 'missed'"
                " ORDER BY window_zone") == [{"window_zone": "Asia/Tokyo"},
                                             {"window_zone": "Europe/Berlin"}]


def test_stale_after_counts_from_the_opening_of_each_zone(cli, tmp_path, write_yaml, rows):
    launch(cli, tmp_path, write_yaml, T0, extra="  window_timezone: contact\nstale_after: 1h\n")
    ok(cli, T0, "tick")
    # At 08:30Z nothing ticked since 22:00Z: Tokyo's window opened at 00:00Z (deadline 01:00Z,
    # passed), Berlin's at 08:00Z (deadline 09:00Z: it goes), the others are still to open.
    ok(cli, "2027-03-01T08:30:00Z", "tick")
    assert set(sent(rows)) == {"be"}
    assert rows("SELECT q.window_zone FROM queue_items q WHERE q.last_error = 'stale'") == [
        {"window_zone": "Asia/Tokyo"}]
    ok(cli, "2027-03-01T14:00:00Z", "tick")  # UTC's deadline (10:00Z) passed; New York's not
    assert set(sent(rows)) == {"be", "ny"}
    (run,) = ok(cli, "2027-03-01T14:00:00Z", "get", "runs", "-o", "json").json
    assert (run["status"], run["stale"], run["window_fallback"]) == ("completed", 3, 2)
