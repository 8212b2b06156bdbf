"""Concurrent ticks, catch-up after a long silence, repeated and backward ticks, as
figures.

`measure(workdir, size=...)` drives the real console script in subprocesses against one state
file and a real webhook receiver on 127.0.0.1:
- rounds of 8 `campctl tick` processes released together at one instant (a barrier), each round
  one simulated hour later: exactly one run per due occurrence, every process exits 0, no
  "database is locked" escapes, every queued message arrives once;
- an hourly schedule left 72 h without ticks, then one tick: fired + skipped = 72, every skip
  with its reason; then 10,000 missed slots in one tick, timed;
- the same `now` ticked twice writes nothing (dump unchanged); the clock stepped back an hour
  creates no run and sends nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from receivers import WebhookReceiver
from workload_support import clean_env as _env
from workload_support import drop_state, query, run_in_process, state_in
from workload_support import dump as _dump
from workload_support import iso as _iso

SIZES = {"small": {"rounds": 2, "contacts": 30}, "full": {"rounds": 25, "contacts": 200}}
PROCESSES = 8
CAMPAIGNS = 3
T0 = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)

# Waits until the shared start instant, then becomes the campctl process (a process barrier).
_BARRIER = ("import os, sys, time\n"
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'campctl', *sys.argv[2:]])\n")


def _campctl(state: Path, now: datetime, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "campctl", "--state", str(state), "--now", _iso(now), *args],
        capture_output=True, text=True, env=_env(), timeout=300)


def _must(state: Path, now: datetime, *args: str) -> subprocess.CompletedProcess:
    proc = _campctl(state, now, *args)
    if proc.returncode != 0:
        raise RuntimeError(f"campctl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def _rows(state: Path | str, sql: str, params=()) -> list[tuple]:
    return query(state, sql, params)


def _launch(workdir: Path, state: Path, text: str, names: list[str], contacts: int) -> None:
    csv = workdir / "contacts.csv"
    csv.write_text("id,email,first_name\n" + "".join(
        f"c{i:04d},c{i:04d}@example.org,N{i}\n" for i in range(contacts)))
    definitions = workdir / "defs.yaml"
    definitions.write_text(text)

    def must(*args: str) -> None:  # set-up in this process: no interpreter start each
        run_in_process(state, T0, *args, user="ticks")

    must("init")
    must("contacts", "import", str(csv))
    must("apply", str(definitions))
    for name in names:
        for verb in ("submit", "approve", "start"):
            extra = ("--as", "approver") if verb == "approve" else ()
            must(verb, "campaign", name, *extra)


def _concurrent_rounds(workdir: Path, rounds: int, contacts: int, store: str | None) -> dict:
    state = state_in(store or workdir, "concurrent")
    with WebhookReceiver() as hook:
        names = [f"hourly-{i}" for i in range(CAMPAIGNS)]
        text = f"kind: Channel\nname: hook\ntype: webhook\nurl: {hook.url}\n"
        for name in names:
            text += (f"---\nkind: Campaign\nname: {name}\ntimezone: UTC\n"
                     "type: date-triggered\nchannel: hook\naudience: {all: true}\n"
                     'message: {subject: "Hi {{ first_name }}", body: "Hello"}\n'
                     'schedule: {start: immediately, cron: "0 * * * *"}\n')
        _launch(workdir, state, text, names, contacts)
        exits_nonzero = locked = 0
        for round_no in range(rounds):
            now = T0 + timedelta(hours=round_no + 1)
            start_at = time.time() + 1.0
            procs = [subprocess.Popen(
                [sys.executable, "-c", _BARRIER, repr(start_at), "--state", str(state),
                 "--now", _iso(now), "tick"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
                for _ in range(PROCESSES)]
            for proc in procs:
                _, err = proc.communicate(timeout=300)
                exits_nonzero += proc.returncode != 0
                locked += "locked" in err.lower()
        runs = _rows(state, "SELECT count(*) FROM runs")[0][0]
        duplicate_occurrences = _rows(
            state, "SELECT count(*) FROM (SELECT 1 FROM occurrences GROUP BY kind, name,"
            " scheduled_at HAVING count(*) > 1) d")[0][0]
        sent = {m for (m,) in _rows(state, "SELECT message_id FROM queue_items"
                                           " WHERE status = 'sent'")}
        not_sent = _rows(state, "SELECT count(*) FROM queue_items WHERE status <> 'sent'")[0][0]
        arrived = hook.keys()
    expected = rounds * CAMPAIGNS
    return {
        "concurrent_rounds": rounds, "tick_processes": rounds * PROCESSES,
        "runs": runs, "expected_runs": expected, "duplicate_occurrences": duplicate_occurrences,
        "nonzero_exits": exits_nonzero, "locked_errors": locked,
        "messages": len(arrived), "expected_messages": expected * contacts,
        "duplicates": len(arrived) - len(set(arrived)),
        "lost": len(sent - set(arrived)) + not_sent,
    }


HOURLY = """\
kind: Campaign
name: hourly
timezone: Europe/Paris
closes_at: 2028-12-31T23:59
type: date-triggered
message: {subject: "Hi", body: "b"}
audience: {all: true}
schedule: {start: immediately, cron: "0 * * * *", catchup: latest}
"""


def _catch_up(workdir: Path, store: str | None) -> dict:
    state = state_in(store or workdir, "catchup")
    (workdir / "catchup").mkdir()
    _launch(workdir / "catchup", state, HOURLY, ["hourly"], 2)
    t0 = T0 + timedelta(hours=1)  # 09:00Z
    _must(state, t0, "tick")
    _must(state, t0 + timedelta(hours=72, minutes=30), "tick")
    occurrences = _rows(state, "SELECT status, reason FROM occurrences WHERE scheduled_at > ?",
                        (_iso(t0),))
    fired = sum(1 for s, _ in occurrences if s == "fired")
    skipped = [r for s, r in occurrences if s == "skipped"]
    # 10,000 hours after the last tick, in one tick.
    later = t0 + timedelta(hours=72) + timedelta(hours=10_000)
    started = time.perf_counter()
    proc = _must(state, later, "-o", "json", "tick")
    seconds = time.perf_counter() - started
    import json

    report = json.loads(proc.stdout)
    return {
        "catchup_72h_fired": fired, "catchup_72h_skipped": len(skipped),
        "catchup_72h_skips_without_reason": sum(1 for r in skipped if not r),
        "catchup_10k_skipped": report["skipped"], "catchup_10k_seconds": round(seconds, 2),
    }


def _repeat_and_backward(workdir: Path, store: str | None) -> dict:
    state = state_in(store or workdir, "repeat")
    (workdir / "repeat").mkdir()
    _launch(workdir / "repeat", state, HOURLY.replace("latest", "all"), ["hourly"], 5)
    now = T0 + timedelta(hours=3)
    _must(state, now, "tick")
    before = _dump(state)
    _must(state, now, "tick")
    repeat_changes = sum(1 for a, b in zip(before, _dump(state), strict=False) if a != b) + abs(
        len(before) - len(_dump(state)))
    runs_before = _rows(state, "SELECT count(*) FROM runs")[0][0]
    outbox_before = _rows(state, "SELECT count(*) FROM outbox")[0][0]
    _must(state, now - timedelta(hours=1), "tick")
    return {
        "repeat_tick_changed_lines": repeat_changes,
        "clock_back_new_runs": _rows(state, "SELECT count(*) FROM runs")[0][0] - runs_before,
        "clock_back_resends": _rows(state, "SELECT count(*) FROM outbox")[0][0] - outbox_before,
    }


def measure(workdir: Path, *, size: str = "small", seed: int = 0,
            store: str | None = None) -> dict:
    """Run the three checks at `size` ("small" or "full"); `seed` is unused (no randomness).
    On SQLite files in `workdir`, or with `store` (a PostgreSQL URL) on schemas of their own in
    that database."""
    params = SIZES[size]
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    figures = _concurrent_rounds(workdir, params["rounds"], params["contacts"], store)
    figures.update(_catch_up(workdir, store))
    figures.update(_repeat_and_backward(workdir, store))
    if store:
        for name in ("concurrent", "catchup", "repeat"):
            drop_state(state_in(store, name))
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["ok"] = (
        figures["runs"] == figures["expected_runs"] and figures["duplicate_occurrences"] == 0
        and figures["nonzero_exits"] == 0 and figures["locked_errors"] == 0
        and figures["messages"] == figures["expected_messages"]
        and figures["duplicates"] == 0 and figures["lost"] == 0
        and figures["catchup_72h_fired"] + figures["catchup_72h_skipped"] == 72
        and figures["catchup_72h_skips_without_reason"] == 0
        and figures["catchup_10k_skipped"] >= 9_990
        and figures["repeat_tick_changed_lines"] == 0
        and figures["clock_back_new_runs"] == 0 and figures["clock_back_resends"] == 0
    )
    return figures
