"""Campaign runs: the stage snapshot, creating runs, and the run lifecycle inside a tick.

scheduled → building → queued → sending → completed (or failed); paused runs are left alone.
Building is one transaction (claim + set-based insert + status), so a run's queue is
all-or-nothing; delivery is delegated to `engine.delivery.deliver_due`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from campctl.definitions.models import (
    DEFAULT_CHANNEL,
    DEFAULT_PRIORITY,
    DEFAULT_TIMEZONE,
    EVERYONE,
    Campaign,
    priority_of,
)
from campctl.engine import isolation
from campctl.engine.context import TickContext
from campctl.errors import NotFound
from campctl.models import ACTIVE_RUN_STATUSES
from campctl.store import history, schedules
from campctl.store import log as exec_log
from campctl.store import runs as run_store
from campctl.store.runs import NewRun, RunRecord
from campctl.timeutil import from_db, to_db


def resolve_stage(model: Campaign, campaign_name: str, stage: str, *,
                  version: int | None = None) -> dict:
    """The run snapshot of one stage: campaign settings with the stage's overrides applied."""
    found = model.stage(stage)
    if found is None:
        names = ", ".join(s.name for s in model.stages)
        raise NotFound(f"campaign {campaign_name} has no stage {stage!r} (stages: {names})")
    audience = (found.audience or model.audience or EVERYONE)
    snapshot = {
        "campaign": campaign_name,
        "stage": stage,
        "code": model.code_or(campaign_name),
        "timezone": model.timezone,
        "channel": found.channel or model.channel,
        "message_type": model.message_type,
        "audience": audience.as_spec(),
        "include_opted_out": audience.include_opted_out,
        "message": model.message.merged(found.message).as_snapshot(),
        "window": model.window,
        "campaign_version": version,
    }
    if model.window and model.window_timezone == "contact":  # written only when set
        snapshot["window_timezone"] = "contact"
    stale_after = found.stale_after or model.stale_after
    if stale_after:  # written only when set: snapshots without it stay as they were
        snapshot["stale_after"] = stale_after
    if model.priority != DEFAULT_PRIORITY:  # likewise: frequency caps rank by it
        snapshot["priority"] = model.priority
    return snapshot


def campaign_closes_at(db, campaign: str) -> datetime | None:
    """The closing instant of the campaign as defined now (None: none, unreadable or deleted)."""
    from campctl.engine.workflow import closes_at
    from campctl.store import objects as object_store

    obj = object_store.get_record(db, "Campaign", campaign)
    if obj is None:
        return None
    try:
        return closes_at(Campaign.from_spec(obj.spec))
    except ValueError:
        return None


def run_subject(run_id: int, run: RunRecord | None) -> exec_log.Subject:
    """What a log row about a run concerns: the run, its campaign and stage, its plan instance."""
    if run is None:
        return exec_log.Subject(run_id=run_id)
    return exec_log.Subject(instance_id=run.instance_id, campaign=run.campaign, stage=run.stage,
                            run_id=run_id)


def create_run(db, new: NewRun, *, now: datetime) -> int:
    """A new run in status `scheduled`; the tick builds it once `queue_at` has come. It carries
    the campaign's current closes_at, after which delivery claims none of its items."""
    run = replace(new, status="scheduled", closes_at=campaign_closes_at(db, new.campaign))
    run_id = run_store.insert_run(db, run, now=now)
    if new.queue_at is not None and new.queue_at > now:
        # Asleep until its queue time: without this, the no-op tick's probe ("run active") sees
        # work at every minute until then, and cron runs a full tick each minute for days.
        schedules.set_state(db, "Run", str(run_id), next_due_at=new.queue_at, keep_cursor=True)
    return run_id


# --- building ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a run reads from its stored snapshot (written by `resolve_stage`)."""

    audience: dict[str, Any]
    channel: str
    message_type: str | None
    include_opted_out: bool
    window: str | None
    timezone: str
    stale_after: str | None = None  # DURATION text: the run's staleness deadline (engine/stale)
    priority: int = DEFAULT_PRIORITY  # copied onto each queue item (frequency caps rank by it)
    window_timezone: str | None = None  # contact: the window is read in each contact's zone

    @property
    def contact_windows(self) -> bool:
        """The window is read in each recipient's zone (engine/contact_windows.py)."""
        return bool(self.window) and self.window_timezone == "contact"

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Snapshot:
        return cls(audience=dict(spec.get("audience") or EVERYONE.as_spec()),
                   channel=spec.get("channel") or DEFAULT_CHANNEL,
                   message_type=spec.get("message_type"),
                   include_opted_out=bool(spec.get("include_opted_out")),
                   window=spec.get("window"), timezone=spec.get("timezone") or DEFAULT_TIMEZONE,
                   stale_after=spec.get("stale_after"),
                   priority=priority_of(spec.get("priority")),
                   window_timezone=spec.get("window_timezone"))


def _build(db, run: RunRecord, *, now: datetime) -> int:
    snapshot = Snapshot.of(run.spec)
    count = _build_items(db, run, snapshot, now=now)
    if snapshot.contact_windows:
        from campctl.engine import contact_windows

        contact_windows.assign_at_build(db, run.id, fallback=snapshot.timezone)
    return count


def _build_items(db, run: RunRecord, snapshot: Snapshot, *, now: datetime) -> int:
    audience = snapshot.audience
    exclude = run.restart_of if run.restart_of and not run.include_sent else None
    message_type = snapshot.message_type
    include_opted_out = snapshot.include_opted_out
    # The campaign creator's sending rights narrow the audience; those left out are counted.
    from campctl.engine import users

    restriction = users.restriction_for(db, kind="Campaign", name=run.campaign,
                                        message_types=[message_type])
    extra = None if restriction is None else (restriction.sql, restriction.params)
    if "events" in audience:
        from dataclasses import replace

        from campctl.store import events

        # Everyone the run's selection reaches; the creator's rights narrow whom it queues.
        recipients = events.EventRecipients(
            run.id, events.EventSelection.from_snapshot(audience["events"]), message_type,
            include_opted_out)
        count = events.build_queue_from_events(
            db, replace(recipients, extra_where=extra), channel=snapshot.channel, now=now,
            exclude_sent_of_run=exclude, priority=snapshot.priority)
        if restriction is not None:
            users.record_run_left_out(db, run.id, restriction,
                                      events.event_contacts_query(db, recipients, now=now))
        return count
    from dataclasses import replace

    from campctl.engine import audience as audience_engine
    from campctl.store.segments import audience_query

    query = audience_engine.AudienceQuery(
        audience, message_type, include_opted_out,
        sample_key=f"{run.campaign}/{run.stage}/{run.scheduled_at or run.id}")
    count = audience_engine.build_queue(
        db, replace(query, extra=extra),
        audience_engine.RunItems(run.id, snapshot.channel, exclude_sent_of_run=exclude,
                                 priority=snapshot.priority),
        now=now)
    if restriction is not None:
        users.record_run_left_out(db, run.id, restriction, audience_query(db, query, now=now))
    return count


def build_due(ctx: TickContext) -> None:
    """Build every scheduled run whose queue time has come, one transaction per run; a run
    whose building fails is rolled back and failed alone. A run paused before it was built
    builds too and stays paused: pause holds delivery only."""
    db, now, report = ctx.db, ctx.now, ctx.report
    for run_id in run_store.scheduled_due(db, now=now):
        with isolation.boundary(db, report, isolation.Unit(
                kind="run", name=str(run_id),
                fail=_build_failed(db, run_id, now=now, report=report)), now=now):
            if not run_store.set_status(db, run_id, "building", now=now, expected=["scheduled"]):
                continue  # another tick took it
            _build_claimed(db, run_id, paused=False, now=now, report=report)
    for run_id in run_store.paused_unbuilt_due(db, now=now):
        with isolation.boundary(db, report, isolation.Unit(
                kind="run", name=str(run_id),
                fail=_build_failed(db, run_id, now=now, report=report)), now=now):
            if not run_store.claim_paused_build(db, run_id, now=now):
                continue
            _build_claimed(db, run_id, paused=True, now=now, report=report)


def _build_claimed(db, run_id: int, *, paused: bool, now: datetime, report) -> None:
    run = run_store.get_run_record(db, run_id)
    assert run is not None
    if run.spec_error:  # never build from a guess: {} would mean everyone
        raise ValueError(run.spec_error)
    count = _build(db, run, now=now)
    if paused:
        run_store.mark_built_paused(db, run_id, now=now)
    else:
        run_store.mark_built(db, run_id, now=now)
    left_out = _left_out_note(db, run_id)
    exec_log.append(db, exec_log.LogEntry(
        "Queue Items Created",
        run_subject(run_id, run),
        details=f"{count} queue items{left_out}"
                + ("; held, the run is paused" if paused else "")), now=now)
    report.built += count
    report.notes.append(f"run {run_id} ({run.campaign}/{run.stage}): built {count} "
                        "messages" + left_out
                        + (" (paused: none is sent until resumed)" if paused else ""))


def _left_out_note(db, run_id: int) -> str:
    from campctl.store.users import run_left_out

    count, reason = run_left_out(db, [run_id]).get(run_id, (0, None))
    return f" ({count} contacts left out: {reason})" if count else ""


def _run_failed(db, run_id: int, *, now: datetime, report):
    def fail(reason: str) -> None:
        fail_run(db, run_id, RunFailure(f"the engine could not process this run: {reason}"),
                 now=now, report=report)

    return fail


def _build_failed(db, run_id: int, *, now: datetime, report):
    def fail(reason: str) -> None:
        fail_run(db, run_id, RunFailure(f"building failed: {reason}", event="Build Failed",
                                        details=reason), now=now, report=report)

    return fail


@dataclass(frozen=True)
class RunFailure:
    """Why the engine fails a run: `error` (kept on the run, in its history and notification),
    the log `event` and the log row's `details` (default: the error)."""

    error: str
    event: str = "Run Failed"
    details: str | None = None


def fail_run(db, run_id: int, failure: RunFailure, *, now: datetime, report=None) -> bool:
    """An active run the engine cannot go on with ends `failed` (caller's transaction): its
    unsent messages are cancelled; history, log row and operator notification with the reason.
    False when the run had already ended."""
    error = failure.error
    run = run_store.get_run_record(db, run_id)
    before = run.status if run else None
    if not run_store.end_run(db, run_id, "failed", now=now, expected=ACTIVE_RUN_STATUSES,
                             error=error):
        return False
    cancelled = run_store.cancel_queued_items(db, run_id, now=now)
    history.record(db, history.HistoryEntry(
        kind="run", name=str(run_id), action="fail", actor=isolation.ACTOR, from_status=before,
        to_status="failed", note=error), now=now)
    exec_log.append(db, exec_log.LogEntry(
        failure.event,
        run_subject(run_id, run),
        details=(failure.details or error)
                + (f"; {cancelled} unsent message(s) cancelled" if cancelled else "")), now=now)
    notify_failure(db, run_id, error, now=now)
    if report is not None:
        report.cancelled += cancelled
        label = f"{run.campaign}/{run.stage}" if run else "None/None"
        report.notes.append(f"run {run_id} ({label}): {error}")
    return True


def notify_failure(db, run_id: int, note: str, *, now: datetime) -> None:
    """Operator notification `run-failed` for a failed run (caller's transaction)."""
    from campctl.engine import run_control

    run_control.notify_run(db, run_id=run_id, kind="run-failed", note=note, actor="campctl",
                           now=now)


# --- delivery ---------------------------------------------------------------------------------

def _sleep_until(db, run_id: int, wake: datetime, *, dry_run: bool) -> None:
    if not dry_run:
        schedules.set_state(db, "Run", str(run_id), next_due_at=wake, keep_cursor=True)


@dataclass
class LiveRuns:
    """The runs whose messages may go out now, and for runs whose window is read in each
    contact's zone, the zones open now (their other items wait)."""

    ids: list[int]
    zones: dict[int, tuple[str, ...]]


def live_runs(ctx: TickContext) -> LiveRuns:
    """Runs whose messages may go out now: built, send schedule live, window open, not paused.
    A run whose window is read in each contact's zone is live while any zone holding queued
    items has its window open; only those zones' items are claimed.

    Runs that must wait get a wake-up instant in schedule_state, so no-op ticks stay cheap.
    """
    from campctl.engine import windows

    db, now, report, dry_run = ctx.db, ctx.now, ctx.report, ctx.dry_run

    candidates = run_store.list_run_records(db, status=("queued", "sending"))
    paused_instances = run_store.paused_instances(db, [r.instance_id for r in candidates
                                                       if r.instance_id])
    for run in run_store.list_run_records(db, status="paused"):
        report.notes.append(f"run {run.id} ({run.campaign}/{run.stage}): paused, nothing "
                            f"is sent until 'campctl resume run {run.id}'")
    live: list[int] = []
    open_zones: dict[int, tuple[str, ...]] = {}
    for run in sorted(candidates, key=lambda r: r.id):
        # A run whose stored snapshot breaks this (a bad window, a bad time) fails alone.
        with isolation.boundary(db, report, isolation.Unit(
                kind="run", name=str(run.id),
                fail=_run_failed(db, run.id, now=now, report=report)), now=now, transaction=False):
            label = f"run {run.id} ({run.campaign}/{run.stage})"
            if run.built_at is None:
                continue
            if run.spec_error:  # never send from a guess: {} would be a blank message
                raise ValueError(run.spec_error)
            if run.instance_id in paused_instances:
                report.notes.append(f"{label}: waits, its plan instance is paused")
                continue
            send_at = from_db(run.send_at)
            if send_at is not None and send_at > now:
                report.notes.append(f"{label}: held until its send schedule at {to_db(send_at)}")
                _sleep_until(db, run.id, send_at, dry_run=dry_run)
                continue
            snapshot = Snapshot.of(run.spec)
            window, tz = snapshot.window, snapshot.timezone
            if snapshot.contact_windows:
                from campctl.engine.contact_windows import describe_held, run_zones

                zones = run_zones(db, [run.id], {run.id: window or ""}, now=now)[run.id]
                if not zones.zones:
                    continue  # nothing queued: finishing completes it
                if zones.held:
                    report.notes.append(f"{label}: waits for its sending window {window} in "
                                        f"each contact's zone: {describe_held(zones)}")
                if not zones.open:
                    assert zones.next_open is not None
                    _sleep_until(db, run.id, zones.next_open, dry_run=dry_run)
                    continue
                open_zones[run.id] = zones.open
                live.append(run.id)
                continue
            if window and not windows.is_open(window, tz, now):
                opens = windows.next_open(window, tz, now)
                report.notes.append(f"{label}: waits for its sending window {window} ({tz}), opens "
                                    f"{to_db(opens)}")
                _sleep_until(db, run.id, opens, dry_run=dry_run)
                continue
            live.append(run.id)
    return LiveRuns(live, open_zones)


def start_delivery(ctx: TickContext, live: LiveRuns) -> None:
    """Live runs still `queued` move to `sending` (one log row each)."""
    run_ids = live.ids
    if not run_ids:
        return
    db, now, report = ctx.db, ctx.now, ctx.report
    with db.atomic():
        for run_id in run_ids:
            with isolation.boundary(db, report, isolation.Unit(
                    kind="run", name=str(run_id),
                    fail=_run_failed(db, run_id, now=now, report=report)), now=now):
                if run_store.set_status(db, run_id, "sending", now=now, expected=["queued"]):
                    run = run_store.get_run_record(db, run_id)
                    assert run is not None  # its status just moved
                    exec_log.append(db, exec_log.LogEntry(
                        "Delivery Started",
                        run_subject(run_id, run)), now=now)


def deliver(ctx: TickContext, live: LiveRuns) -> None:
    """Deliver the due messages of `run_ids` and of scenarios into the tick's report; delivery
    itself breaking is reported and the tick goes on."""
    from campctl.engine import delivery

    db, now, report = ctx.db, ctx.now, ctx.report
    try:
        result = delivery.deliver_due(ctx, run_ids=live.ids, scenario_items=True,
                                      zones=live.zones)
    except Exception as exc:
        if isolation.state_problem(exc):
            raise
        # Messages fail one by one inside delivery; this is delivery itself breaking. What it
        # claimed and did not record is taken again after the claim's lease, with the same ids.
        reason = isolation.describe(exc)
        report.object_failures.append({"object": "delivery", "reason": reason})
        report.warnings.append(f"delivery stopped: {reason}; the rest of the tick went on")
        with db.atomic():
            exec_log.append(db, exec_log.LogEntry("Delivery Failed", details=reason), now=now)
        return
    report.sent += result.sent
    report.failed += result.failed
    report.cancelled += result.cancelled
    if result.stale:
        report.notes.append(f"{result.stale} stale messages "
                            f"{'would be ' if ctx.dry_run else ''}cancelled: not handed over "
                            "by their intended send time + stale_after")
    if result.capped:
        report.notes.append(f"{result.capped} messages capped by a frequency cap (deferred "
                            "until it frees a slot, or dropped)")
    if result.waiting_rate:
        report.notes.append(f"{result.waiting_rate} messages wait for their channel's rate limit")
    retried = result.retried
    if retried:
        report.notes.append(f"{retried} messages will be retried (channel unavailable)")
    for problem in dict.fromkeys(result.errors):
        report.warnings.append(problem + (f" ({retried} message(s) will be retried)"
                                          if retried else ""))


# --- finishing --------------------------------------------------------------------------------

def finish(ctx: TickContext) -> None:
    """Complete built runs with nothing left to deliver; wake-ups of retries; tidy wake rows;
    cancel what ended runs still hold once no live claim keeps it (a delivery that died)."""
    db, now, report, dry_run = ctx.db, ctx.now, ctx.report, ctx.dry_run
    if not dry_run:
        with db.atomic():
            report.cancelled += run_store.sweep_ended_runs(db, now=now)
    runs = [r for r in run_store.list_run_records(db, status=("queued", "sending"))
            if r.built_at is not None]
    remaining = run_store.remaining_items(db, [r.id for r in runs])
    for run in runs:
        left = remaining.get(run.id, 0)
        if left:
            retry = from_db(run_store.next_retry_at(db, run.id) or None)
            retry = retry if retry is not None and retry > now else None
            zones = _zone_wake(db, run, now=now)
            if zones is not None and zones.next_open is not None and (
                    retry is not None or not zones.open):
                # Only closed zones hold its messages (or a retry waits): the earliest opening.
                retry = min(retry or zones.next_open, zones.next_open)
            if retry is not None and retry > now and not dry_run:
                with db.atomic():
                    schedules.set_state(db, "Run", str(run.id), next_due_at=retry,
                                        keep_cursor=True)
            continue
        with isolation.boundary(db, report, isolation.Unit(
                kind="run", name=str(run.id),
                fail=_run_failed(db, run.id, now=now, report=report)), now=now):
            counts = run_store.counts(db, run.id)
            # A template that cannot render fails its message, not the run; a run fails when
            # nothing went out and the channel is what failed.
            failed = (counts["failed"] > 0 and counts["sent"] == 0
                      and run_store.channel_failures(db, run.id) > 0)
            status = "failed" if failed else "completed"
            error = "no message went out: the channel stayed unreachable or refused them" \
                if failed else None
            if not run_store.end_run(db, run.id, status, now=now,
                                     expected=["queued", "sending"], error=error):
                continue
            details = (f"sent {counts['sent']}, failed {counts['failed']}, "
                       f"cancelled {counts['cancelled']}")
            exec_log.append(db, exec_log.LogEntry(
                "Run Failed" if failed else "Run Completed",
                run_subject(run.id, run),
                details=details), now=now)
            if failed:
                notify_failure(db, run.id, error or "failed", now=now)
            report.notes.append(f"run {run.id} ({run.campaign}/{run.stage}): {status} "
                                f"({details})")
    if not dry_run:
        with db.atomic():
            schedules.clear_run_wakes(db)


def _zone_wake(db, run: RunRecord, *, now: datetime):
    """For a run whose window is read in each contact's zone, its zones holding queued items
    at `now` (engine/contact_windows.RunZones); None for other runs."""
    snapshot = Snapshot.of(run.spec)
    if not snapshot.window or not snapshot.contact_windows:
        return None
    from campctl.engine.contact_windows import run_zones

    try:
        return run_zones(db, [run.id], {run.id: snapshot.window}, now=now)[run.id]
    except ValueError:  # a broken snapshot: live_runs fails the run alone
        return None


@dataclass(frozen=True, slots=True)
class EndedRun:
    """A run a campaign's close ended: its status before, and how many items it cancelled."""

    id: int
    instance_id: int | None
    status: str
    cancelled: int


def close_campaign_runs(db, campaign: str, *, now: datetime, report) -> list[EndedRun]:
    """closes_at has passed: unbuilt runs are skipped, waiting items cancelled, runs finished.
    Returns the runs it ended."""
    ended: list[EndedRun] = []
    for run in run_store.active_runs_of_campaign(db, campaign):
        cancelled = run_store.cancel_queued_items(db, run.id, now=now)
        if report is not None:
            report.cancelled += cancelled
        if run.status == "scheduled" or (run.status == "paused"
                                             and run.built_at is None):
            moved = run_store.end_run(db, run.id, "skipped", now=now, expected=[run.status],
                                      error="campaign closed before it was built")
        else:
            moved = run_store.end_run(db, run.id, "completed", now=now, expected=[run.status],
                                      error="campaign closed; unsent messages cancelled")
        exec_log.append(db, exec_log.LogEntry(
            "Campaign Closed",
            exec_log.Subject(instance_id=run.instance_id, campaign=campaign, stage=run.stage,
                             run_id=run.id),
            details=f"{cancelled} queued messages cancelled"), now=now)
        if moved:
            ended.append(EndedRun(run.id, run.instance_id, run.status, cancelled))
    return ended
