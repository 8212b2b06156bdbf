"""Operator verbs on runs (stop, restart, skip, pause, resume) and operator notifications.

Each verb checks `models.RUN_TRANSITIONS`, moves the run with a conditional update, writes its
history row (kind `run`, name = id) and, for stop/restart/skip, a notification — all in the
caller's transaction. Notifications are delivered afterwards, outside any transaction, by
`deliver_pending_notifications` (the command right after the action, and every tick).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from campctl.engine.runs import run_subject
from campctl.errors import ActionRefused, NotFound
from campctl.models import ACTIVE_RUN_STATUSES, RUN_TRANSITIONS, RunStatus, allowed_verbs
from campctl.store import history
from campctl.store import log as exec_log
from campctl.store import notifications as store_notifications
from campctl.store import runs as store_runs
from campctl.store.runs import NewRun, RunRecord
from campctl.timeutil import from_db

if TYPE_CHECKING:
    from campctl.engine.users import Restriction
    from campctl.store.queue import RetrySelection

RUN_VERBS = ("stop", "restart", "skip", "pause", "resume")
NOTIFY_KINDS = {
    "stop": "run-stopped",
    "stopped": "run-stopped",
    "restart": "run-restarted",
    "restarted": "run-restarted",
    "skip": "run-skipped",
    "skipped": "run-skipped",
    "fail": "run-failed",
    "failed": "run-failed",
    "retry": "run-retried",
    "retried": "run-retried",
}
NOTIFY_MAX_ATTEMPTS = 5
NOTIFY_CLAIM = timedelta(minutes=5)
_LOG_EVENTS = {
    "stop": "Run Stopped",
    "restart": "Run Restarted",
    "skip": "Run Skipped",
    "pause": "Delivery Paused",
    "resume": "Delivery Resumed",
    "retry": "Run Retried",
}
# `retry run`: the statuses it starts from, and the status the retried run moves to. A failed or
# stopped run is replaced, as by a restart (skipped, its plan stage follows the new run); a
# completed run stays completed (its stage is done; the retry runs beside it).
RETRY_FROM = {"completed": "completed", "failed": "skipped", "stopped": "skipped"}


@dataclass
class RunAction:
    """What one verb did."""

    run_id: int
    verb: str
    from_status: str
    to_status: str
    new_run_id: int | None = None
    cancelled: int = 0
    notification_id: int | None = None
    # Cancelled items whose hand-over began before a delivery was interrupted (never resent).
    possibly_handed_over: int = 0
    # retry: the items of the new run (one per contact whose message failed).
    queued: int = 0
    # resume: the policy for messages whose intended send time passed while paused.
    missed: MissedCount | None = None


def _refusal(run_id: int, status: str, verb: str) -> ActionRefused:
    verbs = allowed_verbs(RUN_TRANSITIONS, status)
    why = {
        "restart": "only failed or stopped runs can be restarted",
        "skip": "only failed or stopped runs can be skipped",
        "stop": "only active runs can be stopped",
        "pause": "only active runs can be paused",
        "resume": "only paused runs can be resumed",
    }[verb]
    if verbs:
        hint = f"allowed on it now: {', '.join(verbs)}"
    else:
        hint = f"{status} is final, no verb applies (see 'campctl describe run {run_id}')"
    return ActionRefused(f"cannot {verb} run {run_id}: it is {status}; {why}; {hint}")


@dataclass(frozen=True)
class RunVerb:
    """An operator's verb on a run (one of RUN_VERBS): who gives it, the note for the history
    and notification, and for restart whether messages already sent are sent again."""

    verb: str
    actor: str
    note: str | None = None
    include_sent: bool = False
    missed: str = "send"


def apply_run_verb(db, run_id: int, request: RunVerb, *, now: datetime) -> RunAction:
    """Apply one operator verb to a run. Raises NotFound (3) or ActionRefused (1)."""
    verb, actor, note = request.verb, request.actor, request.note
    if verb not in RUN_VERBS:
        raise ValueError(f"unknown run verb {verb!r}")
    with db.atomic():
        run = store_runs.get_run_record(db, run_id)
        if run is None:
            raise NotFound(f"no run {run_id} (list them with 'campctl get runs')")
        target = _target_status(db, run, verb, now=now)
        finished = verb in ("stop", "restart", "skip")
        if finished:
            moved = store_runs.end_run(db, run_id, target, now=now, expected=[run.status])
        else:
            moved = store_runs.set_status(db, run_id, target, now=now, expected=[run.status],
                                          paused_from=run.status if verb == "pause" else None)
        if not moved:  # pragma: no cover - BEGIN IMMEDIATE makes this a can't-happen guard
            raise ActionRefused(f"run {run_id} changed while you acted; try again")
        action = RunAction(run_id=run_id, verb=verb, from_status=run.status, to_status=target)
        if verb == "resume":
            action.missed = missed_messages(db, [run], since=_paused_at(db, "run", run_id),
                                            policy=request.missed, now=now, actor=actor)
            action.cancelled = action.missed.cancelled
        history.record(db, history.HistoryEntry(
            kind="run", name=str(run_id), action=verb, actor=actor, from_status=run.status,
            to_status=target, note=note), now=now)
        if finished:
            # A stopped run's items are all cancelled at once; those whose hand-over began in a
            # delivery that never recorded it (a crash) as possibly handed over. Skip and restart
            # find them cancelled already, unless the stop predates this rule.
            action.cancelled = store_runs.cancel_queued_items(db, run_id, now=now)
            action.possibly_handed_over = store_runs.unsure_items(db, run_id)
        if verb == "restart":
            action.new_run_id = _create_restart(db, run, note=note, actor=actor, now=now,
                                                include_sent=request.include_sent)
        exec_log.append(db, exec_log.LogEntry(
            _LOG_EVENTS[verb],
            run_subject(run_id, run),
            details=_log_details(action, note)), now=now)
        if finished:
            action.notification_id = notify_run(db, run_id, verb, note, actor, now)
        if verb in ("restart", "skip"):
            from campctl.engine.plans import resume_after_run_verb

            resume_after_run_verb(db, run, restarted_as=action.new_run_id, actor=actor, now=now,
                                  note=note)
    return action


def _target_status(db, run: RunRecord, verb: str, *, now: datetime) -> str:
    """The status the verb moves the run to; refuses a verb its status does not allow."""
    status = run.status
    table = RUN_TRANSITIONS.get(RunStatus(status), {}) if status in set(RunStatus) else {}
    if verb not in table:
        raise _refusal(run.id, status, verb)
    if verb in ("restart", "skip"):
        _refuse_new_work(db, run, verb, now=now)
    if verb in ("pause", "stop"):
        # Nothing is delivered after a pause or stop commits: this transaction blocks new
        # claims, and a hand-over in flight stops after its current message (see
        # engine/delivery.py), which is recorded before a restart can build.
        db.wait_for_hand_overs()
    target = str(table[verb])
    if verb == "resume":
        active = {str(s) for s in ACTIVE_RUN_STATUSES} - {str(RunStatus.PAUSED)}
        if run.paused_from in active:
            return str(run.paused_from)
    return target


def _log_details(action: RunAction, note: str | None) -> str | None:
    """The execution log's details of a verb: the note, then what the verb did."""
    details = note or ""
    if action.missed is not None and action.missed.cancelled:
        details = (f"{details} ({action.missed.cancelled} messages missed while paused "
                   "cancelled: --missed skip)").strip()
    elif action.cancelled:
        details = f"{details} ({action.cancelled} items cancelled)".strip()
    if action.possibly_handed_over:
        details = (f"{details} ({action.possibly_handed_over} possibly handed over before an "
                   "interrupted delivery: not sent again)").strip()
    if action.new_run_id is not None:
        details = f"{details} (new run {action.new_run_id})".strip()
    return details or None


def _refuse_new_work(db, run: RunRecord, verb: str, *, now: datetime) -> None:
    """A restart (or retry) starts a new run: not for a closed or stopped campaign. No verb
    applies to a run whose plan instance has ended (stopped by an operator, or its campaign
    closed)."""
    from campctl.engine.campaigns import new_run_blocker
    from campctl.engine.plans import run_verb_blocker

    why = run_verb_blocker(db, run, verb)
    if why is None and verb in ("restart", "retry"):
        closes_at = from_db(run.closes_at)
        if closes_at is not None and closes_at <= now:
            why = f"campaign {run.campaign} closed at {run.closes_at}"
        else:
            why = new_run_blocker(db, run.campaign, now=now, missing_ok=True)
    if why is not None:
        raise ActionRefused(f"cannot {verb} run {run.id}: {why}")


def _create_restart(db, run: RunRecord, *, note: str | None, actor: str, now: datetime,
                    include_sent: bool) -> int:
    """The replacement run: same snapshot and instance, scheduled now; keeps queue/send times
    so that a send planned for later still waits for it."""
    from campctl.engine.runs import campaign_closes_at

    new_id = store_runs.insert_run(db, NewRun(
        campaign=run.campaign,
        stage=run.stage,
        spec=store_runs.raw_spec(db, run.id) or run.spec,
        status=str(RunStatus.SCHEDULED),
        scheduled_at=now,
        queue_at=from_db(run.queue_at),
        send_at=from_db(run.send_at),
        instance_id=run.instance_id,
        restart_of=run.id,
        include_sent=include_sent,
        closes_at=campaign_closes_at(db, run.campaign) or from_db(run.closes_at),
    ), now=now)
    extra = "including contacts already sent" if include_sent else "excluding contacts already sent"
    history.record(db, history.HistoryEntry(
        kind="run", name=str(new_id), action="create", actor=actor,
        to_status=str(RunStatus.SCHEDULED),
        note=f"restart of run {run.id} ({extra})" + (f": {note}" if note else "")), now=now)
    return new_id


def notify_run(db, run_id: int, kind: str, note: str | None, actor: str | None,
               now: datetime) -> int:
    """Record an operator notification about a run (`kind`: stopped, restarted, skipped, failed;
    the `run-` prefixed forms are accepted too). Call inside the caller's transaction; delivery
    happens later through `deliver_pending_notifications`."""
    normal = kind if kind.startswith("run-") else NOTIFY_KINDS.get(kind, f"run-{kind}")
    notification_id = store_notifications.add(db, now=now, kind=normal, object=f"run/{run_id}",
                                              note=note, actor=actor)
    from campctl.engine import worklist

    # The run enters or leaves a work list; the user it concerns is notified at their address.
    concerned = worklist.on_run_notification(db, run_id=run_id, kind=normal, actor=actor,
                                             note=note, now=now)
    worklist.notify_user(db, notification_id=notification_id, user=concerned)
    return notification_id


@dataclass
class NotificationDelivery:
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def deliver_pending_notifications(
    db, *, now: datetime, environ: Mapping[str, str], limit: int = 100
) -> NotificationDelivery:
    """Deliver undelivered notifications through `notify_channel` to `notify_to`, if both are
    set. Each is claimed in a short transaction, handed over outside any transaction, and its
    outcome recorded (`delivered_at` or `delivery_error`); failures are retried by later calls
    up to NOTIFY_MAX_ATTEMPTS times."""
    from campctl.store.config import get_config
    from campctl.store.users import notification_recipient

    report = NotificationDelivery()
    channel = get_config(db, "notify_channel")
    notify_to = get_config(db, "notify_to")
    if not channel:
        return report
    from campctl.engine.delivery import Notice, redact_text, send_notification

    for notification_id in store_notifications.pending_ids(
        db, now=now, max_attempts=NOTIFY_MAX_ATTEMPTS, limit=limit,
        addressed_only=not notify_to,
    ):
        # A copy for a user goes to the user's address; the original to notify_to.
        to = notification_recipient(db, notification_id) or notify_to
        if not to:
            continue
        with db.atomic():
            if not store_notifications.claim(db, notification_id, now=now,
                                             until=now + NOTIFY_CLAIM):
                continue
            item = store_notifications.get(db, notification_id)
        if item is None:  # pragma: no cover
            continue
        subject, body = render_notification(db, item)
        error = None
        try:
            # A stable message id per notification lets the receiver drop a retried duplicate.
            notice = Notice(to, subject, body, message_id=f"notify-{notification_id}")
            result = send_notification(db, channel, notice, now=now, environ=environ)
            if not result.ok:
                error = result.reason or "channel refused the message"
        except Exception as exc:  # any channel failure is recorded and retried, never raised
            error = " ".join(str(exc).split()) or type(exc).__name__
        if error is not None:
            error = redact_text(db, channel, environ, error)
            with db.atomic():
                # Back off 1, 2, 4, 8 ... minutes between attempts.
                retry_at = now + timedelta(minutes=2 ** max(0, int(item["attempts"]) - 1))
                store_notifications.mark_failed(db, notification_id, error=error,
                                                retry_at=retry_at)
            report.failed += 1
            report.errors.append(f"notification {notification_id}: {error}")
        else:
            with db.atomic():
                store_notifications.mark_delivered(db, notification_id, now=now)
            report.delivered += 1
    return report


def render_notification(db, item: dict) -> tuple[str, str]:
    """Subject and plain-text body of one notification."""
    obj = item["object"]
    what = item["kind"].removeprefix("run-")
    subject = f"[campctl] {obj} {what}"
    lines = [f"{obj} {what} at {item['at']}"]
    if obj.startswith("run/"):
        try:
            run = store_runs.get_run_record(db, int(obj.split("/", 1)[1]))
        except ValueError:
            run = None
        if run is not None:
            subject = f"[campctl] run {run.id} ({run.campaign}/{run.stage}) {what}"
            lines.append(f"campaign: {run.campaign}, stage: {run.stage}, "
                         f"status now: {run.status}")
            if run.error:
                lines.append(f"error: {run.error}")
            from campctl.engine.worklist import assignee

            holder = assignee(db, run.id)
            if holder:
                lines.append(f"in the work list of: {holder} (campctl worklist --as {holder})")
    if item.get("actor"):
        lines.append(f"by: {item['actor']}")
    if item.get("note"):
        lines.append(f"note: {item['note']}")
    if obj.startswith("run/"):
        lines.append(f"details: campctl describe run {obj.split('/', 1)[1]}")
    return subject, "\n".join(lines) + "\n"


# --- resume: what happens to the messages missed while paused ------------------------------------

MISSED_POLICIES = ("send", "skip")
# Item groups (by next_attempt_at) cancelled per statement.
_CANCEL_CHUNK = 500


@dataclass
class MissedCount:
    """Messages of paused runs at a resume: those whose intended send time passed while paused
    (`missed`), the other waiting ones (`released`), and how many were cancelled (`skip`)."""

    policy: str
    since: str | None = None
    missed: int = 0
    released: int = 0
    cancelled: int = 0
    runs: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"policy": self.policy, "since": self.since, "missed": self.missed,
                "released": self.released, "cancelled": self.cancelled, "runs": self.runs}


def intended_send_time(run: RunRecord, next_attempt_at: str | None,
                       zone: str | None = None) -> datetime | None:
    """When a waiting item of `run` was meant to go out had nothing held it: the latest of the
    run's build, its send schedule (`send_at`) and the item's own `next_attempt_at` (a retry
    after a transient failure), moved to the next opening of the run's sending window (read in
    `zone`, the item's window zone, when the run reads it in each contact's zone). None for
    a run not built yet (it has no items). A channel's rate limit is not counted."""
    built = from_db(run.built_at)
    if built is None:
        return None
    base = max(t for t in (built, from_db(run.send_at), from_db(next_attempt_at))
               if t is not None)
    from campctl.engine import windows
    from campctl.engine.runs import Snapshot

    snapshot = Snapshot.of(run.spec)
    tz = zone if zone and snapshot.contact_windows else snapshot.timezone
    return windows.next_open(snapshot.window, tz, base)


def missed_messages(db, runs: list[RunRecord], *, since: str | None, policy: str,
                    now: datetime, apply: bool = True, actor: str | None = None) -> MissedCount:
    """Count (and with `policy` skip and `apply`, cancel with last_error 'missed', one log row
    per run) the waiting messages of `runs` whose intended send time passed while paused: at or
    after `since` (the pause; None: unknown, any time) and at or before `now`. Items a hand-over
    began on are left alone. Caller's transaction."""
    if policy not in MISSED_POLICIES:
        raise ValueError(f"unknown missed policy {policy!r}")
    start = from_db(since) if since else None
    result = MissedCount(policy=policy, since=since)
    from campctl.engine.runs import Snapshot

    for run in sorted(runs, key=lambda r: r.id):
        # A window read in each contact's zone: each zone has its own intended send time.
        by_zone = Snapshot.of(run.spec).contact_windows
        missed_keys: dict[str | None, list[str | None]] = {}
        missed = released = 0
        for next_attempt_at, zone, count in store_runs.waiting_by_attempt(db, run.id,
                                                                          by_zone=by_zone):
            at = intended_send_time(run, next_attempt_at, zone)
            if at is not None and at <= now and (start is None or at >= start):
                missed_keys.setdefault(zone, []).append(next_attempt_at)
                missed += count
            else:
                released += count
        cancelled = 0
        if policy == "skip" and apply and missed_keys:
            for zone, keys in missed_keys.items():
                for i in range(0, len(keys), _CANCEL_CHUNK):
                    cancelled += store_runs.cancel_missed(db, run.id, keys[i:i + _CANCEL_CHUNK],
                                                          zone=zone)
            exec_log.append(db, exec_log.LogEntry(
                "Missed Messages Cancelled", run_subject(run.id, run),
                details=f"{cancelled} messages whose send time passed while paused (since "
                        f"{since or 'an unrecorded pause'}) cancelled: resume --missed skip"
                        + (f" by {actor}" if actor else "")), now=now)
        elif policy == "skip":
            cancelled = missed  # what a resume without --dry-run would cancel
        if policy == "send":
            released += missed
        result.runs.append({"run": run.id, "missed": missed, "released": released,
                            "cancelled": cancelled})
        result.missed += missed
        result.released += released
        result.cancelled += cancelled
    return result


def _paused_at(db, kind: str, object_id: int) -> str | None:
    return store_runs.paused_since(db, kind, str(object_id))


def preview_resume_run(db, run_id: int, *, policy: str, now: datetime) -> RunAction:
    """What `resume run ID --missed POLICY` would do, writing nothing (refused as the resume
    would be)."""
    run = store_runs.get_run_record(db, run_id)
    if run is None:
        raise NotFound(f"no run {run_id} (list them with 'campctl get runs')")
    target = _target_status(db, run, "resume", now=now)
    action = RunAction(run_id=run_id, verb="resume", from_status=run.status, to_status=target)
    action.missed = missed_messages(db, [run], since=_paused_at(db, "run", run_id),
                                    policy=policy, now=now, apply=False)
    action.cancelled = action.missed.cancelled
    return action


def instance_missed(db, instance_id: int, *, policy: str, now: datetime, apply: bool = True,
                    actor: str | None = None) -> MissedCount:
    """The missed messages of a paused plan instance's runs that its resume releases (built,
    `queued` or `sending`; a run paused on its own stays held until its own resume), counted
    from the instance's pause; cancelled with `policy` skip and `apply`."""
    runs = store_runs.list_run_records(db, instance_id=instance_id, status=("queued", "sending"))
    return missed_messages(db, runs, since=_paused_at(db, "instance", instance_id),
                           policy=policy, now=now, apply=apply, actor=actor)


# --- retry: a new run for the contacts whose messages failed --------------------------------------

def retry_failed(db, run_id: int, *, actor: str, note: str | None, now: datetime) -> RunAction:
    """`retry run ID --failed-only`: a new run (`restart_of: ID`, same snapshot, plan instance
    and send time) queued at once with exactly the contacts whose message failed in the run's
    restart chain and that no run of the chain sent (or possibly handed over). Raises NotFound
    (3) or ActionRefused (1)."""
    from campctl.store import queue as store_queue

    with db.atomic():
        run = store_runs.get_run_record(db, run_id)
        if run is None:
            raise NotFound(f"no run {run_id} (list them with 'campctl get runs')")
        if run.status not in RETRY_FROM:
            verbs = allowed_verbs(RUN_TRANSITIONS, run.status)
            hint = (f"allowed on it now: {', '.join(verbs)}" if verbs
                    else f"see 'campctl describe run {run_id}'")
            raise ActionRefused(f"cannot retry run {run_id}: it is {run.status}; only completed, "
                                f"failed or stopped runs can be retried; {hint}")
        replaced = store_runs.restarted_as(db, run_id)
        if replaced:
            raise ActionRefused(f"cannot retry run {run_id}: run {replaced[-1]} already "
                                f"replaced it; retry run {replaced[-1]} instead")
        if run.spec_error:
            raise ActionRefused(f"cannot retry run {run_id}: {run.spec_error}")
        _refuse_new_work(db, run, "retry", now=now)
        selection, restriction = _retry_selection(db, run)
        count = store_queue.count_retry_contacts(db, selection)
        if count == 0 and restriction is not None:
            from dataclasses import replace

            outside = store_queue.count_retry_contacts(db, replace(selection, rights=None))
            if outside:
                raise ActionRefused(
                    f"cannot retry run {run_id}: the {outside} contacts whose message failed are "
                    f"all left out by the campaign creator's rights ({restriction.reason})")
        if count == 0:
            counts = store_runs.counts(db, run_id)
            raise ActionRefused(
                f"cannot retry run {run_id}: no contact's message failed in it or in the runs it "
                f"restarted without being sent later (sent {counts['sent']}, failed "
                f"{counts['failed']}, cancelled {counts['cancelled']})")
        target = RETRY_FROM[run.status]
        action = RunAction(run_id=run_id, verb="retry", from_status=run.status, to_status=target)
        if target != run.status:
            if not store_runs.end_run(db, run_id, target, now=now, expected=[run.status]):
                raise ActionRefused(  # pragma: no cover - the transaction holds the write lock
                    f"run {run_id} changed while you acted; try again")
            action.cancelled = store_runs.cancel_queued_items(db, run_id, now=now)
            action.possibly_handed_over = store_runs.unsure_items(db, run_id)
        history.record(db, history.HistoryEntry(
            kind="run", name=str(run_id), action="retry", actor=actor, from_status=run.status,
            to_status=target, note=note), now=now)
        action.new_run_id, action.queued = _create_retry(
            db, run, RetryPlan(selection, restriction), note=note, actor=actor, now=now)
        exec_log.append(db, exec_log.LogEntry(
            _LOG_EVENTS["retry"], run_subject(run_id, run),
            details=f"{_log_details(action, note)} ({action.queued} contacts whose message "
                    "failed)"), now=now)
        action.notification_id = notify_run(db, run_id, "retry", note, actor, now)
        if target == "skipped":
            from campctl.engine.plans import resume_after_run_verb

            resume_after_run_verb(db, run, restarted_as=action.new_run_id, actor=actor, now=now,
                                  note=note)
    return action


@dataclass(frozen=True)
class RetryPlan:
    """Whom a retry queues (`store.queue.RetrySelection`) and the creator's rights behind it."""

    selection: RetrySelection
    restriction: Restriction | None


def _retry_selection(db, run: RunRecord) -> tuple[RetrySelection, Restriction | None]:
    """The failed contacts of the run's chain, narrowed by the campaign creator's rights."""
    from campctl.engine import users
    from campctl.engine.runs import Snapshot
    from campctl.store.queue import RetrySelection

    restriction = users.restriction_for(db, kind="Campaign", name=run.campaign,
                                        message_types=[Snapshot.of(run.spec).message_type])
    rights = None if restriction is None else (restriction.sql, list(restriction.params))
    return RetrySelection(run.id, rights), restriction


def _create_retry(db, run: RunRecord, chosen: RetryPlan, *, note: str | None, actor: str,
                  now: datetime) -> tuple[int, int]:
    """The retry run, built in this transaction (`queued`, its items inserted); returns its id
    and how many items it holds."""
    from dataclasses import replace

    from campctl.engine import users
    from campctl.engine.runs import Snapshot, campaign_closes_at
    from campctl.store import queue as store_queue

    selection, restriction = chosen.selection, chosen.restriction
    snapshot = Snapshot.of(run.spec)
    new_id = store_runs.insert_run(db, NewRun(
        campaign=run.campaign,
        stage=run.stage,
        spec=store_runs.raw_spec(db, run.id) or run.spec,
        status=str(RunStatus.BUILDING),
        scheduled_at=now,
        queue_at=now,
        send_at=from_db(run.send_at),
        instance_id=run.instance_id,
        restart_of=run.id,
        include_sent=False,
        closes_at=campaign_closes_at(db, run.campaign) or from_db(run.closes_at),
    ), now=now)
    items = store_queue.RunItems(new_id, snapshot.channel, priority=snapshot.priority)
    queued = store_queue.insert_retry_items(db, selection, items, snapshot.message_type,
                                            now=now)
    users.record_run_left_out(db, new_id, restriction,
                              store_queue.failed_contacts_query(replace(selection, rights=None)))
    if snapshot.contact_windows:
        from campctl.engine import contact_windows

        contact_windows.assign_at_build(db, new_id, fallback=snapshot.timezone)
    store_runs.mark_built(db, new_id, now=now)
    history.record(db, history.HistoryEntry(
        kind="run", name=str(new_id), action="create", actor=actor,
        to_status=str(RunStatus.QUEUED),
        note=f"retry of run {run.id} (the {queued} contacts whose message failed)"
             + (f": {note}" if note else "")), now=now)
    exec_log.append(db, exec_log.LogEntry(
        "Queue Items Created", run_subject(new_id, store_runs.get_run_record(db, new_id)),
        details=f"{queued} queue items (retry of run {run.id}: failed contacts only)"), now=now)
    return new_id, queued
