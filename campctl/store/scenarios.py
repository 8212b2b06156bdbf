"""Scenario profiles and launches: capture, set-based step moves, statistics (their SQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from sqlite3 import Row
from typing import Any

from campctl.models import IN_SCENARIO_STATUSES
from campctl.store.db import Database
from campctl.store.runs import UNSURE_SQL, in_doubt_sql
from campctl.timeutil import to_db

_IN_SQL = "(" + ", ".join(f"'{s}'" for s in IN_SCENARIO_STATUSES) + ")"
# Profiles that can still be captured again under `after_exit`/`restart` are those "inside".
LIVE = "('active', 'waiting')"
# `last_error` of a message cancelled because its profile left (stop launch, deactivation).
_PROFILE_ENDED_SQL = "'scenario profile ended'"
# A profile's message that still waits for delivery (first attempt or a retry).
_WAITING_MESSAGE_SQL = ("EXISTS (SELECT 1 FROM queue_items q WHERE q.profile_id = p.id"
                        " AND q.status = 'queued')")

PROFILE_FIELDS = (
    "p.id, p.scenario, p.contact_id, c.external_id AS contact, p.step, p.status, p.entered_at, "
    "p.wake_at, p.exited_at, p.launch_id, p.error, p.visit, p.skipped, p.data"
)


# --- records ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoredScenario:
    """An active scenario as the tick reads it: its stored definition, or why it cannot be read
    (`spec_error`; the tick sets such a scenario aside, the others go on)."""

    name: str
    version: int
    spec: dict[str, Any]
    spec_error: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> StoredScenario:
        try:
            spec = json.loads(row["spec"])
        except ValueError as exc:
            return cls(row["name"], row["version"], {},
                       f"its stored definition is not valid JSON ({exc})")
        if not isinstance(spec, dict):
            return cls(row["name"], row["version"], {},
                       "its stored definition is not a JSON object")
        return cls(row["name"], row["version"], spec)


@dataclass(frozen=True, slots=True)
class Profile:
    """One profile (a contact's pass through a scenario); instants are database text."""

    id: int
    scenario: str
    contact_id: int
    contact: str | None  # the contact's external id; None once the contact is erased
    step: str | None
    status: str
    entered_at: str
    wake_at: str | None
    exited_at: str | None
    launch_id: int | None
    error: str | None
    visit: int
    skipped: int
    data: str | None  # capture data, JSON text
    cleared_at: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> Profile:
        return cls(
            id=row["id"], scenario=row["scenario"], contact_id=row["contact_id"],
            contact=row["contact"], step=row["step"], status=row["status"],
            entered_at=row["entered_at"], wake_at=row["wake_at"], exited_at=row["exited_at"],
            launch_id=row["launch_id"], error=row["error"], visit=row["visit"],
            skipped=row["skipped"], data=row["data"],
            cleared_at=row["cleared_at"] if "cleared_at" in row.keys() else None)


@dataclass(frozen=True, slots=True)
class Launch:
    """A manual launch of a scenario (`start scenario`)."""

    id: int
    scenario: str
    status: str  # running | completed | abandoned
    targeted: int
    include_opted_out: bool
    selection: str | None
    actor: str | None
    created_at: str
    finished_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> Launch:
        return cls(id=row["id"], scenario=row["scenario"], status=row["status"],
                   targeted=row["targeted"], include_opted_out=bool(row["include_opted_out"]),
                   selection=row["selection"], actor=row["actor"],
                   created_at=row["created_at"], finished_at=row["finished_at"])


@dataclass(frozen=True, slots=True)
class LaunchResults:
    """A launch with its results, every targeted contact counted once (see `launches`)."""

    launch: Launch
    success: int
    failure: int
    abandoned: int
    other: int
    inside: int

    @classmethod
    def from_row(cls, row: Row) -> LaunchResults:
        # Targeted contacts that never entered (re-entry mode) count as `other`.
        not_entered = max(0, row["targeted"] - row["entered"])
        return cls(Launch.from_row(row), success=row["success"], failure=row["failure"],
                   abandoned=row["abandoned"], other=row["other_"] + not_entered,
                   inside=row["inside"])

    def text(self) -> str:
        """The result numbers on one line (launch log rows)."""
        return (f"targeted {self.launch.targeted}: success {self.success}, failure "
                f"{self.failure}, abandoned {self.abandoned}, other {self.other}, "
                f"inside {self.inside}")


@dataclass(frozen=True, slots=True)
class PeriodCounts:
    """A scenario's entries, completions and errors in a period, and profiles inside now."""

    entered: int
    completed: int
    errors: int
    active: int


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A scheduled scenario's cursor (last occurrence considered) and next due instant, as
    database text; both None before its first tick."""

    cursor_at: str | None = None
    next_due_at: str | None = None

    @classmethod
    def from_row(cls, row: Row | None) -> ScheduleState:
        return cls() if row is None else cls(row["cursor_at"], row["next_due_at"])


# --- capture ----------------------------------------------------------------------------------

def _reentry_filter(reentry: str) -> str:
    """SQL (over `src.contact_id`) excluding contacts the re-entry mode does not capture."""
    if reentry == "once":
        # A profile removed by clear/remove-profile no longer holds its contact out.
        return ("AND NOT EXISTS (SELECT 1 FROM scenario_profiles x WHERE x.scenario = :scenario "
                "AND x.contact_id = src.contact_id AND x.cleared_at IS NULL)")
    if reentry in ("after_exit", "restart"):
        # restart: contacts inside were sent back to the first step before this insert runs.
        return ("AND NOT EXISTS (SELECT 1 FROM scenario_profiles x WHERE x.scenario = :scenario "
                f"AND x.contact_id = src.contact_id AND x.status IN {_IN_SQL})")
    return ""


@dataclass(frozen=True, slots=True)
class Capture:
    """Who a capture takes into a scenario, and how.

    `source_sql` is a SELECT yielding `contact_id` (and, for parallel event capture, `event_id`)
    that may use named or positional parameters; `capture_key_sql` is an SQL expression over
    `src` giving each new profile's capture key and `data_sql` its capture data (JSON text or
    NULL). `reentry` is the scenario's re-entry mode and `first_step` where profiles start.
    """

    scenario: str
    source_sql: str
    source_params: Sequence[Any] | dict[str, Any]
    reentry: str
    first_step: str
    capture_key_sql: str
    data_sql: str = "NULL"
    launch_id: int | None = None
    include_opted_out: bool = False
    # The order new profiles take their ids in (they feed message ids): an SQL expression over
    # `src`; without it a parallel capture would follow the plan's scan order, which differs
    # between SQLite (rowid order) and PostgreSQL (heap order).
    order_sql: str = "src.contact_id"


def capture(db: Database, what: Capture, *, now: datetime) -> int:
    """Set-based capture of the contacts produced by `what.source_sql`, applying the re-entry
    mode; returns profiles created or restarted."""
    source_sql, source_params, data_sql = what.source_sql, what.source_params, what.data_sql
    params: dict[str, Any] = dict(source_params) if isinstance(source_params, dict) else {}
    if not isinstance(source_params, dict) and source_params:
        # Positional parameters of an embedded audience query: name them for this statement.
        source_sql, named = _name_positional(source_sql, source_params)
        params.update(named)
    params.update(scenario=what.scenario, step=what.first_step, now=to_db(now),
                  launch=what.launch_id, inc=1 if what.include_opted_out else 0)
    restarted = 0
    if what.reentry == "restart":
        # The entry being replaced is kept, so statistics count both entries.
        db.execute(
            "INSERT INTO scenario_reentries (scenario, profile_id, entered_at) "
            "SELECT scenario, id, entered_at FROM scenario_profiles "
            f"WHERE scenario = :scenario AND status IN {LIVE} AND contact_id IN "
            f"(SELECT contact_id FROM ({source_sql}) AS src)",
            params,
        )
        restarted = db.execute(
            "UPDATE scenario_profiles SET step = :step, status = 'active', wake_at = NULL, "
            f"data = coalesce((SELECT {data_sql} FROM ({source_sql}) AS src "
            "WHERE src.contact_id = scenario_profiles.contact_id LIMIT 1), data), "
            "entered_at = :now, visit = visit + 1, updated_at = :now, launch_id = "
            "coalesce(:launch, launch_id), include_opted_out = CASE WHEN include_opted_out > :inc "
            "THEN include_opted_out ELSE :inc END "
            f"WHERE scenario = :scenario AND status IN {LIVE} AND contact_id IN "
            f"(SELECT contact_id FROM ({source_sql}) AS src)",
            params,
        ).rowcount
    key_sql = what.capture_key_sql
    if what.reentry == "parallel":
        distinct = f"ORDER BY {what.order_sql}"
    else:
        # One profile per contact. The key and data go through max() so that no bare column
        # stands beside GROUP BY (portable SQL); every caller's source yields one key and one
        # data per contact (events_source with latest_per_contact, or constants). ORDER BY:
        # profile ids follow contact ids on every database (SQLite's GROUP BY sorts anyway).
        distinct = "GROUP BY src.contact_id ORDER BY src.contact_id"
        key_sql, data_sql = f"max(CAST({key_sql} AS TEXT))", f"max(CAST({data_sql} AS TEXT))"
    inserted = db.execute(
        "INSERT INTO scenario_profiles (scenario, contact_id, step, status, entered_at, launch_id, "
        "capture_key, updated_at, include_opted_out, data) "
        f"SELECT :scenario, src.contact_id, :step, 'active', :now, :launch, "
        f"       {key_sql}, :now, :inc, {data_sql} FROM ({source_sql}) AS src "
        f"WHERE src.contact_id IS NOT NULL {_reentry_filter(what.reentry)} {distinct} "
        "ON CONFLICT DO NOTHING",
        params,
    ).rowcount
    return restarted + inserted


def json_literal(value: dict | None) -> str:
    """A JSON object as an SQL string literal (NULL for None), for `capture(data_sql=...)`."""
    if value is None:
        return "NULL"
    return "'" + json.dumps(value, ensure_ascii=False).replace("'", "''") + "'"


def _name_positional(sql: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    out: list[str] = []
    named: dict[str, Any] = {}
    index = 0
    in_quote = False
    for char in sql:
        if char == "'":
            in_quote = not in_quote
        if char == "?" and not in_quote:
            key = f"_p{index}"
            named[key] = values[index]
            out.append(f":{key}")
            index += 1
        else:
            out.append(char)
    return "".join(out), named


def events_source(event: str, after_id: int, upto_id: int, *, since: datetime | None,
                  now: datetime, latest_per_contact: bool = False) -> tuple[str, dict[str, Any]]:
    """Events recorded in the id range (after_id, upto_id] and dated in [since, now]: columns
    contact_id, event_id and data. `latest_per_contact` keeps each contact's latest event only
    (its data is the capture's data when several events count as one capture)."""
    sql = ("SELECT e.contact_id AS contact_id, e.id AS event_id, e.data AS data FROM events e "
           "WHERE e.name = :ev_name AND e.id > :ev_after AND e.id <= :ev_upto "
           "AND e.at >= :ev_since AND e.at <= :ev_now")
    if latest_per_contact:
        # Each contact's row with the highest event id (its data with it).
        sql = ("SELECT contact_id, event_id, data FROM (SELECT s.contact_id, s.event_id, s.data, "
               "row_number() OVER (PARTITION BY s.contact_id ORDER BY s.event_id DESC) AS rn "
               f"FROM ({sql}) AS s) AS latest WHERE rn = 1")
    return sql, {"ev_name": event, "ev_after": after_id, "ev_upto": upto_id,
                 "ev_since": "" if since is None else to_db(since), "ev_now": to_db(now)}


def narrow_source(db: Database, source_sql: str, params: dict[str, Any], cond_sql: str,
                  cond_params: Sequence[Any]) -> tuple[str, dict[str, Any], int]:
    """A source narrowed to the contacts (row `c`) meeting a positional-parameter condition:
    (sql, named params, how many rows of the source it drops)."""
    cond_named, named = _name_positional(cond_sql, cond_params)
    cond_named = cond_named.replace(":_p", ":_cond")
    merged = dict(params)
    merged.update({k.replace("_p", "_cond", 1): v for k, v in named.items()})
    narrowed = (f"SELECT s.* FROM ({source_sql}) s JOIN contacts c ON c.id = s.contact_id "
                f"WHERE {cond_named}")
    unmet = db.scalar(f"SELECT (SELECT count(*) FROM ({source_sql}) AS src) - "
                      f"(SELECT count(*) FROM ({narrowed}) AS narrowed)", merged)
    return narrowed, merged, int(unmet or 0)


def active_since(db: Database, scenario: str) -> datetime | None:
    from campctl.timeutil import from_db

    return from_db(db.scalar(
        "SELECT active_since FROM scenario_activations WHERE scenario = ?", (scenario,)))


def set_active_since(db: Database, scenario: str, *, now: datetime) -> None:
    db.execute(
        "INSERT INTO scenario_activations (scenario, active_since) VALUES (?, ?) "
        "ON CONFLICT (scenario) DO UPDATE SET active_since = excluded.active_since",
        (scenario, to_db(now)),
    )


def contacts_source(*, all_contacts: bool, groups: Sequence[str] = (),
                    contact_id: int | None = None) -> tuple[str, dict[str, Any]]:
    """The participants of a manual launch: everyone, members of groups, or one contact."""
    if contact_id is not None:
        return "SELECT c.id AS contact_id FROM contacts c WHERE c.id = :one_contact", {
            "one_contact": contact_id}
    if all_contacts:
        return "SELECT c.id AS contact_id FROM contacts c", {}
    if not groups:  # no `IN ()`, which PostgreSQL refuses
        return "SELECT c.id AS contact_id FROM contacts c WHERE 1 = 0", {}
    params = {f"grp{i}": g for i, g in enumerate(groups)}
    holes = ", ".join(f":{k}" for k in params)
    return (f"SELECT DISTINCT g.contact_id AS contact_id FROM contact_groups g "
            f"WHERE g.grp IN ({holes})", params)


def count_source(db: Database, source_sql: str, params: dict[str, Any]) -> int:
    return db.scalar(f"SELECT count(*) FROM ({source_sql}) AS src", params)


def count_opted_out(db: Database, source_sql: str, params: dict[str, Any],
                    message_types: Sequence[str | None]) -> int:
    """Contacts of the source that a send step of these message types would skip for opt-out
    (opted out of `all` or of one of the types)."""
    types = {f"optout_mt{i}": t for i, t in enumerate(sorted({t for t in message_types if t}))}
    marks = ", ".join(f":{k}" for k in types) or "NULL"
    return db.scalar(
        f"SELECT count(*) FROM ({source_sql}) s WHERE EXISTS (SELECT 1 FROM contact_optouts o "
        f"WHERE o.contact_id = s.contact_id AND (o.message_type = 'all' "
        f"OR o.message_type IN ({marks})))",
        {**params, **types})


def targeted_contacts(db: Database, source_sql: str, params: dict[str, Any]) -> Iterator[dict]:
    """Every targeted contact as a template context, by contact id, streamed (launch check):
    on PostgreSQL through a server-side cursor inside the caller's transaction."""
    cursor = db.stream(
        "SELECT c.external_id, c.email, c.phone, c.attrs, "
        f"(SELECT {db.d.group_concat('grp', ':sep')} FROM contact_groups g "
        "WHERE g.contact_id = c.id) AS grps "
        f"FROM contacts c WHERE c.id IN (SELECT contact_id FROM ({source_sql}) AS src) "
        "ORDER BY c.id",
        {**params, "sep": ";"},
    )
    for row in cursor:
        try:
            context = json.loads(row["attrs"] or "{}")
        except ValueError:
            context = {}
        if not isinstance(context, dict):
            context = {}
        context.update(id=row["external_id"], email=row["email"], phone=row["phone"],
                       # Sorted as SQLite's index on (contact_id, grp) returns them; string_agg
                       # follows the heap.
                       groups=sorted(row["grps"].split(";")) if row["grps"] else [])
        yield context


def contact_id_of(db: Database, external_id: str) -> int | None:
    return db.scalar("SELECT id FROM contacts WHERE external_id = ?", (external_id,))


def max_event_id(db: Database) -> int:
    return db.scalar("SELECT coalesce(max(id), 0) FROM events")


def get_cursor(db: Database, consumer: str) -> int | None:
    return db.scalar("SELECT last_event_id FROM event_cursors WHERE consumer = ?", (consumer,))


def set_cursor(db: Database, consumer: str, last_event_id: int) -> None:
    db.execute(
        "INSERT INTO event_cursors (consumer, last_event_id) VALUES (?, ?) "
        "ON CONFLICT (consumer) DO UPDATE SET last_event_id = excluded.last_event_id",
        (consumer, last_event_id),
    )


# --- schedule state and occurrences -------------------------------------------------------------

def schedule_state(db: Database, name: str) -> ScheduleState:
    """A scheduled scenario's cursor and next due instant (empty before its first tick)."""
    return ScheduleState.from_row(db.one(
        "SELECT cursor_at, next_due_at FROM schedule_state WHERE kind = 'Scenario' AND name = ?",
        (name,)))


def set_schedule_state(db: Database, name: str, *, cursor_at: datetime,
                       next_due_at: datetime | None) -> None:
    db.execute(
        "INSERT INTO schedule_state (kind, name, cursor_at, next_due_at) VALUES "
        "('Scenario', ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET "
        "cursor_at = excluded.cursor_at, next_due_at = excluded.next_due_at "
        # a tick that changes nothing writes nothing (not one page)
        f"WHERE {db.d.is_not('schedule_state.cursor_at', 'excluded.cursor_at')} "
        f"OR {db.d.is_not('schedule_state.next_due_at', 'excluded.next_due_at')}",
        (name, to_db(cursor_at), None if next_due_at is None else to_db(next_due_at)),
    )


def add_occurrence(db: Database, name: str, *, scheduled_at: datetime, status: str,
                   reason: str | None, now: datetime) -> int | None:
    """The occurrence row, unique by (scenario, scheduled time); None if it already exists."""
    row = db.one(
        "INSERT INTO occurrences (kind, name, scheduled_at, status, reason, created_at) "
        "VALUES ('Scenario', ?, ?, ?, ?, ?) ON CONFLICT (kind, name, scheduled_at) DO NOTHING "
        "RETURNING id",
        (name, to_db(scheduled_at), status, reason, to_db(now)),
    )
    return None if row is None else int(row[0])


# --- journey moves (one statement per step) -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class AtStep:
    """The profiles of `scenario` that are `status` at `step`, narrowed by `where` (an SQL
    condition over `scenario_profiles` with positional `params`) when given."""

    scenario: str
    step: str
    status: str = "active"
    where: str = ""
    params: Sequence[Any] = ()


def move(db: Database, at: AtStep, *, to: str | None, now: datetime) -> int:
    """Move the profiles `at` a step to step `to` (None = completed)."""
    if to is None:
        sql = ("UPDATE scenario_profiles SET status = 'completed', exited_at = ?, wake_at = NULL, "
               "updated_at = ? WHERE scenario = ? AND status = ? AND step = ?")
        args: list[Any] = [to_db(now), to_db(now), at.scenario, at.status, at.step]
    else:
        sql = ("UPDATE scenario_profiles SET step = ?, status = 'active', wake_at = NULL, "
               "visit = visit + 1, updated_at = ? WHERE scenario = ? AND status = ? AND step = ?")
        args = [to, to_db(now), at.scenario, at.status, at.step]
    if at.where:
        sql += f" AND {at.where}"
        args += list(at.params)
    return db.execute(sql, args).rowcount


def wake(db: Database, *, scenario: str, step: str, to: str | None, now: datetime) -> int:
    """Profiles waiting at `step` whose wake time has come move on."""
    return move(db, AtStep(scenario, step, status="waiting", where="wake_at <= ?",
                           params=[to_db(now)]), to=to, now=now)


def start_wait(db: Database, *, scenario: str, step: str, wake_at: datetime,
               now: datetime) -> int:
    return db.execute(
        "UPDATE scenario_profiles SET status = 'waiting', wake_at = ?, updated_at = ? "
        "WHERE scenario = ? AND status = 'active' AND step = ?",
        (to_db(wake_at), to_db(now), scenario, step),
    ).rowcount


def event_condition(event: str, within: str, now: datetime) -> tuple[str, list[Any]]:
    """The contact had `event` within the duration before now (its boundary included, as in
    segment rules), and not before the profile entered."""
    from campctl.store.segments import within_bounds

    since, until = within_bounds(now, within)
    return (
        "EXISTS (SELECT 1 FROM events e WHERE e.contact_id = scenario_profiles.contact_id "
        "AND e.name = ? AND e.at >= ? AND e.at >= scenario_profiles.entered_at AND e.at <= ?)",
        [event, since, until],
    )


def attribute_condition(rule_sql: str, rule_params: Sequence[Any]) -> tuple[str, list[Any]]:
    """Wrap a segment rule expression over contacts row `c` as a condition on the profile."""
    return (
        "EXISTS (SELECT 1 FROM contacts c WHERE c.id = scenario_profiles.contact_id "
        f"AND ({rule_sql}))",
        list(rule_params),
    )


def branch(db: Database, at: AtStep, *, condition: tuple[str, list[Any]], then: str | None,
           otherwise: str | None, now: datetime) -> tuple[int, int]:
    """Profiles at an `if` step go to `then` where the condition holds, else to `otherwise`."""
    cond_sql, cond_params = condition
    taken = move(db, AtStep(at.scenario, at.step, at.status, where=f"({cond_sql})",
                            params=cond_params), to=then, now=now)
    rest = move(db, at, to=otherwise, now=now)
    return taken, rest


def queue_sends(db: Database, *, scenario: str, step: str, channel: str,
                message_type: str | None, now: datetime,
                priority: int = 50) -> tuple[int, int]:
    """One queue item per active profile at a send step (`priority` copied onto each);
    opted-out contacts skip the send.

    The message id is deterministic per (profile, step, visit), so replaying a tick adds nothing.
    Returns (queued, skipped).
    """
    at = to_db(now)
    # As for campaigns, a contact opted out of "all" refuses every message type.
    optout = ("(p.include_opted_out = 0 AND EXISTS (SELECT 1 FROM contact_optouts o "
              "WHERE o.contact_id = p.contact_id AND (o.message_type = 'all' "
              "OR o.message_type = :mtype)))")
    params = {"scenario": scenario, "step": step, "channel": channel, "mtype": message_type,
              "now": at, "priority": int(priority)}
    queued = db.execute(
        "INSERT INTO queue_items (message_id, run_id, profile_id, scenario, step, contact_id, "
        "channel, message_type, status, next_attempt_at, created_at, priority) "
        "SELECT 'scn-' || p.id || '-' || p.step || '-' || p.visit, NULL, p.id, p.scenario, p.step, "
        "p.contact_id, :channel, :mtype, 'queued', :now, :now, :priority FROM scenario_profiles p "
        f"WHERE p.scenario = :scenario AND p.status = 'active' AND p.step = :step AND NOT {optout} "
        "ON CONFLICT DO NOTHING",
        params,
    ).rowcount
    skipped = db.execute(
        f"UPDATE scenario_profiles AS p SET skipped = skipped + 1 WHERE p.scenario = :scenario "
        f"AND p.status = 'active' AND p.step = :step AND {optout}",
        params,
    ).rowcount
    return queued, skipped


def active_at_steps(db: Database, scenario: str) -> dict[str, int]:
    return {
        r[0]: r[1]
        for r in db.query(
            "SELECT step, count(*) FROM scenario_profiles WHERE scenario = ? AND status = 'active' "
            "GROUP BY step",
            (scenario,),
        )
    }


def fail_profiles(db: Database, *, scenario: str, now: datetime, reason: str,
                  steps: Sequence[str], status: str = "active") -> int:
    """Mark the profiles still `status` at `steps` `error`, with the reason."""
    if not steps:
        return 0
    at = to_db(now)
    holes = ", ".join("?" for _ in steps)
    return db.execute(
        "UPDATE scenario_profiles SET status = 'error', error = ?, exited_at = ?, wake_at = NULL, "
        f"updated_at = ? WHERE scenario = ? AND status = ? AND step IN ({holes})",
        (reason, at, at, scenario, status, *steps),
    ).rowcount


def fail_stranded(db: Database, *, scenario: str, now: datetime, reason: str,
                  known_steps: Sequence[str]) -> int:
    """Mark `error` the profiles inside (active or waiting) on a step not in `known_steps` (a
    step removed from the definition; every step when `known_steps` is empty)."""
    at = to_db(now)
    # No `IN ()`: SQLite accepts an empty list, PostgreSQL does not.
    holes = ", ".join("?" for _ in known_steps)
    stranded = f"(step IS NULL OR step NOT IN ({holes}))" if known_steps else "1 = 1"
    return db.execute(
        "UPDATE scenario_profiles SET status = 'error', error = ?, exited_at = ?, "
        f"wake_at = NULL, updated_at = ? WHERE scenario = ? AND status IN {LIVE} "
        f"AND {stranded}",
        (reason, at, at, scenario, *known_steps),
    ).rowcount


# --- activation, removal --------------------------------------------------------------------------

def freeze(db: Database, scenario: str, *, now: datetime) -> int:
    return db.execute(
        "UPDATE scenario_profiles SET status = 'frozen', updated_at = ? "
        f"WHERE scenario = ? AND status IN {LIVE}",
        (to_db(now), scenario),
    ).rowcount


def unfreeze(db: Database, scenario: str, *, now: datetime) -> int:
    """Frozen profiles resume: a wait keeps its wake time (an expired one fires at next tick)."""
    return db.execute(
        "UPDATE scenario_profiles SET status = CASE WHEN wake_at IS NULL THEN 'active' "
        "ELSE 'waiting' END, updated_at = ? WHERE scenario = ? AND status = 'frozen'",
        (to_db(now), scenario),
    ).rowcount


def end_profiles(db: Database, scenario: str, *, now: datetime, status: str,
                 launch_id: int | None = None) -> int:
    """Profiles inside the scenario (or of one launch) leave it with `status`; their unsent
    messages are cancelled (for a launch, also those of its profiles that already left the
    journey: a stopped launch sends nothing more)."""
    at = to_db(now)
    where = f"scenario = ? AND status IN {_IN_SQL}"
    args: list[Any] = [scenario]
    if launch_id is not None:
        where += " AND launch_id = ?"
        args.append(launch_id)
        cancel_queued(db, "scenario = ? AND launch_id = ?", [scenario, launch_id])
    else:
        cancel_queued(db, where, args)
    return db.execute(
        f"UPDATE scenario_profiles SET status = ?, exited_at = ?, wake_at = NULL, updated_at = ? "
        f"WHERE {where}",
        (status, at, at, *args),
    ).rowcount


def cancel_queued(db: Database, profile_where: str, args: Sequence[Any]) -> int:
    """Cancel the waiting messages of the profiles; one whose hand-over began (a delivery is
    handing it over, or was killed doing so) keeps its claim and is marked possibly handed
    over, so the delivery can still record it sent (`store.runs.in_doubt_sql`)."""
    doubt = in_doubt_sql(db)
    return db.execute(
        f"UPDATE queue_items SET status = 'cancelled', last_error = CASE WHEN {doubt}"
        f" THEN {UNSURE_SQL} ELSE {_PROFILE_ENDED_SQL} END,"
        f" handover_begun = CASE WHEN {doubt} THEN 1 ELSE 0 END "
        "WHERE status = 'queued' AND profile_id IN "
        f"(SELECT id FROM scenario_profiles WHERE {profile_where})",
        list(args),
    ).rowcount


def remove_profiles(db: Database, scenario: str, *, now: datetime,
                    contact_id: int | None = None, inside_only: bool = False) -> int:
    """Take profiles out of the scenario (clear, remove-profile) without erasing their past.

    The rows stay, marked `cleared_at`, so statistics and launch results keep counting them and
    re-entry (`once`) no longer sees them; a profile still inside leaves with status `removed`
    and its unsent messages are cancelled. Returns the profiles removed.
    """
    at = to_db(now)
    where = "scenario = ? AND cleared_at IS NULL"
    args: list[Any] = [scenario]
    if contact_id is not None:
        where += " AND contact_id = ?"
        args.append(contact_id)
    if inside_only:
        where += f" AND status IN {_IN_SQL}"
    cancel_queued(db, where, args)
    return db.execute(
        f"UPDATE scenario_profiles SET cleared_at = ?, updated_at = ?, "
        f"status = CASE WHEN status IN {_IN_SQL} THEN 'removed' ELSE status END, "
        f"exited_at = CASE WHEN status IN {_IN_SQL} THEN ? ELSE exited_at END, "
        f"wake_at = CASE WHEN status IN {_IN_SQL} THEN NULL ELSE wake_at END "
        f"WHERE {where}",
        (at, at, at, *args),
    ).rowcount


# --- launches -----------------------------------------------------------------------------------

def create_launch(db: Database, *, scenario: str, selection: str, include_opted_out: bool,
                  actor: str, now: datetime) -> int:
    row = db.one(
        "INSERT INTO scenario_launches (scenario, status, include_opted_out, selection, actor, "
        "created_at) VALUES (?, 'running', ?, ?, ?, ?) RETURNING id",
        (scenario, 1 if include_opted_out else 0, selection, actor, to_db(now)),
    )
    assert row is not None  # an INSERT without a conflict clause returns its row
    return int(row[0])


def set_launch_targeted(db: Database, launch_id: int, targeted: int) -> None:
    db.execute("UPDATE scenario_launches SET targeted = ? WHERE id = ?", (targeted, launch_id))


def get_launch(db: Database, launch_id: int) -> Launch | None:
    row = db.one("SELECT * FROM scenario_launches WHERE id = ?", (launch_id,))
    return None if row is None else Launch.from_row(row)


def abandon_launch(db: Database, launch_id: int, *, now: datetime) -> bool:
    row = db.one(
        "UPDATE scenario_launches SET status = 'abandoned', finished_at = ? "
        "WHERE id = ? AND status = 'running' RETURNING id",
        (to_db(now), launch_id),
    )
    return row is not None


def finish_launches(db: Database, scenario: str, *, now: datetime) -> list[int]:
    """Running launches none of whose profiles is inside the scenario any more, nor has a
    message still waiting for delivery (or a retry), are completed; returns their ids (the
    caller records each one's history)."""
    return [r[0] for r in db.execute(
        "UPDATE scenario_launches SET status = 'completed', finished_at = ? "
        "WHERE scenario = ? AND status = 'running' AND NOT EXISTS (SELECT 1 FROM "
        "scenario_profiles p WHERE p.launch_id = scenario_launches.id AND "
        f"(p.status IN {_IN_SQL} OR {_WAITING_MESSAGE_SQL}))"
        " RETURNING id",
        (to_db(now), scenario),
    ).fetchall()]


def scenarios_with_running_launches(db: Database) -> list[str]:
    return [r[0] for r in db.query(
        "SELECT DISTINCT scenario FROM scenario_launches WHERE status = 'running' ORDER BY 1")]


def launches(db: Database, scenario: str | None = None) -> list[LaunchResults]:
    """Each launch with its results: every targeted contact counted once.

    success: completed and every message handed over; failure: error, or a message that
    failed; abandoned: stopped (stop launch), exited on deactivation, or removed while inside
    (clear, remove-profile); other: not entered (re-entry mode), a send skipped for opt-out, or a
    message cancelled at delivery (contact opted out or erased since). Inside: still in the
    journey, or a message of theirs still waits for delivery (retries): counted in none of the
    results yet. Cleared profiles keep counting: results are history.
    """
    where = "WHERE l.scenario = ?" if scenario else ""
    rows = db.query(
        "SELECT l.id, l.scenario, l.status, l.targeted, l.include_opted_out, l.selection, "
        "l.actor, l.created_at, l.finished_at, "
        "count(*) FILTER (WHERE r.outcome = 'success') AS success, "
        "count(*) FILTER (WHERE r.outcome = 'failure') AS failure, "
        "count(*) FILTER (WHERE r.outcome = 'abandoned') AS abandoned, "
        "count(*) FILTER (WHERE r.outcome = 'other') AS other_, "
        "count(*) FILTER (WHERE r.outcome = 'inside') AS inside, count(r.outcome) AS entered "
        "FROM scenario_launches l LEFT JOIN ("
        "  SELECT p.launch_id, CASE "
        f"    WHEN p.status IN {_IN_SQL} THEN 'inside' "
        "    WHEN p.status IN ('abandoned', 'exited', 'removed') THEN 'abandoned' "
        "    WHEN p.status = 'error' OR EXISTS (SELECT 1 FROM queue_items q WHERE "
        "      q.profile_id = p.id AND q.status = 'failed') THEN 'failure' "
        f"    WHEN {_WAITING_MESSAGE_SQL} THEN 'inside' "
        "    WHEN EXISTS (SELECT 1 FROM queue_items q WHERE q.profile_id = p.id AND "
        f"      q.status = 'cancelled' AND q.last_error IN ({_PROFILE_ENDED_SQL}, {UNSURE_SQL}))"
        "      THEN 'abandoned' "
        "    WHEN p.skipped > 0 OR EXISTS (SELECT 1 FROM queue_items q WHERE "
        "      q.profile_id = p.id AND q.status = 'cancelled') THEN 'other' "
        "    ELSE 'success' END AS outcome "
        "  FROM scenario_profiles p WHERE p.launch_id IS NOT NULL"
        f") r ON r.launch_id = l.id {where} GROUP BY l.id ORDER BY l.id",
        (scenario,) if scenario else (),
    )
    return [LaunchResults.from_row(r) for r in rows]


# --- reading ------------------------------------------------------------------------------------

def profiles_page(db: Database, scenario: str, *, step: str | None = None,
                  status: str | None = None, contact_id: int | None = None,
                  limit: int | None = None) -> tuple[list[Profile], int]:
    """The first `limit` matching profiles (all when None) and the number that match."""
    where = "p.scenario = ? AND p.cleared_at IS NULL"
    args: list[Any] = [scenario]
    for column, value in (("step", step), ("status", status), ("contact_id", contact_id)):
        if value is not None:
            where += f" AND p.{column} = ?"
            args.append(value)
    total = db.scalar(f"SELECT count(*) FROM scenario_profiles p WHERE {where}", args)
    page = "" if limit is None else f" LIMIT {int(limit)}"
    rows = [Profile.from_row(r) for r in db.query(
        f"SELECT {PROFILE_FIELDS} FROM scenario_profiles p LEFT JOIN contacts c "
        f"ON c.id = p.contact_id WHERE {where} ORDER BY p.id{page}", args)]
    return rows, total


def latest_profiles(db: Database, scenario: str, *, limit: int) -> list[Profile]:
    return [Profile.from_row(r) for r in db.query(
        f"SELECT {PROFILE_FIELDS} FROM scenario_profiles p LEFT JOIN contacts c "
        "ON c.id = p.contact_id WHERE p.scenario = ? AND p.cleared_at IS NULL "
        "ORDER BY p.id DESC LIMIT ?", (scenario, int(limit)))]


def contact_profiles(db: Database, contact_id: int) -> list[Profile]:
    """A contact's profiles in every scenario (those cleared included: history), oldest first."""
    return [Profile.from_row(r) for r in db.query(
        f"SELECT {PROFILE_FIELDS}, p.cleared_at FROM scenario_profiles p LEFT JOIN contacts c "
        "ON c.id = p.contact_id WHERE p.contact_id = ? ORDER BY p.id", (contact_id,))]


def has_profiles_at_step(db: Database, scenario: str, step: str) -> bool:
    return db.scalar("SELECT 1 FROM scenario_profiles WHERE scenario = ? AND step = ? LIMIT 1",
                     (scenario, step)) is not None


def by_step(db: Database, scenario: str) -> dict[str, dict[str, int]]:
    """Per step, the profiles inside the scenario by status."""
    out: dict[str, dict[str, int]] = {}
    for r in db.query(
        "SELECT step, status, count(*) FROM scenario_profiles WHERE scenario = ? "
        f"AND status IN {_IN_SQL} GROUP BY step, status",
        (scenario,),
    ):
        out.setdefault(r[0], {})[r[1]] = r[2]
    return out


def period_counts(db: Database, scenario: str, *, since: datetime,
                  now: datetime) -> PeriodCounts:
    """Entries, completions and errors in [since, now], profiles inside now.

    Profiles removed by clear/remove-profile still count; an entry replaced by a `restart`
    re-entry counts too (scenario_reentries)."""
    lo, hi = to_db(since), to_db(now)
    row = db.one(
        "SELECT "
        "count(*) FILTER (WHERE entered_at >= :lo AND entered_at <= :hi) AS entered, "
        "count(*) FILTER (WHERE status = 'completed' AND exited_at >= :lo AND exited_at <= :hi) "
        "  AS completed, "
        "count(*) FILTER (WHERE status = 'error' AND exited_at >= :lo AND exited_at <= :hi) "
        "  AS errors, "
        f"count(*) FILTER (WHERE status IN {_IN_SQL}) AS active "
        "FROM scenario_profiles WHERE scenario = :scenario",
        {"lo": lo, "hi": hi, "scenario": scenario},
    )
    assert row is not None  # an aggregate always yields one row
    replaced = db.scalar(
        "SELECT count(*) FROM scenario_reentries WHERE scenario = ? AND entered_at >= ? "
        "AND entered_at <= ?", (scenario, lo, hi))
    return PeriodCounts(entered=row["entered"] + replaced, completed=row["completed"],
                        errors=row["errors"], active=row["active"])


def step_message_counts(db: Database, scenario: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in db.query(
        "SELECT step, status, count(*) FROM queue_items WHERE scenario = ? GROUP BY step, status",
        (scenario,),
    ):
        out.setdefault(r[0], {})[r[1]] = r[2]
    return out


def active_scenarios(db: Database) -> list[StoredScenario]:
    """Active scenarios with their stored definition (see `StoredScenario.spec_error`)."""
    return [StoredScenario.from_row(r) for r in db.query(
        "SELECT name, spec, version FROM objects WHERE kind = 'Scenario' AND status = 'active' "
        "ORDER BY name")]
