"""Apply: what changes between loaded definitions and the state file, versions, references."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campctl.definitions.models import (
    DEFAULT_DST,
    DEFAULT_REENTRY,
    Campaign,
    Channel,
    DateSchedule,
    DstPolicy,
    EventSchedule,
    FrequencyCap,
    Moment,
    Plan,
    Scenario,
    Segment,
)
from campctl.errors import ActionRefused, ValidationFailed
from campctl.models import (
    APPLY_ORDER,
    NAME_PATTERN,
    BusinessStatus,
    Definition,
    Issue,
    Kind,
    ScenarioStatus,
)
from campctl.store import history
from campctl.store import objects as store

BUSINESS_KINDS = (Kind.CAMPAIGN, Kind.PLAN)
_NAME = re.compile(NAME_PATTERN)


def initial_status(kind: Kind) -> str | None:
    if kind in BUSINESS_KINDS:
        return str(BusinessStatus.DRAFT)
    if kind is Kind.SCENARIO:
        return str(ScenarioStatus.INACTIVE)
    return None


@dataclass
class Change:
    """What apply does (or, with --dry-run, would do) to one object."""

    kind: Kind
    name: str
    action: str  # created | updated | unchanged
    version: int
    status: str | None
    definition: Definition
    spec: dict
    diffs: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind.cli}/{self.name}"

    def as_json(self) -> dict:
        return {
            "kind": self.kind.cli,
            "name": self.name,
            "action": self.action,
            "version": self.version,
            "changes": [{"path": p, "old": o, "new": n} for p, o, n in self.diffs],
        }


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING = _Missing()


def diff(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Changed leaves as (dotted path, old, new); absent values are None in the result."""
    if isinstance(old, dict) and isinstance(new, dict):
        return _dict_diff(old, new, path)
    if isinstance(old, list) and isinstance(new, list):
        return _list_diff(old, new, path)
    return _leaf_diff(old, new, path)


def _leaf_diff(old: Any, new: Any, path: str) -> list[tuple[str, Any, Any]]:
    if old is _MISSING and new is _MISSING:
        return []
    if old is not _MISSING and new is not _MISSING and old == new and type(old) is type(new):
        return []
    return [(path, None if old is _MISSING else old, None if new is _MISSING else new)]


def _sub(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _dict_diff(old: dict, new: dict, path: str) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    for key in list(old) + [k for k in new if k not in old]:
        out += diff(old.get(key, _MISSING), new.get(key, _MISSING), _sub(path, key))
    return out


def _list_diff(old: list, new: list, path: str) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    for index in range(max(len(old), len(new))):
        out += diff(old[index] if index < len(old) else _MISSING,
                    new[index] if index < len(new) else _MISSING, _sub(path, index))
    return out


def format_value(value: Any) -> str:
    if value is None:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False)


def _same(old: dict, new: dict) -> bool:
    # json text equality also tells 1 from 1.0 and True from 1, which dict equality does not.
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)


def _ordered(definitions: list[Definition]) -> list[Definition]:
    rank = {kind: i for i, kind in enumerate(APPLY_ORDER)}
    return sorted(definitions, key=lambda d: rank.get(d.kind, len(rank)))


def _check_names(definitions: list[Definition]) -> None:
    """Guards the store whatever the loader lets through: valid, unique names."""
    issues: list[Issue] = []
    seen: dict[tuple[str, str], Definition] = {}
    for d in definitions:
        if not isinstance(d.name, str) or not _NAME.match(d.name):
            issues.append(Issue(d.pos.file, d.pos.line, d.pos.col,
                                f"invalid name {d.name!r}: use lower-case letters, digits and '-'",
                                "CC201"))
        elif d.key in seen:
            first = seen[d.key].pos
            issues.append(Issue(d.pos.file, d.pos.line, d.pos.col,
                                f"duplicate {d.kind.value} {d.name!r} (also at "
                                f"{first.file}:{first.line}:{first.col})", "CC202"))
        else:
            seen[d.key] = d
    if issues:
        raise ValidationFailed(f"{len(issues)} problem(s) in the definitions; nothing was applied",
                               issues=issues)


def plan_apply(db, definitions: list[Definition]) -> list[Change]:
    """Compare each definition with the state file. Reads only."""
    _check_names(definitions)
    changes: list[Change] = []
    for d in _ordered(definitions):
        spec = store.normalise_spec(d.spec)
        description = d.description if isinstance(d.description, str) or d.description is None \
            else str(d.description)
        d.description = description
        current = store.get_record(db, d.kind.value, d.name) if db is not None else None
        if current is None:
            version = store.next_version(db, d.kind.value, d.name) if db is not None else 1
            changes.append(Change(d.kind, d.name, "created", version, initial_status(d.kind), d,
                                  spec))
            continue
        old = {"description": current.description, **current.spec}
        new = {"description": description, **spec}
        if _same(old, new):
            changes.append(Change(d.kind, d.name, "unchanged", current.version,
                                  current.status, d, spec))
            continue
        version = store.next_version(db, d.kind.value, d.name)
        changes.append(Change(d.kind, d.name, "updated", version,
                              current.status, d, spec, diff(old, new)))
    return changes


def refusals(changes: list[Change]) -> list[Change]:
    return [
        c for c in changes
        if c.action == "updated" and c.kind in BUSINESS_KINDS and c.status != BusinessStatus.DRAFT
    ]


def refusal_message(refused: list[Change]) -> str:
    first = refused[0]
    text = (f"{first.label} is {first.status}: only draft {first.kind.cli}s can be changed; "
            f"run 'campctl revise {first.kind.cli} {first.name}' first")
    if len(refused) > 1:
        others = ", ".join(f"{c.label} ({c.status})" for c in refused[1:])
        text += f"; also not draft: {others}"
    return text + "; nothing was applied"


def check_refusals(changes: list[Change]) -> None:
    refused = refusals(changes)
    if refused:
        raise ActionRefused(refusal_message(refused))


def execute_apply(db, changes: list[Change], *, actor: str, now: datetime,
                  note: str | None = None, override_access: str | None = None) -> None:
    """Write the changes; the caller holds the transaction. Unchanged objects are not touched.
    A change to an object whose stored access_groups do not name `actor` is refused unless
    `override_access` gives the reason of a recorded bypass."""
    check_refusals(changes)
    from campctl.engine import access, users

    for c in changes:
        if c.action not in ("unchanged", "created"):
            access.check(db, access.AccessRequest(
                kind=c.kind.value, name=c.name, actor=actor, action="apply",
                override=override_access), now=now)

    users.check_apply(db, actor=actor, created=[(c.kind.value, c.name, c.spec) for c in changes
                                                 if c.action != "unchanged"])
    for c in changes:
        if c.action == "unchanged":
            continue
        kind, d = c.kind.value, c.definition
        source = f"{d.pos.file}:{d.pos.line}" if d.pos.file else None
        written = store.NewVersion(kind, c.name, c.version, c.spec, d.description, source)
        if c.action == "created":
            store.insert_object(db, written, status=c.status, now=now)
            history.record(db, history.HistoryEntry(
                kind=kind, name=c.name, action="created", actor=actor, to_status=c.status,
                note=note), now=now)
            users.record_creator(db, kind=kind, name=c.name, actor=actor)
        else:
            store.update_spec(db, written, now=now)
            history.record(db, history.HistoryEntry(
                kind=kind, name=c.name, action="updated", actor=actor, from_status=c.status,
                to_status=c.status, note=note), now=now)
        store.add_version(db, written, actor=actor, now=now,
                          history_id=store.last_history_id(db))


# --- references between objects -------------------------------------------------------------

_REFERENCE_KEYS = {Kind.SEGMENT: "segment", Kind.CHANNEL: "channel", Kind.CAMPAIGN: "campaign"}


def _walk(value: Any) -> Iterator[dict]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def references(spec: Any, kind: Kind, name: str) -> bool:
    """Whether a spec names `kind`/`name` (a segment in an audience, a channel, a plan stage)."""
    key = _REFERENCE_KEYS.get(kind)
    if key is None:
        return False
    return any(node.get(key) == name for node in _walk(spec))


def referenced_by(db, kind: Kind, name: str) -> list[str]:
    """`kind/name` of every other object whose spec refers to this one."""
    if kind not in _REFERENCE_KEYS:
        return []
    quoted = json.dumps(name)
    # A spec that refers to `name` holds it as a JSON string; when that string needs no escape
    # (every valid name) only the specs whose text contains it are read and parsed.
    plain = quoted == f'"{name}"'
    found = []
    for obj in store.records_containing(db, quoted) if plain else store.all_records(db):
        if (obj.kind, obj.name) == (kind.value, name):
            continue
        if references(obj.spec, kind, name):
            found.append(f"{obj.kind.lower()}/{obj.name}")
    return found


# --- listings (get / describe) ---------------------------------------------------------------

def _instant(text: str | None, tz: str) -> datetime | None:
    """A local DATETIME text → UTC; None when absent or unreadable (a listing never breaks)."""
    from campctl.timeutil import parse_local_datetime

    if text is None or text == "immediately":
        return None
    try:
        return parse_local_datetime(text, tz)
    except ValueError:
        return None


def _moment_instant(moment: Moment | None, tz: str) -> datetime | None:
    """`{at: DATETIME}` or a DATETIME → UTC; None for `immediately`, absent or junk."""
    return _instant(moment.at, tz) if moment is not None else None


def _next_cron(expr: str | None, tz: str, *, after: datetime, until: datetime | None = None,
               dst: DstPolicy = DEFAULT_DST) -> datetime | None:
    from campctl.engine import cron

    if expr is None:
        return None
    try:
        moment = cron.next_fire(expr, tz, after=after, dst=dst)
    except Exception:  # a junk spec must not break a listing
        return None
    if moment is None or (until is not None and moment > until):
        return None
    return moment


def next_occurrence(kind: Kind, obj: store.ObjectRecord, *, now: datetime,
                    model: Plan | Campaign | None = None) -> datetime | None:
    """When the object's schedule fires next, only if it would (approved, and launched for
    campaigns); None otherwise. `model`: the object's spec already read (a listing has it)."""
    if obj.status != BusinessStatus.APPROVED:
        return None
    if kind is Kind.PLAN:
        plan = model if isinstance(model, Plan) else Plan.from_spec(obj.spec)
        return _next_plan_occurrence(plan, now=now)
    if kind is not Kind.CAMPAIGN or not obj.launched_at:
        return None
    campaign = model if isinstance(model, Campaign) else Campaign.from_spec(obj.spec)
    return _next_campaign_occurrence(campaign, now=now)


def _next_plan_occurrence(plan: Plan, *, now: datetime) -> datetime | None:
    schedule = plan.schedule
    if schedule.type == "once":
        at = _instant(schedule.at, schedule.timezone)
        return at if at is not None and at > now else None
    if schedule.type == "recurrent":
        return _next_cron(schedule.cron, schedule.timezone, after=now, dst=schedule.dst)
    return None


def _next_campaign_occurrence(campaign: Campaign, *, now: datetime) -> datetime | None:
    if campaign.plan_only:
        return None  # it runs only inside plan instances
    tz = campaign.timezone
    schedule = campaign.schedule
    closing = _instant(campaign.closes_at, tz)
    if isinstance(schedule, DateSchedule):
        start = _moment_instant(schedule.start, tz)
        until = _moment_instant(schedule.until, tz)
        limit = min((m for m in (until, closing) if m is not None), default=None)
        return _next_cron(schedule.cron, tz, after=max(now, start) if start else now,
                          until=limit, dst=schedule.dst)
    if isinstance(schedule, EventSchedule):
        if schedule.on_event:
            return None
        return _next_cron(schedule.queue_every, tz, after=now, until=closing,
                          dst=schedule.dst)
    send = _moment_instant(schedule.send, tz)
    return send if send is not None and send > now else None


def summary(kind: Kind, obj: store.ObjectRecord, *, now: datetime,
            profiles: dict[str, int] | None = None) -> dict:
    """One row of `get KIND` with the listing keys (and a few more)."""
    from campctl.timeutil import iso_z

    spec = obj.spec
    name = obj.name
    if kind is Kind.PLAN:
        plan = Plan.from_spec(spec)
        return {
            "name": name,
            "status": obj.status,
            "schedule_type": plan.schedule.type,
            "transition": plan.transition,
            "next_occurrence": iso_z(next_occurrence(kind, obj, now=now, model=plan)),
            "version": obj.version,
            "timezone": plan.schedule.timezone_written,
            "stages": len(plan.stages),
        }
    if kind is Kind.CAMPAIGN:
        campaign = Campaign.from_spec(spec)
        return {
            "name": name,
            "code": campaign.code_or(name),
            "status": obj.status,
            "type": campaign.type,
            "closes_at": iso_z(_instant(campaign.closes_at, campaign.timezone)),
            "next_occurrence": iso_z(next_occurrence(kind, obj, now=now, model=campaign)),
            "version": obj.version,
            "launched_at": obj.launched_at,
            "timezone": campaign.timezone_written,
            "priority": campaign.priority,
        }
    if kind is Kind.SCENARIO:
        scenario = Scenario.from_spec(spec)
        return {
            "name": name,
            "active": obj.status == ScenarioStatus.ACTIVE,
            "launch_type": scenario.launch.type,
            "reentry": scenario.reentry_written or DEFAULT_REENTRY,
            "profiles_active": (profiles or {}).get(name, 0),
            "version": obj.version,
        }
    if kind is Kind.SEGMENT:
        segment = Segment.from_spec(spec)
        return {
            "name": name,
            "match": segment.match,
            "rules": len(segment.rules),
            "limit_percent": segment.limit_percent,
            "version": obj.version,
        }
    if kind is Kind.FREQUENCY_CAP:
        cap = FrequencyCap.from_spec(spec)
        return {
            "name": name,
            "max": cap.max,
            "per": cap.per,
            "message_types": list(cap.message_types) if cap.message_types else None,
            "policy": cap.policy,
            "version": obj.version,
        }
    channel = Channel.from_spec(spec)
    return {
        "name": name,
        "type": spec.get("type") if isinstance(spec.get("type"), str) else None,
        "rate": channel.rate,
        "version": obj.version,
    }
