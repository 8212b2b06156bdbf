"""Ticks, a daemon and an operator loop together on one state file, as figures.

`measure(workdir, size=..., seed=...)` runs, in real time (no --now), a fixed amount of work:
- two loops of `campctl tick` subprocesses (each at least `ticks` ticks, and on until the
  operators are done) and one `campctl daemon --interval 1s` (stopped once it has completed at
  least `daemon_cycles` cycles);
- two operator loops (seeded random) of `actions` operator commands each; the first also
  launches the campaigns one after another, one every few of its actions, so that fresh runs
  keep appearing. They apply `pause/resume/stop/restart/skip run ID` and `pause/resume instance
  ID` to the runs they see in `get runs -o json`: mostly verbs valid for the status seen, some
  deliberately invalid ones (wrong status, a run that does not exist), which must exit 1 (3 for
  a missing run) with one `error:` line and no traceback;
- campaigns of a few thousand contacts (imported with `contacts import`) through a slow webhook
  (WebhookReceiver) and slow SMTP (SmtpReceiver), 50 messages a batch, so that batches are in
  flight whenever the operator acts.
Then everything paused is resumed and ticks run until nothing is left to send (a tick that
changes nothing counts as a stall; `DRAIN_STALLS` of them in a row end the drain).

Nothing here depends on how much a machine manages in a given number of seconds: a loaded
machine takes longer, and does the same work.

Checks (counted at the receivers, by Idempotency-Key / Message-ID mapped to run and contact):
- no key arrives twice, no contact gets two messages of one run, nor of one restart chain
  (a restart does not resend to contacts already sent);
- nothing of a run arrives while it is paused. The honest window is from the moment the pause
  command *returned* (its commit is before that) to the moment the resume command *started*
  (its commit is after that): an arrival inside it is a certain violation. Arrivals while the
  pause command itself ran are counted separately (`arrivals_during_pause_command`): they are
  not violations, the pause may not have committed yet. The same for plan instances.
- a stop, like a pause, waits for the message in flight and nothing of the run arrives after
  it returns; every message that arrived is recorded `sent` in the state file (none cancelled);
- every command exits with a documented exit code, every failure has one `error:` line, no
  traceback.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from receivers import SmtpReceiver, WebhookReceiver
from workload_support import clean_env

SIZES = {
    "small": {"actions": 12, "ticks": 3, "daemon_cycles": 3, "contacts": 1000, "campaigns": 6},
    "full": {"actions": 130, "ticks": 30, "daemon_cycles": 10, "contacts": 3000,
             "campaigns": 16},
}
BATCH = 50          # the SMTP and webhook channels' batch size
DELIVERERS = 3      # two tick loops and the daemon
# Seconds each receiver takes per message: a webhook batch (50) then takes about half a second,
# longer than the tail of a pause command after its commit, so an unheld batch would be seen.
HOOK_DELAY = 0.01
SMTP_DELAY = 0.004
INVALID_SHARE = 0.3
OPERATORS = 2       # operator loops, each on its own half of the runs
ACTIVE = ("scheduled", "building", "queued", "sending")
VALID = {s: {"pause": 3, "stop": 1} for s in ACTIVE}
VALID["paused"] = {"resume": 4, "stop": 1}
VALID["stopped"] = {"restart": 3, "skip": 1}
VALID["failed"] = {"restart": 3, "skip": 1}
RUN_VERBS = ("pause", "resume", "stop", "restart", "skip")
REREAD_EVERY = 3    # an operator re-reads `get runs` every few loops, following its own actions
IDLE_LOOPS = 400    # loops without an action that end an operator early (a no-hang guard)
DRAIN_STALLS = 30   # drain ticks in a row that change nothing before the drain gives up
NO_HANG = 900.0     # seconds: only a guard against a hung process, never a pass/fail budget


def _env() -> dict[str, str]:
    return clean_env("operator")


class _Commands:
    """Runs campctl subprocesses and keeps (args, rc, stdout, stderr, start, end) of each."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.log: list[dict] = []

    def run(self, *args: str, kind: str = "other", timeout: float = 120) -> dict:
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "campctl", "--state", str(self.state), *args],
                              capture_output=True, text=True, env=_env(), timeout=timeout)
        entry = {"args": list(args), "kind": kind, "rc": proc.returncode, "out": proc.stdout,
                 "err": proc.stderr, "start": start, "end": time.time()}
        with self.lock:
            self.log.append(entry)
        return entry

    def must(self, *args: str) -> dict:
        entry = self.run(*args, kind="setup")
        if entry["rc"] != 0:
            raise RuntimeError(f"campctl {' '.join(args)} exited {entry['rc']}: {entry['err']}")
        return entry


def _definitions(hook_url: str, smtp_port: int, campaigns: int) -> tuple[str, list[str]]:
    """Channels, `campaigns` one-off campaigns that queue as soon as they are started, and a
    one-stage plan."""
    text = (f"kind: Channel\nname: hook\ntype: webhook\nurl: {hook_url}\ntimeout: 10\n"
            f"---\nkind: Channel\nname: mail\ntype: smtp\nhost: 127.0.0.1\nport: {smtp_port}\n"
            'from: "Shop <shop@example.org>"\ntimeout: 10\n')
    names = []
    for i in range(campaigns):
        name = f"blast-{i:02d}"
        names.append(name)
        text += (f"---\nkind: Campaign\nname: {name}\ntimezone: UTC\ntype: one-off\n"
                 f"channel: {'hook' if i % 2 == 0 else 'mail'}\naudience: {{all: true}}\n"
                 'message: {subject: "Offer %d for {{ first_name }}", body: "Hello"}\n'
                 "schedule: {queue: immediately, send: after_queue}\n" % i)
    text += ("---\nkind: Campaign\nname: planned\ntimezone: UTC\ntype: one-off\nchannel: hook\n"
             "audience: {all: true}\n"
             'message: {subject: "Planned {{ first_name }}", body: "Hello"}\n'
             "schedule: {queue: immediately, send: after_queue}\n"
             "stages:\n  - {name: main, controlled_by_plan: true}\n"
             "---\nkind: Plan\nname: launch\ntransition: sent\nschedule: {type: manual}\n"
             "stages:\n  - {campaign: planned, stage: main}\n")
    return text, names


def _launch(cmd: _Commands, kind: str, name: str, verbs=("submit", "approve", "start")) -> None:
    for verb in verbs:
        entry = cmd.run(verb, kind, name, "--note", "reliability", kind="launch")
        if entry["rc"] != 0:
            raise RuntimeError(f"{verb} {kind} {name}: {entry['err']}")


def _tick_loop(cmd: _Commands, stop: threading.Event, at_least: int) -> None:
    done = 0
    while done < at_least or not stop.is_set():
        cmd.run("tick", "--max-seconds", "1", kind="tick")
        done += 1


class _Lines:
    """Reads a pipe line by line in a thread (so that the process never blocks on it)."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self.more = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            with self.more:
                self.lines.append(line)
                self.more.notify_all()
        with self.more:
            self.more.notify_all()

    def wait_for(self, count: int, alive) -> None:
        """Until `count` non-empty lines came, or the process ended (`alive()` false)."""
        with self.more:
            while (sum(1 for line in self.lines if line.strip()) < count and alive()
                   and self.thread.is_alive()):
                self.more.wait(timeout=1.0)  # a re-check of alive(), not a budget


def _runs(cmd: _Commands) -> list[dict]:
    entry = cmd.run("get", "runs", "-o", "json", kind="read")
    if entry["rc"] != 0:
        return []
    data = json.loads(entry["out"])
    return data if isinstance(data, list) else data.get("runs", data.get("items", []))


def _instances(cmd: _Commands) -> list[dict]:
    entry = cmd.run("get", "instances", "-o", "json", kind="read")
    if entry["rc"] != 0:
        return []
    data = json.loads(entry["out"])
    return data if isinstance(data, list) else data.get("instances", data.get("items", []))


def _operator(cmd: _Commands, rng: random.Random, *, count: int, lane: int, lanes: int,
              actions: list[dict], launches: list[str] = ()) -> None:
    """One operator: `count` actions on the runs whose id % lanes == lane (so that another
    operator never makes its deliberately invalid verbs valid); lane 0 also pauses/resumes the
    plan instance. `launches` are campaigns to start, spread evenly over the first 70 % of the
    actions."""
    runs: list[dict] = []
    after = {"pause": "paused", "resume": "queued", "stop": "stopped", "restart": "skipped",
             "skip": "skipped"}
    pending = list(launches)
    every = max(1, int(count * 0.7) // max(1, len(pending)))
    done = loops = idle = 0
    while done < count and idle < IDLE_LOOPS:
        if pending and done >= every * (len(launches) - len(pending)):
            _launch(cmd, "campaign", pending.pop(0), verbs=("start",))
        if loops % REREAD_EVERY == 0:  # in between, follow our own actions
            runs = [r for r in _runs(cmd) if r.get("status") not in ("completed", "skipped")
                    and r["id"] % lanes == lane]
        loops += 1
        before = len([a for a in actions if a.get("lane") == lane])
        draw = rng.random()
        if draw < 0.1:
            for inst in _instances(cmd) if lane == 0 else ():
                status = inst.get("status")
                if status in ("running", "paused"):
                    verb = "pause" if status == "running" else "resume"
                    _act(cmd, actions, "instance", verb, inst["id"], status, valid=True,
                         lane=lane)
                    break
        elif draw < 0.1 + INVALID_SHARE:
            _invalid(cmd, rng, actions, runs, lane)
        elif runs:
            run = rng.choice(runs)
            table = VALID.get(run["status"])
            if table:
                verbs, weights = zip(*table.items(), strict=True)
                verb = rng.choices(verbs, weights)[0]
                entry = _act(cmd, actions, "run", verb, run["id"], run["status"], valid=True,
                             lane=lane)
                if entry["rc"] == 0:
                    run["status"] = after[verb]
        if len([a for a in actions if a.get("lane") == lane]) > before:
            done += 1
            idle = 0
        else:
            idle += 1
        time.sleep(rng.uniform(0.02, 0.15))  # pacing between commands, not a budget
    for name in pending:  # a guard ended the loop early: still launch what was planned
        _launch(cmd, "campaign", name, verbs=("start",))


def _invalid(cmd: _Commands, rng: random.Random, actions: list[dict], runs: list[dict],
             lane: int) -> None:
    if not runs or rng.random() < 0.15:
        _act(cmd, actions, "run", rng.choice(RUN_VERBS), 999999, "missing", valid=False,
             lane=lane)
        return
    run = rng.choice(runs)
    status = run["status"]
    # Verbs that stay invalid whatever the tick does meanwhile: resume only applies to a paused
    # run (only the operator pauses), restart/skip only to stopped or failed ones (an active run
    # cannot get there before the command reads it, except failing: counted as a race), and
    # nothing applies to completed or skipped runs.
    if status == "paused":
        verb = rng.choice(("pause", "restart", "skip"))
    elif status in ACTIVE:
        verb = rng.choice(("resume", "restart", "skip"))
    elif status in ("stopped", "failed"):
        verb = rng.choice(("pause", "resume", "stop"))
    else:
        verb = rng.choice(RUN_VERBS)
    _act(cmd, actions, "run", verb, run["id"], status, valid=False, lane=lane)


def _act(cmd: _Commands, actions: list[dict], kind: str, verb: str, target, status: str, *,
         valid: bool, lane: int | None = None) -> dict:
    args = [verb, kind, str(target)]
    if verb in ("stop", "restart", "skip") or kind == "instance":
        args += ["--note", f"operator loop: {verb}"]
    entry = cmd.run(*args, kind="operator")
    entry.update(verb=verb, target=kind, id=target, status_before=status, valid=valid, lane=lane)
    actions.append(entry)
    return entry


def _rows(state: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(state, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _work_left(state: Path) -> int:
    """Items that can still go out, plus runs that are still to be built."""
    return _rows(state, "SELECT (SELECT count(*) FROM queue_items q JOIN runs r ON r.id = q.run_id"
                        " WHERE q.status = 'queued' AND r.status IN ('queued', 'sending'))"
                        " + (SELECT count(*) FROM runs WHERE status IN ('scheduled', 'building'))"
                 )[0][0]


def _one_error_line(err: str) -> bool:
    return sum(1 for line in err.splitlines() if line.startswith("error:")) == 1


def measure(workdir: Path, *, size: str = "small", seed: int = 0) -> dict:
    conf = SIZES[size]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "operator.db"
    rng = random.Random(seed)
    wall0 = time.monotonic()
    with WebhookReceiver(delay=HOOK_DELAY) as hook, SmtpReceiver(delay=SMTP_DELAY) as smtp:
        cmd = _Commands(state)
        csv = workdir / "contacts.csv"
        csv.write_text("id,email,first_name\n" + "".join(
            f"c{i:05d},c{i:05d}@example.org,N{i}\n" for i in range(conf["contacts"])))
        text, names = _definitions(hook.url, smtp.port, conf["campaigns"])
        (workdir / "defs.yaml").write_text(text)
        cmd.must("init")
        cmd.must("contacts", "import", str(csv))
        cmd.must("apply", str(workdir / "defs.yaml"))
        # The first campaign starts now; operator 0 starts the others during its actions.
        for name in names:
            _launch(cmd, "campaign", name, verbs=("submit", "approve"))
        _launch(cmd, "campaign", names[0], verbs=("start",))
        for verb in ("submit", "approve"):
            cmd.must(verb, "campaign", "planned")
        for verb in ("submit", "approve", "start"):
            cmd.must(verb, "plan", "launch")

        stop_ticks = threading.Event()
        loops = [threading.Thread(target=_tick_loop, args=(cmd, stop_ticks, conf["ticks"]),
                                  daemon=True)
                 for _ in range(2)]
        daemon = subprocess.Popen(
            [sys.executable, "-m", "campctl", "--state", str(state), "daemon", "--interval", "1s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        daemon_out, daemon_err = _Lines(daemon.stdout), _Lines(daemon.stderr)
        for loop in loops:
            loop.start()
        actions: list[dict] = []
        start = time.time()
        operators = [threading.Thread(target=_operator, args=(cmd, random.Random(rng.random())),
                                      kwargs={"count": conf["actions"], "lane": lane,
                                              "lanes": OPERATORS, "actions": actions,
                                              "launches": names[1:] if lane == 0 else ()})
                     for lane in range(OPERATORS)]
        for operator in operators:
            operator.start()
        for operator in operators:
            operator.join()
        operator_end = time.time()

        # Resume everything paused, then let the ticks finish the work.
        for run in _runs(cmd):
            if run["status"] == "paused":
                _act(cmd, actions, "run", "resume", run["id"], "paused", valid=True)
        for inst in _instances(cmd):
            if inst.get("status") == "paused":
                _act(cmd, actions, "instance", "resume", inst["id"], "paused", valid=True)
        # Drain: ticks of our own beside the loops and the daemon, until nothing is left; a tick
        # after which the work left did not shrink is a stall, and enough stalls in a row end it.
        left, stalls = _work_left(state), 0
        while left and stalls < DRAIN_STALLS:
            cmd.run("tick", kind="tick")
            now_left = _work_left(state)
            stalls = stalls + 1 if now_left >= left else 0
            left = now_left
        drained = left == 0
        stop_ticks.set()
        for loop in loops:
            loop.join(timeout=NO_HANG)
        daemon_out.wait_for(conf["daemon_cycles"], alive=lambda: daemon.poll() is None)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=NO_HANG)
        daemon_out.thread.join(timeout=NO_HANG)
        daemon_err.thread.join(timeout=NO_HANG)
        daemon.stdout.close()
        daemon.stderr.close()
        final_tick = cmd.run("tick", kind="tick")
        time.sleep(0.2)
        arrivals = [(k, t, "hook") for k, t, _ in hook.arrivals()]
        arrivals += [(k.strip("<>").removesuffix("@campctl"), t, "mail")
                     for k, t, _ in smtp.arrivals()]

    items = {m: (run, contact, status) for m, run, contact, status in _rows(
        state, "SELECT message_id, run_id, contact_id, status FROM queue_items")}
    runs = {rid: (restart_of, instance) for rid, restart_of, instance in _rows(
        state, "SELECT id, restart_of, instance_id FROM runs")}
    figures = _figures(actions, cmd.log, arrivals, items, runs)
    figures.update(
        actions_per_operator=conf["actions"], contacts=conf["contacts"],
        campaigns=conf["campaigns"] + 1,
        wall_seconds=round(time.monotonic() - wall0, 1),
        operator_seconds=round(operator_end - start, 1),
        daemon_cycles=len([line for line in daemon_out.lines if line.strip()]),
        daemon_exit=daemon.returncode, drained=drained,
        final_tick_exit=final_tick["rc"],
    )
    figures["tracebacks"] += "Traceback" in "".join(daemon_err.lines)
    figures["ok"] = bool(
        figures["duplicates"] == 0 and figures["duplicates_by_contact_run"] == 0
        and figures["restart_chain_duplicates"] == 0 and figures["delivered_while_paused"] == 0
        and figures["delivered_after_stop_total"] == 0
        and figures["arrived_not_recorded_sent"] == 0 and figures["sent_not_arrived"] == 0
        and figures["tracebacks"] == 0 and figures["bad_exits"] == 0
        and figures["tick_failures"] == 0 and figures["invalid_actions_accepted"] == 0
        and drained and daemon.returncode == 0 and final_tick["rc"] == 0
        and figures["messages"] > 0 and figures["operator_actions"] > 0
    )
    return figures


def _figures(actions, log, arrivals, items, runs) -> dict:
    by_verb = Counter(f"{a['verb']}_{a['target']}" for a in actions)
    invalid = [a for a in actions if not a["valid"]]
    rejected = [a for a in invalid if a["rc"] in (1, 3) and _one_error_line(a["err"])]
    accepted = [a for a in invalid if a["rc"] == 0]
    # The exit codes documented for each command, and one error line for each failure.
    bad_exits = 0
    for entry in log:
        if entry["kind"] == "operator":
            allowed = {0, 1, 3}
        elif entry["kind"] == "tick":
            allowed = {0}
        else:
            allowed = {0}
        if entry["rc"] not in allowed or (entry["rc"] != 0 and not _one_error_line(entry["err"])):
            bad_exits += 1
    tracebacks = sum("Traceback" in e["err"] for e in log)
    ticks = [e for e in log if e["kind"] == "tick"]

    # Arrivals by key and by (run, contact); restart chains by their first run.
    keys = Counter(k for k, _, _ in arrivals)
    per_contact_run = Counter()
    per_chain = Counter()
    arrived_not_sent = 0
    by_run: dict[int, list[float]] = defaultdict(list)

    def root(run_id):
        while runs.get(run_id, (None, None))[0] is not None:
            run_id = runs[run_id][0]
        return run_id

    for key in keys:
        run_id, contact, status = items.get(key, (None, None, None))
        if status != "sent":
            arrived_not_sent += 1
        if run_id is not None:
            per_contact_run[(run_id, contact)] += keys[key]
            per_chain[(root(run_id), contact)] += keys[key]
    for key, at, _ in arrivals:
        run_id = items.get(key, (None,))[0]
        if run_id is not None:
            by_run[run_id].append(at)
    sent_keys = {m for m, (_, _, status) in items.items() if status == "sent"}

    # Paused windows: from the pause's return to the next resume's start (or a stop: for ever).
    windows: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    during_pause_command = 0
    open_pause: dict[tuple[str, int], float] = {}
    for a in sorted(actions, key=lambda a: a["start"]):
        ident = (a["target"], a["id"])
        if a["rc"] != 0:
            continue
        if a["verb"] == "pause":
            open_pause[ident] = a["end"]
        elif a["verb"] in ("resume", "stop") and ident in open_pause:
            end = a["start"] if a["verb"] == "resume" else float("inf")
            windows[ident].append((open_pause.pop(ident), end))
    for ident, since in open_pause.items():
        windows[ident].append((since, float("inf")))
    while_paused = 0
    for run_id, times in by_run.items():
        spans = list(windows.get(("run", run_id), []))
        instance = runs.get(run_id, (None, None))[1]
        if instance is not None:
            spans += windows.get(("instance", instance), [])
        while_paused += sum(1 for t in times if any(lo < t < hi for lo, hi in spans))
    for a in actions:
        if a["verb"] == "pause" and a["rc"] == 0:
            run_ids = ([a["id"]] if a["target"] == "run" else
                       [r for r, (_, inst) in runs.items() if inst == a["id"]])
            during_pause_command += sum(1 for r in run_ids for t in by_run.get(r, [])
                                        if a["start"] <= t <= a["end"])
    # Stops: what of the run still arrived after the stop returned (the batches in flight).
    after_stop = [sum(1 for t in by_run.get(a["id"], []) if t > a["end"])
                  for a in actions if a["verb"] == "stop" and a["rc"] == 0 and a["target"] == "run"]

    figures = {
        "operator_actions": len(actions),
        **{f"operator_{verb}": n for verb, n in sorted(by_verb.items())},
        "operator_refused_races": sum(1 for a in actions if a["valid"] and a["rc"] != 0),
        "invalid_actions_tried": len(invalid),
        "invalid_actions_rejected": len(rejected),
        "invalid_actions_accepted": len(accepted),
        "ticks": len(ticks),
        "tick_failures": sum(1 for e in ticks if e["rc"] != 0),
        "commands": len(log),
        "messages": len(arrivals),
        "duplicates": sum(n - 1 for n in keys.values() if n > 1),
        "duplicates_by_contact_run": sum(n - 1 for n in per_contact_run.values() if n > 1),
        "restart_chain_duplicates": sum(n - 1 for n in per_chain.values() if n > 1),
        "delivered_while_paused": while_paused,
        "arrivals_during_pause_command": during_pause_command,
        "delivered_after_stop_total": sum(after_stop),
        "delivered_after_stop_max": max(after_stop, default=0),
        "arrived_not_recorded_sent": arrived_not_sent,
        "sent_not_arrived": len(sent_keys - set(keys)),
        "runs": len(runs),
        "tracebacks": tracebacks,
        "bad_exits": bad_exits,
    }
    return figures


if __name__ == "__main__":  # python tests/reliability/operator_workload.py [small|full] [seed]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small",
                         seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(json.dumps(result, indent=2))
