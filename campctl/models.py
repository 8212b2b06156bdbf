"""Shared vocabulary: kinds, statuses, state machines as data, and loaded definitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class Kind(StrEnum):
    SEGMENT = "Segment"
    CHANNEL = "Channel"
    CAMPAIGN = "Campaign"
    PLAN = "Plan"
    SCENARIO = "Scenario"
    FREQUENCY_CAP = "FrequencyCap"

    @property
    def cli(self) -> str:
        """The lower-case form used on the command line and in `KIND/NAME`."""
        return self.value.lower()

    @classmethod
    def from_cli(cls, text: str) -> Kind:
        lowered = text.strip().lower().rstrip("s") if text.lower() not in ("status",) else text
        for kind in cls:
            if kind.cli == lowered:
                return kind
        raise ValueError(text)


# Apply order: objects that others refer to come first.
APPLY_ORDER = [Kind.SEGMENT, Kind.CHANNEL, Kind.FREQUENCY_CAP, Kind.CAMPAIGN, Kind.PLAN,
               Kind.SCENARIO]


class BusinessStatus(StrEnum):
    """Approval workflow shared by campaigns and plans."""

    DRAFT = "draft"
    PENDING_APPROVAL = "pending-approval"
    APPROVED = "approved"
    DENIED = "denied"
    STOPPED = "stopped"


# status -> {verb: new status}. `revise` from approved is further limited to "nothing running".
BUSINESS_TRANSITIONS: dict[BusinessStatus, dict[str, BusinessStatus]] = {
    BusinessStatus.DRAFT: {"submit": BusinessStatus.PENDING_APPROVAL},
    BusinessStatus.PENDING_APPROVAL: {
        "approve": BusinessStatus.APPROVED,
        "deny": BusinessStatus.DENIED,
    },
    BusinessStatus.APPROVED: {"stop": BusinessStatus.STOPPED, "revise": BusinessStatus.DRAFT},
    BusinessStatus.DENIED: {"revise": BusinessStatus.DRAFT},
    BusinessStatus.STOPPED: {"revise": BusinessStatus.DRAFT},
}

BUSINESS_VERBS = ("submit", "approve", "deny", "stop", "revise")


class ScenarioStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


SCENARIO_TRANSITIONS: dict[ScenarioStatus, dict[str, ScenarioStatus]] = {
    ScenarioStatus.INACTIVE: {"activate": ScenarioStatus.ACTIVE},
    ScenarioStatus.ACTIVE: {"deactivate": ScenarioStatus.INACTIVE},
}


class RunStatus(StrEnum):
    SCHEDULED = "scheduled"
    BUILDING = "building"
    QUEUED = "queued"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    SKIPPED = "skipped"


ACTIVE_RUN_STATUSES = (
    RunStatus.SCHEDULED,
    RunStatus.BUILDING,
    RunStatus.QUEUED,
    RunStatus.SENDING,
    RunStatus.PAUSED,
)

# Operator verbs on runs. restart also creates a new run.
RUN_TRANSITIONS: dict[RunStatus, dict[str, RunStatus]] = {
    RunStatus.SCHEDULED: {"stop": RunStatus.STOPPED, "pause": RunStatus.PAUSED},
    RunStatus.BUILDING: {"stop": RunStatus.STOPPED, "pause": RunStatus.PAUSED},
    RunStatus.QUEUED: {"stop": RunStatus.STOPPED, "pause": RunStatus.PAUSED},
    RunStatus.SENDING: {"stop": RunStatus.STOPPED, "pause": RunStatus.PAUSED},
    RunStatus.PAUSED: {"stop": RunStatus.STOPPED, "resume": RunStatus.QUEUED},
    RunStatus.FAILED: {"restart": RunStatus.SKIPPED, "skip": RunStatus.SKIPPED},
    RunStatus.STOPPED: {"restart": RunStatus.SKIPPED, "skip": RunStatus.SKIPPED},
    RunStatus.COMPLETED: {},
    RunStatus.SKIPPED: {},
}


class ItemStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class InstanceStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


INSTANCE_TRANSITIONS: dict[InstanceStatus, dict[str, InstanceStatus]] = {
    InstanceStatus.RUNNING: {"pause": InstanceStatus.PAUSED, "stop": InstanceStatus.CANCELLED},
    InstanceStatus.PAUSED: {"resume": InstanceStatus.RUNNING, "stop": InstanceStatus.CANCELLED},
    InstanceStatus.COMPLETED: {},
    InstanceStatus.CANCELLED: {},
    InstanceStatus.FAILED: {},
}


class StageStatus(StrEnum):
    NOT_STARTED = "not-started"
    STARTED = "started"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ProfileStatus(StrEnum):
    ACTIVE = "active"
    WAITING = "waiting"
    COMPLETED = "completed"
    EXITED = "exited"
    FROZEN = "frozen"
    ABANDONED = "abandoned"
    REMOVED = "removed"
    ERROR = "error"


IN_SCENARIO_STATUSES = (ProfileStatus.ACTIVE, ProfileStatus.WAITING, ProfileStatus.FROZEN)


class LaunchStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


def allowed_verbs(table: dict, status: str) -> list[str]:
    return sorted(table.get(status, {}))


@dataclass(frozen=True)
class SourcePos:
    file: str
    line: int
    col: int


@dataclass(frozen=True)
class Issue:
    """One validation problem (an error, or a warning), pointing at the offending key or value."""

    file: str
    line: int
    col: int
    message: str
    code: str = ""  # a stable id such as CC101 (campctl.definitions.codes)
    level: str = "error"  # error | warning

    def __str__(self) -> str:
        marker = "warning: " if self.level == "warning" else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{self.file}:{self.line}:{self.col}: {marker}{self.message}{code}"

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "col": self.col, "code": self.code,
                "level": self.level, "message": self.message}


@dataclass
class Definition:
    """One YAML document after loading: `spec` is the JSON-compatible mapping minus kind/name.

    Local datetimes, windows and durations stay strings exactly as written (quoted or read from
    the source text), so that a re-apply compares equal and the engine parses them in one place.
    """

    kind: Kind
    name: str
    spec: dict[str, Any]
    pos: SourcePos
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.name)


@dataclass
class TickReport:
    """What one tick did (or, with --dry-run, would do)."""

    now: Any = None
    fired: int = 0
    built: int = 0
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # channel problems, shown on stderr
    # Objects this tick set aside after a failure: {"object": "campaign/NAME", "reason": ...}
    object_failures: list[dict[str, str]] = field(default_factory=list)
    # (kind, name) of the objects that were failing when the tick started (loaded on first use)
    failing: set[tuple[str, str]] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        from campctl.timeutil import iso_z

        return {
            "now": iso_z(self.now),
            "fired": self.fired,
            "built": self.built,
            "sent": self.sent,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "skipped": self.skipped,
            "failed_objects": len(self.object_failures),
            "object_failures": list(self.object_failures),
        }
