"""SIGKILL chaos over a mixed workload, as figures.

`measure(workdir, size=..., store=None)` sets up one state (a SQLite file in `workdir`, or, with
`store` the URL of a PostgreSQL database, a schema of its own there) with three channels (the
outbox with a JSONL copy in `workdir`, SMTP to a real SmtpReceiver, a webhook to a real
WebhookReceiver on 127.0.0.1) and a mixed workload: an hourly date-triggered campaign (SMTP), a
recurrent two-stage plan (webhook, then outbox), an event-captured scenario (webhook, wait, SMTP)
fed with events every step, and a manual scenario launched twice (outbox, wait, webhook). A
simulated clock moves 10–30 minutes per step; at each step `campctl tick` runs in a subprocess and
is SIGKILLed after a seeded random delay drawn in [0, the measured length of a tick], so kills land
during start-up, firing, building, claiming, hand-over and recording. After every kill: `PRAGMA
integrity_check` is ok (SQLite) and every run's queue is all-or-nothing. Then the recurring sources
are stopped and ticks without kills finish the work. At the end everything is counted at the
servers, the outbox table and its JSONL file, and every state in the store is audited against its
history / log rows.

Figures: kills, ticks, messages (by channel), duplicates (a second message id for one
recipient of one run or scenario step), resent_after_kill (the same key again after a kill
between hand-over and the commit that records it: allowed, receivers deduplicate by the key),
lost, integrity_failures (SQLite only), partial_queues, changes_without_history, seconds, ok.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from receivers import SmtpReceiver, WebhookReceiver
from workload_support import (
    campctl_argv,
    clean_env,
    drop_state,
    integrity_ok,
    query,
    run_campctl,
    run_in_process,
    state_in,
)
from workload_support import iso as _iso

SIZES = {
    "small": {"kills": 12, "contacts": 40},
    "full": {"kills": 200, "contacts": 60},
}
T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
EVENTS_PER_STEP = 2
FINISH_TICKS_MAX = 40
PLAN_CRON = "0 */3 * * *"
RECENT_TICKS = 5  # the kill range is the longest of the last RECENT_TICKS unkilled ticks


def _key(message_id_header: str) -> str:
    """The message id of an SMTP Message-ID header (`<ID@campctl>`)."""
    return message_id_header.strip().strip("<>").removesuffix("@campctl")


def _tune_server(hook: WebhookReceiver) -> None:
    """Answer without Nagle's delay (http.server writes headers and body separately, and the
    client's delayed ACK then costs 40 ms per request), and do not print the traceback of a
    connection reset by a killed tick (anything else is still printed)."""
    server = hook._server
    server.RequestHandlerClass.disable_nagle_algorithm = True
    default = server.handle_error

    def handle_error(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            default(request, client_address)

    server.handle_error = handle_error


def _env() -> dict[str, str]:
    return clean_env("chaos")


_cmd = campctl_argv
_query = query


def _must(state: Path, now: datetime, *args: str) -> subprocess.CompletedProcess:
    return run_campctl(state, now, *args, env=_env())


def _operate(state: Path | str, now: datetime, *args: str) -> None:
    """An operator command between ticks, in this process (no tick runs meanwhile)."""
    run_in_process(state, now, *args, user="chaos")


DEFINITIONS = """\
kind: Channel
name: box
type: outbox
dir: {outbox_dir}
---
kind: Channel
name: mail
type: smtp
host: 127.0.0.1
port: {smtp_port}
starttls: false
from: "Chaos <chaos@example.org>"
connections: 1
---
kind: Channel
name: hook
type: webhook
url: {hook_url}
timeout: 10
connections: 1
---
kind: Campaign
name: hourly
timezone: UTC
closes_at: 2028-12-31T23:59
channel: mail
message_type: newsletter
audience: {{all: true}}
message: {{subject: "Hourly for {{{{ first_name }}}}", body: "Hello {{{{ first_name }}}}"}}
type: date-triggered
schedule: {{start: immediately, cron: "0 * * * *", catchup: all}}
---
kind: Campaign
name: staged
timezone: UTC
closes_at: 2028-12-31T23:59
channel: box
message_type: promotional
audience: {{all: true}}
message: {{subject: "Main for {{{{ first_name }}}}", body: "Everyone"}}
type: one-off
stages:
  - {{name: teaser, controlled_by_plan: true, channel: hook, audience: {{groups: [vip]}},
     message: {{subject: "Teaser for {{{{ first_name }}}}", body: "Soon"}}}}
  - {{name: main, controlled_by_plan: true}}
---
kind: Plan
name: two-step
transition: sent
schedule: {{type: recurrent, cron: "{plan_cron}", timezone: UTC, overlap: skip, catchup: all}}
stages:
  - {{campaign: staged, stage: teaser}}
  - {{campaign: staged, stage: main}}
---
kind: Scenario
name: journey
reentry: parallel
launch: {{type: event, event: signed_up}}
steps:
  - id: welcome
    send: {{channel: hook, message_type: transactional, subject: "Welcome {{{{ first_name }}}}",
           body: "Hi"}}
  - id: pause
    wait: 1h
  - id: follow
    send: {{channel: mail, message_type: transactional, subject: "Still there?", body: "Hey"}}
---
kind: Scenario
name: care
reentry: parallel
launch: {{type: manual}}
steps:
  - id: apology
    send: {{channel: box, message_type: service, subject: "Sorry {{{{ first_name }}}}", body: "x"}}
  - id: wait
    wait: 2h
  - id: check
    send: {{channel: hook, message_type: service, subject: "Better?", body: "y"}}
"""


def _setup(workdir: Path, state: Path, smtp: SmtpReceiver, hook: WebhookReceiver,
           contacts: int) -> None:
    csv = workdir / "contacts.csv"
    csv.write_text("id,email,first_name,groups\n" + "".join(
        f"c{i:04d},c{i:04d}@example.org,N{i},{'vip' if i % 4 == 0 else 'basic'}\n"
        for i in range(contacts)))
    definitions = workdir / "chaos.yaml"
    # An absolute folder: a relative `dir:` is anchored at the state file's folder, and at the
    # working directory on PostgreSQL.
    definitions.write_text(DEFINITIONS.format(smtp_port=smtp.port, hook_url=hook.url,
                                              plan_cron=PLAN_CRON,
                                              outbox_dir=json.dumps(str(_outbox_dir(workdir)))))

    def must(*args: str) -> None:  # set-up in this process: no interpreter start each
        run_in_process(state, T0, *args, user="chaos")

    must("init")
    must("contacts", "import", str(csv))
    must("apply", str(definitions))
    for kind, name in (("campaign", "hourly"), ("campaign", "staged"), ("plan", "two-step")):
        must("submit", kind, name)
        must("approve", kind, name, "--as", "approver")
    must("start", "campaign", "hourly")
    must("activate", "scenario", "journey")
    must("activate", "scenario", "care")
    must("start", "scenario", "care", "--group", "vip", "--yes")


def _outbox_dir(workdir: Path) -> Path:
    return workdir.resolve() / "outbox-dir"


# --- one tick, killed or not -----------------------------------------------------------------

class TickLog:
    """Wall-clock intervals of every tick process, to attribute arrivals to ticks."""

    def __init__(self) -> None:
        self.ticks: list[dict] = []

    def run(self, state: Path, now: datetime, kill_after: float | None) -> dict:
        started = time.time()
        proc = subprocess.Popen(_cmd(state, now, "tick"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=_env())
        killed = False
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
        _, err = proc.communicate(timeout=300)
        entry = {"now": now, "start": started, "end": time.time(), "killed": killed,
                 "code": proc.returncode, "stderr": err.decode(errors="replace")}
        self.ticks.append(entry)
        return entry

    def tick_at(self, wall: float) -> dict | None:
        """The tick process that was running (the latest one started) at wall time `wall`."""
        found = None
        for entry in self.ticks:
            if entry["start"] <= wall:
                found = entry
        return found


# --- checks after every kill -------------------------------------------------------------------

def _integrity(state: Path | str) -> bool:
    return integrity_ok(state)


def expected_run_size(run: dict, contacts: int) -> int:
    if run["stage"] == "teaser":
        return len([i for i in range(contacts) if i % 4 == 0])
    return contacts


def partial_queues(state: Path, contacts: int) -> list[str]:
    """Runs whose queue is not all-or-nothing.

    A run is built in one transaction (status building → queued, `built_at`, every item and the
    `Queue Items Created` log row), so in a committed state: no run is `building`; a run without
    `built_at` has no items; a run with `built_at` has exactly its audience, as many items as its
    log row says."""
    problems: list[str] = []
    rows = _query(state, "SELECT r.id, r.campaign, r.stage, r.status, r.built_at,"
                         " (SELECT count(*) FROM queue_items q WHERE q.run_id = r.id)"
                         " FROM runs r")
    logs: dict[int, list[str]] = defaultdict(list)
    for run_id, details in _query(state, "SELECT run_id, details FROM exec_log"
                                         " WHERE event = 'Queue Items Created'"
                                         " AND run_id IS NOT NULL ORDER BY id"):
        logs[run_id].append(details)
    for run_id, campaign, stage, status, built_at, items in rows:
        logged = "|".join(logs[run_id]) or None
        run = {"id": run_id, "campaign": campaign, "stage": stage}
        if status == "building":
            problems.append(f"run {run_id} left in status building")
        if built_at is None:
            if items:
                problems.append(f"run {run_id} not built but has {items} items")
            if logged:
                problems.append(f"run {run_id} not built but logged {logged!r}")
            continue
        if items != expected_run_size(run, contacts):
            problems.append(f"run {run_id} ({campaign}/{stage}) built with {items} items, "
                            f"expected {expected_run_size(run, contacts)}")
        if logged != f"{items} queue items":
            problems.append(f"run {run_id} has {items} items but logged {logged!r}")
    return problems


def _kill_phase(state: Path, now: datetime, before: dict, arrived_keys: set[str]) -> str:
    """Where the kill landed, judged from what the state shows afterwards."""
    claimed = [m for (m,) in _query(
        state, "SELECT message_id FROM queue_items WHERE status = 'queued'"
               " AND claim_token IS NOT NULL AND claimed_until > ?", (_iso(now),))]
    if any(m in arrived_keys for m in claimed):
        return "handed_over_not_recorded"
    if claimed:
        return "claimed_not_handed_over"
    after = _snapshot_counts(state)
    if after["sent"] > before["sent"]:
        return "delivering"
    if after["built"] > before["built"] or after["runs"] > before["runs"] \
            or after["profiles"] > before["profiles"]:
        return "firing_or_building"
    return "before_any_commit"


def _snapshot_counts(state: Path) -> dict:
    (runs, built, sent, profiles), = _query(
        state, "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM runs WHERE built_at"
               " IS NOT NULL), (SELECT count(*) FROM queue_items WHERE status = 'sent'),"
               " (SELECT count(*) FROM scenario_profiles)")
    return {"runs": runs, "built": built, "sent": sent, "profiles": profiles}


# --- the final counts ------------------------------------------------------------------------

def _jsonl_lines(workdir: Path) -> list[dict]:
    path = _outbox_dir(workdir) / "box.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def _count(state: Path, workdir: Path, smtp: SmtpReceiver, hook: WebhookReceiver,
           ticks: TickLog) -> dict:
    items = _query(state, "SELECT message_id, run_id, scenario, step, profile_id, contact_id,"
                          " channel, status FROM queue_items")
    by_key = {row[0]: row for row in items}
    outbox_rows = {m for (m,) in _query(state, "SELECT message_id FROM outbox")}
    lines = _jsonl_lines(workdir)
    arrivals: dict[str, list[tuple[str, float | None]]] = {
        "mail": [(_key(k), t) for k, t, _ in smtp.arrivals()],
        "hook": [(k, t) for k, t, _ in hook.arrivals()],
        # The JSONL copy has no receipt time; its sent_at is the simulated clock of its tick.
        "box": [(line["message_id"], None) for line in lines],
    }
    step_of = {_iso(e["now"])[:16]: e for e in ticks.ticks}

    messages = {name: len({k for k, _ in got}) for name, got in arrivals.items()}
    resent = explained = unknown = wrong_channel = 0
    max_copies = 1
    per_kill: Counter = Counter()
    for name, got in arrivals.items():
        times: dict[str, list] = defaultdict(list)
        for key, at in got:
            times[key].append(at)
            row = by_key.get(key)
            if row is None:
                unknown += 1
            elif row[6] != name:
                wrong_channel += 1
        for key, seen in times.items():
            max_copies = max(max_copies, len(seen))
            if name == "box":
                by_line = [step_of.get(str(x.get("sent_at", ""))[:16]) for x in lines
                           if x["message_id"] == key]
            else:
                by_line = [ticks.tick_at(at) for at in seen]
            for earlier, later in pairwise(by_line):
                resent += 1
                # A copy is explained when the tick that handed it over was killed before
                # recording it, and the copy came from a later tick.
                if earlier is not None and earlier["killed"] and later is not earlier:
                    explained += 1
                    per_kill[id(earlier)] += 1
    # Different message ids for one recipient of one run (or one scenario step of one profile).
    per_recipient: dict[tuple, set[str]] = defaultdict(set)
    for got in arrivals.values():
        for key, _ in got:
            row = by_key.get(key)
            if row is not None:
                scope = ("run", row[1]) if row[1] is not None else ("profile", row[4], row[3])
                per_recipient[(*scope, row[5])].add(key)
    duplicates = sum(len(keys) - 1 for keys in per_recipient.values() if len(keys) > 1)

    arrived = {name: {k for k, _ in got} for name, got in arrivals.items()}
    sent_not_arrived = 0
    for key, _run, _scn, _step, _prof, _contact, channel, status in items:
        if status != "sent":
            continue
        if key not in arrived.get(channel, set()):
            sent_not_arrived += 1
        if channel == "box" and key not in outbox_rows:
            sent_not_arrived += 1
    left = Counter(row[7] for row in items if row[7] != "sent")
    return {
        "messages": sum(messages.values()),
        "messages_smtp": messages["mail"], "messages_webhook": messages["hook"],
        "messages_outbox": messages["box"],
        "duplicates": duplicates, "resent_after_kill": resent,
        "resent_explained_by_kill": explained, "max_copies_of_one_key": max_copies,
        "max_resent_per_kill": max(per_kill.values(), default=0),
        "kills_followed_by_resends": len(per_kill),
        "unknown_arrivals": unknown + wrong_channel,
        "sent_not_arrived": sent_not_arrived,
        "items_not_sent": sum(left.values()),
        "items_by_final_status": dict(left),
    }


def _expected_work(state: Path, contacts: int, start: datetime, stop: datetime,
                   events: int, launched: int) -> dict:
    """What must exist at the end, counted against what does."""
    missing: list[str] = []
    # The launch (at `start`, on the hour) counts as the first slot of the hourly campaign.
    hours = int((stop - start).total_seconds() // 3600)
    slots = [start + timedelta(hours=h) for h in range(hours + 1)]
    hourly = _query(state, "SELECT scheduled_at, status FROM runs WHERE campaign = 'hourly'")
    fired = Counter(at for at, _ in hourly)
    for slot in slots:
        if fired.get(_iso(slot)) != 1:
            missing.append(f"hourly slot {_iso(slot)}: {fired.get(_iso(slot), 0)} runs")
    if len(hourly) != len(slots):
        missing.append(f"hourly: {len(hourly)} runs for {len(slots)} slots")
    plan_slots = [s for s in slots if s.hour % 3 == 0 and s > start]
    occurrences = dict(_query(state, "SELECT scheduled_at, status || ':' || coalesce(reason, '')"
                                     " FROM occurrences WHERE kind = 'Plan'"))
    for slot in plan_slots:
        got = occurrences.get(_iso(slot))
        if got is None or (got.startswith("skipped") and got == "skipped:"):
            missing.append(f"plan occurrence {_iso(slot)}: {got}")
    instances = _query(state, "SELECT id, status FROM plan_instances")
    missing += [f"instance {i} ended {s}" for i, s in instances if s != "completed"]
    stage_runs = _query(state, "SELECT s.instance_id, s.stage, r.status FROM stage_instances s"
                               " LEFT JOIN runs r ON r.id = s.run_id")
    missing += [f"instance {i} stage {st}: run {rs}" for i, st, rs in stage_runs
                if rs != "completed"]
    runs_open = _query(state, "SELECT id, campaign, status FROM runs WHERE status <> 'completed'")
    missing += [f"run {i} ({c}) ended {s}" for i, c, s in runs_open]
    profiles = Counter(dict(_query(
        state, "SELECT scenario, count(*) FROM scenario_profiles WHERE status = 'completed'"
               " GROUP BY scenario")))
    not_done = _query(state, "SELECT scenario, status, count(*) FROM scenario_profiles"
                             " WHERE status <> 'completed' GROUP BY scenario, status")
    missing += [f"{n} {scn} profiles {st}" for scn, st, n in not_done]
    if profiles.get("journey", 0) != events:
        missing.append(f"journey: {profiles.get('journey', 0)} completed profiles, "
                       f"{events} events emitted")
    if profiles.get("care", 0) != launched:
        missing.append(f"care: {profiles.get('care', 0)} completed profiles, {launched} launched")
    scenario_items = Counter(dict(_query(
        state, "SELECT scenario, count(*) FROM queue_items WHERE scenario IS NOT NULL"
               " AND status = 'sent' GROUP BY scenario")))
    if scenario_items.get("journey", 0) != 2 * events:
        missing.append(f"journey: {scenario_items.get('journey', 0)} messages sent, "
                       f"expected {2 * events}")
    if scenario_items.get("care", 0) != 2 * launched:
        missing.append(f"care: {scenario_items.get('care', 0)} messages sent, "
                       f"expected {2 * launched}")
    return {"hourly_runs": len(hourly), "hourly_slots": len(slots),
            "plan_instances": len(instances), "plan_occurrences": len(plan_slots),
            "scenario_profiles": sum(profiles.values()), "missing_work": missing}


# --- every state has its history / log row ---------------------------------------------------

def audit_history(state: Path) -> tuple[int, list[str], dict]:
    """Compare every status in the file with the history / execution-log rows written for it.

    Objects (campaigns, plans, scenarios): the last `history` row with a to_status names the
    current status. Runs: engine moves are in `exec_log` (Activity Created, Queue Items Created,
    Delivery Started, Run Completed / Run Failed / Build Failed, Campaign Closed), operator verbs
    in `history` (kind run); every status a run went through has its row. Plan instances:
    `history` (kind instance) names the current status; stage instances have their
    Stage Instance Created / Stage Completed / Stage Cancelled log rows. Scenario launches:
    `history` (kind launch) start, and the row of their end. Queue items and scenario profiles
    have no history of their own by design: the outbox / the servers and the run and scenario
    log rows are their record (see docs/reliability.md)."""
    problems: list[str] = []
    audited = Counter()
    history: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for kind, name, action, to_status in _query(
            state, "SELECT kind, name, action, to_status FROM history ORDER BY id"):
        history[(kind, name)].append((action, to_status))
    logs: dict[int, list[str]] = defaultdict(list)
    for run_id, event in _query(state, "SELECT run_id, event FROM exec_log"
                                       " WHERE run_id IS NOT NULL ORDER BY id"):
        logs[run_id].append(event)

    for kind, name, status in _query(state, "SELECT kind, name, status FROM objects"
                                            " WHERE status IS NOT NULL"):
        audited["objects"] += 1
        rows = [t for _, t in history[(kind, name)] if t is not None]
        if not rows or rows[-1] != status:
            problems.append(f"{kind}/{name} is {status}, last history says "
                            f"{rows[-1] if rows else None}")

    needs = {
        "scheduled": [("Activity Created", "create")],
        "queued": [("Queue Items Created",)],
        "sending": [("Queue Items Created",), ("Delivery Started",)],
        "completed": [("Queue Items Created", "Campaign Closed"),
                      ("Run Completed", "Campaign Closed")],
        "failed": [("Build Failed", "Run Failed")],
        "paused": [("pause",)], "stopped": [("stop",)], "skipped": [("skip",)],
    }
    for run_id, status, built_at, sent in _query(
            state, "SELECT id, status, built_at, (SELECT count(*) FROM queue_items q"
                   " WHERE q.run_id = runs.id AND q.status = 'sent') FROM runs"):
        audited["runs"] += 1
        seen = set(logs[run_id]) | {a for a, _ in history[("run", str(run_id))]}
        if not seen & {"Activity Created", "create"}:
            problems.append(f"run {run_id}: no row for its creation")
        if status == "building":
            problems.append(f"run {run_id}: committed in status building")
        for alternatives in needs.get(status, []):
            if not seen & set(alternatives):
                problems.append(f"run {run_id} is {status} without any of {alternatives}")
        if built_at is not None and "Queue Items Created" not in seen:
            problems.append(f"run {run_id} built without 'Queue Items Created'")
        if sent and not seen & {"Delivery Started", "Campaign Closed"}:
            problems.append(f"run {run_id} sent {sent} without 'Delivery Started'")

    for instance_id, status in _query(state, "SELECT id, status FROM plan_instances"):
        audited["instances"] += 1
        rows = [t for _, t in history[("instance", str(instance_id))] if t is not None]
        if not rows or rows[-1] != status:
            problems.append(f"instance {instance_id} is {status}, last history says "
                            f"{rows[-1] if rows else None}")
    stage_logs = Counter(_query(state, "SELECT instance_id, stage, event FROM exec_log"
                                       " WHERE instance_id IS NOT NULL"))
    for instance_id, stage, status in _query(state, "SELECT instance_id, stage, status"
                                                    " FROM stage_instances"):
        audited["stage_instances"] += 1
        want = {"completed": "Stage Completed", "cancelled": "Stage Cancelled"}.get(status)
        if status != "not-started" and not stage_logs[(instance_id, stage,
                                                       "Stage Instance Created")]:
            problems.append(f"instance {instance_id} stage {stage} is {status} without "
                            "'Stage Instance Created'")
        if want and not stage_logs[(instance_id, stage, want)]:
            problems.append(f"instance {instance_id} stage {stage} is {status} without '{want}'")

    for launch_id, status in _query(state, "SELECT id, status FROM scenario_launches"):
        audited["launches"] += 1
        rows = history[("launch", str(launch_id))]
        if not rows:
            problems.append(f"launch {launch_id}: no history row")
            continue
        final = {"completed": "complete", "abandoned": "stop"}.get(status)
        if final and rows[-1][0] != final:
            problems.append(f"launch {launch_id} is {status}, last history row is {rows[-1][0]}")
        if status == "running" and rows[-1][0] != "start":
            problems.append(f"launch {launch_id} is running, last history row is {rows[-1][0]}")
    return len(problems), problems, dict(audited)


# --- the workload ------------------------------------------------------------------------------

def measure(workdir: Path, *, size: str = "small", seed: int = 0,
            store: str | None = None) -> dict:
    params = SIZES[size]
    contacts = params["contacts"]
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    state = state_in(store or workdir, "chaos")
    started = time.perf_counter()
    ticks = TickLog()
    integrity_failures = 0
    partial: list[str] = []
    phases: Counter = Counter()
    nonzero_unkilled: list[str] = []
    events = 0
    launched = sum(1 for i in range(contacts) if i % 4 == 0)

    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        _tune_server(hook)
        _setup(workdir, state, smtp, hook, contacts)
        # The length of a tick with work to do (an hourly run, the first launch): the range the
        # kill delays are drawn from. Ticks that end before their kill adjust it: the longest of
        # the last few, so that one tick slowed by a loaded machine does not make every later
        # kill land after its tick has ended (kills would then depend on the machine's speed).
        now = T0 + timedelta(hours=1)
        first = ticks.run(state, now, None)
        recent = deque([first["end"] - first["start"]], maxlen=RECENT_TICKS)
        tick_seconds = recent[0]
        # Until the wanted number of kills (a tick that ends before its kill is not one).
        step = 0
        while sum(e["killed"] for e in ticks.ticks) < params["kills"] \
                and step < 3 * params["kills"]:
            step += 1
            now += timedelta(minutes=rng.randrange(10, 31))
            lines = []
            for _ in range(EVENTS_PER_STEP):
                lines.append(json.dumps({"event": "signed_up",
                                         "contact": f"c{rng.randrange(contacts):04d}"}))
            feed = workdir / "events.jsonl"
            feed.write_text("\n".join(lines) + "\n")
            _operate(state, now, "events", "import", str(feed))
            events += EVENTS_PER_STEP
            if step == params["kills"] // 2:  # a second launch of the manual scenario
                _operate(state, now, "start", "scenario", "care", "--group", "vip", "--yes")
                launched *= 2
            before = _snapshot_counts(state)
            entry = ticks.run(state, now, rng.uniform(0.0, tick_seconds))
            if entry["killed"]:
                during = {_key(k) for k, at, _ in smtp.arrivals() if at >= entry["start"]}
                during |= {k for k, at, _ in hook.arrivals() if at >= entry["start"]}
                phases[_kill_phase(state, now, before, during)] += 1
            else:
                phases["finished_before_kill"] += 1
                recent.append(entry["end"] - entry["start"])
                tick_seconds = max(recent)
                if entry["code"] != 0:
                    nonzero_unkilled.append(entry["stderr"].strip()[-300:])
            if not _integrity(state):
                integrity_failures += 1
            partial += partial_queues(state, contacts)
        stop = now
        # One whole tick at the last instant, so every slot up to `stop` has been seen.
        ticks.run(state, now, None)
        _operate(state, now, "stop", "campaign", "hourly", "--note", "chaos: finishing")
        _operate(state, now, "stop", "plan", "two-step", "--note", "chaos: finishing")
        finishing = 0
        for _ in range(FINISH_TICKS_MAX):
            now += timedelta(minutes=20)
            entry = ticks.run(state, now, None)
            finishing += 1
            if entry["code"] != 0:
                nonzero_unkilled.append(entry["stderr"].strip()[-300:])
            if _quiet(state):
                break
        time.sleep(0.2)  # let the servers' last handlers record
        counts = _count(state, workdir, smtp, hook, ticks)
    work = _expected_work(state, contacts, T0, stop, events, launched)
    without_history, history_problems, audited = audit_history(state)
    kills = sum(1 for e in ticks.ticks if e["killed"])
    lost = counts["sent_not_arrived"] + counts["items_not_sent"] + len(work["missing_work"])
    figures = {
        "store": "postgresql" if store else "sqlite",
        "kills": kills, "ticks": len(ticks.ticks), "finishing_ticks": finishing,
        "tick_seconds_measured": round(tick_seconds, 2),
        "kills_by_phase": dict(phases),
        "simulated_hours": round((stop - T0).total_seconds() / 3600, 1),
        **{k: v for k, v in counts.items() if k != "items_by_final_status"},
        "lost": lost,
        "integrity_failures": integrity_failures,
        "partial_queues": len(partial),
        "changes_without_history": without_history,
        "audited": audited,
        "hourly_runs": work["hourly_runs"], "plan_instances": work["plan_instances"],
        "scenario_profiles": work["scenario_profiles"],
        "nonzero_exits_unkilled": len(nonzero_unkilled),
        "seconds": round(time.perf_counter() - started, 1),
    }
    figures["ok"] = (
        integrity_failures == 0 and not partial and lost == 0 and counts["duplicates"] == 0
        and counts["unknown_arrivals"] == 0 and without_history == 0
        and counts["resent_after_kill"] == counts["resent_explained_by_kill"]
        and counts["max_resent_per_kill"] <= 1
        and not nonzero_unkilled and kills >= params["kills"]
    )
    problems = partial[:5] + work["missing_work"][:5] + history_problems[:5] + nonzero_unkilled[:3]
    if problems:
        figures["problems"] = "; ".join(problems)
    if store:
        drop_state(state)
    return figures


def _quiet(state: Path) -> bool:
    """Nothing left to do: no waiting item, no active run, instance, profile or launch."""
    (n,), = _query(
        state, "SELECT (SELECT count(*) FROM queue_items WHERE status = 'queued')"
               " + (SELECT count(*) FROM runs WHERE status IN"
               "    ('scheduled', 'building', 'queued', 'sending', 'paused'))"
               " + (SELECT count(*) FROM plan_instances WHERE status IN ('running', 'paused'))"
               " + (SELECT count(*) FROM scenario_profiles WHERE status IN ('active', 'waiting'))"
               " + (SELECT count(*) FROM scenario_launches WHERE status = 'running')")
    return n == 0


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small",
                                 store=sys.argv[2] if len(sys.argv) > 2 else None),
                         indent=2, default=str))
