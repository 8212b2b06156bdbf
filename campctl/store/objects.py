"""Definitions in the state file: objects, their versions, statuses, and what blocks a change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from campctl.models import ACTIVE_RUN_STATUSES, IN_SCENARIO_STATUSES, InstanceStatus
from campctl.store.db import Database
from campctl.timeutil import to_db

_COLUMNS = ("kind, name, version, spec, description, status, source, created_at, updated_at, "
            "launched_at")


def _json_fallback(value: Any) -> Any:
    # The loader keeps timestamps as text; this only guards against a YAML date slipping through.
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def spec_text(spec: dict) -> str:
    return json.dumps(spec, ensure_ascii=False, default=_json_fallback)


def normalise_spec(spec: dict) -> dict:
    """The spec as it will read back from the database (JSON types only)."""
    return json.loads(spec_text(spec))


def _row(row) -> dict:
    obj = dict(row)
    obj["spec"] = json.loads(obj["spec"])
    return obj


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One row of `objects`, its spec parsed (the engine builds its typed model from `spec`)."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    description: str | None
    status: str | None
    source: str | None
    created_at: str
    updated_at: str
    launched_at: str | None

    @classmethod
    def from_row(cls, row) -> ObjectRecord:
        return cls(kind=row["kind"], name=row["name"], version=row["version"],
                   spec=json.loads(row["spec"]) or {}, description=row["description"],
                   status=row["status"], source=row["source"], created_at=row["created_at"],
                   updated_at=row["updated_at"], launched_at=row["launched_at"])


def get_record(db: Database, kind: str, name: str) -> ObjectRecord | None:
    """One object as a typed record, or None."""
    row = db.one(f"SELECT {_COLUMNS} FROM objects WHERE kind = ? AND name = ?", (kind, name))
    return None if row is None else ObjectRecord.from_row(row)


def list_records(db: Database, kind: str) -> list[ObjectRecord]:
    """The objects of one kind as typed records, by name."""
    return [ObjectRecord.from_row(r) for r in
            db.query(f"SELECT {_COLUMNS} FROM objects WHERE kind = ? ORDER BY name", (kind,))]


def readable_records(db: Database, kind: str) -> list[ObjectRecord]:
    """The objects of one kind whose stored spec parses, by name: for a pass over all of them
    that must not fail on one unreadable definition (that object's own unit reports it)."""
    records = []
    for row in db.query(f"SELECT {_COLUMNS} FROM objects WHERE kind = ? ORDER BY name", (kind,)):
        try:
            records.append(ObjectRecord.from_row(row))
        except ValueError:
            continue
    return records


def name_known(db: Database, kind: str, name: str) -> bool:
    """The object exists, or existed: a deleted one keeps its versions, and a campaign's runs
    carry its snapshot (the name stays known while they do)."""
    runs = " UNION ALL SELECT 1 FROM runs WHERE campaign = ?" if kind == "Campaign" else ""
    params = (kind, name, kind, name) + ((name,) if runs else ())
    return db.one(
        "SELECT 1 FROM objects WHERE kind = ? AND name = ?"
        " UNION ALL SELECT 1 FROM object_versions WHERE kind = ? AND name = ?" + runs + " LIMIT 1",
        params,
    ) is not None


def all_records(db: Database) -> list[ObjectRecord]:
    """Every object as a typed record, by kind and name."""
    return [ObjectRecord.from_row(r) for r in
            db.query(f"SELECT {_COLUMNS} FROM objects ORDER BY kind, name")]


def records_containing(db: Database, text: str) -> list[ObjectRecord]:
    """The objects whose stored spec text contains `text` (a cheap prefilter before parsing),
    as typed records by kind and name."""
    return [ObjectRecord.from_row(r) for r in db.query(
        f"SELECT {_COLUMNS} FROM objects WHERE {db.d.contains('spec')} ORDER BY kind, name",
        (text,))]


def known_specs(db: Database) -> dict[tuple[str, str], dict]:
    return {
        (r["kind"], r["name"]): json.loads(r["spec"])
        for r in db.query("SELECT kind, name, spec FROM objects")
    }


def next_version(db: Database, kind: str, name: str) -> int:
    """Versions are never reused, even after a delete: the old specs stay in object_versions."""
    current = db.scalar(
        "SELECT max(version) FROM object_versions WHERE kind = ? AND name = ?", (kind, name)
    )
    return (current or 0) + 1


@dataclass(frozen=True, slots=True)
class NewVersion:
    """One version of a definition as apply (or a clone) writes it: the object row and its
    `object_versions` row carry the same fields."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    description: str | None = None
    source: str | None = None


def insert_object(db: Database, obj: NewVersion, *, status: str | None, now: datetime) -> None:
    at = to_db(now)
    db.execute(
        "INSERT INTO objects (kind, name, version, spec, description, status, source, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (obj.kind, obj.name, obj.version, spec_text(obj.spec), obj.description, status,
         obj.source, at, at),
    )


def update_spec(db: Database, obj: NewVersion, *, now: datetime) -> None:
    """The object's row takes version `obj` (its status stays)."""
    db.execute(
        "UPDATE objects SET version = ?, spec = ?, description = ?, source = ?, updated_at = ? "
        "WHERE kind = ? AND name = ?",
        (obj.version, spec_text(obj.spec), obj.description, obj.source, to_db(now), obj.kind,
         obj.name),
    )


def add_version(db: Database, obj: NewVersion, *, actor: str, now: datetime,
                history_id: int | None) -> None:
    db.execute(
        "INSERT INTO object_versions (kind, name, version, spec, description, applied_at, actor, "
        "source, history_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (obj.kind, obj.name, obj.version, spec_text(obj.spec), obj.description, to_db(now),
         actor, obj.source, history_id),
    )


def last_history_id(db: Database) -> int:
    return db.scalar(db.d.last_id("history"))


def set_status(db: Database, kind: str, name: str, *, from_status: str | None, to_status: str,
               now: datetime) -> bool:
    """Conditional move: False when the status changed under us (another process won)."""
    row = db.one(
        "UPDATE objects SET status = ?, updated_at = ? "
        f"WHERE kind = ? AND name = ? AND {db.d.is_('status', '?')} RETURNING name",
        (to_status, to_db(now), kind, name, from_status),
    )
    return row is not None


def clear_launch(db: Database, name: str) -> None:
    """A stopped or revised campaign is no longer launched (with its status move)."""
    db.execute("UPDATE objects SET launched_at = NULL WHERE kind = 'Campaign' AND name = ?",
               (name,))


def set_launched(db: Database, name: str, *, now: datetime) -> bool:
    """Launch an approved campaign that is not launched yet (claim by conditional UPDATE)."""
    row = db.one(
        "UPDATE objects SET launched_at = ?, updated_at = ? WHERE kind = 'Campaign' AND name = ? "
        "AND status = 'approved' AND launched_at IS NULL RETURNING name",
        (to_db(now), to_db(now), name),
    )
    return row is not None


def delete_object(db: Database, kind: str, name: str) -> bool:
    row = db.one("DELETE FROM objects WHERE kind = ? AND name = ? RETURNING name", (kind, name))
    return row is not None


def versions(db: Database, kind: str, name: str) -> list[dict]:
    return [
        _row(r)
        for r in db.query(
            "SELECT kind, name, version, spec, description, applied_at, actor, source, history_id "
            "FROM object_versions WHERE kind = ? AND name = ? ORDER BY version",
            (kind, name),
        )
    ]


def history_with_versions(db: Database, kind: str, name: str) -> list[dict]:
    """The object's action history, each apply row carrying the version it produced."""
    return [
        dict(r)
        for r in db.query(
            "SELECT h.id, h.at, h.actor, h.action, h.from_status, h.to_status, h.note, "
            "v.version FROM history h LEFT JOIN object_versions v ON v.history_id = h.id "
            "WHERE h.kind = ? AND h.name = ? ORDER BY h.id",
            (kind, name),
        )
    ]


def last_actor(db: Database, kind: str, name: str, action: str) -> str | None:
    return db.scalar(
        "SELECT actor FROM history WHERE kind = ? AND name = ? AND action = ? "
        "ORDER BY id DESC LIMIT 1",
        (kind, name, action),
    )


# --- what is running: runs, plan instances, scenario profiles ----------------------------------

def _placeholders(values) -> str:
    return ", ".join("?" for _ in values)


def active_runs(db: Database, campaign: str) -> int:
    statuses = [str(s) for s in ACTIVE_RUN_STATUSES]
    return db.scalar(
        f"SELECT count(*) FROM runs WHERE campaign = ? AND status IN ({_placeholders(statuses)})",
        (campaign, *statuses),
    )


_LIVE_INSTANCE = [str(InstanceStatus.RUNNING), str(InstanceStatus.PAUSED)]


def live_instances(db: Database, plan: str) -> int:
    return db.scalar(
        "SELECT count(*) FROM plan_instances WHERE plan = ? "
        f"AND status IN ({_placeholders(_LIVE_INSTANCE)})",
        (plan, *_LIVE_INSTANCE),
    )


def live_instances_using(db: Database, campaign: str) -> int:
    """Running or paused plan instances whose execution tree includes this campaign."""
    return db.scalar(
        "SELECT count(DISTINCT p.id) FROM plan_instances p JOIN stage_instances s "
        "ON s.instance_id = p.id WHERE s.campaign = ? "
        f"AND p.status IN ({_placeholders(_LIVE_INSTANCE)})",
        (campaign, *_LIVE_INSTANCE),
    )


def active_profiles(db: Database, scenario: str) -> int:
    statuses = [str(s) for s in IN_SCENARIO_STATUSES]
    return db.scalar(
        f"SELECT count(*) FROM scenario_profiles WHERE scenario = ? "
        f"AND status IN ({_placeholders(statuses)})",
        (scenario, *statuses),
    )


def profile_counts(db: Database) -> dict[str, int]:
    """Profiles in the scenario (active, waiting or frozen), per scenario."""
    statuses = [str(s) for s in IN_SCENARIO_STATUSES]
    return {
        r[0]: r[1]
        for r in db.query(
            "SELECT scenario, count(*) FROM scenario_profiles "
            f"WHERE status IN ({_placeholders(statuses)}) GROUP BY scenario",
            statuses,
        )
    }

