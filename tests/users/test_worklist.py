"""Work lists: a stopped or failed run waits in someone's list until restarted or skipped; the
user it concerns is notified at their own address."""

from __future__ import annotations

import socket

from users_support import campaign_yaml

T1 = "2027-03-01T09:05:00Z"
ENTRY_KEYS = {"id", "kind", "object", "assigned_to", "reason", "assigned_at", "cleared_at",
              "campaign", "stage", "status"}


def _run_id(ok) -> int:
    return ok("get", "runs", "-o", "json").json[0]["id"]


def test_stop_assigns_the_run_to_whoever_stopped_it_and_restart_clears_it(ok, cli, world, rows):
    ok("users", "add", "alice")
    world.apply(campaign_yaml(), as_user="alice")
    world.launch(as_user="alice")
    ok("--now", T1, "tick", "--max-messages", "1")
    run_id = _run_id(ok)
    ok("--now", T1, "stop", "run", str(run_id), "--note", "wrong list", "--as", "alice")

    mine = ok("worklist", "--as", "alice", "-o", "json").json
    assert len(mine) == 1 and set(mine[0]) == ENTRY_KEYS
    assert mine[0] | {"id": 0} == {
        "id": 0, "kind": "run", "object": f"run/{run_id}", "assigned_to": "alice",
        "reason": "stopped: wrong list", "assigned_at": T1, "cleared_at": None,
        "campaign": "spring", "stage": "main", "status": "stopped"}
    assert ok("worklist", "--as", "bob", "-o", "json").json == []
    assert len(ok("worklist", "--all", "-o", "json").json) == 1
    assert ok("users", "list", "-o", "json").json[0]["worklist"] == 1
    described = ok("describe", "run", str(run_id), "-o", "json").json
    assert described["assigned_to"] == "alice"
    assert [h["action"] for h in described["worklist_history"]] == ["assign"]
    assert ok("describe", "user", "alice", "-o", "json").json["worklist"] == [f"run/{run_id}"]

    ok("--now", T1, "restart", "run", str(run_id), "--note", "fixed", "--as", "alice")
    assert ok("worklist", "--as", "alice", "-o", "json").json == []
    cleared = ok("worklist", "--as", "alice", "--cleared", "-o", "json").json
    assert cleared[0]["cleared_at"] == T1
    history = rows("SELECT actor, action, from_status, to_status FROM history "
                   "WHERE kind = 'worklist' AND name = ? ORDER BY id", (f"run/{run_id}",))
    assert history == [
        {"actor": "alice", "action": "assign", "from_status": None, "to_status": "alice"},
        {"actor": "alice", "action": "clear", "from_status": "alice", "to_status": None},
    ]


def test_assign_hands_a_run_over_and_skip_clears_it(ok, cli, world, rows):
    ok("users", "add", "alice")
    ok("users", "add", "bob")
    world.apply(campaign_yaml(), as_user="alice")
    world.launch(as_user="alice")
    ok("tick", "--max-messages", "1")
    run_id = _run_id(ok)
    assert cli("assign", "run", str(run_id), "bob").exit_code == 1  # not in any work list
    ok("stop", "run", str(run_id), "--note", "hold on", "--as", "alice")
    assert cli("assign", "run", str(run_id), "nobody").exit_code == 3
    assert cli("assign", "run", "999", "bob").exit_code == 3
    moved = ok("assign", "run", str(run_id), "bob", "--as", "alice", "-o", "json").json
    assert moved["assigned_to"] == "bob" and moved["reason"] == "stopped: hold on"
    assert ok("worklist", "--as", "alice", "-o", "json").json == []
    assert [e["object"] for e in ok("worklist", "--as", "bob", "-o", "json").json] == [
        f"run/{run_id}"]
    refused = cli("users", "remove", "bob")
    assert refused.exit_code == 1 and "work list" in refused.stderr
    ok("skip", "run", str(run_id), "--note", "not needed", "--as", "bob")
    assert ok("worklist", "--all", "-o", "json").json == []
    actions = [r["action"] for r in rows(
        "SELECT action FROM history WHERE kind = 'worklist' ORDER BY id")]
    assert actions == ["assign", "assign", "clear"]
    # One open entry per run, whatever happened.
    assert rows("SELECT count(*) AS n FROM worklist WHERE cleared_at IS NULL") == [{"n": 0}]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_run_goes_to_the_campaign_owner(ok, world, write_yaml, rows):
    ok("users", "add", "alice", "--email", "alice@example.com")
    channel = (f"kind: Channel\nname: hook\ntype: webhook\nurl: http://127.0.0.1:{_closed_port()}"
               "/in\nmax_attempts: 1\ntimeout: 2\n")
    world.apply(channel, as_user="ops", file="channel.yaml")
    world.apply(campaign_yaml(channel="hook"), as_user="alice")
    world.launch(as_user="alice")
    ok("--now", T1, "tick")
    run = ok("get", "runs", "-o", "json").json[0]
    assert run["status"] == "failed", run
    entries = ok("worklist", "--as", "alice", "-o", "json").json
    assert [(e["object"], e["reason"].split(":")[0]) for e in entries] == [
        (f"run/{run['id']}", "failed")]
    # The owner's copy of the failure notification is addressed to them.
    assert rows("SELECT kind, recipient FROM notifications WHERE recipient IS NOT NULL") == [
        {"kind": "run-failed", "recipient": "alice@example.com"}]


def test_the_acting_user_receives_the_notification_at_their_address(ok, world, rows):
    ok("users", "add", "alice", "--email", "alice@example.com")
    ok("users", "add", "bob")  # no address: only notify_to hears of bob's actions
    ok("config", "set", "notify_channel", "outbox")
    world.apply(campaign_yaml(), as_user="alice")
    world.launch(as_user="alice")
    ok("tick", "--max-messages", "1")
    run_id = _run_id(ok)
    ok("stop", "run", str(run_id), "--note", "typo", "--as", "alice")
    # Without notify_to, the user's copy goes out anyway; the operators' copy waits.
    sent = rows("SELECT recipient, body FROM outbox WHERE message_id LIKE 'notify-%'")
    assert [s["recipient"] for s in sent] == ["alice@example.com"]
    assert "in the work list of: alice" in sent[0]["body"]
    ok("config", "set", "notify_to", "ops@example.com")
    ok("--now", T1, "skip", "run", str(run_id), "--note", "later", "--as", "bob")
    recipients = sorted(r["recipient"] for r in rows(
        "SELECT recipient FROM outbox WHERE message_id LIKE 'notify-%'"))
    assert recipients == ["alice@example.com", "ops@example.com", "ops@example.com"]
    ids = [r["message_id"] for r in rows("SELECT message_id FROM outbox")]
    assert len(ids) == len(set(ids))
    listed = ok("notifications", "-o", "json").json
    assert [(n["kind"], n["recipient"]) for n in listed] == [
        ("run-stopped", None), ("run-stopped", "alice@example.com"), ("run-skipped", None)]
    ok("--now", "2027-03-01T10:00:00Z", "tick")  # nothing is sent twice
    assert len(rows("SELECT 1 FROM outbox WHERE message_id LIKE 'notify-%'")) == 3
