"""Campaign schedules: launch, one-off / date-triggered / event-triggered occurrences, closes_at.

Each launched campaign has a schedule_state row whose `next_due_at` says when it next needs
attention; a tick looks only at due rows. Occurrences are unique by (campaign, scheduled time) in
the database, so concurrent ticks create one set of runs per occurrence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from campctl.definitions.models import (
    DEFAULT_DST,
    EVERYONE,
    Campaign,
    DateSchedule,
    DstPolicy,
    EventSchedule,
    Moment,
    OneOffSchedule,
)
from campctl.engine import isolation
from campctl.engine import runs as run_engine
from campctl.store import events as event_store
from campctl.store import log as exec_log
from campctl.store import objects as object_store
from campctl.store import runs as run_store
from campctl.store import schedules
from campctl.store.objects import ObjectRecord
from campctl.store.runs import NewRun
from campctl.timeutil import from_db, parse_local_datetime, shift, to_db

KIND = "Campaign"
ONE_SECOND = timedelta(seconds=1)
FIRE_CHUNK = 50


def _when(moment: Moment | None, tz: str, launch: datetime) -> datetime | None:
    """`immediately` → launch; an `at` moment → that instant; None otherwise."""
    if moment is None:
        return None
    if moment.kind == "immediately":
        return launch
    if moment.at is not None:
        return parse_local_datetime(moment.at, tz)
    return None


def _closes_at(campaign: Campaign) -> datetime | None:
    if campaign.closes_at is None:
        return None
    return parse_local_datetime(campaign.closes_at, campaign.timezone)


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def one_off_times(campaign: Campaign, launch: datetime) -> tuple[datetime, datetime | None]:
    """(queue_at, send_at) of a one-off launch; send_at None = send as soon as built."""
    schedule = campaign.schedule
    assert isinstance(schedule, OneOffSchedule)
    tz = campaign.timezone
    send_at = _when(schedule.send, tz, launch) if schedule.send.kind == "at" else None
    queue = schedule.queue
    if queue.kind == "before_send":
        queue_at = shift(send_at or launch, str(queue.text), tz, back=True)
    else:
        queue_at = _when(queue, tz, launch) or launch
    return max(queue_at, launch), send_at


@dataclass(frozen=True, slots=True)
class _Starts:
    """When a recurring campaign's builds start (`start`) and its sending (`send_start`)."""

    expr: str  # the cron expression of the builds, or on_event
    start: datetime
    send_start: datetime
    until: datetime | None = None
    dst: DstPolicy = DEFAULT_DST  # of the cron expression


def _starts(campaign: Campaign, launch: datetime) -> _Starts:
    """The build expression and the start instants of a date- or event-triggered launch."""
    schedule = campaign.schedule
    tz = campaign.timezone
    if isinstance(schedule, DateSchedule):
        expr, start = schedule.cron, _when(schedule.start, tz, launch) or launch
        until = _when(schedule.until, tz, launch)
    else:
        assert isinstance(schedule, EventSchedule)
        expr, start = schedule.queue_every, _when(schedule.queue_start, tz, launch) or launch
        until = None
    start = max(start, launch)
    send_start = _when(schedule.send_start, tz, launch) or start
    return _Starts(expr, start, send_start, until, schedule.dst)


def held_window(campaign: Campaign,
                launch: datetime) -> tuple[datetime, datetime, datetime] | None:
    """(after, until, send_start): the span in which a recurring campaign launched at `launch`
    builds runs that its send schedule holds (a build exactly at send_start is not held); None
    when there is no such span. ValueError for an unreadable time."""
    starts = _starts(campaign, launch)
    until = starts.send_start - ONE_SECOND
    for limit in (starts.until, _closes_at(campaign)):
        if limit is not None:
            until = min(until, limit)
    begin = starts.start - ONE_SECOND
    if until <= begin:
        return None
    return begin, until, starts.send_start


def on_launch(db, name: str, now: datetime) -> None:
    """Hook for `start campaign`: compute the schedule at once, inside the caller's transaction."""
    from campctl.models import TickReport

    process(db, name, now=now, report=TickReport(now=now))


def fire_due(db, *, now: datetime, report, dry_run: bool = False) -> None:
    """Process every campaign whose schedule is due (one transaction per campaign)."""
    due = schedules.due_campaigns(db, now=now)
    # A campaign whose stages all run in plans is never launched: its runs say when it closes.
    closing = run_store.campaigns_past_closing(db, now=now)
    if closing:
        due = sorted(set(due) | set(closing))
    if event_store.max_event_id(db) > schedules.events_seen(db):
        # Events recorded by any path (not only record_event) reach on_event campaigns.
        due = sorted(set(due) | set(event_store.event_campaigns(db, None)))
    # Short transactions of a few campaigns each: fewer commits, and each campaign's
    # occurrences and runs still appear together or not at all.
    for start in range(0, len(due), FIRE_CHUNK):
        with db.atomic():
            for name in due[start:start + FIRE_CHUNK]:
                # A campaign that fails is rolled back alone and retried at the next tick.
                with isolation.boundary(db, report, isolation.Unit(kind=KIND, name=name), now=now):
                    process(db, name, now=now, report=report)


def process(db, name: str, *, now: datetime, report) -> None:
    obj = object_store.get_record(db, KIND, name)
    if obj is None:
        schedules.clear_state(db, KIND, name)
        return
    campaign = Campaign.from_spec(obj.spec)
    closes_at = _closes_at(campaign)
    launched = from_db(obj.launched_at)
    state = schedules.get_state(db, KIND, name)
    cursor_launch = state.cursor_at if state else None
    if closes_at is not None and now >= closes_at:
        _close(db, name, closes_at, now=now, report=report)
        schedules.set_state(db, KIND, name, next_due_at=None,
                            cursor_at=obj.launched_at or cursor_launch)
        return
    if obj.status != "approved" or launched is None:
        schedules.set_state(db, KIND, name, next_due_at=closes_at, cursor_at=cursor_launch)
        return
    target = _Target(name, obj, campaign)
    if campaign.type == "date-triggered":
        nxt = _date_triggered(db, target, launched, now=now, report=report)
    elif campaign.type == "event-triggered":
        nxt = _event_triggered(db, target, launched, now=now, report=report)
    else:
        nxt = _one_off(db, target, launched, now=now, report=report)
    schedules.set_state(db, KIND, name, next_due_at=_earliest(nxt, closes_at),
                        cursor_at=obj.launched_at)


@dataclass(frozen=True, slots=True)
class _Target:
    """The campaign a tick processes: its name, stored row and typed definition."""

    name: str
    obj: ObjectRecord
    campaign: Campaign


def _close(db, name: str, closes_at: datetime, *, now: datetime, report) -> None:
    """Cancel what is left of the campaign's runs (every time: a late run cannot slip through)
    and end the plan stages they served; the campaign's own row is written once."""
    occ = schedules.insert_occurrence(db, schedules.Slot(KIND, name, closes_at),
                                      status="closed", now=now, reason="closes_at reached")
    ended = run_engine.close_campaign_runs(db, name, now=now, report=report)
    if occ is not None:
        exec_log.append(db, exec_log.LogEntry(
            "Campaign Closed", exec_log.Subject(campaign=name),
            details=f"closes_at {to_db(closes_at)} reached: no new run starts; "
                    f"{len(ended)} active run(s) ended"), now=now)
        if report is not None:
            report.notes.append(f"campaign {name}: closed at {to_db(closes_at)}; no new runs, "
                                "queued messages cancelled")
    if ended:
        from campctl.engine import plans

        plans.campaign_closed(db, campaign=name, closes_at=closes_at, runs=ended, now=now,
                              report=report)


def close_if_due(db, name: str, *, now: datetime, report=None) -> datetime | None:
    """Close the campaign now if its closes_at has come (caller's transaction); returns the
    closing instant when it has, None while the campaign is open."""
    obj = object_store.get_record(db, KIND, name)
    if obj is None:
        return None
    try:
        closes_at = _closes_at(Campaign.from_spec(obj.spec))
    except ValueError:
        return None
    if closes_at is None or now < closes_at:
        return None
    _close(db, name, closes_at, now=now, report=report)
    return closes_at


def new_run_blocker(db, name: str, *, now: datetime, missing_ok: bool = False) -> str | None:
    """Why no new run of the campaign may start now (a plan stage, a restart), None when one
    may: the campaign must exist, be approved (not stopped) and not have closed."""
    obj = object_store.get_record(db, KIND, name)
    if obj is None:
        return None if missing_ok else f"campaign {name} no longer exists"
    try:
        closes_at = _closes_at(Campaign.from_spec(obj.spec))
    except ValueError:
        closes_at = None
    if closes_at is not None and now >= closes_at:
        return f"campaign {name} closed at {to_db(closes_at)}"
    if obj.status != "approved":
        return f"campaign {name} is {obj.status}, and no new run of it starts"
    return None


def _occurrence(occurrence_id: int, scheduled_at: datetime, queue_at: datetime,
                send_at: datetime | None) -> NewRun:
    """The schedule shared by the runs of one occurrence (their stage and snapshot come later)."""
    return NewRun(campaign="", stage="", spec={}, scheduled_at=scheduled_at, queue_at=queue_at,
                  send_at=send_at, occurrence_id=occurrence_id)


def _create_stage_runs(db, target: _Target, occurrence: NewRun, *, now: datetime,
                       audience: dict | None = None) -> list[int]:
    """A run per stage that is not controlled by a plan, on the occurrence's schedule."""
    name, campaign = target.name, target.campaign
    scheduled_at = occurrence.scheduled_at
    assert scheduled_at is not None  # every occurrence has its instant
    ids = []
    for stage in campaign.stages:
        if stage.controlled_by_plan:
            continue
        snapshot = run_engine.resolve_stage(campaign, name, stage.name,
                                            version=target.obj.version)
        if audience is not None:  # an event batch, filtered by the stage's own audience
            selection = dict(audience["events"], audience=snapshot["audience"])
            snapshot["audience"] = {"events": selection}
        run_id = run_engine.create_run(
            db, replace(occurrence, campaign=name, stage=stage.name, spec=snapshot), now=now)
        exec_log.append(db, exec_log.LogEntry(
            "Activity Created", exec_log.Subject(campaign=name, stage=stage.name, run_id=run_id),
            details=f"occurrence {to_db(scheduled_at)}"), now=now)
        ids.append(run_id)
    return ids


def _one_off(db, target: _Target, launch: datetime, *, now: datetime, report):
    name = target.name
    queue_at, send_at = one_off_times(target.campaign, launch)
    occ = schedules.insert_occurrence(db, schedules.Slot(KIND, name, launch),
                                      status="fired", now=now, reason="launch")
    if occ is not None:
        ids = _create_stage_runs(db, target, _occurrence(occ, launch, queue_at, send_at),
                                 now=now)
        report.fired += 1
        report.notes.append(
            f"campaign {name}: launched; {len(ids)} run(s) build at {to_db(queue_at)}, send "
            + (f"from {to_db(send_at)}" if send_at else "as soon as built"))
    return None


def _record_skips(db, name: str, skipped, *, now: datetime, report) -> None:
    for moment, reason in skipped:
        if schedules.insert_occurrence(db, schedules.Slot(KIND, name, moment),
                                       status="skipped", now=now, reason=reason) is not None:
            exec_log.append(db, exec_log.LogEntry(
                "Occurrence Skipped", exec_log.Subject(campaign=name),
                details=f"{to_db(moment)}: {reason}"), now=now)
            report.skipped += 1
            report.notes.append(f"campaign {name}: occurrence {to_db(moment)} skipped ({reason})")


def _cron_cursor(db, name: str, start: datetime) -> datetime:
    last = from_db(schedules.last_occurrence_at(db, kind=KIND, name=name))
    floor = start - ONE_SECOND  # an occurrence exactly at the start counts
    return max(floor, last) if last is not None else floor


def _date_triggered(db, target: _Target, launch: datetime, *, now: datetime, report):
    from campctl.engine import cron

    name, campaign = target.name, target.campaign
    schedule = campaign.schedule
    assert isinstance(schedule, DateSchedule)
    tz = campaign.timezone
    starts = _starts(campaign, launch)
    expr, start, send_start, until = starts.expr, starts.start, starts.send_start, starts.until
    cursor = _cron_cursor(db, name, start)
    horizon = _earliest(now, until) or now
    if horizon > cursor:
        due = cron.fire_times(expr, tz, after=cursor, until=horizon, dst=starts.dst)
        fire, skipped = cron.apply_catchup(due, schedule.catchup, now=now)
        _record_skips(db, name, skipped, now=now, report=report)
        for moment in fire:
            occ = schedules.insert_occurrence(db, schedules.Slot(KIND, name, moment),
                                              status="fired", now=now)
            if occ is None:
                continue
            send_at = send_start if send_start > moment else None
            ids = _create_stage_runs(db, target, _occurrence(occ, moment, moment, send_at),
                                     now=now)
            report.fired += 1
            report.notes.append(f"campaign {name}: occurrence {to_db(moment)} fired, {len(ids)} "
                                "run(s)" + (f" held until {to_db(send_at)}" if send_at else ""))
    nxt = cron.next_fire(expr, tz, after=max(now, _cron_cursor(db, name, start)),
                         dst=starts.dst)
    if nxt is not None and until is not None and nxt > until:
        return None
    return nxt


def _event_triggered(db, target: _Target, launch: datetime, *, now: datetime, report):
    name, campaign = target.name, target.campaign
    schedule = campaign.schedule
    assert isinstance(schedule, EventSchedule)
    tz = campaign.timezone
    event = campaign.trigger_event
    starts = _starts(campaign, launch)
    queue_start, send_start = starts.start, starts.send_start
    every = schedule.queue_every
    build_window = schedule.build_window
    if now < queue_start:
        report.notes.append(f"campaign {name}: queue schedule starts {to_db(queue_start)}")
        return queue_start
    if schedule.on_event:
        if build_window:
            from campctl.engine import windows

            if not windows.is_open(build_window, tz, now):
                opens = windows.next_open(build_window, tz, now)
                if _has_new_events(db, name, event, queue_start):
                    report.notes.append(f"campaign {name}: events wait for the build window "
                                        f"{build_window}, opens {to_db(opens)}")
                    return opens
                return None
        _build_batch(db, target, _Batch(event, queue_start, send_start, moment=now),
                     now=now, report=report)
        return None
    from campctl.engine import cron

    cursor = _cron_cursor(db, name, queue_start)
    if now > cursor:
        due = cron.fire_times(every, tz, after=cursor, until=now, dst=schedule.dst)
        fire, skipped = cron.apply_catchup(due, schedule.catchup, now=now)
        _record_skips(db, name, skipped, now=now, report=report)
        for moment in fire:
            if build_window:
                from campctl.engine import windows

                if not windows.is_open(build_window, tz, moment):
                    _record_skips(db, name, [(moment, f"outside build_window {build_window}; "
                                              "events carry over")], now=now, report=report)
                    continue
            _build_batch(db, target, _Batch(event, queue_start, send_start, moment=moment,
                                            record_empty=True), now=now, report=report)
    return cron.next_fire(every, tz, after=max(now, _cron_cursor(db, name, queue_start)),
                          dst=schedule.dst)


def _consumer(name: str) -> str:
    return f"campaign:{name}"


def _has_new_events(db, name: str, event: str, since: datetime) -> bool:
    cursor = event_store.get_cursor(db, _consumer(name)) or 0
    top = event_store.max_event_id(db, name=event)
    return top > cursor and event_store.pending_events(
        db, name=event, after_id=cursor, upto_id=top, since=since) > 0


@dataclass(frozen=True, slots=True)
class _Batch:
    """One event batch: events of `event` since `queue_start`, built at `moment`.

    `record_empty` (a cron `queue_every` slot): a slot without new events is still recorded, so
    that the schedule's cursor moves past it and a later tick never reports it as missed."""

    event: str
    queue_start: datetime
    send_start: datetime
    moment: datetime
    record_empty: bool = False


def _build_batch(db, target: _Target, batch: _Batch, *, now: datetime, report) -> None:
    """One run over every event of `batch.event` since the last batch (none: nothing happens)."""
    name, event, moment = target.name, batch.event, batch.moment
    consumer = _consumer(name)
    cursor = event_store.get_cursor(db, consumer) or 0
    top = event_store.max_event_id(db, name=event)
    count = 0
    if top > cursor:
        count = event_store.pending_events(db, name=event, after_id=cursor, upto_id=top,
                                           since=batch.queue_start)
        event_store.set_cursor(db, consumer, top)
    if count == 0:  # nothing new, or only events from before queue_start: they produce nothing
        if batch.record_empty:
            schedules.insert_occurrence(db, schedules.Slot(KIND, name, moment),
                                        status="empty", now=now, reason="no new events")
        return
    occ = schedules.insert_occurrence(db, schedules.Slot(KIND, name, moment),
                                      status="fired", now=now, reason=f"{count} events")
    if occ is None:
        return
    audience = (target.campaign.audience or EVERYONE).as_spec()
    selection = {"events": {"name": event, "after_id": cursor, "upto_id": top,
                            "since": to_db(batch.queue_start), "audience": audience}}
    send_at = batch.send_start if batch.send_start > now else None
    ids = _create_stage_runs(db, target, _occurrence(occ, moment, now, send_at), now=now,
                             audience=selection)
    report.fired += 1
    report.notes.append(f"campaign {name}: {count} '{event}' events batched into {len(ids)} "
                        "run(s)")


def note_event(db, event: str, *, at: datetime) -> None:
    """An event was recorded: bring listening on_event campaigns' next_due_at forward."""
    for name in event_store.event_campaigns(db, event):
        schedules.lower_due(db, KIND, name, due=at)


# What happens at a previewed instant: messages are built (queue), handed over (send), or both.
QUEUE, SEND, QUEUE_AND_SEND = "queue", "send", "queue and send"
QUEUE_START, SEND_START = "queue start", "send start"  # on_event: when each schedule goes live


def preview(obj: ObjectRecord, *, now: datetime, count: int) -> list[datetime]:
    """The next `count` instants at which this campaign builds or sends."""
    return [moment for moment, _ in preview_steps(obj, now=now, count=count)]


_PHASE_ORDER = {QUEUE_START: 0, QUEUE: 1, QUEUE_AND_SEND: 1, SEND_START: 2, SEND: 2}


def preview_steps(obj: ObjectRecord, *, now: datetime, count: int,
                  marks: dict[datetime, str] | None = None) -> list[tuple[datetime, str]]:
    """The next `count` (instant, phase) of a launch now (or of the recorded launch).

    A build whose messages go out at once is one `queue and send` step; a build held by a later
    send schedule or a closed sending window is a `queue` step followed by the `send` step at
    which its messages start going out (one `send` step for all builds released together).
    `marks`, when given, receives the DST mark (cron.SHIFTED or cron.REPEATED) of each build
    instant that a daylight saving time change moved or doubled."""
    campaign = Campaign.from_spec(obj.spec)
    launch = from_db(obj.launched_at) or now
    steps = _Steps(campaign)
    if isinstance(campaign.schedule, OneOffSchedule):
        queue_at, send_at = one_off_times(campaign, launch)
        steps.build(queue_at, send_at or queue_at)
    else:
        _recurring_steps(campaign, steps, launch, now=now, count=count, marks=marks)
    closes_at = _closes_at(campaign)
    out = sorted((step for step in steps.found
                  if step[0] >= now and (closes_at is None or step[0] < closes_at)),
                 key=lambda step: (step[0], _PHASE_ORDER[step[1]]))
    return out[:count]


class _Steps:
    """The (instant, phase) steps of a preview, as builds are added."""

    def __init__(self, campaign: Campaign) -> None:
        # A window read in each contact's zone holds each message on its own: the send step is
        # when the first may go, each then waits for its recipient's window (the preview says so).
        self.window = None if campaign.window_timezone == "contact" else campaign.window
        self.tz = campaign.timezone
        self.found: set[tuple[datetime, str]] = set()

    def build(self, at: datetime, send_from: datetime) -> None:
        from campctl.engine import windows

        send = windows.next_open(self.window, self.tz, max(at, send_from))
        if send == at:
            self.found.add((at, QUEUE_AND_SEND))
        else:
            self.found.update({(at, QUEUE), (send, SEND)})


def _recurring_steps(campaign: Campaign, steps: _Steps, launch: datetime, *, now: datetime,
                     count: int, marks: dict[datetime, str] | None = None) -> None:
    """The builds of a date-triggered or cron-batched event-triggered campaign; for builds that
    follow events, only the instants at which its schedules go live."""
    from campctl.engine import cron

    starts = _starts(campaign, launch)
    if starts.expr == "on_event":
        steps.found.add((starts.start, QUEUE_START))
        if starts.send_start > starts.start:
            steps.found.add((starts.send_start, SEND_START))
        return
    after = max(now, starts.start - ONE_SECOND)
    horizon = after + timedelta(days=366 * 5)
    for moment, mark in cron.fire_marks(starts.expr, campaign.timezone, after=after,
                                        until=_earliest(horizon, starts.until) or horizon,
                                        limit=count, dst=starts.dst):
        steps.build(moment, starts.send_start)
        if mark is not None and marks is not None:
            marks[moment] = mark


# --- events -----------------------------------------------------------------------------------

_EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
# Earliest `at` an event may carry; the latest is the time of recording.
EARLIEST_EVENT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_DATA_DEPTH = 32
MAX_ERRORS_KEPT = 10_000


def record_event(db, *, name: str, contact: str, at: datetime, data, now: datetime) -> int:
    """Record one event of a known contact (caller's transaction) and wake its campaigns.

    An event dated in the future is refused (it would start journeys before it happened), as
    is one dated before 1970."""
    from campctl.errors import NotFound, UsageProblem

    if not isinstance(name, str) or not _EVENT_NAME.match(name):
        raise UsageProblem(f"bad event name {name!r}: use letters, digits, _ . : -")
    if data is not None and not isinstance(data, dict):
        raise UsageProblem("event data must be a JSON object")
    if at > now:
        raise UsageProblem(f"event time {to_db(at)} is in the future (now is {to_db(now)}); "
                           "record an event when it has happened")
    if at < EARLIEST_EVENT:
        raise UsageProblem(f"event time {at.isoformat()} is before 1970-01-01")
    contact_id = event_store.contact_id(db, str(contact))
    if contact_id is None:
        raise NotFound(f"no contact with id {contact!r} (import it with 'campctl contacts "
                       "import')")
    event_id = event_store.insert_event(db, name=name, contact=contact_id, at=at, data=data,
                                        now=now)
    note_event(db, name, at=min(at, now))
    return event_id


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def _depth(value: object, limit: int) -> int:
    """Nesting depth of a parsed JSON value, without recursion; stops counting past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _event_time(value: object, now: datetime) -> datetime:
    from campctl.timeutil import parse_instant

    if value is None:
        return now
    if not isinstance(value, str):
        raise ValueError("\"at\" must be an ISO 8601 text with an offset")
    try:
        return parse_instant(value)
    except OverflowError as exc:  # a shift near year 1 or 9999
        raise ValueError(f"event time {value!r} is out of range") from exc


def _int64(text: str) -> int:
    """An integer SQLite can store (64 bits); ValueError otherwise."""
    if len(text) > 20 or not -2**63 <= (value := int(text)) < 2**63:
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out of "
                         "range (64-bit integers)")
    return value


def _strict_json(text: str) -> object:
    """json.loads without NaN/Infinity, numbers out of range, runaway nesting or lone
    surrogates; ValueError says why."""
    import json

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the line is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite,
                           parse_int=_int64)
    except RecursionError:
        raise ValueError(f"nested too deeply (at most {MAX_DATA_DEPTH} levels)") from None
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if _depth(value, MAX_DATA_DEPTH + 1) > MAX_DATA_DEPTH + 1:
        raise ValueError(f"nested too deeply (at most {MAX_DATA_DEPTH} levels)")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (\\ud800-\\udfff), which is not text") \
            from None
    # A NUL can only come as the escape \u0000 (json.loads refuses a raw one): PostgreSQL's
    # text and jsonb cannot hold it, so no store takes it.
    if "\\u0000" in text and (where := _nul_path(value)) is not None:
        raise ValueError(f"{where or 'the value'} contains a NUL (U+0000) control character")
    return value


def _nul_path(value: object) -> str | None:
    """Where the first NUL in a parsed JSON value is ("" for the value itself, else a dotted
    path of keys and [indexes]); None when it holds none."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return f"a key in {path}" if path else "a field name"
                name = f"{path}.{key}" if path else key
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def parse_event_data(text: str) -> dict:
    """`events emit --data`: a JSON object under the same rules as an imported line's data."""
    from campctl.errors import UsageProblem

    try:
        value = _strict_json(text)
    except ValueError as exc:
        raise UsageProblem(f"--data: {exc}") from None
    if not isinstance(value, dict):
        raise UsageProblem("--data must be a JSON object")
    if _depth(value, MAX_DATA_DEPTH) > MAX_DATA_DEPTH:
        raise UsageProblem(f"--data is nested too deeply (at most {MAX_DATA_DEPTH} levels)")
    return value


def parse_event_line(text: str, *, now: datetime) -> dict:
    """One JSON Lines row as {event, contact, at, data}; ValueError says why it is refused."""
    obj = _strict_json(text)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    unknown = set(obj) - {"event", "contact", "at", "data"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if "event" not in obj or "contact" not in obj:
        raise ValueError("needs \"event\" and \"contact\"")
    contact = obj["contact"]
    if isinstance(contact, bool) or not isinstance(contact, str | int):
        raise ValueError("\"contact\" must be the contact's id (a string)")
    return {"event": obj["event"], "contact": str(contact),
            "at": _event_time(obj.get("at"), now), "data": obj.get("data")}


def import_events(db, lines, *, now: datetime, chunk: int = 1000) -> dict:
    """Events from JSON Lines; each bad line is reported by number and the rest are imported.

    `lines` may carry undecodable bytes as surrogate escapes (such a line alone is refused).
    A state-file problem still stops the import: it is not the line's fault.
    """
    from campctl.errors import CampctlError, StateFileError

    imported = 0
    rejected = 0
    errors: list[dict] = []
    pending = 0
    tx = db.atomic()
    tx.__enter__()
    try:
        for number, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                row = parse_event_line(text, now=now)
                with db.atomic():
                    record_event(db, name=row["event"], contact=row["contact"], at=row["at"],
                                 data=row["data"], now=now)
            except StateFileError:
                raise
            except (ValueError, CampctlError) as exc:
                rejected += 1
                if len(errors) < MAX_ERRORS_KEPT:
                    errors.append({"line": number,
                                   "reason": getattr(exc, "message", None) or str(exc)})
                continue
            imported += 1
            pending += 1
            if pending >= chunk:
                tx.__exit__(None, None, None)
                tx = db.atomic()
                tx.__enter__()
                pending = 0
    except BaseException as exc:
        tx.__exit__(type(exc), exc, exc.__traceback__)
        raise
    tx.__exit__(None, None, None)
    report: dict = {"imported": imported, "rejected": rejected, "errors": errors}
    if rejected > len(errors):
        report["errors_omitted"] = rejected - len(errors)
    return report
