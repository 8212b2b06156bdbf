"""Scenarios (customer journeys): step graph, capture, re-entry, tick hooks, launches, stats."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from campctl.definitions.models import (
    DEFAULT_CHANNEL,
    END,
    EVERYONE,
    Audience,
    Condition,
    Scenario,
    ScenarioStep,
)
from campctl.engine import isolation
from campctl.errors import ActionRefused, NotFound, UsageProblem, ValidationFailed
from campctl.models import TickReport
from campctl.store import scenarios as store
from campctl.store.db import Database
from campctl.store.dialect import Dialect
from campctl.timeutil import parse_duration, parse_local_datetime, shift, to_db

if TYPE_CHECKING:
    from campctl.engine.templates import CompiledMessage
    from campctl.store.objects import ObjectRecord

MAX_LISTED_REASONS = 10  # a launch check lists at most this many distinct render failures


# --- the step graph ------------------------------------------------------------------------------

def checked_steps(scenario: Scenario) -> tuple[ScenarioStep, ...]:
    """A scenario's steps as the engine runs them, once the steps as written pass the engine's
    checks (a stored definition may predate today's validation); every problem found is raised
    at once (`ValidationFailed` with one issue per problem)."""
    raw = scenario.raw.get("steps")
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed("scenario has no steps; add a `steps:` list",
                               ["scenario has no steps"])
    problems = _StepChecker(raw).check()
    if not problems:
        cycle = _waitless_cycle(scenario.steps)
        if cycle:
            problems.append("steps " + " → ".join(cycle) + " form a loop without a wait; "
                            "add a wait step to the loop")
    if problems:
        raise ValidationFailed("; ".join(problems), problems)
    return scenario.steps


class _StepChecker:
    """Checks a `steps:` list as written, collecting every problem instead of stopping at the
    first."""

    def __init__(self, raw: list[Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []
        self.ids = self._ids()
        self.known = set(self.ids)

    def _ids(self) -> list[str]:
        ids: list[str] = []
        for index, item in enumerate(self.raw):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                self.problems.append(f"step {index + 1} needs an `id`")
                ids.append(f"#{index + 1}")
            else:
                ids.append(item["id"])
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            self.problems.append(f"step id {dup!r} is used twice")
        if END in ids:
            self.problems.append("`end` is reserved; it cannot be a step id")
        return ids

    def target(self, value: Any, where: str) -> None:
        """A step a step leads to must exist (or be the end)."""
        if value is None or value == END:
            return
        if not isinstance(value, str) or value not in self.known:
            self.problems.append(f"{where} names unknown step {value!r} "
                                 f"(steps: {', '.join(self.ids)}, end)")

    def check(self) -> list[str]:
        for index, item in enumerate(self.raw):
            if isinstance(item, dict):
                self._step(self.ids[index], item)
        return self.problems

    def _step(self, sid: str, item: dict) -> None:
        if "next" in item:
            self.target(item["next"], f"step {sid}: next")
        actions = [k for k in ("send", "wait", "if") if k in item]
        if len(actions) > 1:
            self.problems.append(f"step {sid} has {' and '.join(actions)}; one action per step")
        elif actions == ["send"] and not isinstance(item["send"], dict):
            self.problems.append(f"step {sid}: send must be a mapping with subject and body")
        elif actions == ["wait"]:
            try:
                parse_duration(item["wait"])
            except ValueError as exc:
                self.problems.append(f"step {sid}: {exc}")
        elif actions == ["if"]:
            self._if(sid, item)

    def _if(self, sid: str, item: dict) -> None:
        cond = item["if"]
        if not isinstance(cond, dict):
            self.problems.append(f"step {sid}: if must be {{event, within}} or rules")
        elif "event" in cond:
            try:
                parse_duration(cond.get("within", ""))
            except ValueError as exc:
                self.problems.append(f"step {sid}: if.within: {exc}")
        if "then" in item:
            self.target(item["then"], f"step {sid}: then")
        if "else" in item:
            self.target(item["else"], f"step {sid}: else")


def _successors(step: ScenarioStep) -> list[str]:
    if step.action == "wait":
        return []  # a wait always ends the tick's moves for a profile
    if step.action == "if":
        return [s for s in (step.then, step.otherwise) if s]
    return [step.next] if step.next else []


def _waitless_cycle(steps: Iterable[ScenarioStep]) -> list[str] | None:
    graph = {s.id: _successors(s) for s in steps}
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if colour.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if colour.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = 2
        return None

    for node in graph:
        if colour.get(node) is None and (found := visit(node)):
            return found
    return None


def _step_ids(scenario: Scenario) -> list[str]:
    """The ids of a scenario's steps; none when its steps do not pass the engine's checks."""
    try:
        return [s.id for s in checked_steps(scenario)]
    except ValidationFailed:
        return []


@dataclass(frozen=True)
class _Stored:
    """A stored scenario: its object record and its model."""

    record: ObjectRecord
    model: Scenario

    @property
    def name(self) -> str:
        return self.record.name


def _scenario(db: Database, name: str) -> _Stored:
    from campctl.store.objects import get_record

    record = get_record(db, "Scenario", name)
    if record is None:
        raise NotFound(f"no scenario named {name!r}; see 'campctl get scenarios'")
    return _Stored(record, Scenario.from_spec(record.spec))


# --- tick hooks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Tick:
    """What one scenario's capture or moves at a tick carry along."""

    db: Database
    name: str
    scenario: Scenario
    now: datetime
    report: TickReport | None = None

    def note(self, text: str) -> None:
        """A line in the tick report's notes, prefixed with the scenario."""
        if self.report is not None:
            self.report.notes.append(f"scenario {self.name}: {text}")

    def log(self, event: str, details: str) -> None:
        from campctl.store import log

        log.append(self.db, log.LogEntry(
            event, log.Subject(scenario=self.name), details=details), now=self.now)


def _consumer(name: str) -> str:
    return f"scenario:{name}"


def fire_due(db: Database, *, now: datetime, report: TickReport) -> None:
    """Capture by event (new events since the cursor) and by schedule (due cron occurrences)."""
    for obj in store.active_scenarios(db):
        # A scenario whose capture fails is rolled back alone and retried at the next tick.
        with isolation.boundary(db, report, isolation.Unit(
                kind="Scenario", name=obj.name, key="Scenario capture"), now=now):
            if obj.spec_error:
                raise ValueError(obj.spec_error)
            tick = _Tick(db, obj.name, Scenario.from_spec(obj.spec), now, report)
            # A definition that no longer passes the checks (written by hand, or valid under
            # older bounds) fails here, told and retried, rather than silently capturing nobody.
            steps = checked_steps(tick.scenario)
            kind = tick.scenario.launch.type
            if kind == "event":
                _capture_events(tick, steps)
            elif kind == "schedule":
                _fire_schedule(tick, steps)


def _capture_events(tick: _Tick, steps: tuple[ScenarioStep, ...]) -> None:
    db, name, scenario = tick.db, tick.name, tick.scenario
    event = scenario.launch.event
    consumer = _consumer(name)
    upto = store.max_event_id(db)
    after = store.get_cursor(db, consumer)
    if after is None:
        # Never activated through the hook (e.g. state written by hand): start from now on.
        store.set_cursor(db, consumer, upto)
        return
    if not event or upto <= after:
        return
    # Only events dated while the scenario is active capture (not a month-old import).
    sql, params = store.events_source(event, after, upto,
                                      since=store.active_since(db, name), now=tick.now,
                                      latest_per_contact=scenario.reentry != "parallel")
    sql, params = _within_conditions(tick, sql, params, what=f"on event {event}")
    sql, narrowed = _within_rights(tick, sql, params, what=f"on event {event}")
    captured = store.capture(db, store.Capture(
        name, sql, narrowed, reentry=scenario.reentry, first_step=steps[0].id,
        capture_key_sql="'e:' || src.event_id", data_sql="src.data",
        order_sql="src.event_id"), now=tick.now)
    store.set_cursor(db, consumer, upto)
    if captured:
        tick.note(f"{captured} profile(s) captured on event {event}")
        tick.log("Profiles Captured", f"{captured} profile(s) on event {event}")


def deactivate_after(scenario: Scenario) -> datetime | None:
    """When a scheduled scenario's schedule ends (no occurrence after it), or None."""
    launch = scenario.launch
    if launch.deactivate_after is None:
        return None
    return parse_local_datetime(launch.deactivate_after, launch.timezone)


def _fire_schedule(tick: _Tick, steps: tuple[ScenarioStep, ...]) -> None:
    from campctl.engine import cron
    from campctl.timeutil import from_db

    db, name, now, launch = tick.db, tick.name, tick.now, tick.scenario.launch
    expr, tz = launch.cron, launch.timezone
    if not expr:
        return
    state = store.schedule_state(db, name)
    if state.next_due_at is not None and state.next_due_at > to_db(now):
        return  # nothing due: no cron evaluation
    cursor = from_db(state.cursor_at)
    if cursor is None:
        # First sight of the schedule: occurrences count from activation on.
        store.set_schedule_state(db, name, cursor_at=now,
                                 next_due_at=cron.next_fire(expr, tz, after=now,
                                                            dst=launch.dst))
        return
    stop_at = deactivate_after(tick.scenario)
    until = now if stop_at is None else min(now, stop_at)
    due = (cron.fire_times(expr, tz, after=cursor, until=until, dst=launch.dst)
           if until > cursor else [])
    fire, skipped = cron.apply_catchup(due, launch.catchup, now=now)
    _skip_occurrences(tick, skipped)
    _fire_occurrences(tick, steps, fire)
    # The cursor is the last occurrence considered, so an unchanged schedule writes nothing.
    new_cursor = max([cursor, *due]) if due else cursor
    nxt = cron.next_fire(expr, tz, after=new_cursor, dst=launch.dst)
    if nxt is not None and stop_at is not None and nxt > stop_at:
        nxt = None
    store.set_schedule_state(db, name, cursor_at=new_cursor, next_due_at=nxt)


def _skip_occurrences(tick: _Tick, skipped: list[tuple[datetime, str]]) -> None:
    for scheduled_at, reason in skipped:
        if store.add_occurrence(tick.db, tick.name, scheduled_at=scheduled_at, status="skipped",
                                reason=reason, now=tick.now) is not None:
            if tick.report is not None:
                tick.report.skipped += 1
            tick.note(f"occurrence {to_db(scheduled_at)} skipped ({reason})")
            tick.log("Occurrence Skipped", f"{to_db(scheduled_at)}: {reason}")


def _fire_occurrences(tick: _Tick, steps: tuple[ScenarioStep, ...],
                      fire: list[datetime]) -> None:
    for scheduled_at in fire:
        occurrence = store.add_occurrence(tick.db, tick.name, scheduled_at=scheduled_at,
                                          status="fired", reason=None, now=tick.now)
        if occurrence is None:
            continue  # another tick fired it
        if tick.report is not None:
            tick.report.fired += 1
        captured = _capture_audience(tick, steps, occurrence=occurrence)
        tick.note(f"occurrence {to_db(scheduled_at)} fires, {captured} profile(s) captured")
        tick.log("Profiles Captured",
                 f"occurrence {to_db(scheduled_at)}: {captured} profile(s)")


def _capture_audience(tick: _Tick, steps: tuple[ScenarioStep, ...], *, occurrence: int) -> int:
    from campctl.store import segments

    audience = tick.scenario.launch.audience or EVERYONE
    sql, params = segments.audience_query(
        tick.db, segments.AudienceQuery(audience.raw,
                                        sample_key=f"scenario:{tick.name}:{occurrence}"),
        now=tick.now)
    # Left out at an occurrence: logged, not noted in the tick's report.
    sql, narrowed = _within_rights(replace(tick, report=None), sql, params,
                                   what=f"at occurrence {occurrence}")
    return store.capture(tick.db, store.Capture(
        tick.name, sql, narrowed, reentry=tick.scenario.reentry, first_step=steps[0].id,
        capture_key_sql=f"'o:{int(occurrence)}'"), now=tick.now)


def capture_audience(scenario: Scenario) -> Audience | None:
    """The capture conditions of an event scenario (`launch.audience`), or None."""
    return scenario.launch.audience if scenario.launch.type == "event" else None


def _within_conditions(tick: _Tick, sql: str, params: dict[str, Any], *,
                       what: str) -> tuple[str, dict[str, Any]]:
    """An event capture source narrowed to the contacts matching the scenario's capture
    conditions; those that do not are logged (`Capture Conditions Unmet`)."""
    from campctl.store import segments

    audience = capture_audience(tick.scenario)
    if audience is None:
        return sql, params
    cond_sql, cond_params = segments.audience_where(
        tick.db, segments.AudienceQuery(audience.raw, include_opted_out=True), now=tick.now)
    narrowed, merged, unmet = store.narrow_source(tick.db, sql, params, cond_sql,
                                                  list(cond_params))
    if unmet:
        text = f"{unmet} capture(s) {what} did not match the capture conditions"
        tick.log("Capture Conditions Unmet", text)
        tick.note(text)
    return narrowed, merged


def _restriction(db: Database, name: str, scenario: Scenario):
    """The rights of the scenario's creator over the message types its send steps use."""
    from campctl.engine.users import restriction_for

    return restriction_for(db, kind="Scenario", name=name,
                           message_types=[s.send.message_type for s in scenario.steps
                                          if s.send is not None])


def _within_rights(tick: _Tick, sql: str, params: Sequence[Any] | dict[str, Any], *,
                   what: str) -> tuple[str, Sequence[Any] | dict[str, Any]]:
    """A capture source narrowed to the contacts the scenario creator's rights allow; those
    left out are logged (`Profiles Left Out`) with the reason."""
    restriction = _restriction(tick.db, tick.name, tick.scenario)
    if restriction is None:
        return sql, params
    left_out = restriction.left_out(tick.db, sql, params)
    if left_out:
        text = (f"{left_out} capture(s) {what} left out for the creator's rights: "
                f"{restriction.reason}")
        tick.log("Profiles Left Out", text)
        tick.note(text)
    return restriction.narrow(sql, params)


def advance(db: Database, *, now: datetime, report: TickReport) -> None:
    """Move every active scenario's profiles until each waits or ends (set-based, per step)."""
    for obj in store.active_scenarios(db):
        # A failing step errors its own profiles (see _isolated_step); a scenario whose moves
        # fail otherwise is rolled back alone and retried at the next tick.
        with isolation.boundary(db, report, isolation.Unit(kind="Scenario", name=obj.name),
                                now=now):
            if obj.spec_error:  # its profiles wait: nothing moves on a guess
                raise ValueError(obj.spec_error)
            advance_scenario(db, obj.name, Scenario.from_spec(obj.spec), now=now, report=report)


@dataclass
class Moves:
    """What one scenario's moves at a tick did."""

    moved: int = 0  # profile moves (a wake, a step passed)
    queued: int = 0  # messages queued by send steps
    skipped: int = 0  # sends skipped for opt-out
    errors: int = 0  # profiles moved to `error`

    def restore(self, saved: Moves) -> None:
        """Back to `saved` (the moves of a step rolled back)."""
        self.moved, self.queued = saved.moved, saved.queued
        self.skipped, self.errors = saved.skipped, saved.errors


def advance_scenario(db: Database, name: str, scenario: Scenario, *, now: datetime,
                     report: TickReport | None = None) -> Moves:
    """One scenario's moves at `now`; returns counters (for tests and the benchmark)."""
    counts = Moves()
    try:
        steps = checked_steps(scenario)
    except ValidationFailed as exc:
        counts.errors += store.fail_stranded(db, scenario=name, now=now,
                                                reason=f"invalid steps: {exc.message}",
                                                known_steps=[])
        return counts
    counts.errors += store.fail_stranded(
        db, scenario=name, now=now, known_steps=[s.id for s in steps],
        reason="its step no longer exists in the scenario definition")
    tick = _Tick(db, name, scenario, now, report)
    _move_all(tick, steps, counts)
    finish_launches(db, name, now=now)
    if report is not None:
        report.built += counts.queued
        if counts.moved or counts.errors:
            tick.note(f"{counts.moved} profile move(s), {counts.queued} "
                      f"message(s) queued, {counts.skipped} send(s) skipped for opt-out, "
                      f"{counts.errors} error(s)")
    return counts


def _move_all(tick: _Tick, steps: tuple[ScenarioStep, ...], counts: Moves) -> None:
    """Wake the waits that are due, then walk the steps until every profile waits or ends."""
    db, name, now = tick.db, tick.name, tick.now
    for step in steps:
        if step.action == "wait":
            counts.moved += store.wake(db, scenario=name, step=step.id, to=step.next, now=now)
    # Each round walks the steps in order, so a forward path completes in one round; a backward
    # jump needs another. The static check rejects loops without a wait; the bound is a backstop.
    for _round in range(len(steps) + 1):
        if not store.active_at_steps(db, name):
            return
        for step in steps:
            # Every step, not only those with profiles: profiles moved earlier in this round
            # arrive at later steps (an empty step costs one indexed statement).
            counts.moved += _isolated_step(tick, step, counts)
    stuck = store.active_at_steps(db, name)
    if stuck:
        counts.errors += store.fail_profiles(
            db, scenario=name, now=now, steps=list(stuck),
            reason="too many step moves in one tick (a loop without a wait)")


def _isolated_step(tick: _Tick, step: ScenarioStep, counts: Moves) -> int:
    """One step's moves in a savepoint: when they fail, the profiles at that step go to `error`
    with the reason (log row, notification, tick warning) and the other steps go on."""
    db, name, now = tick.db, tick.name, tick.now
    saved = replace(counts)
    try:
        with db.atomic():
            return _run_step(tick, step, counts)
    except Exception as exc:
        if isolation.state_problem(exc):
            raise
        counts.restore(saved)
        reason = f"step {step.id} failed: {isolation.describe(exc)}"
    from campctl.store import notifications

    with db.atomic():
        failed = store.fail_profiles(db, scenario=name, now=now, reason=reason, steps=[step.id])
        if failed:
            tick.log("Profiles Failed", f"{failed} profile(s) moved to error: {reason}")
            notifications.add(db, now=now, kind="scenario-failed", object=f"scenario/{name}",
                              note=f"{failed} profile(s) moved to error: {reason}",
                              actor=isolation.ACTOR)
    counts.errors += failed
    if failed and tick.report is not None:
        tick.report.object_failures.append({"object": f"scenario/{name}", "reason": reason})
        tick.report.warnings.append(f"scenario {name}: {reason}; {failed} profile(s) moved to "
                                    "error, the other steps and objects went on")
    return 0


def _run_step(tick: _Tick, step: ScenarioStep, counts: Moves) -> int:
    db, name, now = tick.db, tick.name, tick.now
    at = store.AtStep(name, step.id)
    if step.send is not None:
        queued, skipped = store.queue_sends(
            db, scenario=name, step=step.id, channel=step.send.channel,
            message_type=step.send.message_type, now=now, priority=step.send.priority)
        counts.queued += queued
        counts.skipped += skipped
        return store.move(db, at, to=step.next, now=now)
    if step.wait is not None:
        # In the scenario's zone: `1d` is a calendar day.
        wake_at = shift(now, step.wait, tick.scenario.timezone)
        return store.start_wait(db, scenario=name, step=step.id, wake_at=wake_at, now=now)
    if step.condition is not None:
        condition = _condition_sql(step.condition, now=now, dialect=db.d)
        taken, rest = store.branch(db, at, condition=condition,
                                   then=step.then, otherwise=step.otherwise, now=now)
        return taken + rest
    return store.move(db, at, to=step.next, now=now)


def _condition_sql(cond: Condition, *, now: datetime,
                   dialect: Dialect) -> tuple[str, list[Any]]:
    if cond.event is not None:
        return store.event_condition(cond.event, cond.within, now)
    from campctl.store import segments

    sql, params = segments.rules_where([rule.raw for rule in cond.rules], cond.match, now=now,
                                       alias="c", dialect=dialect)
    return store.attribute_condition(sql, params)


# --- activation ----------------------------------------------------------------------------------

def on_activate(db: Database, *, name: str, now: datetime) -> None:
    """Frozen profiles resume; captures count from now (events and occurrences while inactive
    are not caught up)."""
    from campctl.engine import cron
    from campctl.store import log
    from campctl.store.objects import get_record

    resumed = store.unfreeze(db, name, now=now)
    store.set_cursor(db, _consumer(name), store.max_event_id(db))
    store.set_active_since(db, name, now=now)
    record = get_record(db, "Scenario", name)
    scenario = Scenario.from_spec(record.spec if record else {})
    launch = scenario.launch
    if launch.type == "schedule" and launch.cron:
        nxt = cron.next_fire(launch.cron, launch.timezone, after=now, dst=launch.dst)
        stop_at = deactivate_after(scenario)
        if nxt is not None and stop_at is not None and nxt > stop_at:
            nxt = None  # `status` shows no next occurrence past the schedule's end
        store.set_schedule_state(db, name, cursor_at=now, next_due_at=nxt)
    log.append(db, log.LogEntry(
        "Scenario Activated", log.Subject(scenario=name),
        details=f"{resumed} frozen profile(s) resumed" if resumed else None), now=now)


def finish_launches(db: Database, name: str, *, now: datetime) -> None:
    """Complete the launches whose profiles have all left, each with its history and log row
    in the caller's transaction (a launch's status never changes without them)."""
    from campctl.store import history, log

    for launch_id in store.finish_launches(db, name, now=now):
        history.record(db, history.HistoryEntry(
            kind="launch", name=str(launch_id), action="complete", actor="campctl",
            from_status="running", to_status="completed",
            note=f"scenario {name}: every profile of the launch has left and "
                 "its messages are delivered or failed"), now=now)
        log.append(db, log.LogEntry(
            "Launch Completed", log.Subject(scenario=name, launch_id=launch_id),
            details=f"launch {launch_id} completed; "
                    f"{_results_text(db, name, launch_id)}"), now=now)


def finish_delivered_launches(db: Database, *, now: datetime) -> None:
    """After delivery: complete the launches whose last messages this tick handed over (or
    failed for good), each scenario in its own transaction."""
    for name in store.scenarios_with_running_launches(db):
        with db.atomic():
            finish_launches(db, name, now=now)


def on_deactivate(db: Database, *, name: str, now: datetime, keep: bool) -> None:
    """Profiles inside are frozen (keep) or exit (their unsent messages are cancelled)."""
    from campctl.store import log

    if keep:
        count = store.freeze(db, name, now=now)
        details = f"{count} profile(s) frozen"
    else:
        count = store.end_profiles(db, name, now=now, status="exited")
        details = f"{count} profile(s) exited"
    finish_launches(db, name, now=now)
    log.append(db, log.LogEntry(
        "Scenario Deactivated", log.Subject(scenario=name), details=details), now=now)


def clear(db: Database, *, name: str, now: datetime) -> int:
    from campctl.store import log

    _scenario(db, name)
    removed = store.remove_profiles(db, name, now=now)
    finish_launches(db, name, now=now)
    log.append(db, log.LogEntry(
        "Profiles Cleared", log.Subject(scenario=name),
        details=f"{removed} profile(s) removed"), now=now)
    return removed


def remove_profile(db: Database, *, name: str, contact: str, now: datetime) -> int:
    from campctl.store import log

    _scenario(db, name)
    contact_id = store.contact_id_of(db, contact)
    if contact_id is None:
        raise NotFound(f"no contact with id {contact!r}")
    removed = store.remove_profiles(db, name, now=now, contact_id=contact_id, inside_only=True)
    if not removed:
        raise NotFound(f"contact {contact} has no profile inside scenario {name}; "
                       f"see 'campctl profiles scenario {name}'")
    finish_launches(db, name, now=now)
    log.append(db, log.LogEntry(
        "Profile Removed", log.Subject(scenario=name), details=f"contact {contact}"), now=now)
    return removed


def clone(db: Database, *, name: str, new: str, actor: str, now: datetime,
          note: str | None = None) -> None:
    import re

    from campctl.models import NAME_PATTERN
    from campctl.store import history
    from campctl.store import objects as objects_store

    obj = _scenario(db, name)
    if not re.match(NAME_PATTERN, new):
        raise UsageProblem(f"bad name {new!r}: use lower-case letters, digits and '-' "
                           "(at most 63, starting with a letter or digit)")
    if objects_store.get_record(db, "Scenario", new) is not None:
        raise ActionRefused(f"scenario {new} already exists; choose another name or delete it")
    # Version 1, unless the name was used before: versions are never reused after a delete.
    version = objects_store.next_version(db, "Scenario", new)
    source = f"clone of {name}"
    record = obj.record
    clone = objects_store.NewVersion("Scenario", new, version, record.spec, record.description,
                                     source)
    objects_store.insert_object(db, clone, status="inactive", now=now)
    history.record(db, history.HistoryEntry(
        kind="Scenario", name=new, action="cloned", actor=actor, to_status="inactive",
        note=note or f"clone of {name} v{record.version}"), now=now)
    from campctl.engine.users import record_creator

    record_creator(db, kind="Scenario", name=new, actor=actor)
    objects_store.add_version(db, clone, actor=actor, now=now,
                              history_id=objects_store.last_history_id(db))


# --- manual launch -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LaunchPlan:
    """What `start scenario` would do: the participants and the problems found."""

    scenario: str
    selection: str
    source_sql: str
    source_params: dict[str, Any]
    targeted: int
    problems: list[str]
    include_opted_out: bool
    left_out: int = 0  # targeted contacts outside the scenario creator's rights
    left_out_reason: str | None = None
    failing: int = 0  # targeted contacts for whom at least one send step would fail to render
    data: dict | None = None  # capture data of the profiles (`--data`), `event.*` in templates
    manual_trigger: bool = False  # an event scenario started by hand for one contact
    steps: int = 0
    messages: int = 0  # send steps: messages each entering profile may receive
    opted_out: int = 0  # targeted contacts a send step would skip for opt-out


def allows_manual_trigger(scenario: Scenario) -> bool:
    """An event scenario with `launch.allow_manual: true` may be started for one contact."""
    return scenario.launch.type == "event" and scenario.launch.allow_manual


@dataclass(frozen=True)
class Participants:
    """Who a manual launch targets: every contact, the members of groups, or one contact."""

    all_contacts: bool = False
    groups: tuple[str, ...] = ()
    contact: str | None = None  # its external id

    def check(self) -> None:
        if sum([self.all_contacts, bool(self.groups), self.contact is not None]) != 1:
            raise UsageProblem("choose the participants with exactly one of --all, --group G "
                               "(repeatable) or --contact ID")

    def selection(self) -> str:
        """As the launch records it."""
        if self.contact is not None:
            return f"contact {self.contact}"
        if self.all_contacts:
            return "all contacts"
        return "groups " + ", ".join(self.groups)


@dataclass(frozen=True)
class LaunchRequest:
    """What `start scenario` asks for."""

    scenario: str
    participants: Participants
    include_opted_out: bool = False
    data: dict | None = None  # capture data of the profiles (`--data`)


def plan_launch(db: Database, request: LaunchRequest, *, now: datetime,
                validate: bool = True) -> LaunchPlan:
    """What launching would do (participants, summary, problems), launching nothing.

    `validate=False` (`--count`) only counts the participants: the scenario may be inactive and
    its send steps are not checked."""
    name, who = request.scenario, request.participants
    obj = _scenario(db, name)
    who.check()
    scenario = obj.model
    manual_trigger = _check_startable(obj, who, validate=validate)
    sql, params = _participants_source(db, obj, who, manual_trigger=manual_trigger, now=now)
    targeted = store.count_source(db, sql, params)
    restriction = _restriction(db, name, scenario)
    left_out, left_out_reason = 0, None
    if restriction is not None:
        left_out = restriction.left_out(db, sql, params)
        left_out_reason = restriction.reason if left_out else None
        sql, narrowed = restriction.narrow(sql, params)
        assert isinstance(narrowed, dict)  # a source with named parameters stays named
        params = narrowed
    problems: list[str] = []
    summary: dict[str, int] = {}
    if validate:
        problems, summary = _launch_check(db, scenario, (sql, params), request)
    return LaunchPlan(name, who.selection(), sql, params, targeted, problems,
                      request.include_opted_out, left_out, left_out_reason, data=request.data,
                      manual_trigger=manual_trigger, **summary)


def _check_startable(obj: _Stored, who: Participants, *, validate: bool) -> bool:
    """Refuses a scenario that cannot be started by hand (for these participants); returns
    whether it is an event scenario triggered by hand."""
    name, launch = obj.name, obj.model.launch
    manual_trigger = allows_manual_trigger(obj.model)
    if manual_trigger and who.contact is None:
        raise ActionRefused(f"scenario {name} is triggered by event {launch.event}"
                            "; by hand it starts for one contact at a time: use --contact ID")
    if launch.type != "manual" and not manual_trigger:
        hint = (" (or an event scenario with launch.allow_manual: true, for one --contact)"
                if launch.type == "event" else "")
        raise ActionRefused(f"scenario {name} has launch.type {launch.type}; only a scenario "
                            f"with launch.type manual can be started by hand{hint}")
    if validate and obj.record.status != "active":
        raise ActionRefused(f"scenario {name} is {obj.record.status}; run "
                            f"'campctl activate scenario {name}' first")
    return manual_trigger


def _participants_source(db: Database, obj: _Stored, who: Participants, *,
                         manual_trigger: bool, now: datetime) -> tuple[str, dict[str, Any]]:
    """The participants as a capture source; a contact triggering an event scenario by hand
    must meet its capture conditions."""
    contact_id = None
    if who.contact is not None:
        contact_id = store.contact_id_of(db, who.contact)
        if contact_id is None:
            raise NotFound(f"no contact with id {who.contact!r}; see 'campctl contacts list'")
    sql, params = store.contacts_source(all_contacts=who.all_contacts, groups=list(who.groups),
                                        contact_id=contact_id)
    if manual_trigger and (audience := capture_audience(obj.model)) is not None:
        from campctl.store import segments

        cond_sql, cond_params = segments.audience_where(
            db, segments.AudienceQuery(audience.raw, include_opted_out=True), now=now)
        sql, params, unmet = store.narrow_source(db, sql, params, cond_sql, list(cond_params))
        if unmet:
            raise ActionRefused(f"contact {who.contact} does not match the capture conditions "
                                f"of scenario {obj.name} (launch.audience); nothing launched")
    return sql, params


def _launch_check(db: Database, scenario: Scenario, source: tuple[str, dict[str, Any]],
                  request: LaunchRequest) -> tuple[list[str], dict[str, int]]:
    """The problems of a launch (invalid steps, send steps that fail for a targeted contact)
    and its summary (steps, messages, opted out, failing)."""
    sql, params = source
    problems: list[str] = []
    try:
        steps = checked_steps(scenario)
    except ValidationFailed as exc:
        problems.extend(exc.issues or [exc.message])
        steps = ()
    sends = [step.send for step in steps if step.send is not None]
    summary = {"steps": len(steps), "messages": len(sends)}
    if sends and not request.include_opted_out:
        summary["opted_out"] = store.count_opted_out(
            db, sql, dict(params), [send.message_type for send in sends])
    contacts = (dict(context, event=dict(request.data or {}))
                for context in store.targeted_contacts(db, sql, params))
    check = validate_send_steps(db, steps, contacts)
    problems += check.problems
    summary["failing"] = check.failing
    return problems, summary


@dataclass
class SendCheck:
    """What `validate_send_steps` found: problems, and how many contacts would get a failure."""

    problems: list[str]
    checked: int = 0
    failing: int = 0


def validate_send_steps(db: Database, steps: Iterable[ScenarioStep],
                        contacts: Iterable[dict] | None) -> SendCheck:
    """Every send step: its channel exists, its templates compile (and pass their test render),
    and render for every contact in `contacts` (the launch's targeted contacts)."""
    check = SendCheck([])
    compiled = _compiled_sends(db, steps, check.problems)
    if contacts is None or not compiled:
        return check
    _render_for_each(compiled, contacts, check)
    return check


def _compiled_sends(db: Database, steps: Iterable[ScenarioStep],
                    problems: list[str]) -> list[tuple[str, CompiledMessage]]:
    """Each send step's message compiled; a missing channel, an empty message or a template
    that fails for everyone is added to `problems` (no need to try each contact)."""
    from campctl.engine.templates import TemplateFailed, compile_message
    from campctl.store.objects import get_record

    compiled: list[tuple[str, CompiledMessage]] = []
    for step in steps:
        send = step.send
        if send is None:
            continue
        if send.channel != DEFAULT_CHANNEL and get_record(db, "Channel", send.channel) is None:
            problems.append(f"step {step.id}: channel {send.channel!r} does not exist")
        if not send.body and not send.subject:
            problems.append(f"step {step.id}: send has neither subject nor body")
            continue
        try:
            compiled.append((step.id, compile_message({"subject": send.subject,
                                                       "body": send.body})))
        except TemplateFailed as exc:
            problems.append(f"step {step.id}: {exc.reason}")
    return compiled


def _render_for_each(compiled: list[tuple[str, CompiledMessage]], contacts: Iterable[dict],
                     check: SendCheck) -> None:
    """Render every compiled message for every contact; each distinct failure is listed once
    (with how many contacts it fails for and the first), up to MAX_LISTED_REASONS."""
    from campctl.engine.templates import TemplateFailed

    # (step, reason) -> [contacts, first contact], in the order first seen
    found: dict[tuple[str, str], list] = {}
    for context in contacts:
        check.checked += 1
        bad = False
        for step_id, message in compiled:
            try:
                message.render(context)
            except TemplateFailed as exc:
                bad = True
                entry = found.setdefault((step_id, exc.reason), [0, context.get("id")])
                entry[0] += 1
        check.failing += bad
    problems = check.problems
    for (step_id, reason), (count, first) in list(found.items())[:MAX_LISTED_REASONS]:
        problems.append(f"step {step_id}: {reason} (for {count} targeted contact(s), first "
                        f"{first})")
    if len(found) > MAX_LISTED_REASONS:
        problems.append(f"... and {len(found) - MAX_LISTED_REASONS} more distinct reason(s)")
    if check.failing:
        problems.append(f"{check.failing} of {check.checked} targeted contact(s) would get a "
                        "message that fails to render")


def launch(db: Database, plan: LaunchPlan, *, actor: str, now: datetime,
           note: str | None = None) -> dict:
    """Create the launch and its profiles (they move at the next tick); `note`: the operator's,
    kept in the launch's history after the selection."""
    from campctl.store import history, log
    from campctl.store.objects import get_record

    if plan.problems:
        raise ValidationFailed("validation failed, nothing launched: " + "; ".join(plan.problems),
                               plan.problems)
    if plan.targeted == 0:
        raise ActionRefused(f"no contacts match {plan.selection}; nothing launched")
    if plan.left_out >= plan.targeted:
        raise ActionRefused(f"all {plan.targeted} targeted contact(s) are left out: "
                            f"{plan.left_out_reason}; nothing launched")
    record = get_record(db, "Scenario", plan.scenario)
    if record is None or record.status != "active":
        raise ActionRefused(f"scenario {plan.scenario} is not active any more; nothing launched")
    scenario = Scenario.from_spec(record.spec)
    steps = checked_steps(scenario)
    launch_id = store.create_launch(db, scenario=plan.scenario, selection=plan.selection,
                                    include_opted_out=plan.include_opted_out, actor=actor, now=now)
    entered = store.capture(db, store.Capture(
        plan.scenario, plan.source_sql, plan.source_params, reentry=scenario.reentry,
        first_step=steps[0].id, capture_key_sql=f"'l:{launch_id}'",
        data_sql=store.json_literal(plan.data), launch_id=launch_id,
        include_opted_out=plan.include_opted_out), now=now)
    store.set_launch_targeted(db, launch_id, plan.targeted)
    from campctl.store.users import set_launch_left_out

    set_launch_left_out(db, launch_id, count=plan.left_out, reason=plan.left_out_reason)
    history.record(db, history.HistoryEntry(
        kind="launch", name=str(launch_id), action="start", actor=actor, to_status="running",
        note=f"scenario {plan.scenario}: {plan.selection}" + (f"; {note}" if note else "")),
        now=now)
    log.append(db, log.LogEntry(
        "Launch Created", log.Subject(scenario=plan.scenario, launch_id=launch_id),
        details=f"launch {launch_id}: {plan.selection}; {summary_text(plan)}; "
                f"{entered} entered" + (f"; note: {note}" if note else "")), now=now)
    return {"id": launch_id, "scenario": plan.scenario, "targeted": plan.targeted,
            "entered": entered, "steps": plan.steps, "messages": plan.messages,
            "opted_out": plan.opted_out,
            "left_out": {"rights": plan.left_out, "reason": plan.left_out_reason}}


def summary_text(plan: LaunchPlan) -> str:
    """The launch summary on one line (confirmation, launch notice, execution log)."""
    opted = ("opted-out contacts included" if plan.include_opted_out
             else f"{plan.opted_out} left out for opt-out")
    return (f"{plan.steps} step(s), {plan.messages} message(s); {plan.targeted} contact(s) "
            f"targeted, {opted}, {plan.left_out} left out for rights")


def require_launch(db: Database, launch_id: int) -> store.Launch:
    row = store.get_launch(db, launch_id)
    if row is None:
        raise NotFound(f"no launch {launch_id}; see 'campctl get launches'")
    return row


def _results_text(db: Database, scenario: str, launch_id: int) -> str:
    """A launch's result numbers, for its log rows."""
    for results in store.launches(db, scenario):
        if results.launch.id == launch_id:
            return results.text()
    return "no results"


def stop_launch(db: Database, *, launch_id: int, actor: str, now: datetime,
                note: str | None = None) -> dict:
    from campctl.store import history, log

    row = require_launch(db, launch_id)
    if row.status != "running":
        raise ActionRefused(f"launch {launch_id} is {row.status}; only a running launch "
                            "can be stopped")
    abandoned = store.end_profiles(db, row.scenario, now=now, status="abandoned",
                                   launch_id=launch_id)
    if not store.abandon_launch(db, launch_id, now=now):
        raise ActionRefused(f"launch {launch_id} changed meanwhile; look again and retry")
    history.record(db, history.HistoryEntry(
        kind="launch", name=str(launch_id), action="stop", actor=actor, from_status="running",
        to_status="abandoned", note=note), now=now)
    log.append(db, log.LogEntry(
        "Launch Abandoned", log.Subject(scenario=row.scenario, launch_id=launch_id),
        details=f"launch {launch_id}: {abandoned} profile(s) abandoned; "
                f"{_results_text(db, row.scenario, launch_id)}"), now=now)
    return {"id": launch_id, "abandoned": abandoned}


def launches(db: Database, *, scenario: str | None = None) -> list[dict]:
    from campctl.store.users import launch_left_out

    if scenario is not None:
        _scenario(db, scenario)
    left_out = launch_left_out(db)
    return [_launch_row(r, left_out.get(r.launch.id, (0, None)))
            for r in store.launches(db, scenario)]


def _launch_row(results: store.LaunchResults, left_out: tuple[int, str | None]) -> dict:
    """A launch with its results, as `get launches` shows it."""
    launch = results.launch
    return {"id": launch.id, "scenario": launch.scenario, "status": launch.status,
            "targeted": launch.targeted, "success": results.success,
            "failure": results.failure, "abandoned": results.abandoned,
            "other": results.other, "inside": results.inside, "selection": launch.selection,
            "include_opted_out": launch.include_opted_out, "created_at": launch.created_at,
            "finished_at": launch.finished_at,
            "left_out": {"rights": left_out[0], "reason": left_out[1]}}


# --- statistics and pictures ---------------------------------------------------------------------

def stats(db: Database, *, name: str, start: datetime, end: datetime, now: datetime) -> dict:
    """Entries, completions and errors in [start, end]; profiles inside at `now`."""
    _scenario(db, name)
    if start > end:
        raise UsageProblem(f"the period starts ({to_db(start)}) after it ends ({to_db(end)}); "
                           "swap --from and --to")
    counts = store.period_counts(db, name, since=start, now=end)
    steps = store.by_step(db, name)
    from campctl.store.failures import scenario_failures

    # A profile whose message failed counts as an error too (once, whatever its status).
    failed, failed_profiles = scenario_failures(db, name, since=start, now=end)
    return {
        "scenario": name,
        "since": to_db(start),
        "from": to_db(start),
        "to": to_db(end),
        "entered": counts.entered,
        "completed": counts.completed,
        "errors": counts.errors + failed_profiles,
        "failed_messages": failed,
        "active": counts.active,
        "by_step": {step: sum(c.values())
                    for step, c in sorted(steps.items(), key=_order(db, name))},
    }


def period_bounds(*, since: timedelta | None, start: datetime | None, end: datetime | None,
                  now: datetime) -> tuple[datetime, datetime]:
    """The statistics period: `since` back from now, or absolute bounds (`end` defaults to now,
    `start` to seven days before `end`)."""
    if since is not None:
        if start is not None or end is not None:
            raise UsageProblem("give the period either as --since or as --from/--to, not both")
        return now - since, now
    upper = end or now
    return start or upper - timedelta(days=7), upper


def _order(db: Database, name: str):
    ids = _step_ids(_scenario(db, name).model)
    return lambda item: (ids.index(item[0]) if item[0] in ids else len(ids), item[0] or "")


def profiles(db: Database, *, name: str, step: str | None = None, status: str | None = None,
             contact: str | None = None, limit: int | None = None) -> tuple[list[dict], int]:
    """A scenario's profiles (oldest first, at most `limit`) and how many match in all.

    An unknown step, status or contact is an error rather than an empty list."""
    from campctl.models import ProfileStatus

    obj = _scenario(db, name)
    if step is not None:
        ids = _step_ids(obj.model)
        if step not in ids and not store.has_profiles_at_step(db, name, step):
            raise NotFound(f"scenario {name} has no step {step!r}; its steps: "
                           + (", ".join(ids) or "none"))
    if status is not None and status not in {s.value for s in ProfileStatus}:
        raise UsageProblem(f"--status: unknown profile status {status!r}; use one of "
                           + ", ".join(s.value for s in ProfileStatus))
    contact_id = None
    if contact is not None:
        contact_id = store.contact_id_of(db, contact)
        if contact_id is None:
            raise NotFound(f"no contact with id {contact!r}; see 'campctl contacts list'")
    rows, total = store.profiles_page(db, name, step=step, status=status,
                                      contact_id=contact_id, limit=limit)
    return [_profile_row(r) for r in rows], total


def _profile_row(r: store.Profile) -> dict:
    return {"contact": r.contact, "step": r.step, "status": r.status,
            "entered_at": r.entered_at, "wake_at": r.wake_at, "exited_at": r.exited_at,
            "launch": r.launch_id, "error": r.error, "data": _data(r.data)}


def _data(text: str | None) -> dict | None:
    import json

    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def contact_journeys(db: Database, contact_id: int) -> list[dict]:
    """A contact's scenario profiles: scenario, step, status, wake-up, capture data."""
    return [{"scenario": r.scenario, **_profile_row(r), "cleared": r.cleared_at is not None}
            for r in store.contact_profiles(db, contact_id)]


def recent_profiles(db: Database, name: str, *, limit: int = 5) -> list[dict]:
    """The latest profiles of a scenario with their capture data (for describe scenario)."""
    return [_profile_row(r) for r in store.latest_profiles(db, name, limit=limit)]


def describe_extra(db: Database, name: str, now: datetime) -> list[dict]:
    """One row per step for `describe scenario`: what it does, where it leads, who is there."""
    obj = _scenario(db, name)
    try:
        steps = checked_steps(obj.model)
    except ValidationFailed as exc:
        return [{"step": "-", "action": "invalid", "detail": exc.message, "next": None,
                 "active": 0, "waiting": 0, "frozen": 0, "sent": 0}]
    inside = store.by_step(db, name)
    messages = store.step_message_counts(db, name)
    from campctl.store.stale import step_stale_counts

    stale = step_stale_counts(db, name)
    from campctl.store.caps import step_capped_counts

    capped = step_capped_counts(db, name)
    rows = []
    for step in steps:
        here = inside.get(step.id, {})
        sent = messages.get(step.id, {})
        detail, leads = _step_picture(step)
        rows.append({
            "step": step.id, "action": step.action, "detail": detail, "next": leads,
            "active": here.get("active", 0), "waiting": here.get("waiting", 0),
            "frozen": here.get("frozen", 0), "sent": sent.get("sent", 0),
            "queued": sent.get("queued", 0), "failed": sent.get("failed", 0),
            "stale": stale.get(step.id, 0),
            "capped": capped.get(step.id, 0),
        })
    return rows


def _step_picture(step: ScenarioStep) -> tuple[str, str]:
    """What a step does and where it leads, in words (describe scenario)."""
    leads = step.next or END
    if step.send is not None:
        send = step.send
        detail = send.channel
        if send.message_type:
            detail += f" ({send.message_type})"
        if send.subject:
            detail += f": {send.subject}"
        return detail, leads
    if step.wait is not None:
        return _human(parse_duration(step.wait)), leads
    if step.condition is not None:
        cond = step.condition
        detail = (f"event {cond.event} within {cond.within}" if cond.event is not None
                  else "contact matches rules")
        return detail, f"then {step.then or END} / else {step.otherwise or END}"
    return "", leads


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def status_rows(db: Database, *, now: datetime) -> list[dict]:
    """Active scenarios with profiles inside, per step (for `campctl status` and the daemon)."""
    rows = []
    for obj in store.active_scenarios(db):
        steps = store.by_step(db, obj.name)
        scenario = Scenario.from_spec(obj.spec)
        rows.append({
            "scenario": obj.name,
            "launch_type": scenario.launch.type,
            "reentry": scenario.reentry,
            "profiles": sum(sum(c.values()) for c in steps.values()),
            "by_step": {s: sum(c.values()) for s, c in steps.items()},
        })
    return rows
