"""Four `campctl tick` processes acting as four hosts against one state, with SIGKILLs, as
figures.

`measure(workdir, size=..., seed=..., store=None)` runs on a SQLite file in `workdir`, or, with
`store` the URL of a PostgreSQL database, on a schema of its own there (the case this workload
is for: cron on four hosts pointing at one database). Two channels on 127.0.0.1 count what
arrives: SMTP (a real aiosmtpd SmtpReceiver) and a webhook (a real WebhookReceiver), each with
`connections: 2`. Campaigns: `every`, date-triggered every 12 minutes (SMTP), and the one-offs
`h1` (webhook) from the start, `p1` (webhook, paused and resumed) and `s1` (SMTP, stopped)
from the middle on.

Each round moves the simulated clock past the claim lease and starts HOSTS tick processes
released together at one instant (a process barrier). In a killing round one of them, drawn at
random, is SIGKILLed after a delay drawn in [0, the measured length of a round] from the
release (start-up, firing, building, claiming, hand-over), and another one still running (if
any) at the k-th message the receivers take (k in [1, KILL_AT_MAX]: in the middle of a
hand-over, whichever host is handing over). After
each round the messages a kill left in doubt (marked as handed over, not recorded) are noted.

Half-way, `p1` and `s1` start; while the hosts hand them over, `pause run` (p1) and `stop run`
(s1) are given once each has a few messages at its receiver (the receiver holds the next one
until the command has started, so it lands in the middle of the hand-over). Killing rounds go on
while p1 is paused; then p1 resumes, `every` stops, and rounds without kills finish the work.

Figures: kills (by mode: time, message, operator), ticks, messages, lost (an item not sent, a
sent item that never arrived, a run without its whole audience), unknown_arrivals, resent (keys
that arrived more than once), resent_unexplained (a key that arrived more often than the kills
that left it in doubt, plus one: "the same key at most once per kill"), resent_max_per_kill,
runs, expected_runs, runs_not_one_per_occurrence, duplicate_occurrences, delivered_while_paused,
delivered_after_stop, nonzero_exits_unkilled, integrity_failures (SQLite only), seconds, ok.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from receivers import SmtpReceiver, WebhookReceiver
from workload_support import (
    Operator,
    clean_env,
    drop_state,
    integrity_ok,
    is_pg,
    iso,
    query,
    run_in_process,
    state_in,
)

# The `handover_begun` of a message that went or was about to (PostgreSQL also marks ahead: 1;
# the server keeps every commit of a killed campctl process, so a mark never started never went).
_STARTED_PG = 2

SIZES = {
    "small": {"kills": 3, "contacts": 24, "paused_kills": 1},
    "full": {"kills": 30, "contacts": 80, "paused_kills": 6},
}
HOSTS = 4
CONNECTIONS = 2
CHANNELS = 2
RECEIVER_DELAY = 0.005  # seconds a receiver takes per message
OPERATOR_DELAY = 0.05  # ... while p1 and s1 go (see Operator for how the commands land mid-way)
HOLD_SECONDS = 1.0  # see workload_support.Operator
SEEN_BEFORE_ACTING = 2  # messages of p1 / s1 at their receiver before the pause / the stop
KILL_AT_MAX = 12
FINISH_ROUNDS_MAX = 15
T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=6)  # longer than the claim lease: in-doubt messages go again next round
EVERY = timedelta(minutes=12)  # the date-triggered campaign's cron, below
DEBUG = bool(os.environ.get("HOSTS_WORKLOAD_DEBUG"))
BARRIER_SECONDS = 0.5  # from starting the processes to releasing them together

# Waits until the shared start instant, then becomes the campctl process (a process barrier).
_BARRIER = ("import os, sys, time\n"
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'campctl', *sys.argv[2:]])\n")

DEFINITIONS = """\
kind: Channel
name: mail
type: smtp
host: 127.0.0.1
port: {smtp_port}
starttls: false
from: "Hosts <hosts@example.org>"
connections: {connections}
---
kind: Channel
name: hook
type: webhook
url: {hook_url}
timeout: 10
connections: {connections}
---
kind: Campaign
name: every
timezone: UTC
closes_at: 2028-12-31T23:59
channel: mail
audience: {{all: true}}
message: {{subject: "every for {{{{ first_name }}}}", body: "Hello {{{{ first_name }}}}"}}
type: date-triggered
schedule: {{start: immediately, cron: "*/12 * * * *", catchup: all}}
"""
ONE_OFF = """\
---
kind: Campaign
name: {name}
timezone: UTC
channel: {channel}
audience: {{all: true}}
message: {{subject: "{name} for {{{{ first_name }}}}", body: "Hello {{{{ first_name }}}}"}}
type: one-off
schedule: {{queue: immediately, send: after_queue}}
"""
ONE_OFFS = {"h1": "hook", "p1": "hook", "s1": "mail"}


def _env() -> dict[str, str]:
    return clean_env("hosts")


def _key(header: str) -> str:
    """The message id of an SMTP Message-ID header (`<ID@campctl>`) or an Idempotency-Key."""
    return header.strip().strip("<>").removesuffix("@campctl")


class Killer:
    """SIGKILLs one running host, drawn at random, at the k-th message either receiver takes."""

    def __init__(self, rng: random.Random) -> None:
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
                # The host handing this message over (connected to the receiver's port).
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


def _campaign_of(kind: str, info: dict) -> str | None:
    if kind == "smtp":
        return str(info.get("subject", "")).split(" ", 1)[0] or None
    body = info.get("body")
    return body.get("campaign") if isinstance(body, dict) else None


def _receivers(killer: Killer, operator: Operator) -> tuple[SmtpReceiver, WebhookReceiver]:
    class Smtp(SmtpReceiver):
        def _add(self, key, info):
            super()._add(key, info)
            killer.arrived(self.port)
            operator.arrived(_campaign_of("smtp", info))

    class Hook(WebhookReceiver):
        def _add(self, key, info):
            super()._add(key, info)
            killer.arrived(self._server.server_address[1])
            operator.arrived(_campaign_of("hook", info))

    return Smtp(delay=RECEIVER_DELAY), Hook(delay=RECEIVER_DELAY)


def _quiet_errors(hook: WebhookReceiver) -> None:
    """Do not print the traceback of a connection reset by a killed tick."""
    server = hook._server
    default = server.handle_error

    def handle_error(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)

    server.handle_error = handle_error


def _arrivals(smtp: SmtpReceiver, hook: WebhookReceiver) -> list[tuple[str, float, str | None]]:
    return ([(_key(k), at, _campaign_of("smtp", info)) for k, at, info in smtp.arrivals()]
            + [(_key(k), at, _campaign_of("hook", info)) for k, at, info in hook.arrivals()])


class Hosts:
    """Rounds of HOSTS tick processes released together, one of them possibly SIGKILLed."""

    def __init__(self, state: Path | str, killer: Killer, rng: random.Random) -> None:
        self.state = state
        self.killer = killer
        self.rng = rng
        self.entries: list[dict] = []
        self.rounds = 0

    def start(self, now: datetime) -> tuple[list[subprocess.Popen], float]:
        release = time.time() + BARRIER_SECONDS
        procs = [subprocess.Popen(
            [sys.executable, "-c", _BARRIER, repr(release), "--state", str(self.state),
             "--now", iso(now), "tick"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
            for _ in range(HOSTS)]
        return procs, release

    def finish(self, procs: list[subprocess.Popen], release: float, mode: str,
               timer: threading.Timer | None = None) -> list[dict]:
        entries = []
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            how = "message" if proc.pid in self.killer.victims else mode
            entries.append({"code": proc.returncode, "killed": proc.returncode == -signal.SIGKILL,
                            "mode": how, "stderr": err, "round": self.rounds})
        self.killer.disarm()
        if timer is not None:
            timer.cancel()
        self.rounds += 1
        self.entries += entries
        if DEBUG:
            print(f"round {self.rounds} {mode}: {time.time() - release:.2f}s"
                  f" {[e['code'] for e in entries]}", file=sys.stderr)
        return entries

    def round(self, now: datetime, mode: str = "none", tick_seconds: float = 0.0) -> list[dict]:
        procs, release = self.start(now)
        timer = None
        if mode == "message":
            self.killer.arm(procs, self.rng.randint(1, KILL_AT_MAX))
        if mode == "time":
            # One host at a random moment, and the host handing over the k-th message.
            victim = self.rng.choice(procs)
            delay = release - time.time() + self.rng.uniform(0.0, tick_seconds)
            timer = threading.Timer(max(0.0, delay), lambda: victim.poll() is None
                                    and victim.send_signal(signal.SIGKILL))
            timer.start()
            self.killer.arm(procs, self.rng.randint(1, KILL_AT_MAX))
        return self.finish(procs, release, mode, timer)


def _in_doubt(state: Path | str) -> set[tuple[str, str]]:
    """(message id, claim token) of the items marked as handed over but not recorded."""
    return set(query(state, "SELECT message_id, claim_token FROM queue_items"
                            " WHERE handover_begun = ? AND status = 'queued'",
                     (_STARTED_PG if is_pg(state) else 1,)))


def _run_id(state: Path | str, campaign: str) -> int:
    return query(state, "SELECT id FROM runs WHERE campaign = ?", (campaign,))[0][0]


def _setup(workdir: Path, state: Path | str, smtp: SmtpReceiver, hook: WebhookReceiver,
           contacts: int) -> None:
    def must(*args: str) -> None:
        run_in_process(state, T0, *args, user="hosts")

    csv = workdir / "contacts.csv"
    csv.write_text("id,email,first_name\n" + "".join(
        f"c{i:04d},c{i:04d}@example.org,N{i}\n" for i in range(contacts)))
    definitions = workdir / "hosts.yaml"
    definitions.write_text(
        DEFINITIONS.format(smtp_port=smtp.port, hook_url=hook.url, connections=CONNECTIONS)
        + "".join(ONE_OFF.format(name=n, channel=c) for n, c in ONE_OFFS.items()))
    must("init")
    must("contacts", "import", str(csv))
    must("apply", str(definitions))
    for name in ("every", *ONE_OFFS):
        must("submit", "campaign", name)
        must("approve", "campaign", name, "--as", "approver")
    must("start", "campaign", "every")
    must("start", "campaign", "h1")


def measure(workdir: Path, *, size: str = "small", seed: int = 0,
            store: str | None = None) -> dict:
    params = SIZES[size]
    contacts = params["contacts"]
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    state = state_in(store or workdir, "hosts")
    started = time.perf_counter()
    killer = Killer(rng)
    operator = Operator(("p1", "s1"), seen_before=SEEN_BEFORE_ACTING,
                        hold_seconds=HOLD_SECONDS)
    hosts = Hosts(state, killer, rng)
    integrity_failures = 0
    doubt: list[tuple[int, list[str]]] = []  # (kills in the round, message ids it left in doubt)
    seen_in_doubt: set[tuple[str, str]] = set()
    times: dict[str, float] = {}
    nonzero_unkilled: list[str] = []
    operator_errors: list[str] = []
    now = T0
    smtp, hook = _receivers(killer, operator)
    with smtp, hook:
        _quiet_errors(hook)
        _setup(workdir, state, smtp, hook, contacts)
        # The length of a round with work (the first `every` run and h1): the kill range.
        first = time.time()
        after_round(hosts.round(now, "message"), state, doubt, seen_in_doubt, nonzero_unkilled)
        tick_seconds = time.time() - first - BARRIER_SECONDS

        def kills() -> int:
            return sum(e["killed"] for e in hosts.entries)

        def killing_round() -> None:
            nonlocal now, integrity_failures
            now += STEP
            after_round(hosts.round(now, "time", tick_seconds), state, doubt, seen_in_doubt,
                        nonzero_unkilled)
            integrity_failures += not integrity_ok(state)

        half = params["kills"] // 2
        while kills() < half and hosts.rounds < 4 * params["kills"]:
            killing_round()

        # p1 and s1 start; the hosts hand them over, paused / stopped as they arrive.
        now += STEP
        run_in_process(state, now, "start", "campaign", "p1", user="hosts")
        run_in_process(state, now, "start", "campaign", "s1", user="hosts")
        runs: dict[str, int] = {}
        now += STEP
        smtp.delay = hook.delay = OPERATOR_DELAY
        operator.armed = True
        procs, release = hosts.start(now)
        todo = {"p1": "pause", "s1": "stop"}

        commands: list[threading.Thread] = []

        def act(name: str) -> None:
            """Give the pause (stop) in a thread of its own, so that the other can go too."""
            verb = todo.pop(name)
            extra = ["--note", "hosts chaos"] if verb == "stop" else []
            runs[name] = _run_id(state, name)  # made by the hosts' first tick of this round
            argv = [sys.executable, "-m", "campctl", "--state", str(state), "--now", iso(now),
                    verb, "run", str(runs[name]), *extra]

            def command() -> None:
                proc = subprocess.run(argv, capture_output=True, text=True, env=_env(),
                                      timeout=300)
                times[f"{verb}_returned"] = time.time()
                operator.returned[name].set()
                if proc.returncode != 0:
                    operator_errors.append(
                        f"{verb}: {proc.returncode} {proc.stderr.strip()[-200:]}")

            times[f"{verb}_during_hand_over"] = any(p.poll() is None for p in procs)
            times[f"{verb}_started"] = time.time()
            thread = threading.Thread(target=command)
            thread.start()
            commands.append(thread)
            operator.started[name].set()

        deadline = time.time() + 120
        while todo and time.time() < deadline:
            for name in [n for n in todo if operator.seen[n] >= SEEN_BEFORE_ACTING]:
                act(name)
            if all(p.poll() is not None for p in procs):
                break
            time.sleep(0.005)
        for name in list(todo):  # the hosts ended first: act now all the same
            act(name)
        for thread in commands:
            thread.join(timeout=300)
        # One host killed at a random moment once both are given.
        victim = rng.choice(procs)
        try:
            victim.wait(timeout=rng.uniform(0.0, 0.5))
        except subprocess.TimeoutExpired:
            victim.send_signal(signal.SIGKILL)
        operator.release()
        after_round(hosts.finish(procs, release, "operator"), state, doubt, seen_in_doubt,
                    nonzero_unkilled)
        smtp.delay = hook.delay = RECEIVER_DELAY
        # Killing rounds go on while p1 is paused.
        paused_kills = kills() + params["paused_kills"]
        while kills() < paused_kills and hosts.rounds < 8 * params["kills"]:
            killing_round()
        now += STEP
        times["resume_started"] = time.time()
        try:
            run_in_process(state, now, "resume", "run", str(runs["p1"]), user="hosts")
        except RuntimeError as exc:
            operator_errors.append(str(exc)[-200:])
        while kills() < params["kills"] + params["paused_kills"] \
                and hosts.rounds < 12 * params["kills"]:
            killing_round()
        stop = now
        run_in_process(state, now, "stop", "campaign", "every", "--note", "hosts: finishing",
                       user="hosts")
        finishing = 0
        for _ in range(FINISH_ROUNDS_MAX):
            now += STEP
            after_round(hosts.round(now), state, doubt, seen_in_doubt, nonzero_unkilled)
            finishing += 1
            if query(state, "SELECT count(*) FROM queue_items WHERE status = 'queued'") == [(0,)]:
                break
        time.sleep(0.2)  # let the receivers' last handlers record
        arrivals = _arrivals(smtp, hook)
    figures = _figures(state, arrivals, doubt, times, contacts, stop)
    kill_modes = Counter(e["mode"] for e in hosts.entries if e["killed"])
    figures = {
        "store": "postgresql" if store else "sqlite", "hosts": HOSTS,
        "kills": sum(kill_modes.values()), "kills_by_mode": dict(kill_modes),
        "rounds": hosts.rounds, "ticks": len(hosts.entries), "finishing_rounds": finishing,
        "tick_seconds_measured": round(tick_seconds, 2),
        "messages": len(arrivals),
        **figures,
        "pause_during_hand_over": times.get("pause_during_hand_over"),
        "stop_during_hand_over": times.get("stop_during_hand_over"),
        "operator_errors": len(operator_errors),
        "integrity_failures": integrity_failures,
        "nonzero_exits_unkilled": len(nonzero_unkilled),
        "seconds": round(time.perf_counter() - started, 1),
    }
    figures["ok"] = (
        figures["kills"] >= params["kills"] + params["paused_kills"]
        and integrity_failures == 0 and not operator_errors and not nonzero_unkilled
        and figures["lost"] == 0 and figures["unknown_arrivals"] == 0
        and figures["resent_unexplained"] == 0
        and figures["resent_max_per_kill"] <= CONNECTIONS * CHANNELS
        and figures["second_key_for_recipient"] == 0 and figures["arrived_not_sent"] == 0
        and figures["runs_not_one_per_occurrence"] == 0 and figures["duplicate_occurrences"] == 0
        and figures["delivered_while_paused"] == 0 and figures["delivered_after_stop"] == 0
    )
    problems = operator_errors[:2] + nonzero_unkilled[:3] + figures.pop("_problems")
    if problems:
        figures["problems"] = "; ".join(problems)
    if store:
        drop_state(state)
    return figures


def after_round(entries: list[dict], state: Path | str, doubt: list, seen: set,
                nonzero_unkilled: list[str]) -> None:
    """Note what this round's kills left in doubt, and unkilled ticks that failed."""
    killed = sum(e["killed"] for e in entries)
    for entry in entries:
        if not entry["killed"] and entry["code"] != 0:
            nonzero_unkilled.append(entry["stderr"].strip()[-300:])
    if killed:
        # Every host of the round has ended: what is in doubt now, and was not before, was
        # left by this round's kills.
        now_in_doubt = _in_doubt(state)
        doubt.append((killed, sorted(m for m, _ in now_in_doubt - seen)))
        seen.update(now_in_doubt)


def _figures(state: Path | str, arrivals: list[tuple[str, float, str | None]],
             doubt: list[tuple[int, list[str]]], times: dict, contacts: int,
             stop: datetime) -> dict:
    items = {m: (c, r, k, s) for m, c, r, k, s in query(
        state, "SELECT q.message_id, r.campaign, q.run_id, q.contact_id, q.status"
               " FROM queue_items q JOIN runs r ON r.id = q.run_id")}
    seen = Counter(m for m, _, _ in arrivals)
    not_sent = [m for m, (c, _, _, s) in items.items()
                if s != "sent" and not (c == "s1" and s == "cancelled")]
    sent_not_arrived = [m for m, (_, _, _, s) in items.items() if s == "sent" and not seen[m]]
    arrived_not_sent = [m for m in seen if m in items and items[m][3] != "sent"
                        and not (items[m][0] == "s1" and items[m][3] == "cancelled")]
    unknown = [m for m in seen if m not in items]
    # Every run was built with its whole audience, once.
    per_run = Counter(r for _, r, _, _ in items.values())
    run_rows = query(state, "SELECT id, campaign, scheduled_at FROM runs")
    short_runs = [f"run {i} ({c}) has {per_run[i]} items" for i, c, _ in run_rows
                  if per_run[i] != contacts]
    # Each repeat of a key is explained by a kill that left it in doubt: at most once per kill.
    in_doubt_at: Counter = Counter(m for _, ids in doubt for m in ids)
    resent = {m: n - 1 for m, n in seen.items() if n > 1}
    unexplained = [m for m, extra in resent.items() if extra > in_doubt_at[m]]
    per_kill = [sum(1 for m in ids if m in resent) / max(1, k) for k, ids in doubt]
    keys_by_recipient: dict[tuple, set[str]] = defaultdict(set)
    for m in seen:
        if m in items:
            keys_by_recipient[(items[m][1], items[m][2])].add(m)
    second_key = sum(1 for keys in keys_by_recipient.values() if len(keys) > 1)
    # One run per occurrence of `every`: each 12-minute slot from T0 to the stop, once.
    slots = {iso(T0 + EVERY * n) for n in range(int((stop - T0) / EVERY) + 1)}
    fired = Counter(at for _, c, at in run_rows if c == "every")
    not_one = sorted(s for s in slots | set(fired) if fired[s] != 1 or s not in slots)
    duplicate_occurrences = query(
        state, "SELECT count(*) FROM (SELECT 1 FROM occurrences GROUP BY kind, name,"
               " scheduled_at HAVING count(*) > 1) d")[0][0]
    paused_from = times.get("pause_returned", float("inf"))
    resumed_at = times.get("resume_started", float("inf"))
    stopped_from = times.get("stop_returned", float("inf"))
    return {
        "items": len(items),
        "items_by_status": dict(Counter(s for _, _, _, s in items.values())),
        "lost": len(not_sent) + len(sent_not_arrived) + len(short_runs),
        "unknown_arrivals": len(unknown),
        "in_doubt_total": sum(len(ids) for _, ids in doubt),
        "in_doubt_max": max((len(ids) for _, ids in doubt), default=0),
        "resent": len(resent),
        "resent_arrivals": sum(resent.values()),
        "resent_unexplained": len(unexplained),
        "resent_max_per_kill": max(per_kill, default=0),
        "second_key_for_recipient": second_key,
        "arrived_not_sent": len(arrived_not_sent),
        "runs": len(run_rows), "every_runs": sum(fired.values()), "expected_every_runs": len(slots),
        "runs_not_one_per_occurrence": len(not_one),
        "duplicate_occurrences": duplicate_occurrences,
        "delivered_while_paused": sum(1 for _, at, c in arrivals
                                      if c == "p1" and paused_from < at < resumed_at),
        "delivered_after_stop": sum(1 for _, at, c in arrivals if c == "s1" and at > stopped_from),
        "stopped_cancelled": sum(1 for c, _, _, s in items.values()
                                 if c == "s1" and s == "cancelled"),
        "_problems": short_runs[:3] + [f"every slot {s}: {fired[s]} runs" for s in not_one[:3]],
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small",
                                 seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0,
                                 store=sys.argv[3] if len(sys.argv) > 3 else None),
                         indent=2, default=str))
