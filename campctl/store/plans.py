"""Plan instances, stage instances, plan occurrences and plan schedule state (all their SQL)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campctl.store.db import Database
from campctl.timeutil import to_db

ACTIVE_INSTANCE = ("running", "paused")
TERMINAL_RUN = ("completed", "failed", "stopped", "skipped")
ACTIVE_RUN = ("scheduled", "building", "queued", "sending", "paused")

_INSTANCE_FIELDS = {"status", "finished_at", "error"}
_STAGE_FIELDS = {
    "status", "started_at", "activity_created_at", "activity_finished_at", "ended_at",
    "completed", "has_errors", "run_id", "run_log", "queue_created_at", "delivery_started_at",
    "sent_logged",
}


def _db_time(value: datetime | None) -> str | None:
    return None if value is None else to_db(value)


# --- records: what these functions return (instants stay in the database's text form) ---------

Row = sqlite3.Row


@dataclass(frozen=True, slots=True)
class PlanCandidate:
    """An approved plan whose schedule needs attention; `spec_error` when its stored spec is
    unreadable (the plan's own processing reads it again and sets it aside)."""

    name: str
    version: int
    updated_at: str | None
    next_due_at: str | None
    cursor_at: str | None
    spec: dict[str, Any]
    spec_error: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> PlanCandidate:
        spec_error = None
        try:
            spec = json.loads(row["spec"])
        except ValueError as exc:
            spec, spec_error = {}, f"its stored definition is not valid JSON ({exc})"
        return cls(name=row["name"], version=int(row["version"]), updated_at=row["updated_at"],
                   next_due_at=row["next_due_at"], cursor_at=row["cursor_at"], spec=spec,
                   spec_error=spec_error)


@dataclass(frozen=True, slots=True)
class ScheduleState:
    next_due_at: str | None
    cursor_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> ScheduleState:
        return cls(next_due_at=row["next_due_at"], cursor_at=row["cursor_at"])


@dataclass(frozen=True, slots=True)
class QueuedOccurrence:
    """An occurrence waiting behind a running instance (overlap: queue)."""

    id: int
    scheduled_at: str

    @classmethod
    def from_row(cls, row: Row) -> QueuedOccurrence:
        return cls(id=int(row["id"]), scheduled_at=row["scheduled_at"])


@dataclass(frozen=True, slots=True)
class InstanceSnapshot:
    """The execution tree frozen when an instance started. `document` is the stored JSON as it
    is (shown by `describe instance`); it is read only when a field is asked for, so a damaged
    snapshot fails the step that needs it and nothing else."""

    document: Any

    @property
    def timezone(self) -> str:
        return self.document.get("timezone", "UTC")

    @property
    def transition(self) -> str | None:
        """As stored (None in a snapshot without one)."""
        return self.document.get("transition")

    @property
    def transition_rule(self) -> str:
        """The stage transition the engine applies: `completed` when the snapshot has none."""
        return self.document.get("transition", "completed")

    def stage_spec(self, position: int) -> dict[str, Any]:
        """The resolved definition of the stage at `position`, as its run is built from."""
        return self.document["stages"][position]["spec"]


@dataclass(frozen=True, slots=True)
class PlanInstance:
    id: int
    name: str
    plan: str
    status: str
    scheduled_at: str | None
    started_at: str
    finished_at: str | None
    plan_version: int
    snapshot: InstanceSnapshot
    occurrence_id: int | None
    error: str | None

    @classmethod
    def from_row(cls, row: Row) -> PlanInstance:
        return cls(id=int(row["id"]), name=row["name"], plan=row["plan"], status=row["status"],
                   scheduled_at=row["scheduled_at"], started_at=row["started_at"],
                   finished_at=row["finished_at"], plan_version=int(row["plan_version"]),
                   snapshot=InstanceSnapshot(json.loads(row["snapshot"])),
                   occurrence_id=row["occurrence_id"], error=row["error"])


@dataclass(frozen=True, slots=True)
class NewInstance:
    """What `insert_instance` writes; `name` gets a `-2`, `-3` ... suffix when taken."""

    name: str
    plan: str
    status: str
    started_at: datetime
    plan_version: int
    snapshot: dict[str, Any]
    scheduled_at: datetime | None = None
    occurrence_id: int | None = None


@dataclass(frozen=True, slots=True)
class StageInstance:
    """One stage of an instance, with the status of its run (None before it has one)."""

    id: int
    instance_id: int
    position: int
    campaign: str
    code: str | None
    stage: str
    status: str
    started_at: str | None
    activity_created_at: str | None
    activity_finished_at: str | None
    ended_at: str | None
    completed: int
    has_errors: int
    run_id: int | None
    run_log: str | None
    queue_created_at: str | None
    delivery_started_at: str | None
    sent_logged: int
    run_status: str | None

    @classmethod
    def from_row(cls, row: Row) -> StageInstance:
        return cls(**{name: row[name] for name in _STAGE_COLUMNS})


_STAGE_COLUMNS = tuple(StageInstance.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class StageRef:
    """A stage that a bulk move (cancel, reopen) changed, in its new status."""

    id: int
    position: int
    campaign: str
    stage: str
    run_id: int | None
    status: str

    @classmethod
    def from_row(cls, row: Row) -> StageRef:
        return cls(id=int(row["id"]), position=int(row["position"]), campaign=row["campaign"],
                   stage=row["stage"], run_id=row["run_id"], status=row["status"])


@dataclass(frozen=True, slots=True)
class QueueCounts:
    queued: int = 0
    sent: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class RunState:
    """The run behind a stage, with its queue items counted by status."""

    id: int
    status: str
    built_at: str | None
    finished_at: str | None
    error: str | None
    updated_at: str | None
    counts: QueueCounts = field(default_factory=QueueCounts)
    total: int = 0

    @property
    def handled(self) -> int:
        """Messages sent or finally failed."""
        return self.counts.sent + self.counts.failed

    @classmethod
    def from_row(cls, row: Row, counts: dict[str, int]) -> RunState:
        return cls(id=int(row["id"]), status=row["status"], built_at=row["built_at"],
                   finished_at=row["finished_at"], error=row["error"],
                   updated_at=row["updated_at"],
                   counts=QueueCounts(**{k: counts.get(k, 0) for k in
                                         ("queued", "sent", "failed", "cancelled")}),
                   total=sum(counts.values()))


@dataclass(frozen=True, slots=True)
class ActiveRun:
    id: int
    status: str
    built_at: str | None

    @classmethod
    def from_row(cls, row: Row) -> ActiveRun:
        return cls(id=int(row["id"]), status=row["status"], built_at=row["built_at"])


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One row of an instance's execution log, as `describe instance` shows it."""

    at: str
    event: str
    plan: str | None
    instance: int | None
    campaign: str | None
    stage: str | None
    run: int | None
    details: str | None

    @classmethod
    def from_row(cls, row: Row) -> LogEntry:
        return cls(**{name: row[name] for name in _LOG_COLUMNS})

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _LOG_COLUMNS}


_LOG_COLUMNS = tuple(LogEntry.__dataclass_fields__)


# --- plan schedules -------------------------------------------------------------------------

def approved_at(db: Database, plan: str) -> str | None:
    """When the plan last became approved, from its history (kind spelled either way)."""
    return db.scalar(
        "SELECT max(at) FROM history WHERE lower(kind) = 'plan' AND name = ? "
        "AND to_status = 'approved'",
        (plan,),
    )


def plans_to_examine(db: Database, now: datetime) -> list[PlanCandidate]:
    """Approved plans whose schedule needs attention: never examined, due, or changed since.

    One indexed query; a tick with nothing due evaluates no cron expression.
    """
    rows = db.query(
        "SELECT o.name, o.spec, o.version, o.updated_at, s.next_due_at, s.cursor_at "
        "FROM objects o LEFT JOIN schedule_state s ON s.kind = 'Plan' AND s.name = o.name "
        "WHERE o.kind = 'Plan' AND o.status = 'approved' AND ("
        " s.name IS NULL OR (s.next_due_at IS NOT NULL AND s.next_due_at <= ?)"
        " OR o.updated_at > coalesce(s.cursor_at, '')"
        " OR EXISTS (SELECT 1 FROM occurrences q WHERE q.kind = 'Plan' AND q.name = o.name"
        "            AND q.status = 'queued')"
        ") ORDER BY o.name",
        (to_db(now),),
    )
    return [PlanCandidate.from_row(row) for row in rows]


def get_schedule_state(db: Database, plan: str) -> ScheduleState | None:
    row = db.one(
        "SELECT next_due_at, cursor_at FROM schedule_state WHERE kind = 'Plan' AND name = ?",
        (plan,),
    )
    return None if row is None else ScheduleState.from_row(row)


def set_schedule_state(db: Database, plan: str, *, next_due_at: datetime | None,
                       cursor_at: datetime) -> None:
    db.execute(
        "INSERT INTO schedule_state (kind, name, next_due_at, cursor_at) VALUES ('Plan', ?, ?, ?) "
        "ON CONFLICT (kind, name) DO UPDATE SET next_due_at = excluded.next_due_at, "
        "cursor_at = excluded.cursor_at",
        (plan, _db_time(next_due_at), to_db(cursor_at)),
    )


def next_due(db: Database, plan: str) -> str | None:
    return db.scalar(
        "SELECT next_due_at FROM schedule_state WHERE kind = 'Plan' AND name = ?", (plan,)
    )


# --- occurrences -------------------------------------------------------------------------------

def insert_occurrence(db: Database, plan: str, scheduled_at: datetime, *, status: str,
                      reason: str | None, now: datetime) -> int | None:
    """The occurrence's id, or None when (plan, scheduled_at) was already handled."""
    row = db.one(
        "INSERT INTO occurrences (kind, name, scheduled_at, status, reason, created_at) "
        "VALUES ('Plan', ?, ?, ?, ?, ?) ON CONFLICT (kind, name, scheduled_at) DO NOTHING "
        "RETURNING id",
        (plan, to_db(scheduled_at), status, reason, to_db(now)),
    )
    return None if row is None else int(row[0])


def set_occurrence(db: Database, occurrence_id: int, *, status: str, reason: str | None = None,
                   only_if: str | None = None) -> bool:
    sql = "UPDATE occurrences SET status = ?, reason = coalesce(?, reason) WHERE id = ?"
    params: list[Any] = [status, reason, occurrence_id]
    if only_if is not None:
        sql += " AND status = ?"
        params.append(only_if)
    return db.one(sql + " RETURNING id", params) is not None


def queued_occurrences(db: Database, plan: str) -> list[QueuedOccurrence]:
    return [
        QueuedOccurrence.from_row(r)
        for r in db.query(
            "SELECT id, scheduled_at FROM occurrences WHERE kind = 'Plan' AND name = ? "
            "AND status = 'queued' ORDER BY scheduled_at, id",
            (plan,),
        )
    ]


# --- instances ---------------------------------------------------------------------------------

def insert_instance(db: Database, new: NewInstance) -> tuple[int, str]:
    """Insert under `new.name`, or `name-2`, `name-3` ... when taken; returns (id, final name).

    A taken name is skipped before the INSERT, not by its ON CONFLICT alone (the guard): on
    PostgreSQL a conflicting INSERT spends an id, and instance ids are shown, so they must be
    SQLite's numbers (the caller's transaction holds the state's write lock)."""
    suffix = 1
    while True:
        candidate = new.name if suffix == 1 else f"{new.name}-{suffix}"
        if db.one("SELECT 1 FROM plan_instances WHERE name = ?", (candidate,)) is not None:
            suffix += 1
            continue
        row = db.one(
            "INSERT INTO plan_instances (name, plan, status, scheduled_at, started_at, "
            "plan_version, snapshot, occurrence_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING RETURNING id",
            (candidate, new.plan, new.status, _db_time(new.scheduled_at), to_db(new.started_at),
             new.plan_version, json.dumps(new.snapshot, sort_keys=True), new.occurrence_id),
        )
        if row is not None:
            return int(row[0]), candidate
        suffix += 1


def insert_stage(db: Database, *, instance_id: int, position: int, campaign: str,
                 code: str | None, stage: str) -> int:
    row = db.one(
        "INSERT INTO stage_instances (instance_id, position, campaign, code, stage, status) "
        "VALUES (?, ?, ?, ?, ?, 'not-started') RETURNING id",
        (instance_id, position, campaign, code, stage),
    )
    if row is None:  # an INSERT without a conflict clause returns its row
        raise RuntimeError("stage_instances: the insert returned no row id")
    return int(row[0])


_INSTANCE_COLUMNS = (
    "id, name, plan, status, scheduled_at, started_at, finished_at, plan_version, snapshot, "
    "occurrence_id, error"
)


def get_instance(db: Database, instance_id: int) -> PlanInstance | None:
    row = db.one(f"SELECT {_INSTANCE_COLUMNS} FROM plan_instances WHERE id = ?", (instance_id,))
    return None if row is None else PlanInstance.from_row(row)


def find_instance_id(db: Database, name: str) -> int | None:
    return db.scalar("SELECT id FROM plan_instances WHERE name = ?", (name,))


def list_instances(db: Database, *, plan: str | None = None,
                   statuses: tuple[str, ...] | None = None) -> list[PlanInstance]:
    sql = f"SELECT {_INSTANCE_COLUMNS} FROM plan_instances WHERE 1 = 1"
    params: list[Any] = []
    if plan is not None:
        sql += " AND plan = ?"
        params.append(plan)
    if statuses:
        sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
        params.extend(statuses)
    return [PlanInstance.from_row(r) for r in db.query(sql + " ORDER BY id", params)]


def active_instance_ids(db: Database, *, plan: str | None = None) -> list[int]:
    sql = "SELECT id FROM plan_instances WHERE status IN ('running', 'paused')"
    params: tuple[str, ...] = ()
    if plan is not None:
        sql += " AND plan = ?"
        params = (plan,)
    return [int(r[0]) for r in db.query(sql + " ORDER BY id", params)]


def set_instance_status(db: Database, instance_id: int, *, to: str, from_: tuple[str, ...],
                        finished_at: datetime | None = None, error: str | None = None) -> bool:
    """Conditional move: True only if the instance was in one of `from_`."""
    row = db.one(
        "UPDATE plan_instances SET status = ?, finished_at = coalesce(?, finished_at), "
        "error = coalesce(?, error) "
        f"WHERE id = ? AND status IN ({', '.join('?' for _ in from_)}) RETURNING id",
        (to, _db_time(finished_at), error, instance_id, *from_),
    )
    return row is not None


def reopen_failed_instance(db: Database, instance_id: int) -> bool:
    """failed → running (its failed stage's run was restarted or skipped); clears the end."""
    return db.one(
        "UPDATE plan_instances SET status = 'running', finished_at = NULL, error = NULL "
        "WHERE id = ? AND status = 'failed' RETURNING id", (instance_id,),
    ) is not None


# --- stage instances ---------------------------------------------------------------------------

_STAGE_SELECT = (
    "SELECT " + ", ".join(f"s.{c}" for c in _STAGE_COLUMNS if c != "run_status")
    + ", r.status AS run_status FROM stage_instances s "
)


def stages_of(db: Database, instance_id: int) -> list[StageInstance]:
    return [
        StageInstance.from_row(r)
        for r in db.query(
            _STAGE_SELECT +
            "LEFT JOIN runs r ON r.id = s.run_id WHERE s.instance_id = ? ORDER BY s.position",
            (instance_id,),
        )
    ]


def stages_of_many(db: Database, instance_ids: list[int]) -> dict[int, list[StageInstance]]:
    found: dict[int, list[StageInstance]] = {i: [] for i in instance_ids}
    if not instance_ids:
        return found
    marks = ", ".join("?" for _ in instance_ids)
    for r in db.query(
        _STAGE_SELECT +
        f"LEFT JOIN runs r ON r.id = s.run_id WHERE s.instance_id IN ({marks}) "
        "ORDER BY s.instance_id, s.position",
        instance_ids,
    ):
        stage = StageInstance.from_row(r)
        found[stage.instance_id].append(stage)
    return found


def claim_stage_start(db: Database, stage_id: int, *, now: datetime) -> bool:
    """not-started → started, once (a concurrent tick finds nothing to claim)."""
    row = db.one(
        "UPDATE stage_instances SET status = 'started', started_at = ? "
        "WHERE id = ? AND status = 'not-started' RETURNING id",
        (to_db(now), stage_id),
    )
    return row is not None


def update_stage(db: Database, stage_id: int, **fields: Any) -> None:
    unknown = set(fields) - _STAGE_FIELDS
    if unknown:
        raise ValueError(f"unknown stage_instances fields: {sorted(unknown)}")
    if not fields:
        return
    values = [_db_time(v) if isinstance(v, datetime) else v for v in fields.values()]
    assignments = ", ".join(f"{key} = ?" for key in fields)
    db.execute(f"UPDATE stage_instances SET {assignments} WHERE id = ?", (*values, stage_id))


def cancel_open_stages(db: Database, instance_id: int, *, now: datetime) -> list[StageRef]:
    """Every stage not completed becomes cancelled; returns those stages."""
    return [
        StageRef.from_row(r)
        for r in db.query(
            "UPDATE stage_instances SET status = 'cancelled', ended_at = ? "
            "WHERE instance_id = ? AND status IN ('not-started', 'started', 'running') "
            "RETURNING id, position, campaign, stage, run_id, status",
            (to_db(now), instance_id),
        )
    ]


def reopen_cancelled_stages(db: Database, instance_id: int) -> list[StageRef]:
    """The stages a failure cancelled go on: back to `running` (built run), `started` (a run
    not built yet) or `not-started` (no run); returns them."""
    return [
        StageRef.from_row(r)
        for r in db.query(
            "UPDATE stage_instances SET ended_at = NULL, status = CASE"
            " WHEN run_id IS NULL THEN 'not-started'"
            " WHEN queue_created_at IS NULL THEN 'started' ELSE 'running' END "
            "WHERE instance_id = ? AND status = 'cancelled' "
            "RETURNING id, position, campaign, stage, run_id, status",
            (instance_id,),
        )
    ]


# --- the runs behind stage instances (read, and the few status moves plans make) ---------------

def run_state(db: Database, run_id: int) -> RunState | None:
    row = db.one(
        "SELECT id, status, built_at, finished_at, error, updated_at FROM runs WHERE id = ?",
        (run_id,),
    )
    if row is None:
        return None
    counts: dict[str, int] = {}
    for status, number in db.query(
        "SELECT status, count(*) FROM queue_items WHERE run_id = ? GROUP BY status", (run_id,)
    ):
        counts[status] = counts.get(status, 0) + int(number)
    return RunState.from_row(row, counts)


def active_runs_of_instance(db: Database, instance_id: int) -> list[ActiveRun]:
    return [
        ActiveRun.from_row(r)
        for r in db.query(
            "SELECT r.id, r.status, r.built_at FROM runs r JOIN stage_instances s "
            "ON s.run_id = r.id WHERE s.instance_id = ? AND r.status IN "
            "('scheduled', 'building', 'queued', 'sending', 'paused') ORDER BY r.id",
            (instance_id,),
        )
    ]


def follow_restart(db: Database, run_id: int) -> int | None:
    """The run that replaced `run_id` through `restart run`, if any."""
    return db.scalar(
        "SELECT id FROM runs WHERE restart_of = ? ORDER BY id DESC LIMIT 1", (run_id,)
    )


# --- the execution log of one instance ---------------------------------------------------------

def instance_log(db: Database, instance_id: int) -> list[LogEntry]:
    return [
        LogEntry.from_row(r)
        for r in db.query(
            "SELECT at, event, plan, instance_id AS instance, campaign, stage, run_id AS run, "
            "details FROM exec_log WHERE instance_id = ? ORDER BY id",
            (instance_id,),
        )
    ]


def tag_plan_in_log(db: Database, instance_id: int, plan: str) -> None:
    """Rows that other areas log for an instance's runs carry its id; add the plan name so that
    `log --plan` finds them."""
    db.execute(
        "UPDATE exec_log SET plan = ? WHERE instance_id = ? AND plan IS NULL", (plan, instance_id)
    )
