"""CLI: channel test NAME --to ADDRESS, outbox list, and operator notifications."""

from __future__ import annotations

import socket

from campctl.engine.delivery import Notice, send_notification
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")


def test_channel_test_outbox_records_a_message(arrange, cli):
    result = cli("channel", "test", "outbox", "--to", "ops@example.com")
    assert result.exit_code == 0, result
    assert "sent to ops@example.com" in result.stderr
    listed = cli("outbox", "list", "-o", "json").json
    assert len(listed) == 1
    assert listed[0]["to"] == "ops@example.com" and listed[0]["channel"] == "outbox"
    assert listed[0]["message_id"].startswith("test-")


def test_channel_test_smtp_success_and_json(arrange, cli, smtp_server):
    arrange.channel("mail", {"type": "smtp", "host": "127.0.0.1", "port": smtp_server.port,
                             "from": "ops@example.com"})
    result = cli("channel", "test", "mail", "--to", "me@example.com", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["status"] == "sent" and result.json["reason"] is None
    assert smtp_server.messages[0]["to"] == ["me@example.com"]
    assert smtp_server.messages[0]["message_id"] == f"<{result.json['message_id']}@campctl>"


def test_channel_test_failure_exits_1_with_reason(arrange, cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    arrange.channel("mail", {"type": "smtp", "host": "127.0.0.1", "port": port,
                             "from": "ops@example.com", "timeout": 2})
    result = cli("channel", "test", "mail", "--to", "me@example.com")
    assert result.exit_code == 1, result
    assert result.stderr.startswith("error: channel mail: test message to me@example.com failed:")
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr


def test_channel_test_missing_secret_exits_1(arrange, cli, http_server):
    arrange.channel("hook", {"type": "webhook", "url": http_server.url,
                             "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}})
    result = cli("channel", "test", "hook", "--to", "x")
    assert result.exit_code == 1, result
    assert "HOOK_TOKEN is not set" in result.stderr
    ok = cli("channel", "test", "hook", "--to", "x", env={"HOOK_TOKEN": "t"})
    assert ok.exit_code == 0, ok
    assert http_server.requests[0]["headers"]["Authorization"] == "Bearer t"


def test_channel_test_unknown_channel_exits_3(arrange, cli):
    result = cli("channel", "test", "nope", "--to", "a@example.com")
    assert result.exit_code == 3, result
    assert "no channel named 'nope'" in result.stderr


def test_outbox_list_bad_limit_is_usage_error(arrange, cli):
    assert cli("outbox", "list", "--limit", "-1").exit_code == 2


def test_outbox_list_limit_keeps_newest(arrange, cli):
    for n in range(3):
        assert cli("channel", "test", "outbox", "--to", f"o{n}@example.com").exit_code == 0
    newest = cli("outbox", "list", "--limit", "2", "-o", "json").json
    assert [r["to"] for r in newest] == ["o1@example.com", "o2@example.com"]


def test_send_notification_reports_without_raising(arrange, db, http_server):
    result = send_notification(db, "missing", Notice("ops", "s", "b"), now=NOW, environ={})
    assert not result.ok and "not defined" in result.reason
    arrange.channel("hook", {"type": "webhook", "url": http_server.url})
    sent = send_notification(db, "hook", Notice("ops", "Run 3 stopped", "note",
                                                message_id="notify-7"), now=NOW, environ={})
    assert sent.ok
    request = http_server.requests[0]
    assert request["headers"]["Idempotency-Key"] == "notify-7"
    assert request["body"]["subject"] == "Run 3 stopped"
