"""`campctl simulate`: the real state run forward N days on a temporary copy, and what happened.

The caller hands over a fresh SQLite copy of the state (`store.copy.copy_state`); nothing here
touches the source. In the copy every channel becomes an outbox without a `dir:` (rate and
max_attempts kept), so nothing leaves the machine, and the engine's own tick runs at `start`,
`start + 1 min`, … until `start + days`, exactly as cron running `campctl tick` every minute
would. Minutes at which a tick has nothing to do (`schedules.due_reason`, the probe of the
no-op tick) are jumped over: from such a minute the next tick is the first minute at which a
probe that depends on the time turns true (`store.simulate.next_threshold`); nothing writes in
between, so the result is the same as ticking every minute. Delivery runs on a virtual clock:
a per-second rate window is "slept" through without waiting.

What is counted (per day in one zone, and per campaign, plan and scenario): occurrences fired
and skipped (with their reasons), messages built, sent, failed and cancelled (with reasons;
`stale` among them, and those a frequency cap dropped with the reason `capped`), messages held
by a sending window, a channel's rate or a frequency cap (`capped`: deferred or dropped; each
message counted once per kind of hold, on the day first seen), the contacts who get more than
`max_per_day` messages in one day, and the messages sent in each hour of the period.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from campctl.engine import tick as tick_engine
from campctl.engine.context import TickContext
from campctl.store import schedules
from campctl.store import simulate as store
from campctl.store.db import Database
from campctl.timeutil import from_db, iso_z, to_db, zone

MAX_DAYS = 366
DEFAULT_MAX_PER_DAY = 1
STEP = timedelta(minutes=1)
# How many contacts over the daily limit a report names (the count says how many in all).
HEAVY_NAMED = 50
COUNTERS = ("fired", "skipped", "built", "sent", "failed", "cancelled", "stale", "capped",
            "held_window", "held_rate")
# The reasons (a queue item's last_error, or its status) of the staleness deadline and the
# frequency caps of issue 16 (items 2 and 4): counted apart from other cancellations.
STALE = "stale"
CAPPED = "capped"


@dataclass
class Counts:
    """What happened in one day, to one object, or both."""

    values: Counter = field(default_factory=Counter)
    skipped_reasons: Counter = field(default_factory=Counter)
    cancelled_reasons: Counter = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        self.values.update(other.values)
        self.skipped_reasons.update(other.skipped_reasons)
        self.cancelled_reasons.update(other.cancelled_reasons)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: int(self.values.get(name, 0)) for name in COUNTERS}
        out["skipped_reasons"] = dict(sorted(self.skipped_reasons.items()))
        out["cancelled_reasons"] = dict(sorted(self.cancelled_reasons.items()))
        return out


@dataclass
class Simulation:
    """The outcome of `simulate`; `as_json` is what `-o json` prints."""

    start: datetime
    end: datetime
    timezone: str
    max_per_day: int
    rerouted: list[str] = field(default_factory=list)
    ticks: int = 0
    total: Counts = field(default_factory=Counts)
    days: dict[date, Counts] = field(default_factory=dict)
    objects: dict[str, Counts] = field(default_factory=dict)
    day_objects: dict[tuple[date, str], Counts] = field(default_factory=dict)
    heavy: list[dict[str, Any]] = field(default_factory=list)
    heavy_total: int = 0
    hourly: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def hour_start(self, index: int) -> datetime:
        return self.start + timedelta(hours=index)

    def as_json(self) -> dict[str, Any]:
        tz = zone(self.timezone)
        return {
            "from": iso_z(self.start),
            "until": iso_z(self.end),
            "timezone": self.timezone,
            "ticks": self.ticks,
            "channels_rerouted": list(self.rerouted),
            "totals": self.total.as_json(),
            "days": [{"day": d.isoformat(), **c.as_json()} for d, c in sorted(self.days.items())],
            "objects": [{"object": o, **c.as_json()} for o, c in sorted(self.objects.items())],
            "day_objects": [{"day": d.isoformat(), "object": o, **c.as_json()}
                            for (d, o), c in sorted(self.day_objects.items())],
            "max_per_day": self.max_per_day,
            "contacts_over_max": self.heavy_total,
            "over_max": list(self.heavy),
            "hourly": [{"hour": self.hour_start(i).astimezone(tz).isoformat(), "sent": n}
                       for i, n in enumerate(self.hourly) if n],
            "warnings": list(self.warnings),
        }


class _VirtualClock:
    """Delivery's monotonic clock and sleep: a sleep moves the clock on without waiting."""

    def __init__(self) -> None:
        self.value = 0.0

    def monotonic(self) -> float:
        return self.value

    def sleep(self, seconds: float) -> None:
        self.value += max(0.0, seconds)


def check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--days must be from 1 to {MAX_DAYS}, not {days}")


def simulate(db: Database, *, start: datetime, days: int, environ: Mapping[str, str],
             timezone: str, max_per_day: int = DEFAULT_MAX_PER_DAY,
             progress: Callable[[datetime], None] | None = None) -> Simulation:
    """Run the copy `db` forward from `start` for `days` days and count what happened. `db`
    must be a throw-away copy: it is changed (channels rerouted, the engine's own writes)."""
    check_days(days)
    end = start + timedelta(days=days)
    result = Simulation(start, end, timezone, max_per_day)
    with db.atomic():
        result.rerouted = store.reroute_channels(db)
        built_after = store.prepare(db)
        occurrences_after = store.occurrence_mark(db)
    rates = set(store.channel_rates(db))
    clock = _VirtualClock()
    at = start
    while at < end:
        at_text = to_db(at)
        if schedules.due_reason(db, at_text) is None:
            threshold = from_db(store.next_threshold(db, at_text))
            if threshold is None:
                break
            steps = max(1, -(-(threshold - start) // STEP))  # the first tick at or after it
            at = max(at + STEP, start + steps * STEP)
            continue
        _tick(db, at, environ, clock, result)
        _observe(db, at, rates)
        result.ticks += 1
        at += STEP
        if progress is not None:
            progress(min(at, end))
    if progress is not None:
        progress(end)
    _count(db, result, built_after=built_after, occurrences_after=occurrences_after)
    return result


def _tick(db: Database, at: datetime, environ: Mapping[str, str], clock: _VirtualClock,
          result: Simulation) -> None:
    """One `campctl tick` at `at`: the engine's tick, then operator notifications."""
    from campctl.engine.run_control import deliver_pending_notifications

    report = tick_engine.run(TickContext(db, at, environ, monotonic=clock.monotonic,
                                         sleep=clock.sleep))
    try:
        deliver_pending_notifications(db, now=at, environ=environ)
    except Exception as exc:  # as in `campctl tick`: never fails the tick
        report.warnings.append(f"notifications not delivered: {exc}")
    for warning in report.warnings:
        line = f"{iso_z(at)}: {warning}"
        if line not in result.warnings and len(result.warnings) < 100:
            result.warnings.append(line)


def _observe(db: Database, at: datetime, rates: set[str]) -> None:
    """After a tick: which messages wait for a closed window or a full rate window, and which
    ended (failed, cancelled) in it."""
    import json

    from campctl.engine import windows
    from campctl.engine.runs import Snapshot

    at_text = to_db(at)
    closed: list[int] = []
    live: list[int] = []
    closed_zones: dict[int, tuple[str, ...]] = {}  # runs whose window is read per contact
    for run in store.active_built_runs(db):
        send_at = from_db(run["send_at"])
        if send_at is not None and send_at > at:
            continue  # held by its send schedule, which is the plan, not a hold
        run_id = int(run["id"])
        try:
            snapshot = Snapshot.of(json.loads(run["spec"]))
            if snapshot.contact_windows and snapshot.window:
                from campctl.engine.contact_windows import run_zones

                zones = run_zones(db, [run_id], {run_id: snapshot.window}, now=at)[run_id]
                closed_zones[run_id] = tuple(z.zone for z in zones.held)
                if zones.open:
                    live.append(run_id)
                continue
            is_open = windows.is_open(snapshot.window, snapshot.timezone, at)
        except (ValueError, TypeError, AttributeError):
            continue  # the tick fails such a run
        (live if is_open else closed).append(run_id)
    with db.atomic():
        store.mark_held_window(db, closed, at=at_text)
        for run_id, held in closed_zones.items():
            store.mark_held_window(db, [run_id], at=at_text, zones=held)
        store.mark_held_rate(db, rates, live, at=at_text)
        store.mark_held_cap(db, at=at_text)
        store.mark_ended(db, at=at_text)


# --- counting -----------------------------------------------------------------------------------
def _item_objects(row: Mapping[str, Any]) -> list[str]:
    found = []
    if row.get("campaign"):
        found.append(f"campaign/{row['campaign']}")
    if row.get("plan"):
        found.append(f"plan/{row['plan']}")
    if row.get("scenario"):
        found.append(f"scenario/{row['scenario']}")
    return found


def _ending(row: Mapping[str, Any]) -> tuple[str, str]:
    """(counter, reason) of a message that failed or was cancelled."""
    status, reason = str(row["status"]), str(row.get("last_error") or row["status"])
    if status == STALE or reason == STALE or reason.startswith(STALE + ":"):
        return STALE, STALE
    if reason == CAPPED:  # dropped by a frequency cap (every held one counts as `capped`)
        return "cancelled", CAPPED
    return ("failed" if status == "failed" else "cancelled"), reason


class _Tally:
    def __init__(self, result: Simulation) -> None:
        self.result = result
        self.tz = zone(result.timezone)
        self.start_day = result.start.astimezone(self.tz).date()

    def day(self, text: str | None) -> date | None:
        moment = from_db(text)
        if moment is None or not (self.result.start <= moment < self.result.end):
            return None
        return moment.astimezone(self.tz).date()

    def add(self, day: date, objects: list[str], counter: str, reason: str | None = None,
            reasons: str | None = None) -> None:
        r = self.result
        targets = [r.total, r.days.setdefault(day, Counts())]
        for obj in objects:
            targets.append(r.objects.setdefault(obj, Counts()))
            targets.append(r.day_objects.setdefault((day, obj), Counts()))
        for counts in targets:
            counts.values[counter] += 1
            if reasons == "skipped" and reason is not None:
                counts.skipped_reasons[reason] += 1
            elif reasons == "cancelled" and reason is not None:
                counts.cancelled_reasons[reason] += 1


def _count(db: Database, result: Simulation, *, built_after: int,
           occurrences_after: int) -> None:
    tally = _Tally(result)
    day: date = tally.start_day
    last = (result.end - timedelta(seconds=1)).astimezone(tally.tz).date()
    while day <= last:  # every day of the period has a row, even an empty one
        result.days.setdefault(day, Counts())
        day += timedelta(days=1)
    for occ in store.occurrences_after(db, occurrences_after):
        when = tally.day(occ.get("created_at") or occ["scheduled_at"]) or tally.start_day
        objects = [f"{str(occ['kind']).lower()}/{occ['name']}"]
        if occ["status"] == "fired":
            tally.add(when, objects, "fired")
        else:
            reason = f"{occ['status']}: {occ['reason']}" if occ["reason"] else str(occ["status"])
            tally.add(when, objects, "skipped", reason, "skipped")
    hours = -(-(result.end - result.start) // timedelta(hours=1))
    result.hourly = [0] * hours
    per_contact: Counter = Counter()
    for item in store.items_touched(db, built_after=built_after, start=to_db(result.start)):
        objects = _item_objects(item)
        if int(item["id"]) > built_after and (moment := tally.day(item["created_at"])):
            tally.add(moment, objects, "built")
        sent = from_db(item["sent_at"]) if item["status"] == "sent" else None
        if sent is not None and (moment := tally.day(item["sent_at"])):
            tally.add(moment, objects, "sent")
            result.hourly[min(hours - 1, (sent - result.start) // timedelta(hours=1))] += 1
            if item["contact"] is not None:
                per_contact[(moment, str(item["contact"]))] += 1
        if item["ended_at"] is not None and (moment := tally.day(item["ended_at"])):
            counter, reason = _ending(item)
            tally.add(moment, objects, counter, reason, "cancelled")
    for hold in store.held(db):
        if moment := tally.day(hold["at"]):
            why = CAPPED if hold["why"] == "cap" else f"held_{hold['why']}"
            tally.add(moment, _item_objects(hold), why)
    heavy = sorted(((d, c, n) for (d, c), n in per_contact.items() if n > result.max_per_day),
                   key=lambda x: (-x[2], x[0], x[1]))
    result.heavy_total = len({c for _, c, _ in heavy})
    result.heavy = [{"day": d.isoformat(), "contact": c, "messages": n}
                    for d, c, n in heavy[:HEAVY_NAMED]]
