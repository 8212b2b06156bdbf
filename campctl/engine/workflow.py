"""Business statuses: submit/approve/deny/stop/revise, launch, scenario activation, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campctl.definitions.models import Campaign, Plan, Scenario
from campctl.engine.catalog import BUSINESS_KINDS, referenced_by
from campctl.errors import ActionRefused, NotFound, UsageProblem, ValidationFailed
from campctl.models import (
    BUSINESS_TRANSITIONS,
    SCENARIO_TRANSITIONS,
    BusinessStatus,
    Kind,
    ScenarioStatus,
    allowed_verbs,
)
from campctl.store import history
from campctl.store import objects as store
from campctl.timeutil import iso_z, parse_local_datetime


def closes_at(campaign: Campaign) -> datetime | None:
    """The campaign's closing instant (UTC), None when it has none. ValueError when unreadable."""
    if campaign.closes_at is None:
        return None
    return parse_local_datetime(campaign.closes_at, campaign.timezone)


def _closing_problem(name: str, campaign: Campaign, *, now: datetime) -> str | None:
    try:
        closing = closes_at(campaign)
    except ValueError:
        return f"campaign {name} has an unreadable closes_at {campaign.closes_at!r}"
    if closing is not None and closing <= now:
        return f"campaign {name} closed at {iso_z(closing)} (closes_at is not in the future)"
    return None


def _approval_hint(name: str, status: str) -> str:
    """What brings a campaign in this status to approved."""
    if status == BusinessStatus.DRAFT:
        return f"run 'campctl submit campaign {name}' and have it approved"
    if status == BusinessStatus.PENDING_APPROVAL:
        return f"it waits for 'campctl approve campaign {name}'"
    return (f"run 'campctl revise campaign {name}', then submit it and have it approved "
            "again")


def plan_blockers(db, plan: Plan, *, now: datetime) -> list[str]:
    """Why the plan may not be submitted, approved or started now (empty when it may).

    Every campaign of the execution tree must exist, be approved, close in the future, and hold
    the named stage with `controlled_by_plan: true`. Every problem is listed, each once.
    """
    entries = plan.stages
    if not entries:
        return ["the plan has no stages"]
    problems: list[str] = []

    def add(problem: str) -> None:
        if problem not in problems:  # a campaign with two stages in the tree is named once
            problems.append(problem)

    for position, entry in enumerate(entries, start=1):
        name, stage = entry.campaign, entry.stage
        if name is None:
            add(f"stage {position} names no campaign")
            continue
        record = store.get_record(db, Kind.CAMPAIGN.value, name)
        if record is None:
            add(f"campaign {name} (stage {position}) does not exist")
            continue
        status = str(record.status)
        if status != BusinessStatus.APPROVED:
            add(f"campaign {name} is {status}, not approved ({_approval_hint(name, status)})")
        campaign = Campaign.from_spec(record.spec)
        if closing := _closing_problem(name, campaign, now=now):
            add(closing)
        found = campaign.stage(stage)
        if found is None:
            add(f"campaign {name} has no stage {stage!r}")
        elif not found.controlled_by_plan:
            add(f"stage {stage!r} of campaign {name} is not controlled_by_plan: true")
    return problems


def refusal(action: str, problems: list[str]) -> ActionRefused:
    """One error line naming every problem: 'cannot X: 2 problems: a; b'."""
    if len(problems) == 1:
        return ActionRefused(f"{action}: {problems[0]}")
    return ActionRefused(f"{action}: {len(problems)} problems: {'; '.join(problems)}")


def _refuse_verb(kind: Kind, name: str, status: str, verb: str, table: dict) -> ActionRefused:
    allowed = allowed_verbs(table, status)
    hint = ", ".join(f"'campctl {v} {kind.cli} {name}'" for v in allowed) or "none"
    return ActionRefused(
        f"cannot {verb} {kind.cli} {name}: it is {status}; allowed from {status}: {hint}"
    )


def _running(db, kind: Kind, name: str) -> str | None:
    if kind is Kind.CAMPAIGN:
        runs = store.active_runs(db, name)
        if runs:
            return (f"it has {runs} active run(s); stop them first "
                    f"('campctl get runs --campaign {name}')")
        # A plan instance that uses it is not in the way: it runs from its snapshot.
    elif kind is Kind.PLAN:
        instances = store.live_instances(db, name)
        if instances:
            return (f"it has {instances} running or paused instance(s); "
                    f"stop it first ('campctl stop plan {name} --current')")
    return None


@dataclass(frozen=True)
class VerbRequest:
    """An operator's approval-workflow verb (submit, approve, ...): who gives it, the note for
    the history, and whether a four-eyes bypass is asked for (approve only)."""

    verb: str
    actor: str
    note: str | None = None
    override_four_eyes: bool = False


def business_verb(db, kind: Kind, name: str, request: VerbRequest, *,
                  now: datetime) -> tuple[str, str]:
    """Apply one approval-workflow verb to a campaign or plan; returns (from, to).

    The caller holds the transaction; the move is a conditional UPDATE on the old status.
    """
    verb, actor, note = request.verb, request.actor, request.note
    if kind not in BUSINESS_KINDS:
        raise UsageProblem(f"{verb} applies to campaigns and plans, not {kind.cli}s")
    obj = require_record(db, kind, name)
    status = str(obj.status)
    target = BUSINESS_TRANSITIONS.get(BusinessStatus(status), {}).get(verb) \
        if status in set(BusinessStatus) else None
    if target is None:
        raise _refuse_verb(kind, name, status, verb, BUSINESS_TRANSITIONS)
    if verb == "revise" and status == BusinessStatus.APPROVED and (why := _running(db, kind, name)):
        raise ActionRefused(f"cannot revise {kind.cli} {name} while something runs: {why}")
    _check_ready(db, kind, name, obj.spec, verb, now=now)
    action = _four_eyes_action(db, kind, name, request)
    # Stopping or revising ends a campaign's launch.
    clear = kind is Kind.CAMPAIGN and verb in ("stop", "revise")
    if not store.set_status(db, kind.value, name, from_status=status, to_status=str(target),
                            now=now):
        raise ActionRefused(f"{kind.cli} {name} changed meanwhile; look again and retry")
    if clear:
        store.clear_launch(db, name)
    history.record(db, history.HistoryEntry(
        kind=kind.value, name=name, action=action, actor=actor, from_status=status,
        to_status=str(target), note=note), now=now)
    return status, str(target)


def require_record(db, kind: Kind, name: str) -> store.ObjectRecord:
    """The object as a typed record; NotFound (3) when there is none."""
    obj = store.get_record(db, kind.value, name)
    if obj is None:
        raise NotFound(f"no {kind.cli} named {name!r} (see 'campctl get {kind.cli}s')")
    return obj


def _check_ready(db, kind: Kind, name: str, spec: dict, verb: str, *, now: datetime) -> None:
    """submit and approve: the plan's tree or the campaign's closing time allow it; approve:
    every stage's message renders."""
    if verb not in ("submit", "approve"):
        return
    if kind is Kind.PLAN:
        problems = plan_blockers(db, Plan.from_spec(spec), now=now)
    else:
        campaign = Campaign.from_spec(spec)
        problems = [p for p in [_closing_problem(name, campaign, now=now)] if p]
    if problems:
        raise refusal(f"cannot {verb} {kind.cli} {name}", problems)
    if verb == "approve" and kind is Kind.CAMPAIGN:
        problems = template_problems(name, Campaign.from_spec(spec))
        if problems:
            listed = refusal(f"cannot approve campaign {name}", problems).message
            raise ValidationFailed(f"{listed}; fix the template, apply it and submit again",
                                   problems)


def _four_eyes_action(db, kind: Kind, name: str, request: VerbRequest) -> str:
    """The history action of the verb: `approve-override` for a recorded four-eyes bypass."""
    from campctl.store.config import four_eyes

    verb, actor, override = request.verb, request.actor, request.override_four_eyes

    if verb != "approve":
        if override:
            raise UsageProblem("--override-four-eyes only applies to approve")
        return verb
    if not four_eyes(db) or store.last_actor(db, kind.value, name, "submit") != actor:
        return verb
    if not override:
        raise ActionRefused(
            f"four-eyes rule: {actor} submitted {kind.cli} {name} and cannot approve it; "
            "ask another operator, or record a bypass with --override-four-eyes --note WHY"
        )
    if not request.note:
        raise UsageProblem("--override-four-eyes needs --note saying why")
    return "approve-override"


def template_problems(name: str, campaign: Campaign) -> list[str]:
    """What each stage's message does when test-rendered for a synthetic contact (the check of
    `validate`, repeated at approval for definitions stored before it or edited since)."""
    from campctl.engine.runs import resolve_stage
    from campctl.engine.templates import render_problems

    problems: list[str] = []
    for stage in campaign.stages:
        message = resolve_stage(campaign, name, stage.name)["message"]
        problems += [f"stage {stage.name}: message.{p}" for p in render_problems(message)]
    return problems


def start_campaign(db, *, name: str, actor: str, now: datetime, note: str | None = None) -> None:
    """The launch: an approved campaign starts following its schedule from `now`."""
    obj = require_record(db, Kind.CAMPAIGN, name)
    # Said first: once closed, nothing else about the campaign matters to a launch.
    if problem := _closing_problem(name, Campaign.from_spec(obj.spec), now=now):
        raise ActionRefused(f"cannot start campaign {name}: {problem}; a closed campaign "
                            "never runs again")
    if obj.status != BusinessStatus.APPROVED:
        raise ActionRefused(
            f"cannot start campaign {name}: it is {obj.status}, and only an approved campaign "
            f"can be launched ({_approval_hint(name, str(obj.status))})"
        )
    if obj.launched_at is not None:
        raise ActionRefused(
            f"campaign {name} was already launched at {obj.launched_at}; "
            f"'campctl stop campaign {name}' ends the launch"
        )
    if not store.set_launched(db, name, now=now):
        raise ActionRefused(f"campaign {name} changed meanwhile; look again and retry")
    history.record(db, history.HistoryEntry(
        kind=Kind.CAMPAIGN.value, name=name, action="start", actor=actor, from_status=obj.status,
        to_status=obj.status, note=note), now=now)


def scenario_verb(db, *, name: str, verb: str, actor: str, now: datetime,
                  note: str | None = None) -> tuple[str, str]:
    """activate / deactivate; the scenarios engine's hooks act on the profiles."""
    from campctl.engine import scenarios

    obj = require_record(db, Kind.SCENARIO, name)
    status = str(obj.status)
    target = SCENARIO_TRANSITIONS.get(ScenarioStatus(status), {}).get(verb) \
        if status in set(ScenarioStatus) else None
    if target is None:
        raise _refuse_verb(Kind.SCENARIO, name, status, verb, SCENARIO_TRANSITIONS)
    if not store.set_status(db, Kind.SCENARIO.value, name, from_status=status,
                            to_status=str(target), now=now):
        raise ActionRefused(f"scenario {name} changed meanwhile; look again and retry")
    if verb == "deactivate":
        hook = getattr(scenarios, "on_deactivate", None)
        if hook is not None:
            keep = Scenario.from_spec(obj.spec).keep_profiles_on_deactivate
            hook(db, name=name, now=now, keep=keep)
    else:
        hook = getattr(scenarios, "on_activate", None)
        if hook is not None:
            hook(db, name=name, now=now)
    history.record(db, history.HistoryEntry(
        kind=Kind.SCENARIO.value, name=name, action=verb, actor=actor, from_status=status,
        to_status=str(target), note=note), now=now)
    return status, str(target)


def delete_blockers(db, kind: Kind, name: str, *,
                    referenced: list[str] | None = None) -> list[str]:
    """Why the object cannot be deleted now; `referenced`: its `referenced_by`, when the caller
    has it already (it reads every spec that names the object)."""
    problems: list[str] = []
    if why := _running(db, kind, name):
        problems.append(why)
    if kind is Kind.SCENARIO and (profiles := store.active_profiles(db, name)):
        problems.append(f"{profiles} profile(s) are in it ('campctl clear scenario {name}')")
    users = referenced_by(db, kind, name) if referenced is None else referenced
    if users:
        problems.append(f"it is referenced by {', '.join(users)}")
    if kind is Kind.CHANNEL:
        from campctl.store.config import get_config

        if get_config(db, "notify_channel") == name:
            problems.append("it is the notify_channel of 'campctl config'")
    return problems


def delete(db, *, kind: Kind, name: str, actor: str, now: datetime,
           note: str | None = None) -> None:
    """Remove the definition; its versions and history stay."""
    obj = require_record(db, kind, name)
    problems = delete_blockers(db, kind, name)
    if problems:
        raise ActionRefused(f"cannot delete {kind.cli} {name}: {'; '.join(problems)}")
    store.delete_object(db, kind.value, name)
    history.record(db, history.HistoryEntry(
        kind=kind.value, name=name, action="deleted", actor=actor, from_status=obj.status,
        note=note), now=now)
