"""Delivery through the built-in outbox: claiming, rendering, recording, JSONL files, listing."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import datetime, timedelta

import pytest
from store_support import is_pg

from campctl.engine.context import Budget, TickContext
from campctl.engine.delivery import deliver_due
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")
OUTBOX_KEYS = {"message_id", "run", "campaign", "stage", "scenario", "step", "contact",
               "channel", "subject", "body", "sent_at"}


def test_outbox_delivery_renders_records_and_lists(arrange, db, cli):
    a = arrange.contact("ann", "ann@example.com", attrs={"first_name": "Ann"}, groups=["vip"])
    b = arrange.contact("bob", "bob@example.com", attrs={"first_name": "Bob"})
    run = arrange.run(body="Hi {{ first_name }} ({{ id }}, {{ email }}, {{ groups|join(',') }})")
    arrange.items(run, [a, b])

    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)

    assert (report.sent, report.failed, report.retried, report.cancelled) == (2, 0, 0, 0)
    assert arrange.statuses(run) == {"sent": 2}
    assert arrange.rows("SELECT status FROM runs WHERE id = ?", (run,)) == [{"status": "sending"}]
    items = arrange.rows("SELECT attempts, sent_at, claim_token FROM queue_items")
    assert items == [{"attempts": 1, "sent_at": "2027-03-01T09:00:00Z", "claim_token": None}] * 2

    listed = cli("outbox", "list", "--campaign", "spring", "-o", "json")
    assert listed.exit_code == 0, listed
    assert len(listed.json) == 2
    first = listed.json[0]
    assert OUTBOX_KEYS <= set(first)
    assert first["subject"] == "Hello Ann"
    assert first["body"] == "Hi Ann (ann, ann@example.com, vip)"
    assert (first["run"], first["campaign"], first["stage"], first["contact"]) == (
        run, "spring", "main", "ann")
    assert first["sent_at"] == "2027-03-01T09:00:00Z"
    assert first["message_id"] == f"m-{run}--{a}"
    assert cli("outbox", "list", "--contact", "bob", "-o", "json").json[0]["contact"] == "bob"
    assert cli("outbox", "list", "--run", str(run + 1), "-o", "json").exit_code == 3
    table = cli("outbox", "list")
    assert table.exit_code == 0 and "Bob" in table.stdout and "spring/main" in table.stdout

    again = deliver_due(TickContext(db, NOW + timedelta(hours=1), {}), run_ids=[run],
                        scenario_items=False)
    assert again.sent == 0
    assert len(arrange.rows("SELECT * FROM outbox")) == 2


@pytest.mark.pg_fresh  # on PostgreSQL, "missing" is a database without campctl's schema
def test_outbox_list_on_missing_state_exits_4(cli):
    result = cli("outbox", "list")
    assert result.exit_code == 4, result


def test_paused_and_stopped_runs_are_not_claimed(arrange, db):
    ids = arrange.contacts(3)
    paused = arrange.run(status="paused")
    stopped = arrange.run(status="stopped")
    scheduled = arrange.run(status="scheduled")
    for run in (paused, stopped, scheduled):
        arrange.items(run, ids)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[paused, stopped, scheduled],
                         scenario_items=False)
    assert report.sent == 0
    assert arrange.statuses() == {"queued": 9}
    assert {r["status"] for r in arrange.rows("SELECT status FROM runs")} == {
        "paused", "stopped", "scheduled"}


def test_only_given_runs_and_due_items_are_sent(arrange, db):
    ids = arrange.contacts(4)
    mine = arrange.run()
    other = arrange.run()
    arrange.items(mine, ids)
    arrange.items(other, ids)
    arrange.conn.execute("UPDATE queue_items SET next_attempt_at = '2027-03-01T10:00:00Z'"
                         " WHERE run_id = ? AND contact_id = ?", (mine, ids[0]))
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[mine], scenario_items=False)
    assert report.sent == 3
    assert arrange.statuses(other) == {"queued": 4}
    later = deliver_due(TickContext(db, NOW + timedelta(hours=1), {}), run_ids=[mine],
                        scenario_items=False)
    assert later.sent == 1


def test_template_failure_fails_only_that_item(arrange, db):
    ok = arrange.contact("ok", "ok@example.com", attrs={"first_name": "Ok", "term_end": "2027-04"})
    missing = arrange.contact("missing", "m@example.com", attrs={"first_name": "M"})
    run = arrange.run(body="ends {{ term_end }}")
    arrange.items(run, [ok, missing])
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (report.sent, report.failed) == (1, 1)
    failed = arrange.rows("SELECT status, last_error FROM queue_items WHERE contact_id = ?",
                          (missing,))
    assert failed[0]["status"] == "failed"
    assert "term_end" in failed[0]["last_error"] and "undefined" in failed[0]["last_error"]
    assert arrange.rows("SELECT status FROM runs") == [{"status": "sending"}]


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ range(10**9)|list|length }}",
    "{{ 'a' * 10**7 }}",
    "{{ 'a' * 10**4 * 10**4 }}",
    "{{ 'x'|center(10**9) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%0999999999d' % 1 }}",
    "{% for i in range(100000) %}{{ 'aaaaaaaaaaaaaaaaaaaaaaaaa' }}{% endfor %}",
])
def test_template_escapes_fail_the_item_quickly(arrange, db, template):
    good = arrange.contact("good", "g@example.com", attrs={"first_name": "G"})
    run_bad = arrange.run(body=template)
    run_ok = arrange.run()
    arrange.items(run_bad, [good])
    arrange.items(run_ok, [good])
    started = time.monotonic()
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run_bad, run_ok], scenario_items=False)
    assert time.monotonic() - started < 60  # a guard against a hang, not a speed target
    assert (report.sent, report.failed) == (1, 1)
    row = arrange.rows("SELECT status, last_error FROM queue_items WHERE run_id = ?", (run_bad,))
    assert row[0]["status"] == "failed"
    assert row[0]["last_error"].startswith("body: ")
    assert arrange.rows("SELECT count(*) AS n FROM outbox") == [{"n": 1}]


def test_opted_out_after_build_is_cancelled_unless_included(arrange, db):
    out = arrange.contact("out", "o@example.com", attrs={"first_name": "O"},
                          opt_out=["promotional"])
    run = arrange.run()
    forced = arrange.run(include_opted_out=True)
    arrange.items(run, [out])
    arrange.items(forced, [out])
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run, forced], scenario_items=False)
    assert (report.sent, report.cancelled) == (1, 1)
    assert arrange.statuses(run) == {"cancelled": 1}
    assert arrange.statuses(forced) == {"sent": 1}


def test_erased_contact_is_cancelled(arrange, db):
    gone = arrange.contact("gone", "g@example.com", attrs={"first_name": "G"})
    run = arrange.run()
    arrange.items(run, [gone])
    arrange.conn.sqlite_pragma("foreign_keys = ON")
    arrange.conn.execute("DELETE FROM contacts WHERE id = ?", (gone,))
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.cancelled == 1 and report.sent == 0


def test_jsonl_files_are_private_and_match_outbox_list(arrange, db, cli, tmp_path):
    ids = arrange.contacts(3)
    arrange.channel("archive", {"type": "outbox", "dir": str(tmp_path / "mail")})
    run = arrange.run(channel="archive")
    arrange.items(run, ids, channel="archive")
    old = os.umask(0o022)
    try:
        report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    finally:
        os.umask(old)
    assert report.sent == 3
    path = tmp_path / "mail" / "archive.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    listed = cli("outbox", "list", "--channel", "archive", "-o", "json").json
    assert lines == listed


def test_relative_outbox_dir_is_under_the_state_folder(arrange, db, state, tmp_path):
    """Beside the state file; a PostgreSQL state has no folder: the working directory."""
    ids = arrange.contacts(1)
    arrange.channel("rel", {"type": "outbox", "dir": "out"})
    run = arrange.run(channel="rel")
    arrange.items(run, ids, channel="rel")
    assert deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False).sent == 1
    folder = tmp_path if is_pg(state) else state.parent  # the tests run in tmp_path
    assert (folder / "out" / "rel.jsonl").exists()


def test_unwritable_jsonl_records_nothing_sent(arrange, db, tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the folder should be")
    ids = arrange.contacts(2)
    arrange.channel("broken", {"type": "outbox", "dir": str(blocker)})
    run = arrange.run(channel="broken")
    arrange.items(run, ids, channel="broken")
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.sent == 0 and report.retried == 2
    assert report.errors and "cannot open outbox file" in report.errors[0]
    assert arrange.rows("SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    assert arrange.statuses(run) == {"queued": 2}


def test_max_messages_stop_and_dry_run(arrange, db):
    ids = arrange.contacts(25)
    run = arrange.run()
    arrange.items(run, ids)
    dry = deliver_due(TickContext(db, NOW, {}, budget=Budget(max_messages=10), dry_run=True),
                      run_ids=[run], scenario_items=False)
    assert dry.sent == 10
    assert arrange.statuses(run) == {"queued": 25}
    assert arrange.rows("SELECT status FROM runs") == [{"status": "queued"}]
    capped = deliver_due(TickContext(db, NOW, {}, budget=Budget(max_messages=10)), run_ids=[run],
                         scenario_items=False, batch_size=4)
    assert capped.sent == 10
    stopped = deliver_due(TickContext(db, NOW, {}, budget=Budget(stop_requested=lambda: True)),
                          run_ids=[run], scenario_items=False)
    assert stopped.sent == 0
    calls = iter([False, True])
    second_stops = Budget(stop_requested=lambda: next(calls))
    one_batch = deliver_due(TickContext(db, NOW, {}, budget=second_stops), run_ids=[run],
                            scenario_items=False, batch_size=5)
    assert one_batch.sent == 5
    past = deliver_due(TickContext(db, NOW, {}, budget=Budget(deadline=time.monotonic() - 1)),
                       run_ids=[run], scenario_items=False)
    assert past.sent == 0
    rest = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert rest.sent == 10
    assert arrange.statuses(run) == {"sent": 25}


def test_rate_limit_holds_across_calls_and_windows(arrange, db):
    ids = arrange.contacts(12)
    arrange.channel("slow", {"type": "outbox", "rate": "5/m"})
    first_run = arrange.run(channel="slow")
    second_run = arrange.run(channel="slow")
    arrange.items(first_run, ids[:6], channel="slow")
    arrange.items(second_run, ids[6:], channel="slow")
    one = deliver_due(TickContext(db, NOW, {}), run_ids=[first_run], scenario_items=False)
    assert (one.sent, one.waiting_rate) == (5, 1)
    # Another run, another call, same minute: the channel's window is shared.
    two = deliver_due(TickContext(db, NOW + timedelta(seconds=30), {}), run_ids=[second_run],
                      scenario_items=False)
    assert (two.sent, two.waiting_rate) == (0, 6)
    dry = deliver_due(TickContext(db, NOW + timedelta(seconds=30), {}, dry_run=True),
                      run_ids=[second_run], scenario_items=False)
    assert (dry.sent, dry.waiting_rate) == (0, 6)
    three = deliver_due(TickContext(db, NOW + timedelta(minutes=1), {}),
                        run_ids=[first_run, second_run], scenario_items=False)
    assert three.sent == 5
    assert arrange.rows("SELECT sum(sent) AS n FROM channel_sends") == [{"n": 10}]


def test_per_second_rate_paces_within_one_call(arrange, db):
    ids = arrange.contacts(7)
    arrange.channel("paced", {"type": "outbox", "rate": "3/s"})
    run = arrange.run(channel="paced")
    arrange.items(run, ids, channel="paced")
    fake = {"t": 100.0}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        fake["t"] += seconds

    report = deliver_due(TickContext(db, NOW, {}, monotonic=lambda: fake["t"], sleep=sleep),
                         run_ids=[run], scenario_items=False)
    assert report.sent == 7
    assert len(sleeps) == 2 and all(0 < s <= 1 for s in sleeps)
    sent_at = [r["sent_at"] for r in arrange.rows("SELECT sent_at FROM outbox ORDER BY rowid")]
    assert sent_at == ["2027-03-01T09:00:00Z"] * 3 + ["2027-03-01T09:00:01Z"] * 3 + [
        "2027-03-01T09:00:02Z"]


def test_undefined_channel_fails_items_with_reason(arrange, db):
    ids = arrange.contacts(2)
    run = arrange.run(channel="nowhere")
    arrange.items(run, ids, channel="nowhere")
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.failed == 2
    errors = {r["last_error"] for r in arrange.rows("SELECT last_error FROM queue_items")}
    assert errors == {"channel 'nowhere' is not defined; apply a Channel named nowhere or use "
                      "'outbox'"}


def test_scenario_items_take_content_from_the_step(arrange, db):
    c = arrange.contact("ann", "a@example.com", attrs={"first_name": "Ann"})
    frozen_c = arrange.contact("fro", "f@example.com", attrs={"first_name": "F"})
    arrange.scenario("onboarding", {"reentry": "once", "launch": {"type": "manual"}, "steps": [
        {"id": "welcome", "send": {"subject": "Welcome {{ first_name }}", "body": "Hi!"}},
        {"id": "pause", "wait": "3d"}]})
    now_text = "2027-03-01T09:00:00Z"
    for contact, status in ((c, "active"), (frozen_c, "frozen")):
        profile = arrange.conn.insert(
            "INSERT INTO scenario_profiles (scenario, contact_id, step, status, entered_at,"
            " updated_at) VALUES ('onboarding', ?, 'welcome', ?, ?, ?)",
            (contact, status, now_text, now_text))
        arrange.items(None, [contact], scenario="onboarding", step="welcome",
                      profile_id=profile)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[], scenario_items=True)
    assert report.sent == 1
    rec = arrange.rows("SELECT scenario, step, subject, run_id, contact FROM outbox")
    assert rec == [{"scenario": "onboarding", "step": "welcome", "subject": "Welcome Ann",
                    "run_id": None, "contact": "ann"}]
    assert arrange.statuses() == {"queued": 1, "sent": 1}


def test_expired_claim_goes_again_with_same_message_id(arrange, db):
    ids = arrange.contacts(1)
    run = arrange.run()
    arrange.items(run, ids)
    # A crash after claiming: the claim holds the item until it expires.
    arrange.conn.execute("UPDATE queue_items SET claimed_until = '2027-03-01T09:05:00Z',"
                         " claim_token = 'dead'")
    held = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert held.sent == 0
    later = deliver_due(TickContext(db, NOW + timedelta(minutes=6), {}), run_ids=[run],
                        scenario_items=False)
    assert later.sent == 1
    assert arrange.rows("SELECT message_id FROM outbox") == [{"message_id": f"m-{run}--{ids[0]}"}]


def test_backoff_grows_and_is_capped():
    from campctl.engine.delivery import backoff

    assert [backoff(n).total_seconds() for n in range(4)] == [60, 120, 240, 480]
    assert backoff(30) == timedelta(hours=1)
    assert isinstance(NOW, datetime)


def test_template_syntax_error_fails_every_item_with_the_position(arrange, db):
    ids = arrange.contacts(3)
    run = arrange.run(subject="Hi {{ first_name ")
    arrange.items(run, ids)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.failed == 3
    errors = {r["last_error"] for r in arrange.rows("SELECT last_error FROM queue_items")}
    assert len(errors) == 1 and errors.pop().startswith("subject: template syntax error at line 1")
