"""`campctl why`: for one contact, whether each campaign stage, plan stage and scenario will
send it a message, sent one, or will not, and why (read-only: nothing is written)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from campctl.definitions.models import DEFAULT_CHANNEL, EVERYONE, Campaign, Plan, Scenario, Stage
from campctl.errors import CampctlError, NotFound, UsageProblem
from campctl.store import why as store
from campctl.store.db import Database
from campctl.store.objects import ObjectRecord, get_record, readable_records
from campctl.timeutil import from_db, to_db

VERDICTS = ("will get", "got", "will not get", "waiting")
KINDS = {"campaign": "Campaign", "plan": "Plan", "scenario": "Scenario"}
IN_SCENARIO = ("active", "waiting", "frozen")


@dataclass(frozen=True, slots=True)
class Check:
    """One condition on the contact: `passed` None when it is decided later (a per-run
    sample, an event-selected audience)."""

    check: str
    passed: bool | None
    detail: str = ""
    decides: bool = True  # False: one rule of a `match: any` segment, which alone decides nothing

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "detail": self.detail}


@dataclass
class Entry:
    """The answer for one campaign stage, plan stage or scenario."""

    kind: str
    name: str
    timezone: str
    status: str | None
    stage: str | None = None
    campaign: str | None = None
    verdict: str = "will not get"
    reason: str = ""
    checks: list[Check] = field(default_factory=list)
    run: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    hold: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    reentry: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "name": self.name, "campaign": self.campaign,
               "stage": self.stage, "status": self.status, "timezone": self.timezone,
               "verdict": self.verdict, "reason": self.reason,
               "checks": [c.as_json() for c in self.checks], "run": self.run,
               "message": self.message, "hold": self.hold}
        if self.kind == "scenario":
            out.update(profile=self.profile, reentry=self.reentry)
            del out["campaign"], out["stage"], out["run"]
        return out


@dataclass(frozen=True, slots=True)
class _Ctx:
    db: Database
    pk: int
    now: datetime
    groups: tuple[str, ...]
    optouts: tuple[str, ...]


# --- entry point ---------------------------------------------------------------------------------

def explain(db: Database, contact: str, *, now: datetime, kind: str | None = None,
            name: str | None = None) -> dict[str, Any]:
    """Every answer for `contact` (an external id), or those of the object KIND NAME."""
    from campctl.store.contacts import contact_pk

    targets = _targets(db, kind, name)
    pk = contact_pk(db, contact)
    if pk is None:
        raise NotFound(f"no contact {contact!r} (see 'campctl contacts list')")
    ctx = _Ctx(db, pk, now, tuple(store.groups_of(db, pk)), tuple(store.optouts_of(db, pk)))
    entries: list[Entry] = []
    for record in targets:
        entries += _entries_of(ctx, record)
    return {"contact": contact, "groups": list(ctx.groups), "opted_out": list(ctx.optouts),
            "now": to_db(now), "caps": _caps(ctx), "objects": [e.as_json() for e in entries]}


def _caps(ctx: _Ctx) -> list[dict[str, Any]]:
    """Each frequency cap as it stands for the contact: the messages it counts in its period
    (sent, in flight), when its next slot frees, and the contact's messages it held."""
    from campctl.engine.caps import load_rules
    from campctl.store import caps as caps_store
    from campctl.store.delivery import DueScope

    rules = load_rules(ctx.db)
    if not rules:
        return []
    held = caps_store.contact_items_held(ctx.db, ctx.pk)
    scope = DueScope((), True, ctx.now)
    out = []
    for rule in rules:
        use = caps_store.usage(ctx.db, scope, [ctx.pk], rule.message_types,
                               since=ctx.now - rule.per, now=ctx.now).get(ctx.pk,
                                                                          caps_store.Usage())
        if use.used < rule.max:
            frees = None  # a slot is free now
        elif use.sent >= rule.max and use.oldest_sent is not None:
            frees = to_db(use.oldest_sent + rule.per)
        else:
            frees = "when the messages in flight are sent or given back"
        out.append({
            "name": rule.name, "max": rule.max, "per": rule.per_text,
            "message_types": list(rule.message_types) if rule.message_types else None,
            "policy": rule.policy, "counted": use.used, "sent": use.sent,
            "in_flight": use.in_flight, "slots_left": max(0, rule.max - use.used),
            "next_slot_at": frees,
            "held": [{"message_id": h["message_id"], "run": h["run_id"],
                      "scenario": h["scenario"], "step": h["step"], "status": h["status"],
                      "until": h["next_attempt_at"] if h["status"] == "queued" else None}
                     for h in held if h["capped"] == rule.name],
        })
    return out


def _targets(db: Database, kind: str | None, name: str | None) -> list[ObjectRecord]:
    if kind is None:
        return [r for k in ("Campaign", "Plan", "Scenario") for r in readable_records(db, k)]
    stored_kind = KINDS.get(kind.lower())
    if stored_kind is None or name is None:
        raise UsageProblem("give KIND NAME as campaign|plan|scenario NAME, or neither")
    record = get_record(db, stored_kind, name)
    if record is None:
        raise NotFound(f"no {kind.lower()} named {name!r} (see 'campctl get {kind.lower()}s')")
    return [record]


def _entries_of(ctx: _Ctx, record: ObjectRecord) -> list[Entry]:
    if record.kind == "Campaign":
        model = Campaign.from_spec(record.spec)
        return [_stage_entry(ctx, record, model, stage, plan=None)
                for stage in model.stages if not stage.controlled_by_plan]
    if record.kind == "Plan":
        return _plan_entries(ctx, record)
    return [_scenario_entry(ctx, record)]


# --- audience checks ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Audience:
    """Who a send selects: the audience as written, its message type and opt-out policy, the
    sample key of a run (None: no run yet), its channel and its creator's rights."""

    audience: Mapping[str, Any]
    message_type: str | None
    include_opted_out: bool
    sample_key: str | None
    channel: str
    owner: tuple[str, str]  # kind, name (whose creator's rights apply)
    message_types: tuple[str | None, ...]


def _audience_checks(ctx: _Ctx, spec: _Audience) -> list[Check]:
    audience = spec.audience
    if "segment" in audience:
        checks = _segment_checks(ctx, str(audience["segment"]), spec.sample_key)
    elif "groups" in audience:
        checks = [_groups_check(ctx, audience["groups"])]
    elif "events" in audience:
        checks = [Check("audience: selected by events", None, "decided when the run builds")]
    else:
        checks = [Check("audience: everyone", True)]
    include = spec.include_opted_out or audience.get("include_opted_out") is True
    for message_type in dict.fromkeys(spec.message_types):
        checks.append(_optout_check(ctx, message_type, include))
    checks.append(_rights_check(ctx, spec))
    email = _email_check(ctx, spec.channel)
    return checks if email is None else [*checks, email]


def _segment_checks(ctx: _Ctx, name: str, sample_key: str | None) -> list[Check]:
    from campctl.store.segments import segment_spec

    try:
        spec = segment_spec(ctx.db, name)
    except NotFound:
        return [Check(f"segment {name}", False, "no such segment")]
    rules = spec.get("rules") or []
    match = spec.get("match", "all")
    checks = [_rule_check(ctx, name, index, rule, decides=match == "all")
              for index, rule in enumerate(rules)]
    results = [c.passed for c in checks]
    together = (all(results) if match == "all" else any(results)) if rules else True
    checks.append(Check(f"segment {name} (match {match})", together,
                        f"{sum(1 for r in results if r)} of {len(rules)} rules match"))
    percent = spec.get("limit_percent")
    if percent is not None and percent < 100:
        checks.append(_sample_check(ctx, name, percent, sample_key))
    return checks


def _sample_check(ctx: _Ctx, name: str, percent: float, sample_key: str | None) -> Check:
    from campctl.store.segments import percent_threshold, sample_bucket

    label = f"segment {name} sample {percent}%"
    if sample_key is None:
        return Check(label, None, "decided per run or launch (its sample key)")
    bucket = sample_bucket(sample_key, ctx.pk)
    return Check(label, bucket < percent_threshold(percent),
                 f"bucket {bucket} of 10000 for {sample_key}")


def describe_rule(rule: Any) -> str:
    """A rule as one line: `plan eq "premium"`, `group vip`, `event bought within 7d`."""
    if not isinstance(rule, Mapping):
        return json.dumps(rule)
    if "group" in rule:
        return f"group {rule['group']}"
    if "event" in rule:
        within = rule.get("within")
        return f"event {rule['event']}" + (f" within {within}" if within else "")
    text = f"{rule.get('attr')} {rule.get('op')}"
    return text + (f" {json.dumps(rule['value'])}" if "value" in rule else "")


def _rule_check(ctx: _Ctx, segment: str, index: int, rule: Any, *, decides: bool) -> Check:
    label = f"segment {segment} rule {index + 1}: {describe_rule(rule)}"
    try:
        passed = store.rule_holds(ctx.db, rule, ctx.pk, now=ctx.now)
    except CampctlError as exc:
        return Check(label, False, f"invalid rule: {exc}")
    return Check(label, passed, "matches" if passed else "does not match", decides)


def _groups_check(ctx: _Ctx, groups: Any) -> Check:
    wanted = [groups] if isinstance(groups, str) else [str(g) for g in groups or []]
    inside = sorted(set(wanted) & set(ctx.groups))
    mine = ", ".join(ctx.groups) or "none"
    return Check(f"audience groups: any of {', '.join(wanted)}", bool(inside),
                 f"contact's groups: {mine}")


def _optout_check(ctx: _Ctx, message_type: str | None, include: bool) -> Check:
    label = f"not opted out of {message_type or '(no type)'}"
    if not message_type:
        return Check(label, True, "a message without a type ignores opt-outs")
    if include:
        return Check(label, True, "include_opted_out: opt-outs are ignored")
    refused = [t for t in ctx.optouts if t in (message_type, "all")]
    return Check(label, not refused,
                 f"opted out of {', '.join(refused)}" if refused else "not opted out")


def _rights_check(ctx: _Ctx, spec: _Audience) -> Check:
    from campctl.engine.users import restriction_for

    kind, name = spec.owner
    restriction = restriction_for(ctx.db, kind=kind, name=name,
                                  message_types=list(spec.message_types))
    if restriction is None:
        return Check("creator's rights", True, "no restriction")
    passed = store.holds(ctx.db, restriction.sql, restriction.params, ctx.pk)
    return Check(f"creator's rights ({restriction.user})", passed,
                 "allowed" if passed else restriction.reason)


def _email_check(ctx: _Ctx, channel: str) -> Check | None:
    from campctl.engine.audience import channel_needs_email

    if not channel_needs_email(ctx.db, channel):
        return None
    has = store.has_email(ctx.db, ctx.pk)
    return Check(f"has an email (channel {channel} is SMTP)", has,
                 "has one" if has else "no email address")


def _first_failure(checks: Sequence[Check]) -> Check | None:
    return next((c for c in checks if c.passed is False and c.decides), None)


# --- campaign and plan stages ------------------------------------------------------------------

def _plan_entries(ctx: _Ctx, record: ObjectRecord) -> list[Entry]:
    plan = Plan.from_spec(record.spec)
    entries = []
    for plan_stage in plan.stages:
        campaign = get_record(ctx.db, "Campaign", plan_stage.campaign or "")
        if campaign is None:
            entry = Entry("plan", record.name, plan.timezone, record.status,
                          stage=plan_stage.stage, campaign=plan_stage.campaign,
                          reason=f"campaign {plan_stage.campaign} is not defined")
            entries.append(entry)
            continue
        model = Campaign.from_spec(campaign.spec)
        entries.append(_stage_entry(ctx, campaign, model, model.stage(plan_stage.stage),
                                    plan=record, stage_name=plan_stage.stage))
    return entries


def _stage_entry(ctx: _Ctx, record: ObjectRecord, model: Campaign, stage: Stage | None, *,
                 plan: ObjectRecord | None, stage_name: str | None = None) -> Entry:
    stage_name = stage.name if stage else (stage_name or "main")
    owner = plan or record
    entry = Entry("plan" if plan else "campaign", owner.name, model.timezone, owner.status,
                  stage=stage_name, campaign=record.name)
    if stage is None:
        entry.reason = f"campaign {record.name} has no stage {stage_name}"
        return entry
    runs = store.stage_runs(ctx.db, record.name, stage_name,
                            plan=None if plan is None else plan.name)
    latest = _run(ctx.db, runs[0]) if runs else None
    entry.checks = _status_checks(record, plan, latest)
    if latest is None and plan is not None:
        entry.checks += _manual_plan_check(ctx.db, plan)
    entry.checks += _audience_checks(ctx, _stage_audience(record, model, stage, latest))
    if latest is not None:
        entry.run = {"id": latest.id, "status": latest.status}
    _decide_stage(ctx, entry, runs, latest)
    return entry


def _run(db: Database, run_id: int):
    from campctl.store.runs import get_run_record

    return get_run_record(db, run_id)


def _stage_audience(record: ObjectRecord, model: Campaign, stage: Stage, run) -> _Audience:
    audience = stage.audience or model.audience or EVERYONE
    key = None if run is None else f"{run.campaign}/{run.stage}/{run.scheduled_at or run.id}"
    if run is not None and isinstance(run.spec.get("audience"), dict):
        written = run.spec["audience"]  # what the run was built from
    else:
        written = audience.as_spec()
    return _Audience(written, model.message_type, audience.include_opted_out, key,
                     stage.channel or model.channel or DEFAULT_CHANNEL,
                     ("Campaign", record.name), (model.message_type,))


def _status_checks(record: ObjectRecord, plan: ObjectRecord | None, run) -> list[Check]:
    owner = plan or record
    label = "plan" if plan else "campaign"
    checks = [Check(f"{label} approved", owner.status == "approved", f"status {owner.status}")]
    if run is None and plan is None:
        checks.append(Check("campaign started", record.launched_at is not None,
                            "not started ('campctl start campaign')"
                            if record.launched_at is None else f"started {record.launched_at}"))
    return checks


def _manual_plan_check(db: Database, plan: ObjectRecord) -> list[Check]:
    """A manual plan that no one started has no instance: nothing of it will run until then."""
    from campctl.store.plans import list_instances

    schedule = plan.spec.get("schedule") if isinstance(plan.spec, dict) else None
    if not isinstance(schedule, dict) or schedule.get("type") != "manual":
        return []
    if list_instances(db, plan=plan.name):
        return []
    return [Check("plan started", False,
                  f"manual plan {plan.name} was never started: 'campctl start plan {plan.name}' "
                  "creates an instance that runs its stages")]


def _decide_stage(ctx: _Ctx, entry: Entry, runs: list[int], latest) -> None:
    built = latest is not None and latest.built_at is not None
    item = _latest_item(ctx, runs) if built or latest is None else None
    if item is not None:
        entry.message = item
        _decide_item(ctx, entry, item)
        return
    failed = _first_failure(entry.checks)
    if failed is not None:
        entry.verdict, entry.reason = "will not get", _failure_text(failed)
    elif latest is None:
        entry.verdict, entry.reason = "will get", "in the audience: the next run queues it"
    elif not built:
        entry.verdict = "will get"
        entry.reason = f"in the audience: run {latest.id} builds its queue at {latest.queue_at}"
    else:
        entry.reason = (f"not in run {latest.id}'s queue (built {latest.built_at}): it was "
                        "not in the audience then")


def _failure_text(check: Check) -> str:
    return f"{check.check}: {check.detail}" if check.detail else check.check


def _latest_item(ctx: _Ctx, runs: list[int]) -> dict[str, Any] | None:
    for run_id in runs:
        item = store.run_item(ctx.db, run_id, ctx.pk)
        if item is not None:
            return item
    return None


# --- one message -------------------------------------------------------------------------------

def _decide_item(ctx: _Ctx, entry: Entry, item: dict[str, Any]) -> None:
    status = item["status"]
    where = f"message {item['message_id']}"
    if status == "sent":
        entry.verdict, entry.reason = "got", f"{where} sent {item['sent_at']}"
    elif status == "failed":
        entry.verdict = "will not get"
        entry.reason = (f"{where} failed after {item['attempts']} attempt(s): "
                        f"{item['last_error']}")
    elif status == "cancelled":
        entry.verdict = "will not get"
        entry.reason = f"{where} cancelled: {item['last_error'] or 'no reason recorded'}"
        if item.get("capped") and item["last_error"] == "capped":
            entry.reason += f" (frequency cap {item['capped']}, policy drop)"
    else:
        entry.hold = _hold(ctx, item)
        entry.verdict, entry.reason = "waiting", f"{where} {entry.hold['reason']}"


def _hold(ctx: _Ctx, item: dict[str, Any]) -> dict[str, Any]:
    """Why a queued message has not gone yet, and from when it may (`not_before`)."""
    run = _run(ctx.db, item["run_id"]) if item.get("run_id") is not None else None
    hold: dict[str, Any] = {"reason": "", "not_before": None, "rate": None}
    if run is not None:
        _run_hold(ctx, run, item, hold)
    elif (retry := from_db(item.get("next_attempt_at"))) is not None and retry > ctx.now:
        hold["not_before"] = item["next_attempt_at"]
        hold["reason"] = (_capped_text(item, item["next_attempt_at"]) if _held_by_cap(item)
                          else f"retries at {item['next_attempt_at']}: {item['last_error']}")
    _rate_hold(ctx, item["channel"], hold)
    if not hold["reason"]:
        hold["reason"] = "is due: the next tick hands it over"
    return hold


def _run_hold(ctx: _Ctx, run, item: dict[str, Any], hold: dict[str, Any]) -> None:
    from campctl.engine.run_control import intended_send_time

    zone = item.get("window_zone") if run.spec.get("window_timezone") == "contact" else None
    not_before = intended_send_time(run, item.get("next_attempt_at"), zone)
    hold["not_before"] = None if not_before is None else to_db(not_before)
    if zone:  # the window is read in the contact's zone (or the run's, as a fallback)
        hold["window_zone"] = zone
        hold["window_fallback"] = bool(item.get("window_fallback"))
    if run.status == "paused" or store.run_paused_instance(ctx.db, run.instance_id):
        hold["reason"] = f"waits: run {run.id} (or its plan instance) is paused"
    elif not_before is not None and not_before > ctx.now:
        hold["reason"] = _not_before_text(run, item, not_before)


def _not_before_text(run, item: dict[str, Any], not_before: datetime) -> str:
    when = to_db(not_before)
    retry = from_db(item.get("next_attempt_at"))
    if retry is not None and to_db(retry) == when:
        if _held_by_cap(item):
            return _capped_text(item, when)
        return f"retries at {when}: {item['last_error']}"
    window = run.spec.get("window")
    send_at = from_db(run.send_at)
    if window and (send_at is None or to_db(send_at) != when):
        zone = item.get("window_zone") if run.spec.get("window_timezone") == "contact" else None
        if zone and item.get("window_fallback"):
            return (f"waits for the sending window {window} in the campaign's zone {zone} (the "
                    f"contact has no valid timezone attribute: fallback): opens {when}")
        if zone:
            return (f"waits for the sending window {window} in the contact's zone {zone}: "
                    f"opens {when}")
        return f"waits for the sending window {window}: opens {when}"
    return f"held until its send time {when}"


def _held_by_cap(item: dict[str, Any]) -> bool:
    """A deferred item: a cap held it and no failed attempt set its wait since."""
    return bool(item.get("capped")) and not item.get("last_error")


def _capped_text(item: dict[str, Any], when: str) -> str:
    return (f"held by frequency cap {item['capped']} (the contact's slots are used): "
            f"looks again at {when}")


def _rate_hold(ctx: _Ctx, channel: str, hold: dict[str, Any]) -> None:
    from campctl.channels.base import ChannelError, parse_rate
    from campctl.definitions.models import Channel
    from campctl.store.delivery import rate_used

    record = get_record(ctx.db, "Channel", channel)
    try:
        rate = parse_rate(None if record is None else Channel.from_spec(record.spec).rate)
    except ChannelError:
        return
    if rate is None:
        return
    count, seconds = rate
    epoch = ctx.now.timestamp()
    start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    used = rate_used(ctx.db, channel=channel, window_start=start)
    hold["rate"] = {"channel": channel, "limit": count, "per_seconds": seconds, "used": used}
    if used >= count and not hold["reason"]:
        opens = to_db(start + timedelta(seconds=seconds))
        hold["reason"] = (f"waits for channel {channel}'s rate ({count} per {seconds}s, used "
                          f"up): next window {opens}")
        hold["not_before"] = opens


# --- scenarios ---------------------------------------------------------------------------------

def _scenario_entry(ctx: _Ctx, record: ObjectRecord) -> Entry:
    model = Scenario.from_spec(record.spec)
    entry = Entry("scenario", record.name, model.timezone, record.status,
                  reentry=model.reentry)
    profiles = [p for p in store.scenario_profiles(ctx.db, record.name, ctx.pk)
                if p["cleared_at"] is None]
    items = store.scenario_items(ctx.db, record.name, ctx.pk)
    entry.profile = profiles[0] if profiles else None
    entry.message = items[0] if items else None
    entry.checks = _scenario_checks(ctx, record, model, profiles)
    if entry.profile is not None and entry.profile["status"] in IN_SCENARIO:
        _decide_inside(ctx, entry, items)
    elif entry.message is not None:
        _decide_item(ctx, entry, entry.message)
        _add_reentry(entry)
    else:
        _decide_outside(entry, model)
    return entry


def _scenario_checks(ctx: _Ctx, record: ObjectRecord, model: Scenario,
                     profiles: list[dict[str, Any]]) -> list[Check]:
    checks = [Check("scenario active", record.status == "active", f"status {record.status}")]
    checks.append(_reentry_check(model.reentry, profiles))
    sends = [s.send for s in model.steps if s.send is not None]
    types = tuple(s.message_type for s in sends) or (None,)
    audience = model.launch.audience
    written = audience.as_spec() if audience is not None else {"all": True}
    checks += _audience_checks(ctx, _Audience(
        written, None, False, None, sends[0].channel if sends else DEFAULT_CHANNEL,
        ("Scenario", record.name), types))
    return _optouts_decide_together(checks)


def _optouts_decide_together(checks: list[Check]) -> list[Check]:
    """A scenario sends several message types: an opt-out of one of them keeps the contact
    out only when every type is refused (the other steps still send)."""
    optouts = [c for c in checks if c.check.startswith("not opted out of ")]
    if all(c.passed is False for c in optouts):
        return checks
    return [replace(c, decides=False) if c in optouts and c.passed is False else c
            for c in checks]


def _reentry_check(mode: str, profiles: list[dict[str, Any]]) -> Check:
    label = f"re-entry {mode}"
    if not profiles or mode == "parallel":
        return Check(label, True, "may enter")
    latest = profiles[0]
    inside = latest["status"] in IN_SCENARIO
    if mode == "once":
        return Check(label, False, f"entered already at {latest['entered_at']}")
    if mode == "after_exit" and inside:
        return Check(label, False, f"inside since {latest['entered_at']} (at {latest['step']})")
    return Check(label, True, "may enter again" if not inside else "a capture restarts it")


def _decide_inside(ctx: _Ctx, entry: Entry, items: list[dict[str, Any]]) -> None:
    profile = entry.profile
    assert profile is not None
    queued = next((i for i in items if i["status"] == "queued"), None)
    if queued is not None:
        entry.message = queued
        _decide_item(ctx, entry, queued)
        return
    entry.verdict = "waiting"
    step, status = profile["step"], profile["status"]
    entry.reason = f"at step {step} ({status})"
    if profile["wake_at"]:
        entry.reason += f", wakes at {profile['wake_at']}"
    if status == "frozen":
        entry.reason += ": frozen while the scenario is inactive"


def _add_reentry(entry: Entry) -> None:
    check = next(c for c in entry.checks if c.check.startswith("re-entry"))
    if check.passed is False:
        entry.reason += f"; {check.check}: will not enter again"


def _decide_outside(entry: Entry, model: Scenario) -> None:
    failed = _first_failure(entry.checks)
    if failed is not None:
        entry.verdict, entry.reason = "will not get", _failure_text(failed)
        return
    entry.verdict = "will get"
    launch = model.launch
    if launch.type == "event":
        entry.reason = f"enters on event {launch.event}"
    elif launch.type == "schedule":
        entry.reason = f"enters at the next scheduled launch ({launch.cron})"
    else:
        entry.reason = "enters when started by hand ('campctl start scenario')"
