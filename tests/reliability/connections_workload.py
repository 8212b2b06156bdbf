"""SIGKILL chaos over channels with `connections: 4`, as figures.

`measure(workdir, size=..., seed=...)` sets up one state file with an SMTP channel (a real
aiosmtpd SmtpReceiver) and a webhook channel (a real WebhookReceiver), both on 127.0.0.1 with
`connections: 4` and a receiver taking RECEIVER_DELAY seconds a message, so that four messages
are in flight at once. Four one-off campaigns: `m1` (SMTP) and `h1` (webhook) from the start,
`p1` (webhook, paused and resumed) and `s1` (SMTP, stopped) from the middle on.

Each step moves the simulated clock past the claim lease and runs `campctl tick` in a
subprocess, SIGKILLed at a seeded random moment: alternately after a delay drawn in
[0, the measured length of a tick without work] (start-up, claiming) and at the k-th message
the receivers take (k drawn in [1, KILL_AT_MAX]: in the middle of a hand-over, messages in
flight on every connection). After every kill: `PRAGMA integrity_check` (SQLite), and the
messages in doubt — marked as handed over (`handover_begun`) but not recorded as sent — are noted.

Half-way, `p1` and `s1` start; while a tick hands them over, `pause run` (p1) and `stop run`
(s1) are given once each has a few messages at its receiver (the receiver then holds that run's
next message until the command has started: it lands in the middle of the hand-over however slow
the machine, see workload_support.Operator), and the tick is then killed too. Kill steps go on
while p1 is paused; then p1 is resumed, and ticks without kills finish.

Figures: kills (by mode), ticks, messages (arrivals by channel), lost (items not sent, sent but
never arrived), unknown_arrivals, in_doubt_max (the most messages in doubt after one kill: at
most `connections`), in_doubt_total, resent (keys that arrived more than once), resent_unexplained
(a key that arrived more often than the kills that left it in doubt, plus one), resent_max_per_kill,
second_key_for_recipient (a recipient of one campaign reached under two keys), arrived_not_sent,
delivered_while_paused, delivered_after_stop, operator_errors, integrity_failures (SQLite
only), seconds, ok.
"""

from __future__ import annotations

import json
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
    campctl_argv,
    clean_env,
    drop_state,
    integrity_ok,
    is_pg,
    query,
    run_campctl,
    run_in_process,
    state_in,
)

# The `handover_begun` of a message that went or was about to (PostgreSQL also marks ahead: 1;
# the server keeps every commit of a killed campctl process, so a mark never started never went).
_STARTED_PG = 2

SIZES = {
    "small": {"kills": 8, "contacts": 60, "paused_kills": 2},
    "full": {"kills": 60, "contacts": 400, "paused_kills": 8},
}
CONNECTIONS = 4
RECEIVER_DELAY = 0.01  # seconds a receiver takes per message
KILL_AT_MAX = 25  # the arrival-count kills fire at the k-th message, k in [1, KILL_AT_MAX]
SEEN_BEFORE_ACTING = 2  # messages of p1 / s1 at their receiver before the pause / the stop
OPERATOR_DELAY = 0.05  # the receivers' pace while p1 and s1 go
HOLD_SECONDS = 1.0  # see workload_support.Operator
FINISH_TICKS_MAX = 20
T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=6)  # longer than the claim lease: in-doubt messages go again next step

DEFINITIONS = """\
kind: Channel
name: mail
type: smtp
host: 127.0.0.1
port: {smtp_port}
starttls: false
from: "Conn <conn@example.org>"
connections: {connections}
---
kind: Channel
name: hook
type: webhook
url: {hook_url}
timeout: 10
connections: {connections}
"""
CAMPAIGN = """\
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
CAMPAIGNS = {"m1": "mail", "h1": "hook", "p1": "hook", "s1": "mail"}


def _env() -> dict[str, str]:
    return clean_env("connections")


_cmd = campctl_argv
_query = query


def _must(state: Path, now: datetime, *args: str) -> subprocess.CompletedProcess:
    return run_campctl(state, now, *args, env=_env())


def _key(header: str) -> str:
    """The message id of an SMTP Message-ID header (`<ID@campctl>`) or an Idempotency-Key."""
    return header.strip().strip("<>").removesuffix("@campctl")


class Killer:
    """SIGKILLs the armed tick at the k-th message either receiver takes (in the receiver's
    thread, as the message arrives: in the middle of a hand-over)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._left = 0

    def arm(self, proc: subprocess.Popen, at_message: int | None) -> None:
        with self._lock:
            self._proc, self._left = (proc, at_message) if at_message else (None, 0)

    def disarm(self) -> None:
        with self._lock:
            self._proc = None

    def arrived(self) -> None:
        with self._lock:
            if self._proc is None:
                return
            self._left -= 1
            if self._left <= 0:
                if self._proc.poll() is None:
                    self._proc.send_signal(signal.SIGKILL)
                self._proc = None


def _receivers(killer: Killer, operator: Operator) -> tuple[SmtpReceiver, WebhookReceiver]:
    class Smtp(SmtpReceiver):
        def _add(self, key, info):
            super()._add(key, info)
            killer.arrived()
            operator.arrived(_campaign_of("smtp", info))

    class Hook(WebhookReceiver):
        def _add(self, key, info):
            super()._add(key, info)
            killer.arrived()
            operator.arrived(_campaign_of("hook", info))

    return Smtp(delay=RECEIVER_DELAY), Hook(delay=RECEIVER_DELAY)


def _tune(hook: WebhookReceiver) -> None:
    """Do not print the traceback of a connection reset by a killed tick."""
    server = hook._server
    default = server.handle_error

    def handle_error(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)

    server.handle_error = handle_error


def _campaign_of(smtp_or_hook: str, info: dict) -> str | None:
    """The campaign an arrival belongs to, from what the receiver saw (subject or body)."""
    if smtp_or_hook == "smtp":
        return str(info.get("subject", "")).split(" ", 1)[0] or None
    body = info.get("body")
    return body.get("campaign") if isinstance(body, dict) else None


def _arrivals(smtp: SmtpReceiver, hook: WebhookReceiver) -> list[tuple[str, float, str | None]]:
    """(message id, time of receipt, campaign) of every arrival at either receiver."""
    return ([(_key(k), at, _campaign_of("smtp", info)) for k, at, info in smtp.arrivals()]
            + [(_key(k), at, _campaign_of("hook", info)) for k, at, info in hook.arrivals()])


def _in_doubt(state: Path) -> set[tuple[str, str]]:
    """(message id, claim token) of the items marked as going to a channel but not recorded:
    what kills left in doubt (a later claim of the same item has another token)."""
    return set(_query(state, "SELECT message_id, claim_token FROM queue_items"
                             " WHERE handover_begun = ? AND status = 'queued'",
                      (_STARTED_PG if is_pg(state) else 1,)))


def _integrity(state: Path | str) -> bool:
    return integrity_ok(state)


def _run_id(state: Path, campaign: str) -> int:
    return _query(state, "SELECT id FROM runs WHERE campaign = ?", (campaign,))[0][0]


class Ticks:
    def __init__(self, state: Path, killer: Killer) -> None:
        self.state = state
        self.killer = killer
        self.entries: list[dict] = []

    def start(self, now: datetime, at_message: int | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(_cmd(self.state, now, "tick"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.killer.arm(proc, at_message)
        return proc

    def finish(self, proc: subprocess.Popen, started: float, *, kill_after: float | None,
               mode: str) -> dict:
        """Wait for the tick (SIGKILL it after `kill_after` seconds when given)."""
        try:
            proc.wait(timeout=kill_after if kill_after is not None else 300)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        self.killer.disarm()
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        entry = {"start": started, "end": time.time(), "code": proc.returncode,
                 "killed": proc.returncode == -signal.SIGKILL, "mode": mode, "stderr": stderr}
        self.entries.append(entry)
        return entry

    def run(self, now: datetime, *, kill_after: float | None = None,
            at_message: int | None = None, mode: str = "none") -> dict:
        started = time.time()
        proc = self.start(now, at_message)
        return self.finish(proc, started, kill_after=kill_after, mode=mode)


def _setup(workdir: Path, state: Path, smtp: SmtpReceiver, hook: WebhookReceiver,
           contacts: int) -> None:
    csv = workdir / "contacts.csv"
    csv.write_text("id,email,first_name\n" + "".join(
        f"c{i:04d},c{i:04d}@example.org,N{i}\n" for i in range(contacts)))
    definitions = workdir / "connections.yaml"
    definitions.write_text(
        DEFINITIONS.format(smtp_port=smtp.port, hook_url=hook.url, connections=CONNECTIONS)
        + "".join(CAMPAIGN.format(name=n, channel=c) for n, c in CAMPAIGNS.items()))

    def must(*args: str) -> None:  # set-up in this process: no interpreter start each
        run_in_process(state, T0, *args, user="connections")

    must("init")
    must("contacts", "import", str(csv))
    must("apply", str(definitions))
    for name in CAMPAIGNS:
        must("submit", "campaign", name)
        must("approve", "campaign", name, "--as", "approver")


def measure(workdir: Path, *, size: str = "small", seed: int = 0,
            store: str | None = None) -> dict:
    """The figures at `size`; on a SQLite file in `workdir`, or with `store` (a PostgreSQL URL)
    on a schema of its own in that database."""
    params = SIZES[size]
    contacts = params["contacts"]
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    state = state_in(store or workdir, "connections")
    started = time.perf_counter()
    killer = Killer()
    ticks = Ticks(state, killer)
    integrity_failures = 0
    doubt: list[tuple[int, list[str]]] = []  # (index of the killed tick, message ids in doubt)
    seen_in_doubt: set[tuple[str, str]] = set()
    in_doubt_before: set[str] = set()  # message ids in doubt after the previous tick
    operator: dict[str, float] = {}
    operator_errors: list[str] = []
    holder = Operator(("p1", "s1"), seen_before=SEEN_BEFORE_ACTING, hold_seconds=HOLD_SECONDS)
    nonzero_unkilled: list[str] = []
    now = T0
    smtp, hook = _receivers(killer, holder)
    with smtp, hook:
        _tune(hook)
        _setup(workdir, state, smtp, hook, contacts)
        # The length of a tick with nothing to send: the range of the time-drawn kills.
        quiet = ticks.run(now)
        tick_seconds = quiet["end"] - quiet["start"]
        _must(state, now, "start", "campaign", "m1")
        _must(state, now, "start", "campaign", "h1")

        def killing_step(mode: str) -> dict:
            nonlocal now, integrity_failures
            now += STEP
            if mode == "time":
                entry = ticks.run(now, kill_after=rng.uniform(0.0, tick_seconds), mode=mode)
            else:
                entry = ticks.run(now, at_message=rng.randint(1, KILL_AT_MAX), mode=mode)
            after_kill(entry)
            return entry

        def after_kill(entry: dict) -> None:
            nonlocal integrity_failures
            now_in_doubt = _in_doubt(state)
            if entry["killed"]:
                # What this kill left in doubt: the items this tick marked as going (in doubt
                # now under a claim not seen before) and, of those an earlier kill left in doubt
                # (a new claim keeps their mark: they may have arrived), only the ones this tick
                # handed over again. Not what an earlier kill left and no tick has claimed again
                # since (a kill during start-up leaves those as they were).
                again = {m for m, at, _ in _arrivals(smtp, hook)
                         if entry["start"] <= at <= entry["end"]}
                doubt.append((len(ticks.entries) - 1, sorted(
                    m for m, token in now_in_doubt - seen_in_doubt
                    if m not in in_doubt_before or m in again)))
                seen_in_doubt.update(now_in_doubt)
            elif entry["code"] != 0:
                nonzero_unkilled.append(entry["stderr"].strip()[-300:])
            in_doubt_before.clear()
            in_doubt_before.update(m for m, _ in now_in_doubt)
            if not _integrity(state):
                integrity_failures += 1

        def kills() -> int:
            return sum(e["killed"] for e in ticks.entries)

        modes = ("time", "message")
        step = 0
        half = params["kills"] // 2
        while kills() < half and step < 4 * params["kills"]:
            killing_step(modes[step % 2])
            step += 1

        # p1 and s1 start; one tick hands them over, paused / stopped as they arrive.
        now += STEP
        _must(state, now, "start", "campaign", "p1")
        _must(state, now, "start", "campaign", "s1")
        now += STEP
        smtp.delay = hook.delay = OPERATOR_DELAY
        holder.armed = True
        operated = time.time()
        proc = ticks.start(now)
        todo = {"p1": "pause", "s1": "stop"}
        commands: list[threading.Thread] = []

        def act(name: str) -> None:
            """Give the pause (stop) in a thread of its own, so that the other can go too."""
            verb = todo.pop(name)
            extra = ["--note", "connections chaos"] if verb == "stop" else []
            argv = _cmd(state, now, verb, "run", str(_run_id(state, name)), *extra)

            def command() -> None:
                done = subprocess.run(argv, capture_output=True, text=True, env=_env(),
                                      timeout=300)
                operator[f"{verb}_returned"] = time.time()
                holder.returned[name].set()
                if done.returncode != 0:
                    operator_errors.append(
                        f"{verb}: {done.returncode} {done.stderr.strip()[-200:]}")

            operator[f"{verb}_during_hand_over"] = proc.poll() is None
            operator[f"{verb}_started"] = time.time()
            thread = threading.Thread(target=command)
            thread.start()
            commands.append(thread)
            holder.started[name].set()

        deadline = time.time() + 120
        while todo and proc.poll() is None and time.time() < deadline:
            for name in [n for n in todo if holder.seen[n] >= SEEN_BEFORE_ACTING]:
                act(name)
            time.sleep(0.005)
        for name in list(todo):  # the tick ended first: act now all the same
            act(name)
        for thread in commands:
            thread.join(timeout=300)
        # Killed at a random moment once both have returned (or ends by itself first).
        entry = ticks.finish(proc, operated, kill_after=rng.uniform(0.0, 0.5), mode="operator")
        holder.release()
        after_kill(entry)
        smtp.delay = hook.delay = RECEIVER_DELAY
        p1_run = _run_id(state, "p1")
        # Kills go on while p1 is paused.
        paused_kills = kills() + params["paused_kills"]
        while kills() < paused_kills and step < 8 * params["kills"]:
            killing_step(modes[step % 2])
            step += 1
        now += STEP
        operator["resume_started"] = time.time()
        _must(state, now, "resume", "run", str(p1_run))
        while kills() < params["kills"] + params["paused_kills"] and step < 12 * params["kills"]:
            killing_step(modes[step % 2])
            step += 1
        finishing = 0
        for _ in range(FINISH_TICKS_MAX):
            now += STEP
            entry = ticks.run(now)
            after_kill(entry)
            finishing += 1
            if _query(state, "SELECT count(*) FROM queue_items WHERE status = 'queued'") == \
                    [(0,)]:
                break
        time.sleep(0.2)  # let the receivers' last handlers record
        arrivals = _arrivals(smtp, hook)
        by_channel = {"smtp": len(smtp.arrivals()), "webhook": len(hook.arrivals())}
    figures = _figures(state, arrivals, doubt, operator)
    kill_modes = Counter(e["mode"] for e in ticks.entries if e["killed"])
    figures = {
        "kills": sum(kill_modes.values()), "kills_by_mode": dict(kill_modes),
        "ticks": len(ticks.entries), "finishing_ticks": finishing,
        "tick_seconds_measured": round(tick_seconds, 2),
        "messages": sum(by_channel.values()), "messages_by_channel": by_channel,
        **figures,
        "pause_during_hand_over": operator.get("pause_during_hand_over"),
        "stop_during_hand_over": operator.get("stop_during_hand_over"),
        "operator_errors": len(operator_errors),
        "integrity_failures": integrity_failures,
        "nonzero_exits_unkilled": len(nonzero_unkilled),
        "seconds": round(time.perf_counter() - started, 1),
    }
    figures["ok"] = (
        figures["kills"] >= params["kills"] + params["paused_kills"]
        and integrity_failures == 0
        and figures["lost"] == 0 and figures["unknown_arrivals"] == 0
        and figures["in_doubt_max"] <= CONNECTIONS and figures["resent_unexplained"] == 0
        and figures["resent_max_per_kill"] <= CONNECTIONS
        and figures["second_key_for_recipient"] == 0 and figures["arrived_not_sent"] == 0
        and figures["delivered_while_paused"] == 0 and figures["delivered_after_stop"] == 0
        and not nonzero_unkilled and not operator_errors
    )
    if nonzero_unkilled or operator_errors:
        figures["problems"] = "; ".join(operator_errors[:2] + nonzero_unkilled[:3])
    if store:
        drop_state(state)
    return figures


def _figures(state: Path, arrivals: list[tuple[str, float, str | None]],
             doubt: list[tuple[int, list[str]]], operator: dict[str, float]) -> dict:
    items = {m: (c, e, s, h) for m, c, e, s, h in _query(
        state, "SELECT q.message_id, r.campaign, c.email, q.status, q.handover_begun"
               " FROM queue_items q JOIN runs r ON r.id = q.run_id"
               " JOIN contacts c ON c.id = q.contact_id")}
    times = Counter(m for m, _, _ in arrivals)
    # Nothing lost: every item of a campaign that was not stopped is sent, every sent item
    # arrived; the stopped campaign's items are sent (and arrived) or cancelled.
    not_sent = [m for m, (c, _, s, _) in items.items()
                if s != "sent" and not (c == "s1" and s == "cancelled")]
    sent_not_arrived = [m for m, (_, _, s, _) in items.items() if s == "sent" and not times[m]]
    # A message that arrived is recorded as sent, except one of the stopped campaign whose
    # hand-over a kill left in doubt before the stop (cancelled as possibly handed over).
    arrived_not_sent = [m for m in times if m in items and items[m][2] != "sent"
                        and not (items[m][0] == "s1" and items[m][2] == "cancelled")]
    unknown = [m for m in times if m not in items]
    # Each repeat of a key is explained by a kill that left it in doubt.
    in_doubt_at: Counter = Counter(m for _, ids in doubt for m in ids)
    resent = {m: n - 1 for m, n in times.items() if n > 1}
    unexplained = [m for m, extra in resent.items() if extra > in_doubt_at[m]]
    per_kill = [sum(1 for m in ids if m in resent) for _, ids in doubt]
    # One key per recipient of a campaign (a repeat is always the same Message-ID / key).
    keys_by_recipient: dict[tuple, set[str]] = defaultdict(set)
    for m in times:
        if m in items:
            keys_by_recipient[(items[m][0], items[m][1])].add(m)
    second_key = sum(1 for keys in keys_by_recipient.values() if len(keys) > 1)
    paused_from = operator.get("pause_returned", float("inf"))
    resumed_at = operator.get("resume_started", float("inf"))
    stopped_from = operator.get("stop_returned", float("inf"))
    while_paused = [m for m, at, c in arrivals if c == "p1" and paused_from < at < resumed_at]
    after_stop = [m for m, at, c in arrivals if c == "s1" and at > stopped_from]
    return {
        "items": len(items),
        "items_by_status": dict(Counter(s for _, _, s, _ in items.values())),
        "lost": len(not_sent) + len(sent_not_arrived),
        "unknown_arrivals": len(unknown),
        "in_doubt_total": sum(len(ids) for _, ids in doubt),
        "in_doubt_max": max((len(ids) for _, ids in doubt), default=0),
        "kills_leaving_several_in_doubt": sum(1 for _, ids in doubt if len(ids) > 1),
        "resent": len(resent),
        "resent_arrivals": sum(resent.values()),
        "resent_unexplained": len(unexplained),
        "resent_max_per_kill": max(per_kill, default=0),
        "second_key_for_recipient": second_key,
        "arrived_not_sent": len(arrived_not_sent),
        "delivered_while_paused": len(while_paused),
        "delivered_after_stop": len(after_stop),
        "stopped_cancelled": sum(1 for c, _, s, _ in items.values()
                                 if c == "s1" and s == "cancelled"),
        # Cancelled by the stop as possibly handed over (a kill before their record), arrived.
        "stopped_cancelled_arrived": sum(1 for m in times if m in items
                                         and items[m][0] == "s1" and items[m][2] == "cancelled"),
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small",
                                 seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0),
                         indent=2, default=str))
