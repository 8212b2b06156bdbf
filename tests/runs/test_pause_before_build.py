"""A run paused before its queue time builds its queue when that time comes and keeps it; nothing
is handed over until it is resumed."""

from __future__ import annotations

CAMPAIGN = """\
kind: Campaign
name: spring
timezone: Europe/Paris
closes_at: 2027-06-30T23:59
type: one-off
message: {subject: "Hi {{ id }}", body: "Hello"}
audience: {all: true}
schedule:
  queue: {at: "2027-03-01T11:00"}
  send: after_queue
"""
T0 = "2027-03-01T09:00:00Z"


def test_paused_run_builds_at_its_queue_time_and_sends_after_resume(cli, tmp_path, write_yaml,
                                                                     rows):
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(4)))
    for step in (("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("spring.yaml", CAMPAIGN))),
                 ("submit", "campaign", "spring"), ("approve", "campaign", "spring"),
                 ("start", "campaign", "spring"), ("tick",)):
        result = cli("--now", T0, *step)
        assert result.exit_code == 0, (step, result)
    [run] = rows("SELECT id, status FROM runs")
    assert run["status"] == "scheduled"
    assert cli("--now", "2027-03-01T09:30:00Z", "pause", "run", str(run["id"])).exit_code == 0
    # 11:00 in Paris is 10:00 UTC: the queue is built, held, and nothing goes out.
    for now in ("2027-03-01T10:00:00Z", "2027-03-01T10:01:00Z"):
        assert cli("--now", now, "tick").exit_code == 0
    [held] = rows("SELECT status, built_at, paused_from FROM runs")
    assert held == {"status": "paused", "built_at": "2027-03-01T10:00:00Z",
                    "paused_from": "queued"}
    assert rows("SELECT count(*) AS n FROM queue_items WHERE status = 'queued'") == [{"n": 4}]
    assert rows("SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    assert cli("--now", "2027-03-01T10:05:00Z", "resume", "run", str(run["id"])).exit_code == 0
    assert cli("--now", "2027-03-01T10:05:00Z", "tick").exit_code == 0
    assert rows("SELECT count(*) AS n FROM outbox") == [{"n": 4}]
    assert rows("SELECT status FROM runs") == [{"status": "completed"}]


def test_a_paused_run_never_built_before_the_close_ends_skipped(cli, tmp_path, write_yaml, rows):
    """Queue time 10:00 UTC, close 10:30 UTC, no tick in between: the close comes first and the
    run, never built, is skipped like an unpaused one."""
    text = CAMPAIGN.replace("closes_at: 2027-06-30T23:59", "closes_at: 2027-03-01T11:30")
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\nc1,c1@example.com\n")
    for step in (("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("spring.yaml", text))),
                 ("submit", "campaign", "spring"), ("approve", "campaign", "spring"),
                 ("start", "campaign", "spring"), ("tick",)):
        result = cli("--now", T0, *step)
        assert result.exit_code == 0, (step, result)
    [run] = rows("SELECT id FROM runs")
    assert cli("--now", "2027-03-01T09:30:00Z", "pause", "run", str(run["id"])).exit_code == 0
    assert cli("--now", "2027-03-01T11:00:00Z", "tick").exit_code == 0
    assert rows("SELECT status, built_at, error FROM runs") == [
        {"status": "skipped", "built_at": None, "error": "campaign closed before it was built"}]
    assert rows("SELECT count(*) AS n FROM queue_items") == [{"n": 0}]
