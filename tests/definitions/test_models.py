"""Typed definitions: a model of every example definition and of minimal documents, with the
defaults of the field table applied in one place (campctl.definitions.models)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from campctl.definitions import load_paths, load_texts
from campctl.definitions.models import (
    EVERYONE,
    IMMEDIATELY,
    Audience,
    Campaign,
    DateSchedule,
    EventSchedule,
    FrequencyCap,
    Moment,
    OneOffSchedule,
    OutboxChannel,
    Plan,
    Scenario,
    Segment,
    SmtpChannel,
    UnknownChannel,
    WebhookChannel,
    model_of,
)
from campctl.models import Kind

PLANS = Path(__file__).resolve().parents[2] / "plans"
MODEL_TYPES = {Kind.SEGMENT: (Segment,), Kind.CAMPAIGN: (Campaign,), Kind.PLAN: (Plan,),
               Kind.SCENARIO: (Scenario,),
               Kind.CHANNEL: (OutboxChannel, SmtpChannel, WebhookChannel),
               Kind.FREQUENCY_CAP: (FrequencyCap,)}


def _one(text: str):
    result = load_texts([("t.yaml", text, None)])
    assert result.valid, [str(i) for i in result.issues]
    definition = result.definitions[-1]  # the others define what it refers to
    return model_of(definition.kind, definition.spec)


def _examples():
    result = load_paths([str(PLANS)])
    assert result.valid, [str(i) for i in result.issues]
    return {(d.kind, d.name): d for d in result.definitions}


def test_every_example_definition_has_a_model_of_its_kind():
    examples = _examples()
    assert len(examples) >= 15
    for (kind, name), definition in examples.items():
        model = model_of(kind, definition.spec)
        assert isinstance(model, MODEL_TYPES[kind]), (kind, name, model)
        assert model.raw == definition.spec
        with pytest.raises(dataclasses.FrozenInstanceError):
            model.raw = {}  # type: ignore[misc]  # frozen: the assignment must fail


def test_example_campaigns_read_as_written():
    examples = _examples()
    welcome = model_of(Kind.CAMPAIGN, examples[(Kind.CAMPAIGN, "welcome-back")].spec)
    assert isinstance(welcome, Campaign)
    assert welcome.type == "one-off" and welcome.timezone == "Europe/Paris"
    assert welcome.closes_at == "2027-04-30T23:59"
    assert welcome.audience is not None and welcome.audience.groups == ("newsletter",)
    assert welcome.message.subject == "We missed you, {{ first_name }}"
    assert welcome.schedule == OneOffSchedule(IMMEDIATELY, IMMEDIATELY, None)
    flash = model_of(Kind.CAMPAIGN, examples[(Kind.CAMPAIGN, "flash-friday")].spec)
    assert isinstance(flash, Campaign) and flash.channel == "archive"
    assert flash.schedule == OneOffSchedule(Moment("at", "2027-03-04T18:00"),
                                            Moment("at", "2027-03-05T08:00"), "09:00-17:00")
    assert flash.window == "09:00-17:00"
    renewal = model_of(Kind.CAMPAIGN, examples[(Kind.CAMPAIGN, "renewal-reminder")].spec)
    assert isinstance(renewal, Campaign)
    assert renewal.schedule.queue == Moment("before_send", "2h")  # type: ignore[union-attr]
    news = model_of(Kind.CAMPAIGN, examples[(Kind.CAMPAIGN, "product-news")].spec)
    assert isinstance(news, Campaign)
    assert news.schedule.send == Moment("after_queue")  # type: ignore[union-attr]


def test_example_plans_and_scenarios_read_as_written():
    examples = _examples()
    weekly = model_of(Kind.PLAN, examples[(Kind.PLAN, "weekly-digest")].spec)
    assert isinstance(weekly, Plan)
    assert weekly.transition == "sent" and weekly.schedule.type == "recurrent"
    assert weekly.schedule.cron == "0 8 * * 1" and weekly.timezone == "Europe/Paris"
    assert [(s.campaign, s.stage) for s in weekly.stages] == [("weekly-digest", "digest")]
    onboarding = model_of(Kind.SCENARIO, examples[(Kind.SCENARIO, "onboarding")].spec)
    assert isinstance(onboarding, Scenario)
    assert onboarding.launch.type == "event" and onboarding.launch.event == "signed_up"
    steps = {s.id: s for s in onboarding.steps}
    assert steps["welcome"].action == "send" and steps["welcome"].next == "pause-3d"
    assert steps["welcome"].send is not None and steps["welcome"].send.channel == "archive"
    assert steps["pause-3d"].wait == "3d"
    bought = steps["bought"]
    assert bought.condition is not None and bought.condition.event == "purchased"
    assert (bought.then, bought.otherwise) == ("thanks", "nudge")
    assert steps["nudge"].next is None  # next: end
    assert steps["thanks"].next is None  # the last step
    assert steps["thanks"].send is not None and steps["thanks"].send.channel == "outbox"
    winback = model_of(Kind.SCENARIO, examples[(Kind.SCENARIO, "winback")].spec)
    assert isinstance(winback, Scenario)
    assert winback.reentry == "after_exit" and winback.timezone == "Europe/Paris"
    assert winback.launch.deactivate_after == "2027-04-30T23:59"


def test_minimal_campaigns_get_every_default():
    one_off = _one("kind: Campaign\nname: c\ntype: one-off\naudience: {all: true}\n"
                   "message: {body: hi}\nschedule: {send: immediately}\n")
    assert isinstance(one_off, Campaign)
    assert (one_off.type, one_off.timezone, one_off.timezone_written) == ("one-off", "UTC", None)
    assert one_off.channel == "outbox" and one_off.code is None and one_off.code_or("c") == "c"
    assert one_off.closes_at is None and one_off.message_type is None
    assert [s.name for s in one_off.stages] == ["main"] and not one_off.plan_only
    assert one_off.schedule == OneOffSchedule(queue=IMMEDIATELY, send=IMMEDIATELY, window=None)
    assert one_off.message.as_snapshot() == {"subject": "", "body": "hi"}
    assert one_off.audience == EVERYONE
    dated = _one("kind: Campaign\nname: d\ntype: date-triggered\naudience: {all: true}\n"
                 "message: {body: hi}\n")
    assert isinstance(dated, Campaign)
    assert dated.schedule == DateSchedule(start=IMMEDIATELY, cron="0 9 * * *",
                                          send_start=IMMEDIATELY, until=None, catchup="latest")
    evented = _one("kind: Campaign\nname: e\ntype: event-triggered\ntrigger: {event: x}\n"
                   "audience: {all: true}\nmessage: {body: hi}\n")
    assert isinstance(evented, Campaign) and evented.trigger_event == "x"
    assert isinstance(evented.schedule, EventSchedule) and evented.schedule.on_event
    assert evented.schedule.queue_every == "on_event" and evented.schedule.catchup == "latest"


def test_stages_override_the_campaign_key_by_key():
    campaign = _one("kind: Segment\nname: s\nrules: [{group: x}]\n---\n"
                    "kind: Channel\nname: mail\ntype: outbox\n---\n"
                    "kind: Channel\nname: other\ntype: outbox\n---\n"
                    "kind: Campaign\nname: c\ntype: one-off\naudience: {segment: s}\n"
                    "channel: mail\n"
                    "message: {subject: S, body: B}\n"
                    "stages:\n  - {name: a, controlled_by_plan: true, message: {body: B2},\n"
                    "     audience: {groups: [g]}, channel: other}\n"
                    "  - {name: b, controlled_by_plan: true}\n")
    assert isinstance(campaign, Campaign) and campaign.plan_only
    a, b = campaign.stages
    assert campaign.message.merged(a.message).as_snapshot() == {"subject": "S", "body": "B2"}
    assert a.audience == Audience(groups=("g",)) and a.channel == "other"
    assert b.audience is None and b.message is None and b.channel is None
    assert campaign.stage("b") is b and campaign.stage("zz") is None


def test_minimal_plan_scenario_segment_and_channels_get_every_default():
    plan = _one("kind: Campaign\nname: c\ntype: one-off\naudience: {all: true}\n"
                "message: {body: hi}\nstages: [{name: s, controlled_by_plan: true}]\n---\n"
                "kind: Plan\nname: p\nschedule: {type: manual}\n"
                "stages: [{campaign: c, stage: s}]\n")
    assert isinstance(plan, Plan)
    assert (plan.transition, plan.schedule.type, plan.timezone) == ("completed", "manual", "UTC")
    assert plan.schedule.overlap == "skip" and plan.schedule.catchup == "latest"
    scenario = _one("kind: Scenario\nname: s\nlaunch: {type: manual}\n"
                    "steps: [{id: a, wait: 1d}, {id: b, if: {rules: [{group: g}]}}]\n")
    assert isinstance(scenario, Scenario)
    assert scenario.reentry == "once" and scenario.reentry_written is None
    assert scenario.timezone == "UTC" and not scenario.keep_profiles_on_deactivate
    assert scenario.launch.type == "manual" and not scenario.launch.allow_manual
    a, b = scenario.steps
    assert (a.action, a.next, b.action, b.then, b.otherwise) == ("wait", "b", "if", None, None)
    assert b.condition is not None and b.condition.match == "all"
    assert [r.group for r in b.condition.rules] == ["g"]
    segment = _one("kind: Segment\nname: s\nrules: [{attr: plan, op: eq, value: x}]\n")
    assert isinstance(segment, Segment)
    assert segment.match == "all" and segment.limit_percent is None
    assert segment.rules[0].form == "attr" and segment.rules[0].value == "x"
    outbox = _one("kind: Channel\nname: o\ntype: outbox\n")
    assert outbox == OutboxChannel(rate=None, max_attempts=5, connections=4, dir=None)
    smtp = _one("kind: Channel\nname: m\ntype: smtp\nhost: h\nfrom: a@b.c\n")
    assert isinstance(smtp, SmtpChannel)
    assert (smtp.port, smtp.starttls, smtp.timeout, smtp.max_attempts) == (25, False, 30.0, 5)
    hook = _one("kind: Channel\nname: w\ntype: webhook\nurl: https://x.test/\n")
    assert isinstance(hook, WebhookChannel) and hook.timeout == 10.0 and hook.headers == {}


def test_odd_stored_specs_fall_back_like_the_engine_always_did():
    """A spec from an older release (or an unreadable part) gets the engine's fallbacks."""
    assert model_of("Campaign", {}) == Campaign()
    assert model_of("Campaign", None) == Campaign()
    scenario = model_of("Scenario", {"reentry": "sometimes", "launch": "x",
                                     "steps": [{"id": "a"}, "junk"]})
    assert isinstance(scenario, Scenario) and scenario.reentry == "once"
    assert scenario.reentry_written == "sometimes" and scenario.launch.type == "event"
    assert [(s.id, s.action, s.next) for s in scenario.steps] == [("a", "pass", None)]
    plan = model_of("Plan", {"schedule": "junk", "stages": [{"campaign": "c"}, "junk"]})
    assert isinstance(plan, Plan) and plan.schedule.raw == {"type": "manual"}
    assert [(s.campaign, s.stage) for s in plan.stages] == [("c", "main"), (None, "main")]
    assert isinstance(model_of("Channel", {"type": "pigeon"}), UnknownChannel)
    assert Moment.of({"nothing": 1}) is None
    assert Moment.of("2027-01-01T10:00") == Moment("at", "2027-01-01T10:00")
    with pytest.raises(ValueError, match="unknown kind"):
        model_of("Widget", {})
