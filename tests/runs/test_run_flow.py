"""Run verbs against the real engine: apply, start, tick; restart, pause/resume, stop mid-tick."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

CAMPAIGN = """\
kind: Campaign
name: spring
timezone: Europe/Paris
closes_at: 2027-06-30T23:59
type: one-off
message: {subject: "Hi {{ id }}", body: "Hello"}
audience: {all: true}
schedule:
  queue: immediately
  send: immediately
"""
T0 = "2027-03-01T09:00:00Z"


@pytest.fixture
def launched(cli, tmp_path, write_yaml):
    """An approved one-off campaign with N contacts, launched at T0: launched(n) -> None."""

    def launch(n: int) -> None:
        csv = tmp_path / "contacts.csv"
        csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(n)))
        steps = [("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("spring.yaml", CAMPAIGN))),
                 ("submit", "campaign", "spring"),
                 ("approve", "campaign", "spring", "--as", "boss"),
                 ("start", "campaign", "spring")]
        for step in steps:
            result = cli("--now", T0, *step)
            assert result.exit_code == 0, (step, result)

    return launch


def outbox_contacts(rows, run_id=None):
    sql = "SELECT contact FROM outbox WHERE message_id NOT LIKE 'notify-%'"
    params: tuple = ()
    if run_id is not None:
        sql += " AND run_id = ?"
        params = (run_id,)
    return sorted(r["contact"] for r in rows(sql, params))


def test_restart_does_not_resend_to_contacts_already_sent(cli, launched, rows):
    launched(4)
    assert cli("--now", T0, "tick", "--max-messages", "2").exit_code == 0
    assert len(outbox_contacts(rows)) == 2
    assert cli("--now", T0, "stop", "run", "1", "--note", "halt").exit_code == 0
    restart = cli("--now", T0, "restart", "run", "1", "--note", "go on", "-o", "json")
    new_id = restart.json["new_run"]
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0
    everyone = outbox_contacts(rows)
    assert everyone == ["c0", "c1", "c2", "c3"]  # each exactly once
    runs = {r["id"]: r for r in cli("get", "runs", "-o", "json").json}
    assert runs[1]["status"] == "skipped" and runs[1]["sent"] == 2
    assert runs[new_id]["restart_of"] == 1 and runs[new_id]["sent"] == 2


def test_a_restart_of_a_restart_excludes_contacts_sent_by_every_earlier_run(cli, launched, rows):
    launched(6)
    assert cli("--now", T0, "tick", "--max-messages", "2").exit_code == 0  # run 1: 2 sent
    assert cli("--now", T0, "stop", "run", "1", "--note", "halt").exit_code == 0
    second = cli("--now", T0, "restart", "run", "1", "--note", "go on", "-o", "json")
    second_id = second.json["new_run"]
    tick = cli("--now", "2027-03-01T09:01:00Z", "tick", "--max-messages", "2")
    assert tick.exit_code == 0, tick
    assert len(outbox_contacts(rows, second_id)) == 2  # 2 of the 4 not yet sent
    assert cli("--now", T0, "stop", "run", str(second_id), "--note", "halt").exit_code == 0
    third = cli("--now", T0, "restart", "run", str(second_id), "--note", "again", "-o", "json")
    third_id = third.json["new_run"]
    assert cli("--now", "2027-03-01T09:02:00Z", "tick").exit_code == 0
    # run 3 sends only to the 2 contacts neither run 1 nor run 2 reached: 6 messages in all
    assert len(outbox_contacts(rows, third_id)) == 2
    assert outbox_contacts(rows) == [f"c{i}" for i in range(6)]


def test_restart_include_sent_sends_to_everyone_again(cli, launched, rows):
    launched(3)
    assert cli("--now", T0, "tick", "--max-messages", "1").exit_code == 0
    assert cli("--now", T0, "stop", "run", "1", "--note", "halt").exit_code == 0
    restart = cli("--now", T0, "restart", "run", "1", "--note", "all", "--include-sent",
                  "-o", "json")
    new_id = restart.json["new_run"]
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0
    assert outbox_contacts(rows, new_id) == ["c0", "c1", "c2"]


def test_paused_run_delivers_nothing_until_resumed(cli, launched, rows):
    launched(5)
    assert cli("--now", T0, "tick", "--max-messages", "2").exit_code == 0
    assert cli("--now", T0, "pause", "run", "1", "--note", "hold").exit_code == 0
    for minute in range(1, 4):
        tick = cli("--now", f"2027-03-01T09:0{minute}:00Z", "tick")
        assert tick.exit_code == 0, tick
    assert len(outbox_contacts(rows)) == 2
    assert rows("SELECT status FROM runs WHERE id = 1")[0]["status"] == "paused"
    assert cli("--now", "2027-03-01T09:05:00Z", "resume", "run", "1").exit_code == 0
    assert cli("--now", "2027-03-01T09:06:00Z", "tick").exit_code == 0
    assert outbox_contacts(rows) == [f"c{i}" for i in range(5)]
    assert rows("SELECT status FROM runs WHERE id = 1")[0]["status"] == "completed"


def _spawn(state, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env["CAMPCTL_USER"] = "tester"
    return subprocess.Popen([sys.executable, "-m", "campctl", "--state", str(state), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_operators_stopping_at_once_one_wins(cli, launched, state, rows):
    launched(3)
    assert cli("--now", T0, "tick", "--max-messages", "1").exit_code == 0
    procs = [_spawn(state, "--now", T0, "stop", "run", "1", "--note", f"op{i}") for i in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1, 1], errors
    assert len(rows("SELECT * FROM history WHERE kind = 'run' AND action = 'stop'")) == 1
    assert len(rows("SELECT * FROM notifications")) == 1


class _SlowHook(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []
    delay = 0.01

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).received.append(self.headers.get("Idempotency-Key", ""))
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_hook():
    _SlowHook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_stop_during_a_tick_stops_delivery_between_batches(cli, tmp_path, write_yaml, state,
                                                           rows, slow_hook):
    total = 300
    port = slow_hook.server_address[1]
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(total)))
    hook = f"kind: Channel\nname: hook\ntype: webhook\nurl: http://127.0.0.1:{port}/in\n"
    steps = [("init",), ("contacts", "import", str(csv)),
             ("apply", str(write_yaml("hook.yaml", hook)),
              str(write_yaml("spring.yaml", CAMPAIGN + "channel: hook\n"))),
             ("submit", "campaign", "spring"), ("approve", "campaign", "spring", "--as", "boss"),
             ("start", "campaign", "spring")]
    for step in steps:
        result = cli("--now", T0, *step)
        assert result.exit_code == 0, (step, result)
    tick = _spawn(state, "--now", T0, "tick")
    while len(_SlowHook.received) < 10 and tick.poll() is None:
        time.sleep(0.01)
    stop = _spawn(state, "--now", T0, "stop", "run", "1", "--note", "wrong link")
    _, stop_err = stop.communicate(timeout=120)
    assert stop.returncode == 0, stop_err
    at_stop = len(_SlowHook.received)
    _, tick_err = tick.communicate(timeout=120)
    assert tick.returncode == 0, tick_err
    for minute in (1, 2):
        assert cli("--now", f"2027-03-01T09:0{minute}:00Z", "tick").exit_code == 0
    delivered = list(_SlowHook.received)
    assert len(delivered) == len(set(delivered))  # no message handed over twice
    assert len(delivered) == at_stop  # the stop waited for the message in flight: none after
    assert len(delivered) < total
    run = cli("get", "runs", "-o", "json").json[0]
    assert run["status"] == "stopped"
    assert run["sent"] == len(delivered)
    assert run["queued"] == 0 and run["sent"] + run["cancelled"] + run["failed"] == total
