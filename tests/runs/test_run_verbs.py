"""Operator verbs on runs through the CLI: the whole (status, verb) matrix, effects, refusals."""

from __future__ import annotations

import pytest
from store_support import execute_sql, handover_started, state_exists

from campctl.models import RUN_TRANSITIONS, RunStatus

VERBS = ["stop", "restart", "skip", "pause", "resume"]
ACTIVE = ["scheduled", "building", "queued", "sending"]


def expected(status: str, verb: str) -> str | None:
    """The expected outcome, written out apart from RUN_TRANSITIONS: the new status, or None when
    refused."""
    if verb == "stop" and status in (*ACTIVE, "paused"):
        return "stopped"
    if verb == "pause" and status in ACTIVE:
        return "paused"
    if verb == "resume" and status == "paused":
        return "sending"  # the status it had before the pause (arranged below)
    if verb in ("restart", "skip") and status in ("failed", "stopped"):
        return "skipped"
    return None


def verb_args(verb: str, run_id: int) -> list[str]:
    return [verb, "run", str(run_id), "--note", f"{verb} by test"]


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("status", [s.value for s in RunStatus])
def test_every_status_verb_pair(cli, make_run, rows, status, verb):
    extra = {"paused_from": "sending"} if status == "paused" else {}
    run_id = make_run(status, items=("sent", "queued"), **extra)
    result = cli(*verb_args(verb, run_id))
    want = expected(status, verb)
    # The table in models.py agrees with the expectation above.
    assert (verb in RUN_TRANSITIONS[RunStatus(status)]) == (want is not None)
    run = rows("SELECT status, finished_at FROM runs WHERE id = ?", (run_id,))[0]
    history = rows("SELECT action, from_status, to_status, note, actor FROM history "
                   "WHERE kind = 'run' AND name = ?", (str(run_id),))
    notes = rows("SELECT kind, object, note FROM notifications")
    if want is None:
        assert result.exit_code == 1, result
        assert result.stderr.startswith(f"error: cannot {verb} run {run_id}: it is {status}")
        allowed = sorted(RUN_TRANSITIONS[RunStatus(status)])
        if allowed:
            assert "allowed on it now: " + ", ".join(allowed) in result.stderr
        else:
            assert "final" in result.stderr
        assert result.stderr.count("\n") == 1
        assert run["status"] == status
        assert history == [] and notes == []
        return
    assert result.exit_code == 0, result
    assert run["status"] == want
    assert history == [{"action": verb, "from_status": status, "to_status": want,
                        "note": f"{verb} by test", "actor": "tester"}]
    if verb in ("stop", "restart", "skip"):
        assert run["finished_at"] == "2027-03-01T09:00:00Z"
        word = {"stop": "stopped", "restart": "restarted", "skip": "skipped"}[verb]
        assert notes == [{"kind": f"run-{word}", "object": f"run/{run_id}",
                          "note": f"{verb} by test"}]
    else:
        assert notes == []


def test_stop_cancels_unsent_items_only(cli, make_run, rows):
    run_id = make_run("sending", items=("sent", "queued", "queued", "failed"))
    result = cli("stop", "run", str(run_id), "--note", "wrong price", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["cancelled"] == 2 and result.json["status"] == "stopped"
    items = rows("SELECT status, count(*) AS n FROM queue_items WHERE run_id = ? "
                 "GROUP BY status ORDER BY status", (run_id,))
    assert items == [{"status": "cancelled", "n": 2}, {"status": "failed", "n": 1},
                     {"status": "sent", "n": 1}]
    log = rows("SELECT event, run_id, details FROM exec_log ORDER BY id")
    assert log and log[-1]["event"] == "Run Stopped" and "wrong price" in log[-1]["details"]


def test_stop_cancels_items_under_a_claim_too_marking_a_begun_hand_over(cli, make_run, rows,
                                                                       state):
    run_id = make_run("sending", items=("queued", "queued", "queued"))
    ids = [r["id"] for r in rows("SELECT id FROM queue_items ORDER BY id")]
    # A delivery (dead or alive) claimed the first two and began handing over the first.
    execute_sql(state, "UPDATE queue_items SET claimed_until = '2027-03-01T09:05:00Z',"
                " claim_token = 'tok' WHERE id IN (?, ?)", ids[:2])
    execute_sql(state, "UPDATE queue_items SET handover_begun = ? WHERE id = ?",
                (handover_started(state), ids[0]))
    assert cli("stop", "run", str(run_id), "--note", "x").exit_code == 0
    items = rows("SELECT status, claim_token, last_error FROM queue_items ORDER BY id")
    assert [i["status"] for i in items] == ["cancelled"] * 3
    # The one in doubt keeps its claim, so a delivery still recording it can mark it sent.
    assert items[0]["claim_token"] == "tok" and "possibly handed over" in items[0]["last_error"]
    assert items[1]["claim_token"] is None and items[1]["last_error"] is None
    log = rows("SELECT details FROM exec_log WHERE event = 'Run Stopped'")
    assert "1 possibly handed over" in log[0]["details"]


@pytest.mark.parametrize("before", ["scheduled", "building", "queued", "sending"])
def test_resume_returns_to_the_status_before_the_pause(cli, make_run, rows, before):
    run_id = make_run(before)
    assert cli("pause", "run", str(run_id)).exit_code == 0
    assert rows("SELECT status, paused_from FROM runs")[0] == {"status": "paused",
                                                               "paused_from": before}
    resumed = cli("resume", "run", str(run_id), "--note", "go")
    assert resumed.exit_code == 0, resumed
    assert rows("SELECT status, paused_from FROM runs")[0] == {"status": before,
                                                               "paused_from": None}
    actions = rows("SELECT action, note FROM history WHERE kind = 'run' ORDER BY id")
    assert actions == [{"action": "pause", "note": None}, {"action": "resume", "note": "go"}]


def test_restart_creates_a_new_scheduled_run_with_the_same_snapshot(cli, make_run, rows):
    run_id = make_run("failed", items=("sent", "failed"), instance_id=7,
                      send_at="2027-03-02T07:00:00Z", error="smtp down")
    result = cli("restart", "run", str(run_id), "--note", "smtp fixed", "-o", "json")
    assert result.exit_code == 0, result
    new_id = result.json["new_run"]
    assert new_id != run_id
    new, old = (rows("SELECT * FROM runs WHERE id = ?", (i,))[0] for i in (new_id, run_id))
    assert old["status"] == "skipped"
    assert new["status"] == "scheduled" and new["restart_of"] == run_id
    assert new["spec"] == old["spec"] and new["instance_id"] == 7
    assert new["scheduled_at"] == "2027-03-01T09:00:00Z"
    assert new["send_at"] == "2027-03-02T07:00:00Z"  # a later send still waits for its time
    assert new["include_sent"] == 0
    assert new["campaign"] == "spring-sale" and new["stage"] == "main"
    created = rows("SELECT action, to_status, note FROM history WHERE name = ? ORDER BY id",
                   (str(new_id),))
    assert created[0]["action"] == "create" and "restart of run" in created[0]["note"]


def test_restart_include_sent_is_recorded(cli, make_run, rows):
    run_id = make_run("stopped")
    result = cli("restart", "run", str(run_id), "--note", "all again", "--include-sent",
                 "-o", "json")
    assert result.exit_code == 0, result
    assert rows("SELECT include_sent FROM runs WHERE id = ?",
                (result.json["new_run"],))[0]["include_sent"] == 1


def test_unknown_run_is_exit_3(cli, make_run):
    make_run("sending")
    for verb in VERBS:
        result = cli(verb, "run", "999", "--note", "x")
        assert result.exit_code == 3, result
        assert "no run 999" in result.stderr
    assert cli("describe", "run", "999").exit_code == 3


def test_note_is_required_for_stop_restart_skip(cli, make_run):
    run_id = make_run("sending")
    for verb in ("stop", "restart", "skip"):
        result = cli(verb, "run", str(run_id))
        assert result.exit_code == 2, result
        assert "--note" in result.stderr
    assert cli("stop", "run", str(run_id), "--note", "  ").exit_code == 2
    assert cli("stop", "run", "abc", "--note", "x").exit_code == 2


@pytest.mark.pg_fresh
def test_verbs_on_a_missing_state_file_exit_4(cli, state):
    result = cli("get", "runs")
    assert result.exit_code == 4, result
    assert not state_exists(state)
