"""A tick killed between a hand-over and its record, then an operator verb: nothing stays queued
on an ended run, and a restart never sends a contact a second message under a new key.

The tick runs as a real process; the webhook receiver on 127.0.0.1 kills it (SIGKILL) when the
Nth message arrives, before answering: that message reached the receiver, its record never
committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from store_support import execute_sql, handover_started, is_pg

T0 = "2027-03-01T09:00:00Z"
CONTACTS = 30
KILL_AT = 12


class KillingReceiver:
    """Answers 200 to each POST; on arrival number `kill_at` kills `pid` instead of answering."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.pid: int | None = None
        self.kill_at = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.keys.append(self.headers["Idempotency-Key"])
                    kill = receiver.pid is not None and len(receiver.keys) == receiver.kill_at
                if kill:
                    os.kill(receiver.pid, signal.SIGKILL)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def contacts(self) -> Counter:
        """Messages per contact id (keys are r<run>-c<contact>)."""
        return Counter(key.split("-c", 1)[1] for key in self.keys)


@pytest.fixture
def receiver():
    hook = KillingReceiver()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def launch(cli, tmp_path, write_yaml, receiver, closes_at: str = "2027-06-30T23:59") -> None:
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(CONTACTS)))
    text = (f"kind: Channel\nname: hook\ntype: webhook\nurl: {receiver.url}\nconnections: 1\n---\n"
            f"kind: Campaign\nname: spring\ntimezone: UTC\ncloses_at: {closes_at}\n"
            "type: one-off\nchannel: hook\nmessage: {subject: \"Hi\", body: \"Hello\"}\n"
            "audience: {all: true}\nschedule: {queue: immediately, send: immediately}\n")
    for step in (("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("defs.yaml", text))),
                 ("submit", "campaign", "spring"),
                 ("approve", "campaign", "spring", "--as", "boss"),
                 ("start", "campaign", "spring")):
        result = cli("--now", T0, *step)
        assert result.exit_code == 0, (step, result)


@pytest.fixture
def launched(cli, tmp_path, write_yaml, receiver):
    launch(cli, tmp_path, write_yaml, receiver)


def killed_tick(state, receiver, kill_at: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "campctl", "--state", str(state), "--now", T0,
                             "tick"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    with receiver.lock:
        receiver.pid, receiver.kill_at = proc.pid, kill_at
    assert proc.wait(timeout=120) == -signal.SIGKILL
    with receiver.lock:
        receiver.pid = None


def assert_in_doubt(state, doubt: list[str], receiver) -> None:
    """The items a killed tick left "possibly handed over": exactly the message in flight, on
    both stores (one connection). PostgreSQL marks hand-overs ahead in one durable commit but
    notes each start just before its message goes (docs/delivery.md): the server keeps every
    commit of a campctl process that dies, so a mark never started is not in doubt."""
    assert doubt == [receiver.keys[-1]]


def test_stop_then_restart_after_a_crash_sends_no_contact_twice(cli, rows, state, receiver,
                                                                launched):
    killed_tick(state, receiver, KILL_AT)
    assert len(receiver.keys) == KILL_AT

    stop = cli("--now", T0, "stop", "run", "1", "--note", "halt", "-o", "json")
    assert stop.exit_code == 0, stop
    # Every waiting item is cancelled, including those the dead tick still held.
    assert rows("SELECT count(*) AS n FROM queue_items WHERE run_id = 1 AND status = 'queued'"
                ) == [{"n": 0}]
    assert stop.json["cancelled"] == CONTACTS - (KILL_AT - 1)
    doubt = rows("SELECT message_id, status, last_error FROM queue_items WHERE run_id = 1"
                 " AND handover_begun = 1 ORDER BY id")
    assert_in_doubt(state, [d["message_id"] for d in doubt], receiver)
    assert stop.json["possibly_handed_over"] == len(doubt)
    assert all(d["status"] == "cancelled" and "possibly handed over" in d["last_error"]
               for d in doubt)
    log = rows("SELECT details FROM exec_log WHERE event = 'Run Stopped'")
    assert f"{len(doubt)} possibly handed over" in log[0]["details"]

    restart = cli("--now", T0, "restart", "run", "1", "--note", "go on", "-o", "json")
    assert restart.exit_code == 0, restart
    for now in ("2027-03-01T09:01:00Z", "2027-03-01T09:10:00Z"):
        assert cli("--now", now, "tick").exit_code == 0

    per_contact = receiver.contacts()
    assert len(per_contact) == CONTACTS  # everyone reached ...
    assert [c for c, n in per_contact.items() if n > 1] == []  # ... once
    runs = {r["id"]: r for r in cli("get", "runs", "-o", "json").json}
    assert runs[1]["sent"] == KILL_AT - 1 and runs[1]["queued"] == 0
    assert runs[2]["sent"] == CONTACTS - KILL_AT and runs[2]["status"] == "completed"


def test_restart_with_include_sent_takes_the_item_in_doubt_again(cli, rows, state, receiver,
                                                                 launched):
    killed_tick(state, receiver, KILL_AT)
    assert cli("--now", T0, "stop", "run", "1", "--note", "halt").exit_code == 0
    restart = cli("--now", T0, "restart", "run", "1", "--note", "all", "--include-sent",
                  "-o", "json")
    assert restart.exit_code == 0, restart
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0
    assert rows("SELECT count(*) AS n FROM queue_items WHERE run_id = 2 AND status = 'sent'"
                ) == [{"n": CONTACTS}]


def test_a_live_run_resends_the_item_in_doubt_with_its_key_once_the_claim_expires(
        cli, rows, state, receiver, launched):
    killed_tick(state, receiver, KILL_AT)
    in_doubt = receiver.keys[-1]
    # Before the claim expires, nothing of the dead tick's batch is taken again.
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0
    assert len(receiver.keys) == KILL_AT
    assert cli("--now", "2027-03-01T09:06:00Z", "tick").exit_code == 0
    assert Counter(receiver.keys)[in_doubt] == 2  # the same key: the receiver can drop it
    assert len(set(receiver.keys)) == CONTACTS
    assert rows("SELECT count(*) AS n FROM queue_items WHERE status = 'sent'"
                " AND handover_begun = 0") == [{"n": CONTACTS}]


def test_closing_after_a_crash_cancels_the_dead_ticks_items(cli, rows, state, receiver,
                                                            tmp_path, write_yaml):
    launch(cli, tmp_path, write_yaml, receiver, closes_at="2027-03-01T09:02")
    killed_tick(state, receiver, KILL_AT)
    # Closed while the dead tick's claim (5 minutes) is still live.
    assert cli("--now", "2027-03-01T09:03:00Z", "tick").exit_code == 0
    assert rows("SELECT status FROM runs") == [{"status": "completed"}]
    items = rows("SELECT status FROM queue_items WHERE status != 'sent'")
    assert {i["status"] for i in items} == {"cancelled"} and len(items) == CONTACTS - KILL_AT + 1
    doubt = rows("SELECT message_id FROM queue_items WHERE handover_begun = 1 ORDER BY id")
    assert_in_doubt(state, [d["message_id"] for d in doubt], receiver)
    assert cli("--now", "2027-03-01T09:10:00Z", "tick").exit_code == 0
    assert len(receiver.keys) == KILL_AT  # nothing went after the closing


def test_an_ended_run_keeps_no_queued_item_once_the_claims_expire(cli, make_run, rows, state):
    # A state from before this rule: a skipped run still holding claimed, queued items.
    ended = make_run("skipped", items=("sent", "queued", "queued"))
    execute_sql(state, "UPDATE queue_items SET claimed_until = '2027-03-01T09:05:00Z',"
                " claim_token = 'dead', handover_begun = CASE WHEN id = (SELECT max(id) FROM"
                " queue_items) THEN ? ELSE 0 END WHERE status = 'queued'",
                (handover_started(state),))
    make_run("sending", items=("queued",))  # something for the tick to do
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0
    assert rows("SELECT count(*) AS n FROM queue_items WHERE run_id = ? AND status = 'queued'",
                (ended,)) == [{"n": 2}]  # a claim may still be live
    assert cli("--now", "2027-03-01T09:06:00Z", "tick").exit_code == 0
    items = rows("SELECT status, handover_begun, last_error FROM queue_items WHERE run_id = ?"
                 " ORDER BY id", (ended,))
    assert [i["status"] for i in items] == ["sent", "cancelled", "cancelled"]
    assert "possibly handed over" in items[2]["last_error"]


def test_skip_cancels_what_a_stopped_run_still_holds(cli, make_run, rows):
    run_id = make_run("stopped", items=("sent", "queued"))
    result = cli("skip", "run", str(run_id), "--note", "never mind", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["cancelled"] == 1
    assert rows("SELECT status FROM queue_items ORDER BY id") == [{"status": "sent"},
                                                                   {"status": "cancelled"}]


def test_the_restart_does_not_build_for_a_contact_in_doubt(cli, make_run, rows, state):
    run_id = make_run("stopped", items=("sent", "cancelled", "cancelled"))
    execute_sql(state, "UPDATE queue_items SET handover_begun = 1 WHERE id = (SELECT max(id)"
                " FROM queue_items)")
    new = cli("restart", "run", str(run_id), "--note", "again", "-o", "json").json["new_run"]
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0
    built = rows("SELECT c.external_id FROM queue_items q JOIN contacts c ON c.id = q.contact_id"
                 " WHERE q.run_id = ?", (new,))
    assert built == [{"external_id": "c2"}]


def test_stop_launch_after_a_crash_cancels_every_waiting_message_of_the_launch(cli, rows, state,
                                                                      receiver, tmp_path,
                                                                      write_yaml):
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(CONTACTS)))
    text = (f"kind: Channel\nname: hook\ntype: webhook\nurl: {receiver.url}\nconnections: 1\n---\n"
            "kind: Scenario\nname: promo\nlaunch: {type: manual}\nsteps:\n"
            "  - id: offer\n    send: {channel: hook, subject: \"Offer\", body: \"Hi\"}\n")
    for step in (("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("defs.yaml", text))),
                 ("activate", "scenario", "promo"),
                 ("start", "scenario", "promo", "--all", "--yes")):
        result = cli("--now", T0, *step)
        assert result.exit_code == 0, (step, result)
    killed_tick(state, receiver, KILL_AT)
    assert cli("--now", T0, "stop", "launch", "1", "--note", "halt").exit_code == 0
    items = rows("SELECT message_id, status, last_error FROM queue_items WHERE status != 'sent'")
    assert {i["status"] for i in items} == {"cancelled"} and len(items) == CONTACTS - KILL_AT + 1
    doubt = [i for i in items if "possibly handed over" in (i["last_error"] or "")]
    assert_in_doubt(state, [i["message_id"] for i in doubt], receiver)
    assert cli("--now", "2027-03-01T09:10:00Z", "tick").exit_code == 0
    assert len(receiver.keys) == KILL_AT  # a stopped launch sends nothing more
    launch = cli("--now", "2027-03-01T09:10:00Z", "get", "launches", "-o", "json").json[0]
    assert {k: launch[k] for k in ("status", "success", "abandoned", "other", "inside")} == {
        "status": "abandoned", "success": KILL_AT - 1, "abandoned": CONTACTS - KILL_AT + 1,
        "other": 0, "inside": 0}


@pytest.mark.parametrize("claimed_until, in_doubt_on_pg", [
    ("2027-03-01T09:05:00Z", False),  # claimed after the server started: the start is known
    ("2000-01-01T00:05:00Z", True),  # the server restarted since: its last commits may be lost
])
def test_a_mark_taken_ahead_is_in_doubt_only_if_the_server_restarted_since_the_claim(
        cli, make_run, rows, state, claimed_until, in_doubt_on_pg):
    run_id = make_run("sending", items=("queued", "queued"))
    # A dead delivery marked both (one durable commit, PostgreSQL) and never noted a start.
    execute_sql(state, "UPDATE queue_items SET handover_begun = 1, claim_token = 'dead',"
                " claimed_until = ?", (claimed_until,))
    stop = cli("stop", "run", str(run_id), "--note", "x", "-o", "json")
    assert stop.exit_code == 0, stop
    doubt = 2 if in_doubt_on_pg or not is_pg(state) else 0  # SQLite: every mark is a start
    assert stop.json["cancelled"] == 2 and stop.json["possibly_handed_over"] == doubt
    items = rows("SELECT status, handover_begun, claim_token, last_error FROM queue_items")
    assert [i["status"] for i in items] == ["cancelled"] * 2
    assert [i["handover_begun"] for i in items] == [1 if doubt else 0] * 2
    assert all(("possibly handed over" in (i["last_error"] or "")) == bool(doubt)
               and (i["claim_token"] == "dead") == bool(doubt) for i in items)
