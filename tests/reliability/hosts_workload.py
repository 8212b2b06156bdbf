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
    Killer,
    Operator,
    TickRounds,
    after_round,
    clean_env,
    drop_state,
    integrity_ok,
    iso,
    killing_receivers,
    message_key,
    query,
    resend_figures,
    run_in_process,
    state_in,
)

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


def _campaign_of(kind: str, info: dict) -> str | None:
    if kind == "smtp":
        return str(info.get("subject", "")).split(" ", 1)[0] or None
    body = info.get("body")
    return body.get("campaign") if isinstance(body, dict) else None


def _arrivals(smtp: SmtpReceiver, hook: WebhookReceiver) -> list[tuple[str, float, str | None]]:
    return ([(message_key(k), at, _campaign_of("smtp", info)) for k, at, info in smtp.arrivals()]
            + [(message_key(k), at, _campaign_of("hook", info))
               for k, at, info in hook.arrivals()])


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
    hosts = TickRounds(state, killer, rng, processes=HOSTS, user="hosts", debug=DEBUG)
    integrity_failures = 0
    doubt: list[tuple[int, list[str]]] = []  # (kills in the round, message ids it left in doubt)
    seen_in_doubt: set[tuple[str, str]] = set()
    times: dict[str, float] = {}
    nonzero_unkilled: list[str] = []
    operator_errors: list[str] = []
    now = T0
    smtp, hook = killing_receivers(
        killer, lambda kind, info: operator.arrived(_campaign_of(kind, info)), RECEIVER_DELAY)
    with smtp, hook:
        _setup(workdir, state, smtp, hook, contacts)
        # The length of a round with work (the first `every` run and h1): the kill range.
        first = time.time()
        after_round(hosts.round(now, "message", kill_at_max=KILL_AT_MAX), state, doubt,
                    seen_in_doubt, nonzero_unkilled)
        tick_seconds = time.time() - first - hosts.barrier_seconds
        kills = hosts.kills

        def killing_round() -> None:
            nonlocal now, integrity_failures
            now += STEP
            after_round(hosts.round(now, "time", tick_seconds, KILL_AT_MAX), state, doubt,
                        seen_in_doubt, nonzero_unkilled)
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
        # Each repeat of a key is explained by a kill that left it in doubt: at most once per
        # kill.
        **resend_figures(seen, doubt),
        "in_doubt_max": max((len(ids) for _, ids in doubt), default=0),
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
