"""Small helpers the reliability workloads share (plain functions, no pytest).

A workload's state is a SQLite path or a PostgreSQL URL: `state_in(place, name)` gives one
(`place` is the work directory, or the URL of a database where each state gets a schema of its
own), and `query`, `dump` and `integrity_ok` read either store.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from datetime import datetime
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:  # store_support / pg_support, also when run as a script
    sys.path.append(_TESTS)


def iso(at: datetime) -> str:
    """An aware UTC datetime as campctl's `--now` takes it."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_env(user: str | None = None) -> dict[str, str]:
    """This process's environment without CAMPCTL_* settings (and with CAMPCTL_USER=user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    if user is not None:
        env["CAMPCTL_USER"] = user
    return env


def is_pg(state: Path | str) -> bool:
    """Whether `state` is a PostgreSQL URL (else a SQLite path)."""
    return str(state).startswith(("postgresql://", "postgres://"))


def state_in(place: Path | str, name: str) -> Path | str:
    """A new, empty state called `name`: `place/name.db`, or, when `place` is a PostgreSQL URL,
    that database with a schema `name` of its own (dropped and created again here)."""
    if not is_pg(place):
        return Path(place) / f"{name}.db"
    from pg_support import execute

    execute(str(place), f'DROP SCHEMA IF EXISTS "{name}" CASCADE; CREATE SCHEMA "{name}"')
    joiner = "&" if "?" in str(place) else "?"
    return f"{place}{joiner}options=-csearch_path%3D{name}"


def drop_state(state: Path | str) -> None:
    """Drop the schema of a PostgreSQL state made by `state_in` (a file stays in its dir)."""
    if is_pg(state) and "csearch_path%3D" in str(state):
        from pg_support import execute

        name = str(state).rpartition("csearch_path%3D")[2]
        execute(str(state), f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def dump(state: Path | str) -> list[str]:
    """Every table of the state as text lines, for before/after comparisons (SQLite: its SQL
    dump; PostgreSQL: each table's rows, sorted)."""
    if is_pg(state):
        tables = [t for (t,) in query(state, "SELECT tablename FROM pg_tables"
                                             " WHERE schemaname = current_schema()"
                                             " ORDER BY tablename")]
        lines: list[str] = []
        for table in tables:
            rows = query(state, f'SELECT * FROM "{table}"')
            lines += sorted(f"{table}: {row!r}" for row in rows)
        return lines
    conn = sqlite3.connect(state)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def integrity_ok(state: Path | str) -> bool:
    """SQLite: `PRAGMA integrity_check` says ok. PostgreSQL has no such check of its files from
    a client (its WAL makes a killed client harmless): True."""
    if is_pg(state):
        return True
    return query(state, "PRAGMA integrity_check") == [("ok",)]


def campctl_argv(state: Path, now: datetime, *args: str) -> list[str]:
    """The command line of one campctl command on `state` at the virtual instant `now`."""
    return [sys.executable, "-m", "campctl", "--state", str(state), "--now", iso(now), *args]


def run_campctl(state: Path, now: datetime, *args: str,
                env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one campctl command that must succeed (a RuntimeError with its stderr otherwise)."""
    proc = subprocess.run(campctl_argv(state, now, *args), capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"campctl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def run_in_process(state: Path | str, now: datetime, *args: str, user: str) -> str:
    """Run one campctl command in this process (no interpreter start: setting a workload up
    costs milliseconds, not a process each); a RuntimeError with its output unless it exits 0.
    Not for commands that must run beside others: it swaps sys.stdout while it runs."""
    from typer.testing import CliRunner

    from campctl.__main__ import main

    argv = ["--state", str(state), "--now", iso(now), *args]
    with CliRunner().isolation(env={"CAMPCTL_USER": user}) as (out, err, *_):
        code = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    if code != 0:
        raise RuntimeError(f"campctl {' '.join(args)} exited {code}: {stderr}")
    return stdout


def query(state: Path | str, sql: str, params=()) -> list[tuple]:
    """Rows of one read of the state, on a connection of its own (SQL in SQLite's words; on
    PostgreSQL through the store's placeholder translator)."""
    if is_pg(state):
        # Tuples, not dicts: columns of one name (several `count(*)`) must all stay.
        from pg_support import connect
        from store_support import _pg_sql

        text, values = _pg_sql(sql, params)
        with connect(str(state)) as conn:
            cur = conn.execute(text, values)
            return [tuple(row) for row in cur.fetchall()] if cur.description else []
    conn = sqlite3.connect(state, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class Operator:
    """Lands an operator command (pause, stop) in the middle of a run's hand-over, however slow
    the machine: once `seen_before` messages of a watched campaign have reached a receiver,
    each further one is held there until that campaign's command has started, and then until it
    has returned or `hold_seconds` have passed (the command waits for the messages in flight,
    so a message must not be held until it returns). Receivers call `arrived(campaign)`; the
    workload sets `started[c]` / `returned[c]` around the command, and `release()` at the end."""

    def __init__(self, campaigns: tuple[str, ...], *, seen_before: int,
                 hold_seconds: float) -> None:
        self.armed = False
        self.seen_before = seen_before
        self.hold_seconds = hold_seconds
        self.seen: Counter = Counter()
        self.started = {c: threading.Event() for c in campaigns}
        self.returned = {c: threading.Event() for c in campaigns}
        self._lock = threading.Lock()

    def arrived(self, campaign: str | None) -> None:
        if not self.armed or campaign not in self.started:
            return
        with self._lock:
            self.seen[campaign] += 1
            hold = self.seen[campaign] > self.seen_before
        if hold:
            self.started[campaign].wait(timeout=60)
            self.returned[campaign].wait(timeout=self.hold_seconds)

    def release(self) -> None:
        self.armed = False
        for event in (*self.started.values(), *self.returned.values()):
            event.set()


# --- rounds of concurrent tick processes with SIGKILLs (hosts, caps, local windows) ----------

# The `handover_begun` of a message that went or was about to (PostgreSQL also marks ahead: 1;
# the server keeps every commit of a killed campctl process, so a mark never started never went).
_STARTED_PG = 2
# Waits until the shared start instant, then becomes the campctl process (a process barrier).
BARRIER = ("import os, sys, time\n"
           "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
           "os.execv(sys.executable, [sys.executable, '-m', 'campctl', *sys.argv[2:]])\n")


def message_key(header: str) -> str:
    """The message id of an SMTP Message-ID header (`<ID@campctl>`) or an Idempotency-Key."""
    return header.strip().strip("<>").removesuffix("@campctl")


class Killer:
    """SIGKILLs one running tick, drawn at random, at the k-th message either receiver takes."""

    def __init__(self, rng) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen] = []
        self._left = 0
        self.victims: set[int] = set()  # pids it killed

    def arm(self, procs: list[subprocess.Popen], at_message: int) -> None:
        with self._lock:
            self._procs, self._left = list(procs), at_message

    def disarm(self) -> None:
        with self._lock:
            self._procs = []

    def arrived(self, port: int) -> None:
        with self._lock:
            if not self._procs:
                return
            self._left -= 1
            if self._left <= 0:
                running = [p for p in self._procs if p.poll() is None]
                # The tick handing this message over (connected to the receiver's port).
                running = _connected_to(running, port) or running
                if running:
                    victim = self._rng.choice(running)
                    victim.send_signal(signal.SIGKILL)
                    self.victims.add(victim.pid)
                self._procs = []


def _connected_to(procs: list[subprocess.Popen], port: int) -> list[subprocess.Popen]:
    """The processes with a TCP connection to 127.0.0.1:`port` (Linux /proc; [] elsewhere)."""
    inodes: set[str] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    except OSError:
        return []
    found = []
    for proc in procs:
        try:
            fds = Path(f"/proc/{proc.pid}/fd")
            if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                found.append(proc)
        except OSError:
            continue
    return found


def killing_receivers(killer: Killer, on_arrival=None, delay: float = 0.0):
    """(SmtpReceiver, WebhookReceiver) that tell `killer` of every arrival, and
    `on_arrival(kind, info)` when given (kind "smtp" or "hook"); the webhook's server does not
    print the traceback of a connection reset by a killed tick."""
    from receivers import SmtpReceiver, WebhookReceiver

    class Smtp(SmtpReceiver):
        def _add(self, key, info):
            super()._add(key, info)
            killer.arrived(self.port)
            if on_arrival is not None:
                on_arrival("smtp", info)

    class Hook(WebhookReceiver):
        def _add(self, key, info):
            super()._add(key, info)
            killer.arrived(self._server.server_address[1])
            if on_arrival is not None:
                on_arrival("hook", info)

    hook = Hook(delay=delay)
    server = hook._server
    default = server.handle_error

    def handle_error(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)

    server.handle_error = handle_error
    return Smtp(delay=delay), hook


class TickRounds:
    """Rounds of `processes` tick processes released together at one simulated instant (a
    process barrier), one of them possibly SIGKILLed at a random moment and the one handing
    over the k-th message too. `spans` keeps each round's wall-clock interval and `now`, so
    that an arrival at a receiver tells the simulated instant of the tick that sent it."""

    def __init__(self, state: Path | str, killer: Killer, rng, *, processes: int, user: str,
                 barrier_seconds: float = 0.5, debug: bool = False) -> None:
        self.state = state
        self.killer = killer
        self.rng = rng
        self.processes = processes
        self.user = user
        self.barrier_seconds = barrier_seconds
        self.debug = debug
        self.entries: list[dict] = []
        self.spans: list[tuple[float, float, datetime]] = []
        self.rounds = 0
        self.recent: deque[float] = deque(maxlen=3)  # lengths of the last rounds without kills

    def start(self, now: datetime) -> tuple[list[subprocess.Popen], float]:
        release = time.time() + self.barrier_seconds
        self._now = now
        procs = [subprocess.Popen(
            [sys.executable, "-c", BARRIER, repr(release), "--state", str(self.state),
             "--now", iso(now), "tick"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=clean_env(self.user)) for _ in range(self.processes)]
        return procs, release

    def finish(self, procs: list[subprocess.Popen], release: float, mode: str,
               timer: threading.Timer | None = None) -> list[dict]:
        entries = []
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            how = "message" if proc.pid in self.killer.victims else mode
            entries.append({"code": proc.returncode, "killed": proc.returncode == -signal.SIGKILL,
                            "mode": how, "stderr": err, "round": self.rounds, "now": self._now})
        self.killer.disarm()
        if timer is not None:
            timer.cancel()
        self.spans.append((release - self.barrier_seconds, time.time(), self._now))
        if not any(e["killed"] for e in entries):
            self.recent.append(time.time() - release)
        self.rounds += 1
        self.entries += entries
        if self.debug:
            print(f"round {self.rounds} {iso(self._now)} {mode}: {time.time() - release:.2f}s"
                  f" {[e['code'] for e in entries]}", file=sys.stderr)
        return entries

    def round(self, now: datetime, mode: str = "none", tick_seconds: float | None = None,
              kill_at_max: int = 12) -> list[dict]:
        """One round; mode "message": a kill at the k-th arrival (k in [1, kill_at_max]);
        "time": also one process at a delay drawn in [0, tick_seconds] from the release
        (None: the longest of the last few rounds without kills, so that the kills follow
        the machine's speed and land while the ticks work)."""
        if tick_seconds is None:
            tick_seconds = max(self.recent, default=1.0)
        procs, release = self.start(now)
        timer = None
        if mode in ("message", "time"):
            self.killer.arm(procs, self.rng.randint(1, kill_at_max))
        if mode == "time":
            victim = self.rng.choice(procs)
            delay = release - time.time() + self.rng.uniform(0.0, tick_seconds)
            timer = threading.Timer(max(0.0, delay), lambda: victim.poll() is None
                                    and victim.send_signal(signal.SIGKILL))
            timer.start()
        return self.finish(procs, release, mode, timer)

    def kills(self) -> int:
        return sum(e["killed"] for e in self.entries)

    def now_at(self, wall: float) -> datetime | None:
        """The simulated instant of the round running at wall time `wall`."""
        found = None
        for start, _end, now in self.spans:
            if start <= wall:
                found = now
        return found


def in_doubt(state: Path | str) -> set[tuple[str, str]]:
    """(message id, claim token) of the items marked as handed over but not recorded."""
    return set(query(state, "SELECT message_id, claim_token FROM queue_items"
                            " WHERE handover_begun = ? AND status = 'queued'",
                     (_STARTED_PG if is_pg(state) else 1,)))


def after_round(entries: list[dict], state: Path | str, doubt: list, seen: set,
                nonzero_unkilled: list[str]) -> None:
    """Note what this round's kills left in doubt (appended to `doubt` as (kills, ids)), and
    unkilled ticks that failed."""
    killed = sum(e["killed"] for e in entries)
    for entry in entries:
        if not entry["killed"] and entry["code"] != 0:
            nonzero_unkilled.append(entry["stderr"].strip()[-300:])
    if killed:
        # Every tick of the round has ended: what is in doubt now, and was not before, was
        # left by this round's kills.
        now_in_doubt = in_doubt(state)
        doubt.append((killed, sorted(m for m, _ in now_in_doubt - seen)))
        seen.update(now_in_doubt)


def resend_figures(seen: Counter, doubt: list[tuple[int, list[str]]]) -> dict:
    """Keys that arrived more than once, each explained by a kill that left it in doubt ("the
    same key at most once per kill"): resent, resent_arrivals, resent_unexplained,
    resent_max_per_kill, in_doubt_total."""
    in_doubt_at: Counter = Counter(m for _, ids in doubt for m in ids)
    resent = {m: n - 1 for m, n in seen.items() if n > 1}
    unexplained = [m for m, extra in resent.items() if extra > in_doubt_at[m]]
    per_kill = [sum(1 for m in ids if m in resent) / max(1, k) for k, ids in doubt]
    return {"in_doubt_total": sum(len(ids) for _, ids in doubt),
            "resent": len(resent), "resent_arrivals": sum(resent.values()),
            "resent_unexplained": len(unexplained),
            "resent_max_per_kill": max(per_kill, default=0)}


def arrivals_of(smtp, hook) -> list[tuple[str, float]]:
    """(message id, wall time) of every arrival at both receivers, duplicates kept."""
    return ([(message_key(k), at) for k, at, _ in smtp.arrivals()]
            + [(message_key(k), at) for k, at, _ in hook.arrivals()])


def first_arrivals(arrivals: list[tuple[str, float]], rounds: TickRounds) -> dict[str, datetime]:
    """Each message id's first arrival, as the simulated instant of the round that sent it."""
    first: dict[str, datetime] = {}
    for key, wall in sorted(arrivals, key=lambda a: a[1]):
        if key not in first:
            at = rounds.now_at(wall)
            assert at is not None, f"{key} arrived before the first round"
            first[key] = at
    return first


def second_keys(seen, recipient_of: dict[str, tuple]) -> int:
    """Recipients (a run's or a scenario step's contact, as `recipient_of[message id]` names
    them) that got more than one message id."""
    keys: dict[tuple, set[str]] = {}
    for key in seen:
        if key in recipient_of:
            keys.setdefault(recipient_of[key], set()).add(key)
    return sum(1 for k in keys.values() if len(k) > 1)


def round_figures(rounds: TickRounds, store: str | None) -> dict:
    """The figures every rounds workload starts with."""
    return {"store": "postgresql" if store else "sqlite", "processes": rounds.processes,
            "kills": rounds.kills(),
            "kills_by_mode": dict(Counter(e["mode"] for e in rounds.entries if e["killed"])),
            "rounds": rounds.rounds, "ticks": len(rounds.entries)}
