"""`retry run ID --failed-only`: a new run for exactly the contacts whose messages failed in the
run's restart chain, counted at a real webhook receiver that refuses chosen recipients."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

T0 = "2027-03-01T09:00:00Z"
DEFINITIONS = """\
kind: Channel
name: hook
type: webhook
url: {url}
max_attempts: 1
---
kind: Campaign
name: spring
timezone: Europe/Paris
closes_at: 2027-06-30T23:59
type: one-off
channel: hook
message: {{subject: "Hi {{{{ id }}}}", body: "Hello"}}
audience: {{all: true}}
schedule:
  queue: immediately
  send: immediately
"""


class Receiver:
    """A webhook receiver: answers 422 (a permanent refusal) for the contacts in `refuse`,
    200 otherwise, and records every request (contact, Idempotency-Key, status)."""

    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def accepted(self) -> list[dict]:
        return [r for r in self.requests if r["status"] == 200]

    def accepted_contacts(self) -> list[str]:
        return sorted(r["contact"] for r in self.accepted())


@pytest.fixture
def receiver():
    recorder = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            with recorder.lock:
                status = 422 if body["contact"] in recorder.refuse else 200
                recorder.requests.append({"contact": body["contact"], "status": status,
                                          "key": self.headers["Idempotency-Key"]})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def launched(cli, tmp_path, write_yaml, receiver):
    """launched(n): contacts c0..c(n-1), the webhook channel and an approved one-off campaign
    started at T0 (run 1, built at the first tick)."""

    def launch(n: int) -> None:
        csv = tmp_path / "contacts.csv"
        csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(n)))
        steps = [("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("spring.yaml", DEFINITIONS.format(url=receiver.url)))),
                 ("submit", "campaign", "spring"),
                 ("approve", "campaign", "spring", "--as", "boss"),
                 ("start", "campaign", "spring")]
        for step in steps:
            result = cli("--now", T0, *step)
            assert result.exit_code == 0, (step, result)

    return launch


def ok(cli, *args, now=T0):
    result = cli("--now", now, *args)
    assert result.exit_code == 0, result
    return result


def runs_by_id(cli) -> dict[int, dict]:
    return {r["id"]: r for r in ok(cli, "get", "runs", "-o", "json").json}


def item_contacts(rows, run_id: int, status: str | None = None) -> list[str]:
    sql = ("SELECT c.external_id AS contact FROM queue_items q JOIN contacts c"
           " ON c.id = q.contact_id WHERE q.run_id = ?")
    params: list = [run_id]
    if status is not None:
        sql += " AND q.status = ?"
        params.append(status)
    return sorted(r["contact"] for r in rows(sql + " ORDER BY c.id", params))


def test_retry_queues_only_the_failed_contacts_and_each_gets_one_message(
        cli, launched, receiver, rows):
    launched(5)
    receiver.refuse = {"c1", "c3"}
    ok(cli, "tick")
    first = runs_by_id(cli)[1]
    assert (first["status"], first["sent"], first["failed"]) == ("completed", 3, 2)

    receiver.refuse = set()
    retry = ok(cli, "retry", "run", "1", "--failed-only", "--note", "receiver fixed", "-o", "json",
               now="2027-03-01T10:00:00Z").json
    new = retry["new_run"]
    assert retry == {"run": 1, "action": "retry", "from_status": "completed",
                     "status": "completed", "new_run": new, "cancelled": 0,
                     "possibly_handed_over": 0, "queued": 2}
    assert item_contacts(rows, new) == ["c1", "c3"]  # exactly the failures, queued at once
    ok(cli, "tick", now="2027-03-01T10:01:00Z")

    # Every contact accepted exactly once at the receiver, under one key each.
    assert receiver.accepted_contacts() == ["c0", "c1", "c2", "c3", "c4"]
    keys = [r["key"] for r in receiver.accepted()]
    assert len(set(keys)) == len(keys)
    ids = {r["external_id"]: r["id"] for r in rows("SELECT id, external_id FROM contacts")}
    retried = sorted(r["key"] for r in receiver.accepted() if r["contact"] in ("c1", "c3"))
    assert retried == sorted(f"r{new}-c{ids[c]}" for c in ("c1", "c3"))  # a run's own keys

    runs = runs_by_id(cli)
    assert runs[1]["status"] == "completed"  # a completed run stays completed
    assert (runs[new]["status"], runs[new]["restart_of"], runs[new]["sent"]) == \
        ("completed", 1, 2)
    history = rows("SELECT name, action, from_status, to_status, note FROM history"
                   " WHERE kind = 'run' ORDER BY id")
    assert {"name": "1", "action": "retry", "from_status": "completed",
            "to_status": "completed", "note": "receiver fixed"} in history
    assert any(h["name"] == str(new) and h["action"] == "create"
               and h["note"].startswith("retry of run 1 (the 2 contacts") for h in history)
    kinds = [(n["kind"], n["object"]) for n in ok(cli, "notifications", "-o", "json").json]
    assert ("run-retried", "run/1") in kinds
    events = [r["event"] for r in rows("SELECT event FROM exec_log WHERE run_id = 1 ORDER BY id")]
    assert "Run Retried" in events


def test_a_contact_sent_by_a_restart_is_not_retried(cli, launched, receiver, rows):
    launched(4)
    receiver.refuse = {"c0", "c1"}
    ok(cli, "tick", "--max-messages", "2")  # c0, c1 refused
    ok(cli, "stop", "run", "1", "--note", "receiver down")
    receiver.refuse = {"c1"}  # c0 goes through the restart, c1 still refused
    second = ok(cli, "restart", "run", "1", "--note", "go on", "-o", "json").json["new_run"]
    ok(cli, "tick", now="2027-03-01T09:01:00Z")
    assert item_contacts(rows, second, "sent") == ["c0", "c2", "c3"]
    assert item_contacts(rows, second, "failed") == ["c1"]

    receiver.refuse = set()
    retry = ok(cli, "retry", "run", str(second), "--failed-only", "--note", "c1 fixed",
               "-o", "json", now="2027-03-01T09:02:00Z").json
    third = retry["new_run"]
    # c0 failed in run 1 but its restart sent it: only c1 is retried.
    assert item_contacts(rows, third) == ["c1"]
    ok(cli, "tick", now="2027-03-01T09:03:00Z")
    assert receiver.accepted_contacts() == ["c0", "c1", "c2", "c3"]

    # The replaced run cannot be retried again; the last one has nothing left to retry.
    again = cli("--now", "2027-03-01T09:04:00Z", "retry", "run", str(second), "--failed-only",
                "--note", "again")
    assert again.exit_code == 1, again
    assert "it is completed" not in again.stderr
    assert f"run {third} already replaced it; retry run {third} instead" in again.stderr
    nothing = cli("--now", "2027-03-01T09:04:00Z", "retry", "run", str(third), "--failed-only",
                  "--note", "again")
    assert nothing.exit_code == 1, nothing
    assert "no contact's message failed" in nothing.stderr
    assert len(runs_by_id(cli)) == 3


def test_retry_of_a_failed_run_replaces_it_as_restart_does(cli, launched, receiver, rows):
    launched(3)
    receiver.refuse = {"c0", "c1", "c2"}
    ok(cli, "tick")
    assert runs_by_id(cli)[1]["status"] == "failed"  # nothing went out
    receiver.refuse = {"c2"}
    retry = ok(cli, "retry", "run", "1", "--failed-only", "--note", "token renewed",
               "-o", "json").json
    assert (retry["from_status"], retry["status"], retry["queued"]) == ("failed", "skipped", 3)
    ok(cli, "tick", now="2027-03-01T09:01:00Z")
    runs = runs_by_id(cli)
    assert runs[1]["status"] == "skipped"
    assert (runs[retry["new_run"]]["sent"], runs[retry["new_run"]]["failed"]) == (2, 1)
    # And a retry of the retry takes the last failure alone, under its own key.
    receiver.refuse = set()
    last = ok(cli, "retry", "run", str(retry["new_run"]), "--failed-only", "--note", "once more",
              "-o", "json", now="2027-03-01T09:02:00Z").json
    assert last["queued"] == 1
    ok(cli, "tick", now="2027-03-01T09:03:00Z")
    assert receiver.accepted_contacts() == ["c0", "c1", "c2"]


def test_refusals_and_usage(cli, launched, receiver, rows):
    launched(3)
    receiver.refuse = {"c0"}
    ok(cli, "tick", "--max-messages", "1")
    # Still sending: not retryable; the refusal says why and names what applies.
    early = cli("--now", T0, "retry", "run", "1", "--failed-only", "--note", "x")
    assert early.exit_code == 1, early
    assert early.stderr.startswith("error: cannot retry run 1: it is sending; only completed, "
                                   "failed or stopped runs can be retried; allowed on it now:")
    ok(cli, "pause", "run", "1")
    paused = cli("--now", T0, "retry", "run", "1", "--failed-only", "--note", "x")
    assert paused.exit_code == 1 and "it is paused" in paused.stderr, paused
    assert "allowed on it now: resume, stop" in paused.stderr
    ok(cli, "stop", "run", "1", "--note", "halt")
    ok(cli, "skip", "run", "1", "--note", "drop it")
    skipped = cli("--now", T0, "retry", "run", "1", "--failed-only", "--note", "x")
    assert skipped.exit_code == 1 and "it is skipped" in skipped.stderr, skipped
    missing = cli("--now", T0, "retry", "run", "99", "--failed-only", "--note", "x")
    assert missing.exit_code == 3 and "no run 99" in missing.stderr, missing
    usage = cli("--now", T0, "retry", "run", "1", "--note", "x")
    assert usage.exit_code == 2, usage
    assert "retry needs --failed-only" in usage.stderr
    blank = cli("--now", T0, "retry", "run", "1", "--failed-only", "--note", " ")
    assert blank.exit_code == 2, blank
    no_note = cli("--now", T0, "retry", "run", "1", "--failed-only")
    assert no_note.exit_code == 2, no_note
    assert len(runs_by_id(cli)) == 1  # nothing was created by any of them
