"""Staleness deadlines: `stale_after` on a campaign (or its stage) and on a scenario send step.

A message not handed over by its intended send time plus `stale_after` is cancelled with the
reason `stale` (counted per run as `stale`, one log row per run or step each time some are
cancelled). It is decided inside each claim transaction, before the claim (see
engine/delivery.py), so a message is either cancelled or claimed, never both, whichever tick
gets to it; a message a hand-over began on is left to that hand-over.

The intended send time of a run's message is `run_control.intended_send_time` (the run's build,
its send schedule, the next opening of its window) without the retry time of the item: a
transient failure does not move the deadline, so a channel that is down for hours does not
deliver yesterday's sale once it is back. Every item of a run therefore has the same deadline,
except in a run whose window is read in each contact's zone: there each window zone has its
own (its window's first opening in that zone).
A scenario message is meant to go when its profile reached the send step (the item's
`created_at`; scenario sends have no window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from campctl.store import log as exec_log
from campctl.store import stale as store
from campctl.store.db import Database
from campctl.store.delivery import DueScope
from campctl.timeutil import parse_duration, to_db


@dataclass(frozen=True)
class _RunDeadline:
    run_id: int
    channel: str
    intended: datetime
    stale_after: str
    deadline: datetime
    zone: str | None = None  # the window zone whose items this deadline is (contact windows)


@dataclass(frozen=True)
class _StepDeadline:
    scenario: str
    step: str
    channel: str
    stale_after: str
    age: timedelta


def _duration(text: object) -> timedelta | None:
    """A positive `stale_after`, or None (absent; an unreadable stored value, which validation
    refuses, never cancels anything)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = parse_duration(text)
    except ValueError:
        return None
    return value if value > timedelta(0) else None


@dataclass
class StaleSweep:
    """The deadlines of one delivery pass (read once) and what it cancelled per run / step."""

    db: Database
    scope: DueScope
    _runs: list[_RunDeadline] | None = None
    _steps: list[_StepDeadline] | None = None
    # (scenario, step, channel) -> the oldest free item's queue time, re-read after a sweep.
    _oldest: dict[tuple[str, str, str], datetime | None] = field(default_factory=dict)
    cancelled: int = 0

    def sweep(self, channel: str, *, now: datetime, apply: bool = True) -> int:
        """Inside the claim transaction of `channel`: cancel (with `apply` False: count) the
        messages in scope whose deadline passed by `now`. Returns how many."""
        total = 0
        for run in self._run_deadlines():
            if run.channel != channel or now <= run.deadline:
                continue
            count = store.cancel_stale_run_items(self.db, run.run_id, channel=channel, now=now,
                                                 apply=apply, zone=run.zone)
            if count and apply:
                self._log_run(run, count, now=now)
            total += count
        for step in self._step_deadlines():
            if step.channel != channel:
                continue
            key = (step.scenario, step.step, channel)
            if key not in self._oldest:
                self._oldest[key] = store.oldest_step_item(self.db, step.scenario, step.step,
                                                           channel=channel, now=now)
            oldest = self._oldest[key]
            if oldest is None or oldest >= now - step.age:
                continue
            count = store.cancel_stale_step_items(
                self.db, step.scenario, step.step, channel=channel,
                created_before=now - step.age, now=now, apply=apply)
            if count and apply:
                self._log_step(step, count, now=now)
                del self._oldest[key]
            total += count
        if apply:
            self.cancelled += total
        return total

    # --- deadlines, read once per pass -----------------------------------------------------------
    def _run_deadlines(self) -> list[_RunDeadline]:
        if self._runs is None:
            self._runs = []
            if self.scope.run_ids:
                from campctl.engine.run_control import intended_send_time
                from campctl.engine.runs import Snapshot
                from campctl.store import runs as store_runs

                for run_id in self.scope.run_ids:
                    run = store_runs.get_run_record(self.db, run_id)
                    if run is None:
                        continue
                    snapshot = Snapshot.of(run.spec)
                    age = _duration(snapshot.stale_after)
                    if age is None or snapshot.stale_after is None:
                        continue
                    zones: list[str | None] = [None]
                    if snapshot.contact_windows:
                        from campctl.store.queue import queued_zones

                        zones = list(queued_zones(self.db, [run.id])[run.id])
                    for zone in zones:
                        try:
                            intended = intended_send_time(run, None, zone)
                        except (ValueError, OverflowError):  # a bad window fails the run
                            continue
                        if intended is not None:
                            self._runs.append(_RunDeadline(
                                run.id, snapshot.channel, intended, snapshot.stale_after,
                                intended + age, zone))
        return self._runs

    def _step_deadlines(self) -> list[_StepDeadline]:
        if self._steps is None:
            self._steps = []
            if self.scope.scenario_items:
                from campctl.definitions.models import SendStep
                from campctl.store.objects import readable_records

                # An unreadable scenario waits (its own unit reports it); the rest hold.
                for obj in readable_records(self.db, "Scenario"):
                    steps = obj.spec.get("steps") if isinstance(obj.spec, dict) else None
                    for raw in steps if isinstance(steps, list) else []:
                        if not isinstance(raw, dict) or not isinstance(raw.get("send"), dict):
                            continue
                        send = SendStep.from_spec(raw["send"])
                        age = _duration(send.stale_after)
                        if age is not None and send.stale_after is not None:
                            self._steps.append(_StepDeadline(obj.name, str(raw.get("id")),
                                                             send.channel, send.stale_after, age))
        return self._steps

    # --- the log ---------------------------------------------------------------------------------
    def _log_run(self, run: _RunDeadline, count: int, *, now: datetime) -> None:
        from campctl.engine.runs import run_subject
        from campctl.store import runs as store_runs

        exec_log.append(self.db, exec_log.LogEntry(
            "Stale Messages Cancelled",
            run_subject(run.run_id, store_runs.get_run_record(self.db, run.run_id)),
            details=f"{count} messages"
                    + (f" (window zone {run.zone})" if run.zone else "")
                    + f" not handed over by {to_db(run.deadline)} (intended send "
                    f"time {to_db(run.intended)} + stale_after {run.stale_after}) cancelled: "
                    "stale"), now=now)

    def _log_step(self, step: _StepDeadline, count: int, *, now: datetime) -> None:
        exec_log.append(self.db, exec_log.LogEntry(
            "Stale Messages Cancelled", exec_log.Subject(scenario=step.scenario),
            details=f"step {step.step}: {count} messages queued before "
                    f"{to_db(now - step.age)} and not handed over within stale_after "
                    f"{step.stale_after} cancelled: stale"), now=now)
