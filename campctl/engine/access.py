"""Tags and access groups of campaigns, plans and scenarios: who may change, activate and launch
an object, and the recorded bypass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campctl.errors import ActionRefused, UsageProblem

ACCESS_KINDS = ("Campaign", "Plan", "Scenario")
# What an access group guards; stop, pause and deactivate stay open to everyone (stopping a
# send must never wait for the right person).
GUARDED_ACTIONS = ("apply", "delete", "submit", "approve", "revise", "start", "activate",
                   "launch", "clear")


def tags(spec: Any) -> list[str]:
    value = spec.get("tags") if isinstance(spec, dict) else None
    return sorted({str(t) for t in value}) if isinstance(value, list) else []


def access_groups(spec: Any) -> list[str] | None:
    """The users named by the object's access groups; None when it has none (open to all)."""
    value = spec.get("access_groups") if isinstance(spec, dict) else None
    if not isinstance(value, list) or not value:
        return None
    return sorted({str(v) for v in value})


@dataclass(frozen=True)
class AccessRequest:
    """Who (`actor`) wants to do what (`action`) to which object; `override` is the reason given
    for a recorded bypass (--override-access), None when none was given."""

    kind: str
    name: str
    actor: str
    action: str
    override: str | None = None


def check(db, request: AccessRequest, *, now: datetime, spec: dict | None = None,
          record: bool = True) -> bool:
    """Refuse the request unless its actor is in the object's access groups; with an `override`
    (the reason) the bypass is allowed and recorded as an `access-override` history row.
    Returns True when a bypass was allowed. `spec` defaults to the stored definition; `record`
    False (a dry run) checks without writing the history row."""
    from campctl.store import history
    from campctl.store.objects import get_record

    kind, name, actor, action = request.kind, request.name, request.actor, request.action
    override = request.override
    if kind not in ACCESS_KINDS:
        return False
    if spec is None:
        obj = get_record(db, kind, name)
        spec = obj.spec if obj else None
    allowed = access_groups(spec)
    if allowed is None or actor in allowed:
        return False
    label = f"{kind.lower()} {name}"
    if override is None:
        raise ActionRefused(
            f"{actor} may not {action} {label}: its access_groups name {', '.join(allowed)}; "
            "ask one of them, or record a bypass with --override-access WHY")
    if not override.strip():
        raise UsageProblem("--override-access needs a reason (--override-access 'WHY')")
    if record:
        history.record(db, history.HistoryEntry(
            kind=kind, name=name, action="access-override", actor=actor,
            note=f"{action} outside access_groups ({', '.join(allowed)}): {override}"), now=now)
    return True
