"""Data for `campctl status`, the daemon's live table and `campctl preview` (no rendering here)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from campctl.errors import NotFound
from campctl.models import ACTIVE_RUN_STATUSES
from campctl.store import object_failures, schedules
from campctl.store import objects as object_store
from campctl.store import runs as run_store
from campctl.timeutil import iso_z, parse_local_datetime, to_db


def collect(db, *, now: datetime) -> dict:
    """One object: plans, campaigns, active runs, active instances, scenarios, next occurrences."""
    due = {(r["kind"], r["name"]): r["next_due_at"]
           for r in schedules.next_occurrences(db, limit=100000)}
    specs: dict[tuple[str, str], dict] = {}
    plans = []
    for p in object_store.list_records(db, "Plan"):
        specs["Plan", p.name] = p.spec
        nxt = due.get(("Plan", p.name))
        plans.append({"name": p.name, "status": p.status,
                      "schedule_type": (p.spec.get("schedule") or {}).get("type", "manual"),
                      "next_occurrence": nxt, "next_dst": dst_mark("Plan", p.spec, nxt)})
    campaigns = []
    for c in object_store.list_records(db, "Campaign"):
        specs["Campaign", c.name] = c.spec
        nxt = due.get(("Campaign", c.name))
        campaigns.append({"name": c.name, "status": c.status,
                          "type": c.spec.get("type") or "one-off",
                          "timezone": c.spec.get("timezone") or "UTC",
                          "launched_at": c.launched_at,
                          "next_occurrence": nxt, "next_dst": dst_mark("Campaign", c.spec, nxt)})
    active = run_store.list_run_records(db, status=ACTIVE_RUN_STATUSES)
    counts = run_store.counts_for(db, [r.id for r in active])
    runs = [{"id": r.id, "campaign": r.campaign, "stage": r.stage,
             "status": r.status, "instance": r.instance_id,
             "send_at": r.send_at, **counts.get(r.id, {"queued": 0, "sent": 0, "stale": 0,
                                                        "failed": 0, "cancelled": 0,
                                                        "capped": 0})}
            for r in sorted(active, key=lambda r: r.id)]
    waits = run_waits(db, runs, now=now)
    # Why each run sends nothing now (its pause, send time, window, ...); None when it may.
    for row, active_run in zip(runs, sorted(active, key=lambda r: r.id), strict=True):
        row["waits_for"] = waits.get(active_run.id)
    from campctl.engine import plans as plan_engine
    from campctl.engine import scenarios as scenario_engine

    # id, name, plan, status, started_at, plus stage (current campaign/stage) and progress
    instances = plan_engine.status_rows(db, now=now)
    profiles = object_store.profile_counts(db)
    scenarios = [{"name": s.name, "active": s.status == "active",
                  "launch_type": (s.spec.get("launch") or {}).get("type"),
                  "profiles_active": profiles.get(s.name, 0)}
                 for s in object_store.list_records(db, "Scenario")]
    # profiles inside per step
    steps = {r["scenario"]: r["by_step"] for r in scenario_engine.status_rows(db, now=now)}
    for s in scenarios:
        s["by_step"] = steps.get(s["name"], {})
    upcoming = []
    for r in schedules.next_occurrences(db, limit=10):
        spec = specs.get((r["kind"], r["name"]))
        if spec is None and r["kind"] == "Scenario":
            record = object_store.get_record(db, "Scenario", r["name"])
            spec = record.spec if record is not None else None
        upcoming.append({"kind": r["kind"], "name": r["name"], "next_due_at": r["next_due_at"],
                         "dst": dst_mark(r["kind"], spec, r["next_due_at"])})
    # Campaigns, plans and scenarios the tick sets aside and retries (engine.isolation).
    failing = [{"kind": f["kind"], "name": f["name"], "reason": f["reason"],
                "since": f["first_at"], "ticks": f["count"]}
               for f in object_failures.list_failures(db)]
    return {"now": iso_z(now), "plans": plans, "campaigns": campaigns, "runs": runs,
            "instances": instances, "scenarios": scenarios, "next_occurrences": upcoming,
            "failing": failing}


def dst_mark(kind: str, spec: dict | None, at: str | None) -> str | None:
    """cron.SHIFTED or cron.REPEATED when the stored instant `at` is an occurrence of the
    object's cron schedule that a DST change moved or doubled; else None (never raises)."""
    from campctl.definitions.models import Campaign, DateSchedule, EventSchedule, Plan, Scenario
    from campctl.engine import cron
    from campctl.timeutil import from_db

    moment = from_db(at) if at else None
    if spec is None or moment is None:
        return None
    expr: str | None = None
    if kind == "Plan":
        schedule = Plan.from_spec(spec).schedule
        if schedule.type == "recurrent":
            expr, tz, dst = schedule.cron, schedule.timezone, schedule.dst
    elif kind == "Campaign":
        campaign = Campaign.from_spec(spec)
        sched = campaign.schedule
        tz = campaign.timezone
        if isinstance(sched, DateSchedule):
            expr, dst = sched.cron, sched.dst
        elif isinstance(sched, EventSchedule) and not sched.on_event:
            expr, dst = sched.queue_every, sched.dst
    elif kind == "Scenario":
        launch = Scenario.from_spec(spec).launch
        if launch.type == "schedule":
            expr, tz, dst = launch.cron, launch.timezone, launch.dst
    if not expr:
        return None
    try:
        return cron.mark_of(expr, tz, moment, dst)
    except (ValueError, TypeError, OverflowError):  # a junk spec must not break a listing
        return None


def preview(db, kind: str, name: str, *, now: datetime,
            count: int) -> tuple[list[tuple[datetime, str | None]], str]:
    """The next `count` occurrences of a plan or scenario schedule, each with its DST mark
    (cron.SHIFTED, cron.REPEATED or None), and the schedule's zone."""
    from campctl.definitions.models import Plan, Scenario
    from campctl.engine import cron

    stored = {"campaign": "Campaign", "plan": "Plan", "scenario": "Scenario"}[kind]
    obj = object_store.get_record(db, stored, name)
    if obj is None:
        raise NotFound(f"no {kind} named {name} (see 'campctl get {kind}s')")
    spec = obj.spec
    if kind == "campaign":
        steps, tz = preview_campaign(db, name, now=now, count=count)
        return [(m, None) for m, _ in steps], tz
    block = spec.get("schedule") if kind == "plan" else spec.get("launch")
    block = block or {}
    tz = block.get("timezone") or spec.get("timezone") or "UTC"
    horizon = now + timedelta(days=366 * 5)
    if kind == "plan" and block.get("type") == "once" and block.get("at"):
        at = parse_local_datetime(str(block["at"]), tz)
        return ([(at, None)] if at > now else []), tz
    expr = block.get("cron")
    wanted = "recurrent" if kind == "plan" else "schedule"
    if not expr or block.get("type") != wanted:
        return [], tz
    if kind == "scenario":
        from campctl.engine.scenarios import deactivate_after

        scenario = Scenario.from_spec(spec)
        dst = scenario.launch.dst
        stop_at = deactivate_after(scenario)
        if stop_at is not None:
            horizon = min(horizon, stop_at)
            if horizon <= now:
                return [], tz
    else:
        dst = Plan.from_spec(spec).schedule.dst
    return cron.fire_marks(expr, tz, after=now, until=horizon, limit=count, dst=dst), tz


def preview_campaign(db, name: str, *, now: datetime, count: int,
                     marks: dict[datetime, str] | None = None,
                     ) -> tuple[list[tuple[datetime, str]], str]:
    """The next `count` (instant, phase) of campaign `name` (see campaigns.preview_steps), and
    its zone; `marks` receives the DST mark of each build instant a DST change moved or
    doubled."""
    from campctl.engine import campaigns

    obj = object_store.get_record(db, "Campaign", name)
    if obj is None:
        raise NotFound(f"no campaign named {name} (see 'campctl get campaigns')")
    return (campaigns.preview_steps(obj, now=now, count=count, marks=marks),
            obj.spec.get("timezone") or "UTC")


def preview_held(db, name: str, *, now: datetime):
    """The builds of campaign `name` its send schedule holds (a launch now, or the recorded
    launch), as `engine.held.HeldBuilds`, or None."""
    from campctl.definitions.models import Campaign
    from campctl.engine.held import held_builds
    from campctl.timeutil import from_db

    obj = object_store.get_record(db, "Campaign", name)
    if obj is None:
        return None
    return held_builds(Campaign.from_spec(obj.spec), launch=from_db(obj.launched_at) or now)


_RATE_NOTE = re.compile(r"^channel (\S+): \d+ item\(s\) (?:would )?wait for the rate limit (.+)$")


def run_waits(db, runs: list[dict], *, now: datetime,
              notes: Sequence[str] = ()) -> dict[int, str]:
    """Why each active run sends nothing at `now`, by run id (runs that may send are absent):
    its pause (or its plan instance's), its send schedule, its sending window, or its channel's
    rate limit (read from the notes of the tick that just ran). The reasons the tick itself
    applies (engine.runs.live_runs), as text with UTC instants."""
    from campctl.engine import windows

    limited = {m.group(1): m.group(2) for m in map(_RATE_NOTE.match, notes) if m}
    stored = {r.id: r for r in run_store.list_run_records(db, status=ACTIVE_RUN_STATUSES)}
    paused_instances = run_store.paused_instances(
        db, [r.instance_id for r in stored.values() if r.instance_id])
    reasons: dict[int, str] = {}
    for item in runs:
        run = stored.get(item["id"])
        if run is None:
            continue
        spec, send_at = run.spec, run.send_at
        window, tz = spec.get("window"), spec.get("timezone") or "UTC"
        if run.status == "paused":
            reasons[run.id] = f"pause: campctl resume run {run.id}"
        elif run.instance_id in paused_instances:
            reasons[run.id] = f"pause: plan instance {run.instance_id} is paused"
        elif run.built_at is None:
            reasons[run.id] = (f"send schedule: built at {send_at}" if send_at
                               else "send schedule: not built yet")
        elif send_at is not None and send_at > to_db(now):
            reasons[run.id] = f"send schedule: held until {send_at}"
        elif window and spec.get("window_timezone") == "contact":
            held = _zones_held(db, run.id, window, now)
            if held:
                reasons[run.id] = held
        elif window and not _window_open(windows, window, tz, now):
            opens = iso_z(windows.next_open(window, tz, now))
            reasons[run.id] = f"window {window}: opens {opens}"
        elif (channel := spec.get("channel") or "outbox") in limited:
            reasons[run.id] = f"rate: channel {channel} at its limit {limited[channel]}"
    return reasons


def _zones_held(db, run_id: int, window: str, now: datetime) -> str | None:
    """What a run whose window is read in each contact's zone waits for, e.g.
    `window 09:00-17:00 (3 zones, 40 messages), next opens …` (None: no zone is held)."""
    from campctl.engine.contact_windows import run_zones

    try:
        zones = run_zones(db, [run_id], {run_id: window}, now=now)[run_id]
    except ValueError:  # a broken snapshot: the tick sets the run aside and says why
        return None
    if not zones.held or zones.next_open is None:
        return None
    count = len(zones.held)
    return (f"window {window} ({count} zone{'s' if count != 1 else ''}, {zones.held_items} "
            f"messages), next opens {iso_z(zones.next_open)}")


def _window_open(windows, window: str, tz: str, now: datetime) -> bool:
    try:
        return bool(windows.is_open(window, tz, now))
    except ValueError:  # a broken snapshot: the tick sets the run aside and says why
        return True
