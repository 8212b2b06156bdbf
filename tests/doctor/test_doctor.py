"""`campctl doctor` through the CLI on both stores: a healthy state exits 0; each problem made
real (a tick SIGKILLed mid-delivery, a tick that crashes, a state no tick has served, a run left
`sending`, a private file made 0644, a channel's missing ${VAR}) exits 1 with its line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from store_support import execute_sql, is_pg, query_rows

from campctl.engine.doctor import first_difference, tzdata_check

T0 = "2027-03-01T09:00:00Z"
CAMPAIGN = ("kind: Campaign\nname: spring\ntimezone: Europe/Paris\ntype: one-off\n"
            "channel: {channel}\nmessage: {{subject: \"Hi\", body: \"Hello\"}}\n"
            "audience: {{all: true}}\nschedule: {{queue: immediately, send: immediately}}\n")
DAILY = ("kind: Campaign\nname: daily\ntimezone: UTC\ntype: date-triggered\nchannel: outbox\n"
         "message: {subject: \"Hi\", body: \"Hello\"}\naudience: {all: true}\n"
         "schedule: {cron: \"0 10 * * *\"}\n")


class HangingReceiver:
    """Takes each POST and, on the first, kills `pid` (SIGKILL) before answering: the tick
    dies holding its claims, its hand-over begun."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.arrived = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.arrived += 1
                if receiver.pid is not None:
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


@pytest.fixture
def receiver():
    hook = HangingReceiver()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def setup(cli, tmp_path, write_yaml):
    def run(text: str, *, start: tuple[str, ...] = ("spring",)) -> None:
        csv = tmp_path / "contacts.csv"
        csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(5)))
        steps = [("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("defs.yaml", text)))]
        for name in start:
            steps += [("submit", "campaign", name), ("approve", "campaign", name, "--as", "boss"),
                      ("start", "campaign", name)]
        for step in steps:
            result = cli("--now", T0, *step)
            assert result.exit_code == 0, (step, result)

    return run


def doctor(cli, at: str, *extra: str, env: dict | None = None):
    return cli("--now", at, "doctor", *extra, env=env)


def checks(cli, at: str, env: dict | None = None) -> dict[str, dict]:
    result = cli("--now", at, "-o", "json", "doctor", env=env)
    assert result.exit_code in (0, 1), result
    return {c["name"]: c for c in result.json["checks"]}


def problems(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("problem: ")]


def test_a_healthy_state_exits_0_with_every_check_in_json(cli, setup, state):
    setup(CAMPAIGN.format(channel="outbox"))
    assert cli("--now", T0, "tick").exit_code == 0
    if is_pg(state):  # the resets of earlier tests leave dead tuples that are not this state's
        from pg_support import connect

        with connect(str(state)) as conn:
            conn.execute("VACUUM queue_items")
    result = doctor(cli, "2027-03-01T09:30:00Z")
    assert result.exit_code == 0, result
    assert result.stdout.startswith("healthy: 11 checks passed"), result
    report = cli("--now", "2027-03-01T09:30:00Z", "-o", "json", "doctor")
    assert report.exit_code == 0, report
    assert report.json["healthy"] is True and report.json["problems"] == 0
    names = [c["name"] for c in report.json["checks"]]
    assert names == ["ticks", "unfinished ticks", "claims", "sending runs", "notifications",
                     "failing objects", "integrity", "file modes", "wal size",
                     "channel variables", "tzdata"]
    assert all(set(c) >= {"name", "ok", "detail", "advice"} for c in report.json["checks"])
    assert "last full tick finished 2027-03-01T09:00:00Z" in report.json["checks"][0]["detail"]


def test_work_waiting_with_no_tick_is_a_problem_after_the_grace(cli, setup):
    setup(DAILY, start=("daily",))
    assert cli("--now", T0, "tick").exit_code == 0  # arms the 10:00 schedule
    assert doctor(cli, "2027-03-01T09:59:00Z").exit_code == 0  # nothing due yet
    assert doctor(cli, "2027-03-01T10:05:00Z").exit_code == 0  # due, within 10 minutes
    late = doctor(cli, "2027-03-01T13:00:00Z")
    assert late.exit_code == 1, late
    [line] = problems(late)
    assert line.startswith("problem: ticks: no tick for 3 h while work waits (schedule due,"
                           " since 2027-03-01T10:00:00Z); last full tick finished "
                           "2027-03-01T09:00:00Z -> check that cron runs `campctl tick`"), line
    assert doctor(cli, "2027-03-01T13:00:00Z", "--tick-grace", "4h").exit_code == 0
    assert cli("--now", "2027-03-01T13:00:00Z", "tick").exit_code == 0
    assert doctor(cli, "2027-03-01T13:01:00Z").exit_code == 0


def test_a_tick_that_crashes_every_time_is_reported(cli, setup, monkeypatch):
    setup(DAILY, start=("daily",))
    assert cli("--now", T0, "tick").exit_code == 0
    from campctl.engine import tick as tick_module

    def crash(ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(tick_module, "_deliver", crash)
    for at in ("2027-03-01T10:00:00Z", "2027-03-01T10:01:00Z", "2027-03-01T10:02:00Z"):
        assert cli("--now", at, "tick").exit_code != 0
    result = doctor(cli, "2027-03-01T10:30:00Z")
    assert result.exit_code == 1, result
    crashed = [p for p in problems(result) if p.startswith("problem: unfinished ticks:")]
    assert crashed == ["problem: unfinished ticks: ticks have started since "
                       "2027-03-01T10:00:00Z and none finished (last finished: "
                       "2027-03-01T09:00:00Z); a tick that crashes every time misses its "
                       "occurrences -> run `campctl --debug tick` to see the error; `campctl "
                       "log` shows what the last ticks did"], result
    monkeypatch.undo()
    assert cli("--now", "2027-03-01T10:31:00Z", "tick").exit_code == 0
    assert checks(cli, "2027-03-01T10:32:00Z")["unfinished ticks"]["ok"] is True


def test_a_sigkilled_tick_leaves_claims_that_doctor_finds(cli, setup, state, receiver):
    setup(f"kind: Channel\nname: hook\ntype: webhook\nurl: {receiver.url}\nconnections: 1\n"
          "---\n" + CAMPAIGN.format(channel="hook"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "campctl", "--state", str(state), "--now", T0,
                             "tick"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    receiver.pid = proc.pid
    assert proc.wait(timeout=120) == -signal.SIGKILL
    receiver.pid = None
    assert doctor(cli, "2027-03-01T09:02:00Z").exit_code == 0  # the lease has not ended
    result = doctor(cli, "2027-03-01T09:20:00Z")
    assert result.exit_code == 1, result
    lines = {p.split(":", 2)[1].strip(): p for p in problems(result)}
    # No tick since the killed one while its run waits: that is reported too.
    assert set(lines) == {"ticks", "unfinished ticks", "claims"}, result
    # One message was in flight (one connection), on both stores: PostgreSQL marks up to 16
    # ahead in one durable commit but notes each start (docs/delivery.md), and the server keeps
    # what the killed process committed.
    assert "5 queue items still claimed after their lease ended (oldest 2027-03-01T09:05:00Z);" \
        " 1 were being handed over" in lines["claims"]
    assert lines["claims"].endswith("-> a tick was killed while delivering: run `campctl tick`,"
                                    " which takes them again with the same message ids")
    assert cli("--now", "2027-03-01T09:20:00Z", "tick").exit_code == 0
    healed = doctor(cli, "2027-03-01T09:21:00Z")
    assert healed.exit_code == 0, healed


def test_a_run_sending_with_nothing_left(cli, setup, state):
    setup(CAMPAIGN.format(channel="outbox"))
    assert cli("--now", T0, "tick").exit_code == 0
    assert execute_sql(state, "UPDATE runs SET status = 'sending', finished_at = NULL") == 1
    result = doctor(cli, "2027-03-01T09:01:00Z")
    assert result.exit_code == 1, result
    assert "problem: sending runs: 1 runs `sending` with nothing left to deliver: 1 -> run " \
        "`campctl tick`" in result.stdout


def test_a_missing_channel_variable_and_its_fix(cli, setup):
    setup("kind: Channel\nname: hook\ntype: webhook\nurl: http://${HOOK_HOST}/x\nheaders:\n"
          "  Authorization: Bearer ${HOOK_TOKEN}\n", start=())
    result = doctor(cli, T0, env={"HOOK_HOST": "127.0.0.1:9"})
    assert result.exit_code == 1, result
    assert problems(result) == [
        "problem: channel variables: channel hook needs ${HOOK_TOKEN} (not set in this "
        "environment) -> export them where cron or the daemon runs campctl (doctor sees only "
        "its own environment)"]
    fixed = doctor(cli, T0, env={"HOOK_HOST": "127.0.0.1:9", "HOOK_TOKEN": "t"})
    assert fixed.exit_code == 0, fixed


@pytest.mark.sqlite_only("file modes of the state file")
def test_a_state_file_readable_by_others(cli, setup, state):
    setup(CAMPAIGN.format(channel="outbox"), start=())
    os.chmod(state, 0o644)
    result = doctor(cli, T0)
    assert result.exit_code == 1, result
    # doctor's own connection made -wal and -shm, which take the file's mode.
    [line] = problems(result)
    assert line.startswith(f"problem: file modes: {state} is 0644, {state}-wal is 0644, "), line
    assert line.endswith(f"readable by other users -> chmod 600 {state} {state}-wal "
                         f"{state}-shm"), line
    os.chmod(state, 0o600)
    assert doctor(cli, T0).exit_code == 0


def test_bad_tick_grace_is_a_usage_error(cli, setup):
    setup(CAMPAIGN.format(channel="outbox"), start=())
    result = doctor(cli, T0, "--tick-grace", "soon")
    assert result.exit_code == 2, result
    assert result.stderr.startswith("error: --tick-grace:"), result


def test_tzdata_compares_the_rules_in_use_with_a_newer_copy(tmp_path):
    """A fake system copy, older than the tzdata package, whose Europe/Paris is Tokyo's rules:
    reported; the same copy with Paris's own rules is not."""
    from datetime import UTC, datetime
    from importlib import resources

    package = resources.files("tzdata.zoneinfo")
    system = tmp_path / "zoneinfo"
    (system / "Europe").mkdir(parents=True)
    (system / "tzdata.zi").write_text("# version 2000a\n")
    now = datetime(2027, 3, 1, tzinfo=UTC)
    (system / "Europe" / "Paris").write_bytes(package.joinpath("Asia", "Tokyo").read_bytes())
    stale = tzdata_check(["Europe/Paris"], now=now, tzpath=[str(system)])
    assert not stale.ok
    assert stale.detail.startswith(f"Europe/Paris: system {system} 2000a differs from tzdata "
                                   "package ")
    (system / "Europe" / "Paris").write_bytes(package.joinpath("Europe", "Paris").read_bytes())
    assert tzdata_check(["Europe/Paris"], now=now, tzpath=[str(system)]).ok
    assert first_difference(ZoneInfo("UTC"), ZoneInfo("UTC"), start=now,
                            until=now.replace(year=2028)) is None


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_operator_notification_that_cannot_be_delivered(cli, setup, state):
    later = CAMPAIGN.format(channel="outbox").replace(
        "send: immediately", "send: {at: \"2027-03-01T12:00\"}")
    setup(f"kind: Channel\nname: ops\ntype: webhook\nurl: http://127.0.0.1:{_closed_port()}/x\n"
          "---\n" + later)
    for key, value in (("notify_channel", "ops"), ("notify_to", "ops@example.com")):
        assert cli("--now", T0, "config", "set", key, value).exit_code == 0
    assert cli("--now", T0, "tick").exit_code == 0  # built, held until 12:00
    stop = cli("--now", T0, "stop", "run", "1", "--note", "halt")
    assert stop.exit_code == 0, stop
    assert checks(cli, "2027-03-01T09:05:00Z")["notifications"]["ok"] is True  # a retry is due
    result = doctor(cli, "2027-03-01T09:20:00Z")
    assert result.exit_code == 1, result
    [line] = [p for p in problems(result) if p.startswith("problem: notifications:")]
    assert line.startswith("problem: notifications: 1 operator notifications undelivered through"
                           " channel ops (oldest 2027-03-01T09:00:00Z, 0 given up after 5 "
                           "attempts); last error: "), line
    assert line.endswith("-> test the channel with `campctl channel test ops --to ADDRESS`; "
                         "check `campctl config get notify_to`; `campctl notifications` lists them")
    # Each tick retries it after a backoff of 1, 2, 4, 8 minutes: five attempts, then it gives up.
    for at in ("09:01", "09:03", "09:07", "09:15", "09:31", "10:03"):
        assert cli("--now", f"2027-03-01T{at}:00Z", "tick").exit_code == 0
    [attempts] = [r["attempts"] for r in query_rows(state, "SELECT attempts FROM notifications")]
    assert attempts == 5
    gave_up = doctor(cli, "2027-03-01T10:04:00Z")
    assert gave_up.exit_code == 1, gave_up
    [line] = [p for p in problems(gave_up) if p.startswith("problem: notifications:")]
    assert "(oldest 2027-03-01T09:00:00Z, 1 given up after 5 attempts); last error: " in line


@pytest.mark.sqlite_only("PRAGMA quick_check reads a SQLite file")
def test_a_corrupted_state_file_fails_quick_check(cli, setup, state, tmp_path):
    setup(CAMPAIGN.format(channel="outbox"))
    assert cli("--now", T0, "tick").exit_code == 0
    copy = tmp_path / "damaged.db"
    source = sqlite3.connect(state)
    try:
        source.execute("VACUUM INTO ?", (str(copy),))  # a consistent copy, never the live file
    finally:
        source.close()
    damaged = sqlite3.connect(copy)
    try:
        page_size = damaged.execute("PRAGMA page_size").fetchone()[0]
        # An index that neither opening the state nor doctor's other checks read.
        [root] = damaged.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'outbox_campaign'").fetchone()
    finally:
        damaged.close()
    os.chmod(copy, 0o600)
    with open(copy, "r+b") as file:  # the page's b-tree type byte: no longer a b-tree page
        file.seek((root - 1) * page_size)
        file.write(b"\x00")
    result = cli("--state", str(copy), "--now", "2027-03-01T09:01:00Z", "doctor")
    assert result.exit_code == 1, result
    [line] = problems(result)
    assert line.startswith("problem: integrity: SQLite quick_check: *** in database main ***; "
                           f"Page {root}: btreeInitPage() returns error code 11 -> "), line
    assert line.endswith("-> stop cron and daemons, restore the latest `campctl backup`, or "
                         "save what can be read with `campctl state copy` into a new state"), line
    assert doctor(cli, "2027-03-01T09:01:00Z").exit_code == 0  # the original is intact


@pytest.mark.sqlite_only("the WAL file of a SQLite state")
def test_a_wal_over_64_mib_is_a_problem(cli, setup, state):
    from campctl.engine.doctor import WAL_LIMIT

    setup(CAMPAIGN.format(channel="outbox"), start=())
    # One transaction larger than the limit: its pages all go to the WAL before the commit, and
    # the WAL file keeps its size while this connection stays open (it is not the last one).
    writer = sqlite3.connect(state)
    try:
        writer.execute("PRAGMA journal_mode = wal")
        with writer:
            writer.execute("CREATE TABLE padding (b BLOB)")
            for _ in range(WAL_LIMIT // (1 << 20) + 1):
                writer.execute("INSERT INTO padding VALUES (zeroblob(1048576))")
        assert os.path.getsize(f"{state}-wal") > WAL_LIMIT
        result = doctor(cli, T0)
        assert result.exit_code == 1, result
        [line] = problems(result)
        assert line.startswith("problem: wal size: state.db-wal: 6"), line
        assert "MiB (over 64 MiB: checkpoints cannot finish, every read walks it) -> end " \
            "long-lived readers of the file" in line
    finally:
        writer.close()
