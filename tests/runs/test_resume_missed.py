"""`resume run ID --missed send|skip [--dry-run]`: skip cancels exactly the waiting messages whose
intended send time (build, send schedule, retry time, then the window) passed while paused."""

from __future__ import annotations

import json

from store_support import execute_sql, open_rows

PAUSE = "2027-03-01T10:00:00Z"
SNAPSHOT = {  # as tests/runs/conftest.py's make_run writes it
    "campaign": "spring-sale", "stage": "main", "code": "SPR-27", "timezone": "Europe/Paris",
    "channel": "outbox", "message_type": "promotional", "audience": {"all": True},
    "include_opted_out": False, "message": {"subject": "Hi {{ id }}", "body": "Hello"},
    "window": None, "campaign_version": 1,
}
RESUME = "2027-03-01T12:00:00Z"


def ok(cli, *args, now=PAUSE):
    result = cli("--now", now, *args)
    assert result.exit_code == 0, result
    return result


def dump(state) -> list[str]:
    """Every row of every table (either store), sorted: a before/after comparison."""
    with open_rows(state) as rows:
        if str(state).startswith("postgresql"):
            tables = [r["tablename"] for r in rows(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        else:
            tables = [r["name"] for r in rows(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
        lines = []
        for table in sorted(tables):
            lines += sorted(f"{table}: {json.dumps(r, sort_keys=True, default=str)}"
                            for r in rows(f'SELECT * FROM "{table}"'))
    return lines


def arranged(make_run, state, *, send_at=None, window=None, items=5) -> int:
    """A built run of `items` waiting items (contacts c1..cN) built at 09:00: c2 retries at
    10:30, c3 at 13:00, c4 at 09:30 (before the pause); the others never attempted."""
    columns = {"built_at": "2027-03-01T09:00:00Z"}
    if send_at:
        columns["send_at"] = send_at
    if window:
        columns["spec"] = json.dumps({**SNAPSHOT, "window": window})
    run_id = make_run("sending", ("queued",) * items, **columns)
    for contact, at in (("c2", "2027-03-01T10:30:00Z"), ("c3", "2027-03-01T13:00:00Z"),
                        ("c4", "2027-03-01T09:30:00Z")):
        execute_sql(state, "UPDATE queue_items SET next_attempt_at = ?, attempts = 1 WHERE"
                    " contact_id = (SELECT id FROM contacts WHERE external_id = ?)"
                    " AND run_id = ?", (at, contact, run_id))
    return run_id


def statuses(rows, run_id: int) -> dict[str, str]:
    return {r["contact"]: r["status"] for r in rows(
        "SELECT c.external_id AS contact, q.status FROM queue_items q JOIN contacts c"
        " ON c.id = q.contact_id WHERE q.run_id = ?", (run_id,))}


def test_skip_cancels_exactly_the_messages_due_while_paused(cli, make_run, state, rows):
    # Sent at the 11:00 send schedule: every never-attempted item was due at 11:00, inside the
    # pause; c2 (10:30 retry) too; c3 (13:00) not yet; c4's 09:30 retry time is before the
    # pause, but the send schedule made it 11:00 as well.
    run_id = arranged(make_run, state, send_at="2027-03-01T11:00:00Z")
    ok(cli, "pause", "run", str(run_id))
    result = ok(cli, "resume", "run", str(run_id), "--missed", "skip", "-o", "json",
                now=RESUME).json
    assert result["status"] == "sending" and result["dry_run"] is False
    assert result["cancelled"] == 4
    assert result["missed"] == {"policy": "skip", "since": PAUSE, "missed": 4, "released": 1,
                                "cancelled": 4, "runs": [{"run": run_id, "missed": 4,
                                                          "released": 1, "cancelled": 4}]}
    assert statuses(rows, run_id) == {"c1": "cancelled", "c2": "cancelled", "c3": "queued",
                                      "c4": "cancelled", "c5": "cancelled"}
    reasons = {r["last_error"] for r in rows(
        "SELECT last_error FROM queue_items WHERE run_id = ? AND status = 'cancelled'",
        (run_id,))}
    assert reasons == {"missed"}
    listed = {r["id"]: r for r in ok(cli, "get", "runs", "-o", "json", now=RESUME).json}
    assert listed[run_id]["cancelled"] == 4 and listed[run_id]["queued"] == 1
    log = rows("SELECT event, details FROM exec_log WHERE run_id = ? ORDER BY id", (run_id,))
    assert [e["event"] for e in log][-2:] == ["Missed Messages Cancelled", "Delivery Resumed"]
    assert log[-2]["details"].startswith("4 messages whose send time passed while paused")
    # The survivor goes at its retry time, nothing else ever does.
    ok(cli, "tick", now="2027-03-01T13:00:00Z")
    sent = rows("SELECT contact FROM outbox WHERE run_id = ?", (run_id,))
    assert [r["contact"] for r in sent] == ["c3"]


def test_messages_due_before_the_pause_are_not_missed(cli, make_run, state, rows):
    # No send schedule: due from the 09:00 build, before the 10:00 pause: a backlog the pause
    # delayed, not a send it missed. Only c2's 10:30 retry fell inside the pause.
    run_id = arranged(make_run, state)
    ok(cli, "pause", "run", str(run_id))
    result = ok(cli, "resume", "run", str(run_id), "--missed", "skip", "-o", "json",
                now=RESUME).json
    assert (result["missed"]["missed"], result["missed"]["released"]) == (1, 4)
    assert statuses(rows, run_id) == {"c1": "queued", "c2": "cancelled", "c3": "queued",
                                      "c4": "queued", "c5": "queued"}


def test_send_is_the_default_and_releases_everything(cli, make_run, state, rows):
    run_id = arranged(make_run, state, send_at="2027-03-01T11:00:00Z")
    ok(cli, "pause", "run", str(run_id))
    result = ok(cli, "resume", "run", str(run_id), "-o", "json", now=RESUME).json
    assert result["cancelled"] == 0
    assert (result["missed"]["policy"], result["missed"]["missed"],
            result["missed"]["released"]) == ("send", 4, 5)
    assert set(statuses(rows, run_id).values()) == {"queued"}
    ok(cli, "tick", now="2027-03-01T13:00:00Z")
    assert len(rows("SELECT contact FROM outbox WHERE run_id = ?", (run_id,))) == 5


def test_dry_run_prints_the_counts_and_writes_nothing(cli, make_run, state, rows):
    run_id = arranged(make_run, state, send_at="2027-03-01T11:00:00Z")
    ok(cli, "pause", "run", str(run_id))
    before = dump(state)
    shown = ok(cli, "resume", "run", str(run_id), "--missed", "skip", "--dry-run", "-o", "json",
               now=RESUME).json
    assert shown["dry_run"] is True and shown["status"] == "sending"
    assert (shown["missed"]["missed"], shown["missed"]["released"],
            shown["missed"]["cancelled"]) == (4, 1, 4)
    table = ok(cli, "resume", "run", str(run_id), "--missed", "skip", "--dry-run", now=RESUME)
    assert "MISSED" in table.stdout and "RELEASED" in table.stdout
    assert "4 messages whose send time passed while paused (since 2027-03-01 11:00 CET) would " \
           "be cancelled, 1 released" in table.stderr
    assert dump(state) == before
    # A dry run is refused as the resume would be.
    ok(cli, "resume", "run", str(run_id), now=RESUME)
    refused = cli("--now", RESUME, "resume", "run", str(run_id), "--dry-run")
    assert refused.exit_code == 1 and "only paused runs can be resumed" in refused.stderr
    bad = cli("--now", RESUME, "resume", "run", str(run_id), "--missed", "later")
    assert bad.exit_code == 2 and "--missed must be one of send, skip" in bad.stderr, bad


def test_a_window_moves_the_intended_send_time(cli, make_run, state, rows):
    # Window 14:00-16:00 Paris (13:00-15:00 UTC): nothing was due before 13:00 UTC, so resuming
    # at 12:00 UTC misses nothing; resuming at 14:00 UTC misses all but c3... whose 13:00 retry
    # time is the window's opening, inside the pause too.
    run_id = arranged(make_run, state, window="14:00-16:00")
    ok(cli, "pause", "run", str(run_id))
    early = ok(cli, "resume", "run", str(run_id), "--missed", "skip", "--dry-run", "-o", "json",
               now=RESUME).json
    assert (early["missed"]["missed"], early["missed"]["released"]) == (0, 5)
    late = ok(cli, "resume", "run", str(run_id), "--missed", "skip", "-o", "json",
              now="2027-03-01T14:00:00Z").json
    assert late["missed"]["missed"] == 5
    assert set(statuses(rows, run_id).values()) == {"cancelled"}
