"""A model of what the operator did, a random driver of the real CLI, and the invariant checks.

`Episode(workdir, seed, steps).run()` builds a fresh state file with small definitions (a
one-off, a date-triggered and an event-triggered campaign with windows and `closes_at`, a
two-stage plan over their plan-only stages, an event-captured and a manually launched
scenario), then takes `steps` random operator steps through `campctl.__main__.main` with
`--state` and a virtual `--now`. Messages go to two channels that record every arrival: a
webhook receiver on 127.0.0.1 (`hook`) and an outbox channel with a `dir:` JSON Lines copy
(`box`). One kind of step runs `campctl tick` as a subprocess that the receiver SIGKILLs when
the Nth message of that tick arrives, before answering: a tick dying between hand-over and
commit.

After every step each `check_*` function compares the model, the arrivals and the state file
and reports through `Episode.violate`; `Episode.violations` maps check name -> texts, and
`Episode.reproduction(step)` gives the command lines that led there. Steps are recorded as
operations, so `Episode(..., script=episode.script_of(step))` replays them.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from store_support import handover_started, is_pg, open_rows, query_rows, state_exists
from typer.testing import CliRunner

from campctl.__main__ import main

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
CONTACTS = ("c1", "c2", "c3", "c4", "c5")
CAMPAIGNS = ("flash", "daily", "nudge")
SCENARIOS = ("welcome", "tour")
PLAN = "duo"
LIVE_RUN = {"scheduled", "building", "queued", "sending", "paused"}
ENDED_RUN = {"completed", "failed", "stopped", "skipped"}
INSIDE = {"active", "waiting", "frozen"}
# The send steps of each scenario, in the order a profile passes them.
SEND_STEPS = {"welcome": ("hi", "bye"), "tour": ("hello", "bye")}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Every window, send time and closing date is a fixed offset from T0, so a seed replays.
FLASH_SEND = T0 + timedelta(hours=1)
FLASH_CLOSES = T0 + timedelta(hours=5)
DAILY_SEND_START = T0 + timedelta(hours=3)
DAILY_CLOSES = T0 + timedelta(hours=14)
NUDGE_CLOSES = T0 + timedelta(hours=10)
CLOSES = {"flash": FLASH_CLOSES, "daily": DAILY_CLOSES, "nudge": NUDGE_CLOSES}


def definitions(hook_url: str, versions: dict[str, int], box_dir: str = "jsonl") -> dict[str, str]:
    """The YAML files of one episode; `versions` changes each campaign's subjects only.
    `box_dir`: relative to the state file's folder; absolute for a PostgreSQL state (a relative
    one would be the working directory's)."""
    channels = f"""\
        kind: Channel
        name: hook
        type: webhook
        url: {hook_url}
        ---
        kind: Channel
        name: box
        type: outbox
        dir: {box_dir}
        """
    flash = f"""\
        kind: Campaign
        name: flash
        timezone: UTC
        closes_at: "{iso(FLASH_CLOSES)[:-4]}"
        channel: hook
        message_type: promotional
        audience: {{all: true}}
        message:
          subject: "Flash v{versions["flash"]} {{{{ first_name }}}}"
          body: "Only today, {{{{ id }}}}."
        type: one-off
        schedule:
          queue: immediately
          send: {{at: "{iso(FLASH_SEND)[:-4]}"}}
          window: "08:00-20:00"
        stages:
          - name: main
          - name: teaser
            controlled_by_plan: true
            message: {{subject: "Teaser v{versions["flash"]}", body: "Soon, {{{{ id }}}}."}}
        """
    daily = f"""\
        kind: Campaign
        name: daily
        timezone: UTC
        closes_at: "{iso(DAILY_CLOSES)[:-4]}"
        channel: box
        message_type: promotional
        audience: {{all: true}}
        message:
          subject: "Daily v{versions["daily"]} {{{{ first_name }}}}"
          body: "News for {{{{ id }}}}."
        type: date-triggered
        schedule:
          start: immediately
          cron: "0 */2 * * *"
          send_start: {{at: "{iso(DAILY_SEND_START)[:-4]}"}}
          window: "07:00-21:00"
        stages:
          - name: main
          - name: boost
            controlled_by_plan: true
            channel: hook
            message: {{subject: "Boost v{versions["daily"]}", body: "More for {{{{ id }}}}."}}
        """
    nudge = f"""\
        kind: Campaign
        name: nudge
        timezone: UTC
        closes_at: "{iso(NUDGE_CLOSES)[:-4]}"
        channel: box
        message_type: promotional
        audience: {{all: true}}
        message:
          subject: "Nudge v{versions["nudge"]}"
          body: "Did you see it, {{{{ id }}}}?"
        type: event-triggered
        trigger: {{event: signup}}
        schedule:
          queue_start: immediately
          send_start: immediately
          queue_every: on_event
          window: "09:00-19:00"
        """
    plan = """\
        kind: Plan
        name: duo
        transition: sent
        schedule: {type: manual}
        stages:
          - {campaign: daily, stage: boost}
          - {campaign: flash, stage: teaser}
        """
    scenarios = """\
        kind: Scenario
        name: welcome
        reentry: after_exit
        launch: {type: event, event: signup}
        steps:
          - id: hi
            send: {channel: hook, message_type: transactional, subject: "Hi {{ first_name }}",
                   body: "Welcome {{ id }}"}
          - id: w
            wait: 2h
          - id: bye
            send: {channel: box, message_type: transactional, subject: "Bye", body: "{{ id }}"}
        ---
        kind: Scenario
        name: tour
        reentry: once
        launch: {type: manual}
        steps:
          - id: hello
            send: {channel: box, message_type: transactional, subject: "Hello", body: "{{ id }}"}
          - id: w
            wait: 1h
          - id: bye
            send: {channel: hook, message_type: transactional, subject: "Tour done",
                   body: "{{ id }}"}
        """
    return {name: textwrap.dedent(text) for name, text in (
        ("channels.yaml", channels), ("flash.yaml", flash), ("daily.yaml", daily),
        ("nudge.yaml", nudge), ("plan.yaml", plan), ("scenarios.yaml", scenarios))}


# --- the webhook receiver ------------------------------------------------------------------------

@dataclass
class Arrival:
    key: str
    channel: str
    body: dict
    step: int
    now: datetime


class HookReceiver:
    """A webhook server on 127.0.0.1 recording each POST with the step and virtual time that
    sent it. Armed with `arm(nth)`, it SIGKILLs the process given to `set_pid` when the nth
    message of that tick arrives, and closes the connection without answering."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.step = 0
        self.now = T0
        self.killed_key: str | None = None
        self._lock = threading.Lock()
        self._kill_nth = 0
        self._count = 0
        self._pid: int | None = None
        self._pid_ready = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unreadable": raw.decode(errors="replace")}
                key = self.headers.get("Idempotency-Key") or ""
                if receiver._record(key, body):
                    self.close_connection = True
                    return
                payload = b'{"ok": true}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # resets by killed ticks
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, key: str, body: dict) -> bool:
        """Record one arrival; True when the sender was killed because of it."""
        with self._lock:
            self.arrivals.append(Arrival(key, "hook", body, self.step, self.now))
            if not self._kill_nth:
                return False
            self._count += 1
            if self._count != self._kill_nth:
                return False
            self._kill_nth = 0
        self._pid_ready.wait()
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            self.killed_key = key
        return True

    def arm(self, nth: int) -> None:
        with self._lock:
            self._kill_nth, self._count, self._pid = nth, 0, None
            self.killed_key = None
            self._pid_ready.clear()

    def set_pid(self, pid: int | None) -> None:
        self._pid = pid
        self._pid_ready.set()

    def disarm(self) -> None:
        with self._lock:
            self._kill_nth = 0
        self._pid_ready.set()

    def __enter__(self) -> HookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the model -----------------------------------------------------------------------------------

Identity = tuple[int, str, int, str]  # profile id, scenario, contact pk, capture key


@dataclass
class Model:
    """What the operator did and when (step numbers), as the checks need it."""

    run_paused: dict[int, int] = field(default_factory=dict)  # run -> step of the pause
    run_pauses: list[tuple[int, int, int | None]] = field(default_factory=list)
    run_stopped: dict[int, int] = field(default_factory=dict)
    instance_pauses: list[tuple[int, int, int | None]] = field(default_factory=list)
    instance_paused: dict[int, int] = field(default_factory=dict)
    instance_cancelled: dict[int, int] = field(default_factory=dict)  # by the operator
    campaign_stopped: dict[str, tuple[int, int]] = field(default_factory=dict)  # step, max run
    plan_stopped_at: int | None = None
    # Scenario activity as virtual-time intervals [start, end).
    active_since: dict[str, datetime | None] = field(default_factory=dict)
    active_intervals: dict[str, list[tuple[datetime, datetime | None]]] = field(
        default_factory=lambda: defaultdict(list))
    halted_profiles: dict[Identity, tuple[int, str]] = field(default_factory=dict)
    kills: list[tuple[int, str]] = field(default_factory=list)  # step, key in flight


@dataclass
class Snapshot:
    runs: dict[int, dict]
    items: dict[str, dict]
    profiles: dict[int, dict]
    instances: dict[int, dict]
    contacts: dict[int, str]
    events: dict[int, dict]


def snapshot(state: Path | str) -> Snapshot:
    if is_pg(state):
        with open_rows(state) as rows:  # one connection for the six reads
            return _snapshot(rows)
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return _snapshot(lambda sql: [dict(r) for r in conn.execute(sql)])
    finally:
        conn.close()


def _snapshot(rows: Callable[[str], list[dict]]) -> Snapshot:
    return Snapshot(
        runs={r["id"]: r for r in rows(
            "SELECT id, campaign, stage, status, queue_at, scheduled_at, built_at, "
            "instance_id, restart_of, paused_from, created_at FROM runs")},
        items={r["message_id"]: r for r in rows(
            "SELECT message_id, run_id, profile_id, scenario, step, contact_id, channel, "
            "status, created_at, claimed_until FROM queue_items")},
        profiles={r["id"]: r for r in rows(
            "SELECT id, scenario, contact_id, step, status, entered_at, launch_id, "
            "capture_key, visit FROM scenario_profiles")},
        instances={r["id"]: r for r in rows(
            "SELECT id, plan, status, started_at FROM plan_instances")},
        contacts={r["id"]: r["external_id"] for r in rows(
            "SELECT id, external_id FROM contacts")},
        events={r["id"]: r for r in rows(
            "SELECT e.id, e.name, e.at, e.recorded_at, c.external_id AS contact "
            "FROM events e LEFT JOIN contacts c ON c.id = e.contact_id")},
    )


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Step:
    """One step: the operations it took (replayable) and their transcript lines."""

    number: int
    kind: str
    ops: list[tuple] = field(default_factory=list)
    lines: list[tuple[str, int | None]] = field(default_factory=list)  # text, exit code


SCENARIO_KEY = re.compile(r"^scn-(\d+)-(.+)-(\d+)$")
WORKDIR = "@/"  # marks a path inside the episode's folder in recorded commands


class Episode:
    """One random operator sequence on a fresh state file, checked after every step.

    With `script` (the `ops` of the steps of an earlier episode) it replays those steps instead
    of drawing new ones: `run_long.py --shrink` uses that to find a shorter reproduction."""

    def __init__(self, workdir: Path, seed: int, steps: int, *, kills: bool = True,
                 script: list[tuple[str, list[tuple]]] | None = None,
                 state: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A state file in the folder, or the URL of an empty PostgreSQL database.
        self.state: Path | str = state if state is not None else self.workdir / "state.db"
        self.seed = seed
        self.rng = random.Random(seed)
        self.max_steps = steps if script is None else len(script)
        self.script = script
        self.allow_kills = kills
        self.now = T0
        self.step = 0
        self.model = Model()
        self.transcript: list[Step] = []
        self.arrivals: list[Arrival] = []
        self.violations: dict[str, list[str]] = defaultdict(list)
        self._seen_violations: set[tuple[str, str]] = set()
        self.accepted: Counter = Counter()  # accepted commands by verb and kind
        self.steps_run = 0
        self._jsonl_lines = 0
        self._hook_seen = 0
        self._versions = dict.fromkeys(CAMPAIGNS, 1)
        self._identities: dict[int, Identity] = {}  # profile id -> identity last seen
        self._identity_launch: dict[Identity, int | None] = {}
        self._identity_of_key: dict[str, Identity] = {}
        self._item_first: dict[str, tuple] = {}
        self._item_reported: set[str] = set()
        self.snap: Snapshot | None = None
        self.figures: dict[str, Any] = {}
        self.hook: HookReceiver | None = None
        self.last_tick_step = 0
        self.step_ticked = False  # a tick ran to its end in this step
        self.step_removed = False  # clear / remove-profile was accepted in this step
        self._exists = False  # the state has been seen to exist
        self._current = Step(0, "setup")

    # --- primitive operations (each recorded in the step, so that it can be replayed) ---------

    def _path(self, arg: str) -> str:
        return str(self.workdir / arg[len(WORKDIR):]) if arg.startswith(WORKDIR) else arg

    def cli(self, *args: str) -> Result:
        args = tuple(map(str, args))
        self._current.ops.append(("cli", args))
        words = [a for a in args if a not in ("-o", "json")]
        pre = snapshot(self.state) if words[0] not in (
            "tick", "apply", "events", "init", "contacts") and self._state_exists() else None
        argv = ["--state", str(self.state), "--now", iso(self.now), *map(self._path, args)]
        runner = CliRunner()
        with runner.isolation(env={"CAMPCTL_USER": "model"}) as streams:
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            result = Result(code, streams[0].getvalue().decode(), streams[1].getvalue().decode())
        shown = " ".join(a[len(WORKDIR):] if a.startswith(WORKDIR) else a for a in args)
        self._current.lines.append((f"campctl --now {iso(self.now)} {shown}", result.code))
        self._check_clean(shown, result)
        if words[0] == "tick":
            self.last_tick_step = self.step
            self.step_ticked = self.step_ticked or result.code == 0
        if result.code == 0:
            self.accepted[" ".join(w for w in words[:3] if not w.startswith("-")
                                   and not w.isdigit() and "/" not in w)] += 1
            self._after(words, args, pre)
        return result

    def _state_exists(self) -> bool:
        # Once there, the state stays (no step removes it): asked until then only.
        self._exists = self._exists or state_exists(self.state)
        return self._exists

    def advance(self, minutes: int) -> None:
        self._current.ops.append(("advance", minutes))
        self.now += timedelta(minutes=minutes)
        self._current.lines.append((f"# the clock moves {minutes} minutes", None))
        if self.hook is not None:
            self.hook.now = self.now

    def write_file(self, name: str, text: str) -> str:
        self._current.ops.append(("file", name, text))
        (self.workdir / name).write_text(text)
        self._current.lines.append((f"# {name} holds: {text.strip()}", None))
        return WORKDIR + name

    def write_defs(self, versions: dict[str, int]) -> None:
        self._current.ops.append(("defs", dict(versions)))
        self._versions = dict(versions)
        assert self.hook is not None
        (self.workdir / "defs").mkdir(exist_ok=True)
        box_dir = str(self.workdir / "jsonl") if is_pg(self.state) else "jsonl"
        for name, text in definitions(self.hook.url, self._versions, box_dir).items():
            (self.workdir / "defs" / name).write_text(text)
        if self.step:
            changed = ", ".join(f"{c} v{v}" for c, v in self._versions.items() if v > 1)
            self._current.lines.append((f"# definitions rewritten: subjects {changed}", None))

    def crash_tick(self, nth: int) -> str | None:
        """A tick in a subprocess, killed by the receiver at its nth message before it answers;
        returns the key of the message in flight (None when the tick ended first)."""
        self._current.ops.append(("crash", nth))
        hook = self.hook
        assert hook is not None
        self.last_tick_step = self.step
        hook.arm(nth)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        env["CAMPCTL_USER"] = "model"
        proc = subprocess.Popen(
            [sys.executable, "-m", "campctl", "--state", str(self.state), "--now",
             iso(self.now), "tick"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        hook.set_pid(proc.pid)
        _, stderr = proc.communicate(timeout=300)
        hook.disarm()
        killed = proc.returncode == -signal.SIGKILL
        self._current.lines.append((
            f"campctl --now {iso(self.now)} tick   # in a subprocess that the webhook receiver "
            f"SIGKILLs when message {nth} of this tick arrives, before answering"
            + ("" if killed else " (the tick ended before that)"), proc.returncode))
        if killed and hook.killed_key:
            # With several connections, other messages were in flight too: every item marked
            # as going to a channel but not recorded (`handover_begun`, still queued) is in doubt.
            for key in {hook.killed_key, *self._marked_not_recorded()}:
                self.model.kills.append((self.step, key))
            return hook.killed_key
        self.step_ticked = True
        if proc.returncode != 0 or "Traceback" in stderr:
            self.violate("check_cli_clean", f"subprocess tick exited {proc.returncode}: "
                         f"{stderr.strip()[-300:]}")
        return None

    def _marked_not_recorded(self) -> set[str]:
        return {r["message_id"] for r in query_rows(
            self.state, "SELECT message_id FROM queue_items WHERE handover_begun = ?"
            " AND status = 'queued'", (handover_started(self.state),))}

    def _check_clean(self, shown: str, result: Result) -> None:
        """A command exits 0, 1 (refused) or 3 (not found) with one error line: never a
        traceback, an internal error or a state file problem."""
        text = result.stderr
        if result.code in (0, 1, 3) and "Traceback" not in text and "internal error" not in text:
            return
        self.violate("check_cli_clean", f"`campctl {shown}` exited {result.code}: "
                     f"{text.strip()[-300:]}")

    def quiet(self, *args: str) -> Result:
        """A read-only command of the observation (not part of the transcript)."""
        argv = ["--state", str(self.state), "--now", iso(self.now), *map(str, args)]
        runner = CliRunner()
        with runner.isolation(env={"CAMPCTL_USER": "model"}) as streams:
            code = main(argv)
            sys.stdout.flush()
            result = Result(code, streams[0].getvalue().decode(), streams[1].getvalue().decode())
        if code != 0:
            self.violate("check_cli_clean", f"`campctl {' '.join(args)}` exited {code}: "
                         f"{result.stderr.strip()[-300:]}")
        return result

    def violate(self, check: str, text: str) -> None:
        """Record a violation once (a state that stays wrong is reported at its first step)."""
        if (check, text) in self._seen_violations:
            return
        self._seen_violations.add((check, text))
        self.violations[check].append(f"step {self.step} ({iso(self.now)}): {text}")

    # --- the model follows every accepted command ----------------------------------------------

    def _after(self, words: list[str], args: tuple[str, ...], pre: Snapshot | None) -> None:
        m = self.model
        verb, kind = words[0], (words[1] if len(words) > 1 else "")
        target = words[2] if len(words) > 2 else ""
        label = " ".join(words[:3])
        if kind == "run" and pre is not None:
            run = int(target)
            if verb == "pause":
                m.run_paused[run] = self.step
            elif verb in ("resume", "stop"):
                if verb == "stop":
                    m.run_stopped[run] = self.step
                started = m.run_paused.pop(run, None)
                if started is not None:
                    m.run_pauses.append((run, started, self.step))
            elif verb in ("restart", "skip"):
                instance = pre.runs[run]["instance_id"]
                if instance in m.instance_cancelled:
                    self.violate("check_stopping", f"`{verb} run {run}` was accepted although "
                                 f"its plan instance {instance} was stopped by the operator at "
                                 f"step {m.instance_cancelled[instance]}")
        elif (kind == "instance" or (kind == "plan" and "--current" in args)) and pre:
            if verb == "pause":
                m.instance_paused[int(target)] = self.step
            elif verb == "resume":
                started = m.instance_paused.pop(int(target), None)
                if started is not None:
                    m.instance_pauses.append((int(target), started, self.step))
            elif verb == "stop":
                for iid, row in snapshot(self.state).instances.items():
                    was = pre.instances.get(iid, {}).get("status")
                    if row["status"] == "cancelled" and was != "cancelled":
                        m.instance_cancelled[iid] = self.step
                        started = m.instance_paused.pop(iid, None)
                        if started is not None:
                            m.instance_pauses.append((iid, started, self.step))
        elif kind == "plan":
            if verb == "stop":
                m.plan_stopped_at = self.step
            elif verb == "approve":
                m.plan_stopped_at = None
        elif kind == "campaign" and pre is not None:
            if verb == "stop":
                m.campaign_stopped.setdefault(target, (self.step, max(pre.runs, default=0)))
            elif verb in ("approve", "start"):
                # Approved again (or launched again): the operator wants it to run.
                m.campaign_stopped.pop(target, None)
        elif kind == "scenario" and pre is not None:
            profiles = [p for p in pre.profiles.values() if p["scenario"] == target]
            if verb == "activate" and m.active_since.get(target) is None:
                m.active_since[target] = self.now
            elif verb == "deactivate" and m.active_since.get(target) is not None:
                m.active_intervals[target].append((m.active_since[target], self.now))  # type: ignore[arg-type]
                m.active_since[target] = None
                self._halt([p for p in profiles if p["status"] in INSIDE], label)
            elif verb == "clear":
                self.step_removed = True
                self._halt(profiles, label)
            elif verb == "remove-profile":
                self.step_removed = True
                after = snapshot(self.state).profiles
                self._halt([p for p in profiles if p["id"] not in after
                            or self._identity(after[p["id"]]) != self._identity(p)], label)
        elif kind == "launch" and verb == "stop" and pre is not None:
            self._halt([p for p in pre.profiles.values()
                        if p["launch_id"] == int(target) and p["status"] in INSIDE], label)

    def _halt(self, profiles: list[dict], label: str) -> None:
        for p in profiles:
            self.model.halted_profiles.setdefault(self._identity(p), (self.step, label))

    # --- setup -------------------------------------------------------------------------------

    def setup(self) -> None:
        self._current = Step(0, "setup")
        self.transcript.append(self._current)
        csv = self.write_file("contacts.csv", "id,email,first_name\n" + "".join(
            f"{c},{c}@example.com,N{c}\n" for c in CONTACTS))
        self.write_defs(self._versions)
        for args in (("init",), ("contacts", "import", csv), ("apply", WORKDIR + "defs")):
            self._must(*args)
        for name in CAMPAIGNS:
            for verb in ("submit", "approve", "start"):
                self._must(verb, "campaign", name)
        self._must("submit", "plan", PLAN)
        self._must("approve", "plan", PLAN)
        for name in SCENARIOS:
            self._must("activate", "scenario", name)
        self._observe()

    def _must(self, *args: str) -> Result:
        result = self.cli(*args)
        if result.code != 0:
            raise RuntimeError(f"setup command {args} failed: {result}")
        return result

    # --- steps ---------------------------------------------------------------------------------

    def actions(self) -> list[tuple[int, Callable[[], None]]]:
        return [
            (14, self.act_tick), (12, self.act_advance), (3, self.act_crash_tick),
            (8, self.act_run_verb), (5, self.act_instance_verb), (4, self.act_start_plan),
            (1, self.act_plan_workflow), (2, self.act_campaign_workflow), (1, self.act_relaunch),
            (1, self.act_apply), (3, self.act_event), (1, self.act_scenario_activation),
            (1, self.act_clear), (1, self.act_remove_profile), (2, self.act_launch),
            (1, self.act_stop_launch),
        ]

    def run(self) -> Episode:
        with HookReceiver() as hook:
            self.hook = hook
            self.setup()
            table = self.actions()
            weights = [w for w, _ in table]
            for index in range(self.max_steps):
                self.step += 1
                hook.step, hook.now = self.step, self.now
                self.step_ticked = self.step_removed = False
                before = self.snap
                if self.script is not None:
                    kind, ops = self.script[index]
                    self._current = Step(self.step, kind)
                    self.transcript.append(self._current)
                    self._replay(ops)
                else:
                    (action,) = self.rng.choices([a for _, a in table], weights)
                    self._current = Step(self.step, action.__name__)
                    self.transcript.append(self._current)
                    action()
                self._observe(before)
                self.steps_run += 1
            self.hook = None
        return self

    def _replay(self, ops: list[tuple]) -> None:
        for op in ops:
            if op[0] == "cli":
                self.cli(*op[1])
            elif op[0] == "advance":
                self.advance(op[1])
            elif op[0] == "file":
                self.write_file(op[1], op[2])
            elif op[0] == "defs":
                self.write_defs(op[1])
            elif op[0] == "crash":
                self.crash_tick(op[1])

    def script_of(self, upto: int | None = None) -> list[tuple[str, list[tuple]]]:
        """The steps taken (after setup), replayable with `Episode(..., script=...)`."""
        steps = self.transcript[1:] if upto is None else self.transcript[1:upto + 1]
        return [(s.kind, list(s.ops)) for s in steps]

    def _pick(self, values: list) -> Any:
        return self.rng.choice(values) if values else None

    def act_tick(self) -> None:
        args = ["-o", "json", "tick"]
        if self.rng.random() < 0.5:
            args += ["--max-messages", str(self.rng.randint(1, 4))]
        self.cli(*args)

    def act_advance(self) -> None:
        self.advance(self.rng.choice([1, 3, 6, 20, 45, 90, 180]))

    def act_crash_tick(self) -> None:
        if not self.allow_kills:
            return self.act_tick()
        key = self.crash_tick(self.rng.randint(1, 3))
        runs = [a.body.get("run") for a in self.hook.arrivals if a.key == key]  # type: ignore[union-attr]
        if key and runs and runs[-1] is not None and self.rng.random() < 0.6:
            # The operator reacts at once: stop the run whose message was in flight, then
            # restart or skip it (the seam between a crash and an operator verb).
            run = str(runs[-1])
            self.cli("stop", "run", run, "--note", "model")
            follow = self.rng.choice(["restart", "restart", "skip", None])
            if follow:
                self.cli(follow, "run", run, "--note", "model")
        return None

    def act_run_verb(self) -> None:
        snap = self.snap
        assert snap is not None
        live = sorted(r for r, row in snap.runs.items() if row["status"] in LIVE_RUN)
        run = self._pick(live if live and self.rng.random() < 0.75 else sorted(snap.runs))
        if run is None:
            return
        status = snap.runs[run]["status"]
        # Mostly verbs that apply to the run's status, sometimes one that must be refused.
        verbs = {"paused": ["resume", "resume", "stop", "restart"],
                 "stopped": ["restart", "restart", "skip", "resume"],
                 "failed": ["restart", "skip", "pause"]}.get(
            status, ["pause", "pause", "stop", "stop", "restart", "skip", "resume"])
        verb = self.rng.choice(verbs)
        note = ["--note", "model"] if verb in ("stop", "restart", "skip") else []
        self.cli(verb, "run", str(run), *note)

    def act_instance_verb(self) -> None:
        snap = self.snap
        assert snap is not None
        live = sorted(i for i, row in snap.instances.items()
                      if row["status"] in ("running", "paused"))
        instance = self._pick(live if live and self.rng.random() < 0.8 else sorted(snap.instances))
        status = snap.instances[instance]["status"] if instance is not None else None
        verbs = {"paused": ["resume", "resume", "stop", "stop-current"],
                 "running": ["pause", "pause", "stop", "stop-current", "resume"]}.get(
            str(status), ["pause", "stop", "stop-current"])
        verb = self.rng.choice(verbs)
        if verb == "stop-current":
            self.cli("stop", "plan", PLAN, "--current", "--note", "model")
        elif instance is not None:
            note = ["--note", "model"] if verb == "stop" else []
            self.cli(verb, "instance", str(instance), *note)

    def act_start_plan(self) -> None:
        """Start Now; sometimes pause the new instance at once, before any tick."""
        result = self.cli("-o", "json", "start", "plan", PLAN, "--note", "model")
        if result.code == 0 and self.rng.random() < 0.4:
            self.cli("pause", "instance", str(result.json()["id"]))

    def act_plan_workflow(self) -> None:
        """Stop the plan, or take it back to draft and through approval (or a denial) again."""
        form = self.rng.choice(["stop", "again", "denied-then-again"])
        verbs = {"stop": ["stop"], "again": ["revise", "submit", "approve"],
                 "denied-then-again": ["revise", "submit", "deny", "revise", "submit",
                                       "approve"]}[form]
        for verb in verbs:
            self.cli(verb, "plan", PLAN, "--note", "model")

    def act_campaign_workflow(self) -> None:
        """One business verb on a campaign, or a denial and a second approval."""
        name = self.rng.choice(CAMPAIGNS)
        form = self.rng.choice(["stop", "submit", "approve", "start", "denied-then-again"])
        verbs = ["revise", "submit", "deny", "revise", "submit", "approve", "start"] \
            if form == "denied-then-again" else [form]
        for verb in verbs:
            self.cli(verb, "campaign", name, *([] if verb == "start" else ["--note", "model"]))

    def act_relaunch(self) -> None:
        """Stop, revise, change, approve and start a campaign again: a new launch."""
        name = self.rng.choice(CAMPAIGNS)
        for verb in ("stop", "revise"):
            self.cli(verb, "campaign", name, "--note", "model")
        self.write_defs({**self._versions, name: self._versions[name] + 1})
        self.cli("apply", f"{WORKDIR}defs/{name}.yaml")
        for verb in ("submit", "approve", "start"):
            self.cli(verb, "campaign", name, *([] if verb == "start" else ["--note", "model"]))

    def act_apply(self) -> None:
        self.cli("apply", WORKDIR + "defs")

    def act_event(self) -> None:
        contact = self.rng.choice(CONTACTS)
        when = self.rng.choice(["now", "now", "past", "future"])
        if when == "now":
            self.cli("events", "emit", "signup", "--contact", contact)
            return
        at = self.now + (timedelta(days=-30) if when == "past" else timedelta(hours=3))
        line = json.dumps({"event": "signup", "contact": contact, "at": iso(at)})
        self.cli("events", "import", self.write_file(f"events-{self.step}.jsonl", line + "\n"))

    def act_scenario_activation(self) -> None:
        self.cli(self.rng.choice(["activate", "deactivate"]), "scenario",
                 self.rng.choice(SCENARIOS))

    def act_clear(self) -> None:
        self.cli("clear", "scenario", self.rng.choice(SCENARIOS), "--note", "model")

    def act_remove_profile(self) -> None:
        self.cli("remove-profile", "scenario", self.rng.choice(SCENARIOS),
                 self.rng.choice(CONTACTS), "--note", "model")

    def act_launch(self) -> None:
        args = ["start", "scenario", "tour", "--yes"]
        args += ["--all"] if self.rng.random() < 0.5 else ["--contact", self.rng.choice(CONTACTS)]
        self.cli(*args)

    def act_stop_launch(self) -> None:
        snap = self.snap
        assert snap is not None
        launch = self._pick(sorted({p["launch_id"] for p in snap.profiles.values()
                                    if p["launch_id"]}))
        if launch is not None:
            self.cli("stop", "launch", str(launch), "--note", "model")

    # --- observation ---------------------------------------------------------------------------

    @staticmethod
    def _profile_of(key: str, snap: Snapshot) -> int | None:
        """The profile a scenario message belongs to: its queue item's, else the number in a
        `scn-<profile>-<step>-<visit>` id."""
        item = snap.items.get(key)
        if item is not None:
            return item["profile_id"]
        match = SCENARIO_KEY.match(key)
        return int(match.group(1)) if match else None

    @staticmethod
    def _identity(profile: dict) -> Identity:
        return (profile["id"], profile["scenario"], profile["contact_id"],
                str(profile["capture_key"]))

    def _new_arrivals(self) -> list[Arrival]:
        assert self.hook is not None
        fresh = list(self.hook.arrivals[self._hook_seen:])
        self._hook_seen += len(fresh)
        jsonl = self.workdir / "jsonl" / "box.jsonl"
        if jsonl.exists():
            lines = jsonl.read_text().splitlines()
            for line in lines[self._jsonl_lines:]:
                body = json.loads(line)
                fresh.append(Arrival(str(body.get("message_id")), "box", body, self.step,
                                     self.now))
            self._jsonl_lines = len(lines)
        return fresh

    def _observe(self, before: Snapshot | None = None) -> None:
        fresh = self._new_arrivals()
        snap = snapshot(self.state)
        self.snap = snap
        for pid, p in snap.profiles.items():
            ident = self._identity(p)
            self._identities[pid] = ident
            self._identity_launch.setdefault(ident, p["launch_id"])
        for arrival in fresh:
            profile = self._profile_of(arrival.key, snap)
            if profile is not None and profile in snap.profiles:
                self._identity_of_key.setdefault(arrival.key, self._identities[profile])
        self.arrivals.extend(fresh)
        figures = {
            "runs": {r["id"]: r for r in self.quiet("-o", "json", "get", "runs").json()},
            "launches": {r["id"]: r for r in self.quiet("-o", "json", "get", "launches").json()},
            "stats": {n: self.quiet("-o", "json", "stats", "scenario", n, "--since",
                                    "52w").json() for n in SCENARIOS},
            "steps": {n: {s["step"]: s for s in self.quiet(
                "-o", "json", "describe", "scenario", n).json()["steps"]} for n in SCENARIOS},
        }
        previous, self.figures = self.figures, figures
        for check in CHECKS:
            check(self, fresh, before, previous)

    # --- reporting -------------------------------------------------------------------------------

    def total_violations(self) -> int:
        return sum(len(v) for v in self.violations.values())

    def reproduction(self, upto: int | None = None, *, setup: bool = False,
                     refused: bool = False) -> str:
        """The command lines up to step `upto`, run from the episode's folder (definitions as
        written by `definitions()`); without `setup`, the setup is summed up in one line;
        without `refused`, commands that were refused (exit 1 or 3, nothing changed) are left
        out."""
        lines = [f"# seed {self.seed}: contacts {', '.join(CONTACTS)}; defs/ as in "
                 "tests/model/model_support.py definitions()"]
        if not setup:
            lines.append("# setup: init, contacts import, apply defs, submit/approve/start "
                         "flash, daily, nudge; submit/approve plan duo; activate welcome, tour")
        for step in self.transcript[: (upto + 1) if upto is not None else None]:
            if step.number == 0 and not setup:
                continue
            for text, code in step.lines:
                if code in (1, 3) and not refused:
                    continue
                lines.append(f"{step.number:3d} {text}" + ("" if code is None else
                                                            f"   # exit {code}"))
        return "\n".join(lines)


# --- the checks ----------------------------------------------------------------------------------
# Each takes the episode, the arrivals of the step just taken, the snapshot before it and the
# figures before it; it reports through `episode.violate(name, text)`.

def _campaign_arrivals(fresh: list[Arrival]) -> list[Arrival]:
    return [a for a in fresh if a.body.get("run") is not None]


def check_closing(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                  figures: dict) -> None:
    """No message of a campaign is handed over after its `closes_at`, whatever drives the run."""
    for a in _campaign_arrivals(fresh):
        closes = CLOSES.get(str(a.body.get("campaign")))
        if closes is not None and a.now > closes:
            run = ep.snap.runs.get(a.body["run"], {}) if ep.snap else {}
            ep.violate("check_closing", f"{a.key} of campaign {a.body['campaign']} (run "
                       f"{a.body['run']}, instance {run.get('instance_id')}, restart_of "
                       f"{run.get('restart_of')}) handed over at {iso(a.now)}, after its "
                       f"closes_at {iso(closes)}")


def check_stopping(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                   figures: dict) -> None:
    """Nothing arrives for a stopped run, a cancelled instance, a stopped launch, a deactivated
    scenario's exited profiles or a removed profile after the verb returned; no new run of a
    stopped campaign and no new instance of a stopped plan."""
    m, snap = ep.model, ep.snap
    assert snap is not None
    for a in fresh:
        run = a.body.get("run")
        if run is not None:
            stopped = m.run_stopped.get(run)
            if stopped is not None and a.step > stopped:
                ep.violate("check_stopping", f"{a.key} of run {run} arrived after `stop run "
                           f"{run}` at step {stopped}")
            instance = snap.runs.get(run, {}).get("instance_id")
            cancelled = m.instance_cancelled.get(instance) if instance else None
            if cancelled is not None and a.step > cancelled:
                ep.violate("check_stopping", f"{a.key} of run {run} arrived after its plan "
                           f"instance {instance} was stopped at step {cancelled}")
            continue
        if not a.body.get("scenario"):
            continue
        ident = ep._identity_of_key.get(a.key)
        if ident is None:
            ep.violate("check_stopping", f"{a.key} arrived for profile "
                       f"{ep._profile_of(a.key, snap)}, which no longer exists (removed by "
                       f"clear/remove-profile)")
            continue
        halted = m.halted_profiles.get(ident)
        if halted is not None and a.step > halted[0]:
            ep.violate("check_stopping", f"{a.key} (contact {a.body.get('contact')}) arrived "
                       f"after its profile was halted by {halted[1]} at step {halted[0]}")
    if before is None:
        return
    for rid, run in snap.runs.items():
        if rid in before.runs:
            continue
        stopped = m.campaign_stopped.get(run["campaign"])
        if stopped is not None and rid > stopped[1] and run["restart_of"] is None:
            ep.violate("check_stopping", f"run {rid} of campaign {run['campaign']} (stage "
                       f"{run['stage']}, instance {run['instance_id']}) was created after "
                       f"`stop campaign {run['campaign']}` at step {stopped[0]}")
    for iid, instance in snap.instances.items():
        if iid not in before.instances and m.plan_stopped_at is not None:
            ep.violate("check_stopping", f"instance {iid} of plan {instance['plan']} was "
                       f"created after `stop plan` at step {m.plan_stopped_at}")


def check_queued_items_live(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                            figures: dict) -> None:
    """Every queued item belongs to a live run or to a profile still in its journey (also
    after a tick died holding claims: the verb that ended the run cancels them, or the first
    tick after their claim expired does)."""
    snap = ep.snap
    assert snap is not None
    ticked = ep.step_ticked
    for key, item in snap.items.items():
        if item["status"] != "queued" or key in ep._item_reported:
            continue
        claim = item["claimed_until"]
        if claim is not None and (not ticked or parse(claim) > ep.now):
            continue
        if item["run_id"] is not None:
            run = snap.runs.get(item["run_id"])
            if run is None or run["status"] not in LIVE_RUN:
                ep._item_reported.add(key)
                ep.violate("check_queued_items_live", f"item {key} is queued on run "
                           f"{item['run_id']}, which is {run and run['status']}")
        elif item["profile_id"] is not None:
            profile = snap.profiles.get(item["profile_id"])
            if profile is None or profile["status"] in ("exited", "abandoned"):
                ep._item_reported.add(key)
                ep.violate("check_queued_items_live", f"item {key} is queued for profile "
                           f"{item['profile_id']}, which is "
                           f"{profile['status'] if profile else 'removed'}")


def _kill_allowance(ep: Episode) -> Counter:
    return Counter(key for _, key in ep.model.kills)


def check_message_ids(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                      figures: dict) -> None:
    """A message id names one message for the life of the state file: it arrives once (again
    only after a kill, with the same key, once per kill), is never given to another contact or
    another queue item, and a new profile's message is never swallowed by an old one's id."""
    counts = Counter(a.key for a in ep.arrivals)
    allowance = _kill_allowance(ep)
    first: dict[str, Arrival] = {}
    for a in ep.arrivals:
        first.setdefault(a.key, a)
    for a in fresh:
        if counts[a.key] > 1 + allowance[a.key]:
            earlier = first[a.key]
            ep.violate("check_message_ids", f"{a.key} arrived {counts[a.key]} times (kills "
                       f"with it in flight: {allowance[a.key]}); first at step {earlier.step} "
                       f"for contact {earlier.body.get('contact')}, again for contact "
                       f"{a.body.get('contact')} via {a.channel}")
        earlier = first[a.key]
        if earlier is not a and (earlier.body.get("contact"), earlier.body.get("subject")) != (
                a.body.get("contact"), a.body.get("subject")):
            ep.violate("check_message_ids", f"{a.key} carried two different messages: "
                       f"{earlier.body.get('contact')}/{earlier.body.get('subject')!r} and "
                       f"{a.body.get('contact')}/{a.body.get('subject')!r}")
    snap = ep.snap
    assert snap is not None
    for key, item in snap.items.items():
        # A restart may take over an item's id for the same contact (same message, same key).
        identity = ("run", _chain_root(snap.runs, item["run_id"]), item["contact_id"]) \
            if item["run_id"] is not None else \
            ("scenario", item["scenario"], item["step"], item["contact_id"], item["created_at"])
        known = ep._item_first.setdefault(key, identity)
        if known != identity:
            ep.violate("check_message_ids", f"message id {key} was reused: {known} then "
                       f"{identity}")
            ep._item_first[key] = identity
    by_profile: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for item in snap.items.values():
        if item["profile_id"] is not None:
            by_profile[(item["profile_id"], item["step"])].append(item)
    for pid, p in snap.profiles.items():
        if p["status"] != "completed":
            continue
        for step in SEND_STEPS.get(p["scenario"], ()):
            own = [i for i in by_profile.get((pid, step), [])
                   if i["contact_id"] == p["contact_id"] and i["scenario"] == p["scenario"]
                   and i["created_at"] >= p["entered_at"]]
            if not own:
                ep.violate("check_message_ids", f"profile {pid} ({p['scenario']}, contact "
                           f"{snap.contacts.get(p['contact_id'])}, entered {p['entered_at']}) "
                           f"completed without its own '{step}' message: its id was taken by "
                           f"an earlier message")


def _chain_root(runs: dict[int, dict], run: int) -> int:
    seen = set()
    while runs.get(run, {}).get("restart_of") is not None and run not in seen:
        seen.add(run)
        run = runs[run]["restart_of"]
    return run


def check_no_true_duplicates(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                             figures: dict) -> None:
    """A contact gets at most one message per run chain (a run and its restarts), so a
    restart never sends under a new key what may already have been handed over."""
    snap = ep.snap
    assert snap is not None
    keys: dict[tuple[int, str], set[str]] = defaultdict(set)
    for a in _campaign_arrivals(ep.arrivals):
        keys[(_chain_root(snap.runs, a.body["run"]), str(a.body.get("contact")))].add(a.key)
    fresh_roots = {(_chain_root(snap.runs, a.body["run"]), str(a.body.get("contact")))
                   for a in _campaign_arrivals(fresh)}
    for root_contact in fresh_roots:
        if len(keys[root_contact]) > 1:
            ep.violate("check_no_true_duplicates", f"contact {root_contact[1]} got "
                       f"{len(keys[root_contact])} messages in the run chain of run "
                       f"{root_contact[0]}: {sorted(keys[root_contact])}")


def _intervals(m: Model, kind: str, ident: int) -> list[tuple[int, int | None]]:
    if kind == "run":
        spans = [(s, e) for r, s, e in m.run_pauses if r == ident]
        if ident in m.run_paused:
            spans.append((m.run_paused[ident], None))
    else:
        spans = [(s, e) for i, s, e in m.instance_pauses if i == ident]
        if ident in m.instance_paused:
            spans.append((m.instance_paused[ident], None))
    return spans


def check_pause(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                figures: dict) -> None:
    """Nothing of a paused run or instance is handed over while paused; building goes on."""
    m, snap = ep.model, ep.snap
    assert snap is not None
    for a in _campaign_arrivals(fresh):
        run = a.body["run"]
        for start, end in _intervals(m, "run", run):
            if start < a.step and (end is None or a.step < end):
                ep.violate("check_pause", f"{a.key} of run {run} arrived while the run was "
                           f"paused (since step {start})")
        instance = snap.runs.get(run, {}).get("instance_id")
        if instance:
            for start, end in _intervals(m, "instance", instance):
                if start < a.step and (end is None or a.step < end):
                    ep.violate("check_pause", f"{a.key} of run {run} arrived while instance "
                               f"{instance} was paused (since step {start})")
    if not ep.step_ticked:
        return
    for rid, run in snap.runs.items():
        if ep.now > CLOSES.get(run["campaign"], ep.now):
            continue  # closing, not pausing, decides about a closed campaign's runs
        held = run["status"] == "paused" or (
            run["instance_id"] in m.instance_paused and run["status"] in LIVE_RUN)
        due = run["queue_at"] or run["scheduled_at"]
        if held and run["built_at"] is None and due and parse(due) <= ep.now:
            ep.violate("check_pause", f"run {rid} ({run['campaign']}/{run['stage']}, status "
                       f"{run['status']}, paused_from {run['paused_from']}) is held by a pause "
                       f"and was not built although its queue time {due} has passed")


def check_counts(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                 figures: dict) -> None:
    """Run `sent`, launch `success` and scenario step `sent` equal the messages that arrived
    (a message in flight at a kill may be counted or not until it is re-sent)."""
    in_doubt = {key for _, key in ep.model.kills}
    arrived: dict[int, set[str]] = defaultdict(set)
    by_step: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a in ep.arrivals:
        if a.body.get("run") is not None:
            arrived[a.body["run"]].add(a.key)
        elif a.body.get("scenario"):
            by_step[(a.body["scenario"], str(a.body.get("step")))].add(a.key)
    for rid, row in ep.figures["runs"].items():
        keys = arrived.get(rid, set())
        low = len(keys - in_doubt)
        if not low <= row["sent"] <= len(keys):
            ep.violate("check_counts", f"run {rid} ({row['campaign']}/{row['stage']}, "
                       f"{row['status']}) says sent {row['sent']}, {len(keys)} arrived")
    for name in SCENARIOS:
        for step in SEND_STEPS[name]:
            keys = by_step.get((name, step), set())
            sent = ep.figures["steps"][name].get(step, {}).get("sent", 0)
            if not len(keys - in_doubt) <= sent <= len(keys):
                ep.violate("check_counts", f"describe scenario {name}: step {step} says sent "
                           f"{sent}, {len(keys)} arrived")
    # A launch's success: its profiles that got both tour messages. A launch may count the
    # messages of the latest tick at the next one, so those are only an upper bound.
    got: dict[Identity, set[str]] = defaultdict(set)
    doubtful: dict[Identity, set[str]] = defaultdict(set)
    for a in ep.arrivals:
        ident = ep._identity_of_key.get(a.key)
        if ident is None or ident[1] != "tour":
            continue
        settled = a.key not in in_doubt and a.step < ep.last_tick_step
        (got if settled else doubtful)[ident].add(str(a.body.get("step")))
    for lid, row in ep.figures["launches"].items():
        idents = [i for i, launch in ep._identity_launch.items() if launch == lid]
        low = sum(1 for i in idents if got[i] >= set(SEND_STEPS["tour"]))
        high = sum(1 for i in idents if got[i] | doubtful[i] >= set(SEND_STEPS["tour"]))
        if not low <= row["success"] <= high:
            ep.violate("check_counts", f"launch {lid} says success {row['success']}, but "
                       f"{low}..{high} of its profiles got every message")


def check_history(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                  figures: dict) -> None:
    """clear / remove-profile never change past statistics or launch results; counts of the
    past never go down."""
    if not figures:
        return
    removal = ep.step_removed
    kind = "clear/remove-profile" if removal else "other"
    for name in SCENARIOS:
        old, new = figures["stats"][name], ep.figures["stats"][name]
        for key in ("entered", "completed"):
            if new[key] < old[key] or (removal and new[key] != old[key]):
                ep.violate("check_history", f"stats scenario {name}: {key} went from "
                           f"{old[key]} to {new[key]} at a {kind} step")
        for step in SEND_STEPS[name]:
            was = figures["steps"][name].get(step, {}).get("sent", 0)
            now = ep.figures["steps"][name].get(step, {}).get("sent", 0)
            if now < was:
                ep.violate("check_history", f"describe scenario {name}: step {step} sent went "
                           f"from {was} to {now} at a {kind} step")
    for lid, old in figures["launches"].items():
        new = ep.figures["launches"].get(lid)
        if new is None:
            ep.violate("check_history", f"launch {lid} disappeared at a {kind} step")
            continue
        if removal:
            # Results of profiles that had left stay; only profiles still inside get one.
            final = ("success", "failure", "abandoned", "other")
            gained = sum(new[f] - old[f] for f in final)
            if (new["targeted"] != old["targeted"] or any(new[f] < old[f] for f in final)
                    or gained > old.get("inside", 0) - new.get("inside", 0)):
                changed = {f: (old[f], new[f]) for f in ("targeted", *final, "inside")
                           if old.get(f) != new.get(f)}
                ep.violate("check_history", f"launch {lid} results changed by {kind}: "
                           f"{changed}")
        elif new["success"] < old["success"]:
            ep.violate("check_history", f"launch {lid} success went from {old['success']} to "
                       f"{new['success']}")


def _falls_within(at: datetime, spans: list[tuple[datetime, datetime | None]],
                  now: datetime) -> bool:
    return at <= now and any(s <= at and (e is None or at < e) for s, e in spans)


def check_event_time(ep: Episode, fresh: list[Arrival], before: Snapshot | None,
                     figures: dict) -> None:
    """A scenario captures only events whose `at` falls while it is active, and not before
    that instant has come."""
    snap = ep.snap
    assert snap is not None
    m = ep.model
    known = before.profiles if before else {}
    for pid, p in snap.profiles.items():
        if p["scenario"] != "welcome" or p["launch_id"] is not None:
            continue
        if pid in known and ep._identity(known[pid]) == ep._identity(p):
            continue
        spans = list(m.active_intervals["welcome"])
        if m.active_since.get("welcome") is not None:
            spans.append((m.active_since["welcome"], None))  # type: ignore[arg-type]
        key = str(p["capture_key"] or "")
        candidates = []
        if key.startswith("e:") and key[2:].isdigit() and int(key[2:]) in snap.events:
            candidates = [snap.events[int(key[2:])]]
        else:
            contact = snap.contacts.get(p["contact_id"])
            candidates = [e for e in snap.events.values()
                          if e["name"] == "signup" and e["contact"] == contact]

        if not any(_falls_within(parse(e["at"]), spans, ep.now) for e in candidates):
            shown = ", ".join(f"event {e['id']} at {e['at']} recorded {e['recorded_at']}"
                              for e in candidates) or "no event"
            ep.violate("check_event_time", f"profile {pid} of welcome (contact "
                       f"{snap.contacts.get(p['contact_id'])}) captured at {iso(ep.now)} from "
                       f"{shown}; active spans "
                       + "; ".join(f"{iso(s)}..{iso(e) if e else 'now'}" for s, e in spans))


CHECKS: list[Callable[[Episode, list[Arrival], Snapshot | None, dict], None]] = [
    check_closing, check_stopping, check_queued_items_live, check_message_ids,
    check_no_true_duplicates, check_pause, check_counts, check_history, check_event_time,
]
CHECK_NAMES = ["check_cli_clean", *(c.__name__ for c in CHECKS)]
