"""Typed definitions: one frozen dataclass per kind and part, with every default applied here.

The validator (`fields.py`) checks a document; this module turns a spec (the validated mapping,
as stored in `objects.spec`) into models the engine reads with attributes instead of string
keys. Building a model never raises for a missing or odd value: it applies the same fallback
the engine always applied (a spec in the state file may come from an older release), so that
one place knows each default. Local datetimes, windows and durations stay the strings written
in the file: the engine parses them in one place (`campctl.timeutil`), in the object's zone.

Entry points: `model_of(kind, spec)`, and `Campaign.from_spec(spec)` etc. per kind. Each model
keeps the mapping it was built from as `raw` (not compared), for the parts that are copied into
snapshots verbatim (audiences, plan schedules) and for listings that show what was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

# --- defaults (the field table documents each one; this is where they are applied) ---------------

DEFAULT_STAGE = "main"
DEFAULT_CHANNEL = "outbox"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_CAMPAIGN_TYPE = "one-off"
DEFAULT_CRON = "0 9 * * *"
DEFAULT_QUEUE_EVERY = "on_event"
DEFAULT_CATCHUP = "latest"
DEFAULT_MATCH = "all"
DEFAULT_TRANSITION = "completed"
DEFAULT_PLAN_SCHEDULE = "manual"
DEFAULT_OVERLAP = "skip"
DEFAULT_REENTRY = "once"
REENTRY_MODES = ("once", "after_exit", "restart", "parallel")
DEFAULT_LAUNCH = "event"
DEFAULT_EVENT_WITHIN = "1d"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_CONNECTIONS = 4
DEFAULT_SMTP_PORT = 25
DEFAULT_SMTP_TIMEOUT = 30.0
DEFAULT_WEBHOOK_TIMEOUT = 10.0
DEFAULT_SENDER = "campctl@localhost"
DEFAULT_PRIORITY = 50  # frequency caps: the rank of a message competing for a contact's slots
CAP_POLICIES = ("defer", "drop")
DST_GAPS = ("shift", "skip")  # a cron slot whose local time does not exist (spring forward)
DST_FOLDS = ("once", "twice")  # a cron slot whose local time happens twice (fall back)
END = "end"  # the step id that ends a scenario

Spec: TypeAlias = Mapping[str, Any]
_EMPTY: Mapping[str, Any] = {}


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _text(value: Any) -> str | None:
    """A written string (an empty one counts as absent, as `or DEFAULT` always did)."""
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(str(item) for item in value)


def priority_of(value: Any) -> int:
    """A written 0-100 integer, else the default."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100:
        return value
    return DEFAULT_PRIORITY


def _raw() -> Any:
    return field(default_factory=dict, compare=False, hash=False, repr=False)


# --- shared parts --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DstPolicy:
    """`dst: {gap, fold}` of a cron schedule: `gap: shift` (default) fires a slot whose local
    time does not exist at the first instant after the gap, `skip` drops it; `fold: once`
    (default) fires an ambiguous local time at its first occurrence, `twice` at both."""

    gap: str = DST_GAPS[0]
    fold: str = DST_FOLDS[0]

    @classmethod
    def from_spec(cls, spec: Any) -> DstPolicy:
        spec = _map(spec)
        gap, fold = _text(spec.get("gap")), _text(spec.get("fold"))
        return cls(gap=gap if gap in DST_GAPS else DST_GAPS[0],
                   fold=fold if fold in DST_FOLDS else DST_FOLDS[0])

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_DST


DEFAULT_DST = DstPolicy()


MomentKind = Literal["immediately", "after_queue", "at", "before_send"]


@dataclass(frozen=True, slots=True)
class Moment:
    """A schedule instant as written: `immediately`, `after_queue`, `{at: DATETIME}` (or a bare
    DATETIME), `{before_send: DURATION}`. `text` is the local datetime or the duration."""

    kind: MomentKind
    text: str | None = None

    @classmethod
    def of(cls, value: Any) -> Moment | None:
        """None for an absent or unreadable value (the engine then uses its fallback)."""
        if value == "immediately":
            return IMMEDIATELY
        if value == "after_queue":
            return cls("after_queue")
        if isinstance(value, Mapping):
            if "at" in value:
                return cls("at", str(value["at"]))
            if "before_send" in value:
                return cls("before_send", str(value["before_send"]))
            return None
        if isinstance(value, str) and value:
            return cls("at", value)
        return None

    @property
    def at(self) -> str | None:
        """The local DATETIME text of an `at` moment, else None."""
        return self.text if self.kind == "at" else None


IMMEDIATELY = Moment("immediately")


@dataclass(frozen=True, slots=True)
class Audience:
    """Who receives: a segment, groups or everyone; `raw` is copied into run snapshots."""

    segment: str | None = None
    groups: tuple[str, ...] | None = None
    all: bool = False
    include_opted_out: bool = False
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Any) -> Audience | None:
        """None when no audience is written (the caller decides what stands in)."""
        if not isinstance(spec, Mapping) or not spec:
            return None
        return cls(segment=_text(spec.get("segment")), groups=_strings(spec.get("groups")),
                   all=spec.get("all") is True,
                   include_opted_out=bool(spec.get("include_opted_out", False)), raw=spec)

    def as_spec(self) -> dict[str, Any]:
        """The audience mapping as written (a copy)."""
        return dict(self.raw)


EVERYONE = Audience(all=True, raw={"all": True})


@dataclass(frozen=True, slots=True)
class Message:
    """Subject and body templates; None where not written (an override leaves them as they are)."""

    subject: str | None = None
    body: str | None = None

    @classmethod
    def from_spec(cls, spec: Any) -> Message:
        spec = _map(spec)
        return cls(subject=spec["subject"] if "subject" in spec else None,
                   body=spec["body"] if "body" in spec else None)

    def merged(self, override: Message | None) -> Message:
        """This message with an override's written keys applied (a stage's message)."""
        if override is None:
            return self
        return Message(subject=override.subject if override.subject is not None
                       else self.subject,
                       body=override.body if override.body is not None else self.body)

    def as_snapshot(self) -> dict[str, Any]:
        """The run snapshot's message: both keys, "" where not written."""
        return {"subject": self.subject if self.subject is not None else "",
                "body": self.body if self.body is not None else ""}


# --- Segment -------------------------------------------------------------------------------------

RuleForm = Literal["attr", "group", "event", "unknown"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One segment (or scenario condition) rule: {attr, op, value}, {group} or {event, within}."""

    form: RuleForm
    attr: str | None = None
    op: str | None = None
    value: Any = None
    group: str | None = None
    event: str | None = None
    within: str | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Any) -> Rule:
        spec = _map(spec)
        if "attr" in spec:
            return cls("attr", attr=str(spec["attr"]), op=_text(spec.get("op")),
                       value=spec.get("value"), raw=spec)
        if "group" in spec:
            return cls("group", group=str(spec["group"]), raw=spec)
        if "event" in spec:
            return cls("event", event=str(spec["event"]), within=_text(spec.get("within")),
                       raw=spec)
        return cls("unknown", raw=spec)


@dataclass(frozen=True, slots=True)
class Segment:
    match: str = DEFAULT_MATCH
    rules: tuple[Rule, ...] = ()
    limit_percent: float | None = None
    description: str | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Spec) -> Segment:
        rules = spec.get("rules")
        limit = spec.get("limit_percent")
        return cls(match=_text(spec.get("match")) or DEFAULT_MATCH,
                   rules=tuple(Rule.from_spec(r) for r in rules) if isinstance(rules, list)
                   else (),
                   limit_percent=limit if isinstance(limit, int | float)
                   and not isinstance(limit, bool) else None,
                   description=_text(spec.get("description")), raw=spec)


# --- Channel -------------------------------------------------------------------------------------

def _timeout(value: Any, default: float) -> float | str:
    """Seconds; a duration text (`30s`) stays text for the channel to parse."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class ChannelBase:
    """What every channel type has. `rate` stays the written `N/s` text (channels.base parses
    it); `max_attempts` is the written value when it is not a whole number, for the channel to
    refuse."""

    type: str = DEFAULT_CHANNEL
    rate: str | None = None
    max_attempts: Any = DEFAULT_MAX_ATTEMPTS
    connections: int = DEFAULT_CONNECTIONS
    description: str | None = None
    raw: Mapping[str, Any] = _raw()

    @staticmethod
    def _common(spec: Spec) -> dict[str, Any]:
        rate = spec.get("rate")
        connections = spec.get("connections")
        return {
            "rate": None if rate is None or rate == "" else str(rate),
            "max_attempts": spec.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
            "connections": connections if isinstance(connections, int)
            and not isinstance(connections, bool) else DEFAULT_CONNECTIONS,
            "description": _text(spec.get("description")),
            "raw": spec,
        }


@dataclass(frozen=True, slots=True)
class OutboxChannel(ChannelBase):
    type: str = "outbox"
    dir: str | None = None

    @classmethod
    def from_spec(cls, spec: Spec) -> OutboxChannel:
        return cls(dir=_text(spec.get("dir")), **cls._common(spec))


@dataclass(frozen=True, slots=True)
class SmtpChannel(ChannelBase):
    type: str = "smtp"
    host: str | None = None  # required: a channel without one refuses to open
    port: Any = DEFAULT_SMTP_PORT
    starttls: bool = False
    username: str | None = None
    password: str | None = None  # always ${VAR}, resolved at send time
    sender: str = DEFAULT_SENDER  # `from:` in the file
    timeout: float | str = DEFAULT_SMTP_TIMEOUT

    @classmethod
    def from_spec(cls, spec: Spec) -> SmtpChannel:
        return cls(host=_text(spec.get("host")), port=spec.get("port", DEFAULT_SMTP_PORT),
                   starttls=bool(spec.get("starttls")), username=_text(spec.get("username")),
                   password=_text(spec.get("password")),
                   sender=_text(spec.get("from")) or DEFAULT_SENDER,
                   timeout=_timeout(spec.get("timeout"), DEFAULT_SMTP_TIMEOUT),
                   **cls._common(spec))


@dataclass(frozen=True, slots=True)
class WebhookChannel(ChannelBase):
    type: str = "webhook"
    url: str | None = None  # required: may contain ${VAR}
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    timeout: float | str = DEFAULT_WEBHOOK_TIMEOUT

    @classmethod
    def from_spec(cls, spec: Spec) -> WebhookChannel:
        headers = _map(spec.get("headers"))
        return cls(url=_text(spec.get("url")),
                   headers={str(k): str(v) for k, v in headers.items()},
                   timeout=_timeout(spec.get("timeout"), DEFAULT_WEBHOOK_TIMEOUT),
                   **cls._common(spec))


@dataclass(frozen=True, slots=True)
class UnknownChannel(ChannelBase):
    """A type this release does not know (refused by `open_channel` with the list of types)."""

    @classmethod
    def from_spec(cls, spec: Spec) -> UnknownChannel:
        return cls(type=str(spec.get("type")), **cls._common(spec))


ChannelModel: TypeAlias = OutboxChannel | SmtpChannel | WebhookChannel | UnknownChannel
BUILTIN_OUTBOX = OutboxChannel(raw={"type": "outbox"})


class Channel:
    """`Channel.from_spec(spec)` picks the model of the spec's type (default outbox)."""

    @staticmethod
    def from_spec(spec: Spec | None) -> ChannelModel:
        spec = spec or {"type": "outbox"}
        kind = spec.get("type", "outbox")
        if kind == "outbox":
            return OutboxChannel.from_spec(spec)
        if kind == "smtp":
            return SmtpChannel.from_spec(spec)
        if kind == "webhook":
            return WebhookChannel.from_spec(spec)
        return UnknownChannel.from_spec(spec)


# --- Campaign ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    controlled_by_plan: bool = False
    audience: Audience | None = None  # None: the campaign's
    message: Message | None = None  # overrides of the campaign's message, key by key
    channel: str | None = None  # None: the campaign's
    stale_after: str | None = None  # DURATION text; None: the campaign's

    @classmethod
    def from_spec(cls, spec: Spec) -> Stage:
        return cls(name=str(spec["name"]),
                   controlled_by_plan=spec.get("controlled_by_plan") is True,
                   audience=Audience.from_spec(spec.get("audience")),
                   message=Message.from_spec(spec["message"]) if spec.get("message") else None,
                   channel=_text(spec.get("channel")),
                   stale_after=_text(spec.get("stale_after")))


MAIN_STAGE = Stage(DEFAULT_STAGE)


@dataclass(frozen=True, slots=True)
class OneOffSchedule:
    queue: Moment = IMMEDIATELY  # `immediately`, {at} or {before_send}
    send: Moment = IMMEDIATELY  # `immediately`, `after_queue` or {at}
    window: str | None = None
    window_timezone: str = "campaign"  # campaign | contact: whose zone the window is read in

    @classmethod
    def from_spec(cls, spec: Spec) -> OneOffSchedule:
        return cls(queue=Moment.of(spec.get("queue", "immediately")) or IMMEDIATELY,
                   send=_send_moment(spec.get("send", "immediately")),
                   window=_text(spec.get("window")),
                   window_timezone=_text(spec.get("window_timezone")) or "campaign")


def _send_moment(value: Any) -> Moment:
    # An unreadable send value meant "as soon as built", like immediately.
    return Moment.of(value) or IMMEDIATELY


@dataclass(frozen=True, slots=True)
class DateSchedule:
    start: Moment = IMMEDIATELY
    cron: str = DEFAULT_CRON
    send_start: Moment = IMMEDIATELY
    until: Moment | None = None
    catchup: str = DEFAULT_CATCHUP
    window: str | None = None
    window_timezone: str = "campaign"  # campaign | contact: whose zone the window is read in
    dst: DstPolicy = DEFAULT_DST

    @classmethod
    def from_spec(cls, spec: Spec) -> DateSchedule:
        until = spec.get("until")
        return cls(start=Moment.of(spec.get("start", "immediately")) or IMMEDIATELY,
                   cron=_text(spec.get("cron")) or DEFAULT_CRON,
                   send_start=Moment.of(spec.get("send_start", "immediately")) or IMMEDIATELY,
                   until=Moment.of(until) if until else None,
                   catchup=_text(spec.get("catchup")) or DEFAULT_CATCHUP,
                   window=_text(spec.get("window")),
                   window_timezone=_text(spec.get("window_timezone")) or "campaign",
                   dst=DstPolicy.from_spec(spec.get("dst")))


@dataclass(frozen=True, slots=True)
class EventSchedule:
    queue_start: Moment = IMMEDIATELY
    send_start: Moment = IMMEDIATELY
    queue_every: str = DEFAULT_QUEUE_EVERY  # on_event or a cron expression
    catchup: str = DEFAULT_CATCHUP
    build_window: str | None = None
    window: str | None = None
    window_timezone: str = "campaign"  # campaign | contact: whose zone the window is read in
    dst: DstPolicy = DEFAULT_DST  # of a cron queue_every

    @property
    def on_event(self) -> bool:
        return self.queue_every == DEFAULT_QUEUE_EVERY

    @classmethod
    def from_spec(cls, spec: Spec) -> EventSchedule:
        return cls(queue_start=Moment.of(spec.get("queue_start", "immediately")) or IMMEDIATELY,
                   send_start=Moment.of(spec.get("send_start", "immediately")) or IMMEDIATELY,
                   queue_every=_text(spec.get("queue_every")) or DEFAULT_QUEUE_EVERY,
                   catchup=_text(spec.get("catchup")) or DEFAULT_CATCHUP,
                   build_window=_text(spec.get("build_window")),
                   window=_text(spec.get("window")),
                   window_timezone=_text(spec.get("window_timezone")) or "campaign",
                   dst=DstPolicy.from_spec(spec.get("dst")))


CampaignSchedule: TypeAlias = OneOffSchedule | DateSchedule | EventSchedule
_SCHEDULES: dict[str, type[OneOffSchedule] | type[DateSchedule] | type[EventSchedule]] = {
    "one-off": OneOffSchedule, "date-triggered": DateSchedule, "event-triggered": EventSchedule}


@dataclass(frozen=True, slots=True)
class Campaign:
    type: str = DEFAULT_CAMPAIGN_TYPE
    schedule: CampaignSchedule = field(default_factory=OneOffSchedule)
    code: str | None = None  # None: the campaign's name (`code_or`)
    timezone: str = DEFAULT_TIMEZONE
    timezone_written: str | None = None  # as written, for listings (None: absent)
    closes_at: str | None = None  # local DATETIME text in `timezone`
    channel: str = DEFAULT_CHANNEL
    message_type: str | None = None
    audience: Audience | None = None  # required by validation; EVERYONE stands in
    message: Message = field(default_factory=Message)
    stages: tuple[Stage, ...] = (MAIN_STAGE,)
    stages_written: bool = False  # a `stages:` list was written
    trigger_event: str = ""  # event-triggered: the event that triggers a build
    tags: tuple[str, ...] | None = None
    access_groups: tuple[str, ...] | None = None
    description: str | None = None
    stale_after: str | None = None  # DURATION text (elapsed); None: messages never go stale
    priority: int = DEFAULT_PRIORITY  # frequency caps: rank for a contact's last slots
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Spec) -> Campaign:
        ctype = _text(spec.get("type")) or DEFAULT_CAMPAIGN_TYPE
        schedule_cls = _SCHEDULES.get(ctype, OneOffSchedule)
        written = spec.get("stages")
        stages = tuple(Stage.from_spec(s) for s in written
                       if isinstance(s, Mapping) and s.get("name")) if written else ()
        tz = _text(spec.get("timezone"))
        code = spec.get("code")
        return cls(
            type=ctype,
            schedule=schedule_cls.from_spec(_map(spec.get("schedule"))),
            code=str(code) if code else None,
            timezone=tz or DEFAULT_TIMEZONE,
            timezone_written=tz,
            closes_at=str(spec["closes_at"]) if spec.get("closes_at") else None,
            channel=_text(spec.get("channel")) or DEFAULT_CHANNEL,
            message_type=spec.get("message_type"),
            audience=Audience.from_spec(spec.get("audience")),
            message=Message.from_spec(spec.get("message")),
            stages=stages if written else (MAIN_STAGE,),
            stages_written=bool(written),
            trigger_event=_text(_map(spec.get("trigger")).get("event")) or "",
            tags=_strings(spec.get("tags")),
            access_groups=_strings(spec.get("access_groups")),
            description=_text(spec.get("description")),
            stale_after=_text(spec.get("stale_after")),
            priority=priority_of(spec.get("priority")),
            raw=spec,
        )

    def code_or(self, name: str) -> str:
        return self.code or name

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def plan_only(self) -> bool:
        """Every written stage runs only inside plans: the campaign is never launched alone."""
        return self.stages_written and bool(self.stages) and all(
            s.controlled_by_plan for s in self.stages)

    @property
    def window(self) -> str | None:
        """The daily sending window of the campaign's schedule."""
        return self.schedule.window

    @property
    def window_timezone(self) -> str:
        """Whose zone the window is read in: `campaign` (its timezone) or `contact`."""
        return self.schedule.window_timezone


# --- Plan ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlanSchedule:
    type: str = DEFAULT_PLAN_SCHEDULE  # manual | once | recurrent
    timezone: str = DEFAULT_TIMEZONE
    timezone_written: str | None = None
    at: str | None = None  # once: local DATETIME text
    cron: str | None = None  # recurrent
    overlap: str = DEFAULT_OVERLAP  # recurrent: skip | queue
    catchup: str = DEFAULT_CATCHUP
    dst: DstPolicy = DEFAULT_DST  # recurrent
    raw: Mapping[str, Any] = field(default_factory=lambda: {"type": DEFAULT_PLAN_SCHEDULE},
                                   compare=False, hash=False, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> PlanSchedule:
        if not isinstance(spec, Mapping):
            return cls()
        tz = _text(spec.get("timezone"))
        at = spec.get("at")
        cron = spec.get("cron")
        return cls(type=_text(spec.get("type")) or DEFAULT_PLAN_SCHEDULE,
                   timezone=tz or DEFAULT_TIMEZONE, timezone_written=tz,
                   at=str(at) if at is not None else None,
                   cron=str(cron) if cron is not None else None,
                   overlap=_text(spec.get("overlap")) or DEFAULT_OVERLAP,
                   catchup=_text(spec.get("catchup")) or DEFAULT_CATCHUP,
                   dst=DstPolicy.from_spec(spec.get("dst")),
                   raw=spec)


@dataclass(frozen=True, slots=True)
class PlanStage:
    """One entry of the execution tree; `campaign` is None when the entry names none."""

    campaign: str | None
    stage: str = DEFAULT_STAGE

    @classmethod
    def from_spec(cls, spec: Any) -> PlanStage:
        spec = _map(spec)
        campaign = spec.get("campaign")
        return cls(campaign=campaign if isinstance(campaign, str) else None,
                   stage=str(spec.get("stage", DEFAULT_STAGE)))


@dataclass(frozen=True, slots=True)
class Plan:
    transition: str = DEFAULT_TRANSITION  # completed | sent
    schedule: PlanSchedule = field(default_factory=PlanSchedule)
    stages: tuple[PlanStage, ...] = ()
    tags: tuple[str, ...] | None = None
    access_groups: tuple[str, ...] | None = None
    description: str | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Spec) -> Plan:
        stages = spec.get("stages")
        return cls(
            transition=_text(spec.get("transition")) or DEFAULT_TRANSITION,
            schedule=PlanSchedule.from_spec(spec.get("schedule")),
            stages=tuple(PlanStage.from_spec(s) for s in stages)
            if isinstance(stages, list) else (),
            tags=_strings(spec.get("tags")),
            access_groups=_strings(spec.get("access_groups")),
            description=_text(spec.get("description")),
            raw=spec,
        )

    @property
    def timezone(self) -> str:
        """The plan's zone for instance names and display (UTC for a manual plan without one)."""
        return self.schedule.timezone


# --- Scenario ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SendStep:
    body: str | None = None
    subject: str | None = None
    channel: str = DEFAULT_CHANNEL
    message_type: str | None = None
    stale_after: str | None = None  # DURATION text (elapsed); None: never stale
    priority: int = DEFAULT_PRIORITY  # frequency caps: rank for a contact's last slots
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Any) -> SendStep:
        spec = _map(spec)
        return cls(body=spec.get("body"), subject=spec.get("subject"),
                   channel=_text(spec.get("channel")) or DEFAULT_CHANNEL,
                   message_type=spec.get("message_type"),
                   stale_after=_text(spec.get("stale_after")),
                   priority=priority_of(spec.get("priority")), raw=spec)


@dataclass(frozen=True, slots=True)
class Condition:
    """An `if`: {event, within}, or rules on the contact (`rules` with `match`; a lone rule
    mapping counts as one rule)."""

    event: str | None = None
    within: str = DEFAULT_EVENT_WITHIN
    rules: tuple[Rule, ...] = ()
    match: str = DEFAULT_MATCH
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Any) -> Condition:
        spec = _map(spec)
        if "event" in spec:
            return cls(event=str(spec["event"]),
                       within=str(spec.get("within", DEFAULT_EVENT_WITHIN)), raw=spec)
        if "rules" in spec:
            rules = spec["rules"]
            return cls(rules=tuple(Rule.from_spec(r) for r in rules)
                       if isinstance(rules, list) else (),
                       match=_text(spec.get("match")) or DEFAULT_MATCH, raw=spec)
        return cls(rules=(Rule.from_spec(spec),), raw=spec)


StepAction = Literal["send", "wait", "if", "pass"]


@dataclass(frozen=True, slots=True)
class ScenarioStep:
    """One step with its targets resolved: `next` (after send/wait/pass), `then` and
    `otherwise` (after an if) are step ids, None for the end. Absent `next` is the following
    step; absent `then` the following step; absent `else` the step's `next`."""

    id: str
    action: StepAction
    next: str | None
    then: str | None = None
    otherwise: str | None = None
    send: SendStep | None = None
    wait: str | None = None  # DURATION text: `1d` is a calendar day (timeutil.shift)
    condition: Condition | None = None


def _target(value: Any) -> str | None:
    return None if value is None or value == END else str(value)


def _steps(raw: Any) -> tuple[ScenarioStep, ...]:
    if not isinstance(raw, list):
        return ()
    items = [s for s in raw if isinstance(s, Mapping) and isinstance(s.get("id"), str)]
    out = []
    for index, item in enumerate(items):
        following = str(items[index + 1]["id"]) if index + 1 < len(items) else None
        nxt = _target(item["next"]) if "next" in item else following
        action: StepAction = next((a for a in ("send", "wait", "if") if a in item), "pass")
        step = ScenarioStep(str(item["id"]), action, nxt)
        if action == "send":
            step = ScenarioStep(step.id, action, nxt, send=SendStep.from_spec(item["send"]))
        elif action == "wait":
            step = ScenarioStep(step.id, action, nxt, wait=str(item["wait"]))
        elif action == "if":
            step = ScenarioStep(
                step.id, action, nxt,
                then=_target(item["then"]) if "then" in item else following,
                otherwise=_target(item["else"]) if "else" in item else nxt,
                condition=Condition.from_spec(item["if"]))
        out.append(step)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Launch:
    type: str = DEFAULT_LAUNCH  # event | schedule | manual
    event: str | None = None  # event
    audience: Audience | None = None  # event (optional filter), schedule (required)
    allow_manual: bool = False  # event: may be started by hand for one contact
    cron: str | None = None  # schedule
    timezone: str = DEFAULT_TIMEZONE  # schedule
    timezone_written: str | None = None
    deactivate_after: str | None = None  # schedule: local DATETIME text
    catchup: str | None = None  # schedule (None: the cron default)
    dst: DstPolicy = DEFAULT_DST  # schedule
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Any) -> Launch:
        spec = _map(spec)
        tz = _text(spec.get("timezone"))
        after = spec.get("deactivate_after")
        return cls(type=_text(spec.get("type")) or DEFAULT_LAUNCH,
                   event=_text(spec.get("event")),
                   audience=Audience.from_spec(spec.get("audience")),
                   allow_manual=spec.get("allow_manual") is True,
                   cron=_text(spec.get("cron")),
                   timezone=tz or DEFAULT_TIMEZONE, timezone_written=tz,
                   deactivate_after=str(after) if after else None,
                   catchup=_text(spec.get("catchup")),
                   dst=DstPolicy.from_spec(spec.get("dst")), raw=spec)


@dataclass(frozen=True, slots=True)
class Scenario:
    reentry: str = DEFAULT_REENTRY
    reentry_written: str | None = None
    timezone: str = DEFAULT_TIMEZONE  # where wait days count: timezone, launch.timezone, UTC
    keep_profiles_on_deactivate: bool = False
    launch: Launch = field(default_factory=Launch)
    launch_written: bool = False  # a `launch:` mapping was written
    steps: tuple[ScenarioStep, ...] = ()
    tags: tuple[str, ...] | None = None
    access_groups: tuple[str, ...] | None = None
    description: str | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Spec) -> Scenario:
        launch = Launch.from_spec(spec.get("launch"))
        mode = _text(spec.get("reentry"))
        return cls(
            reentry=mode if mode in REENTRY_MODES else DEFAULT_REENTRY,
            reentry_written=mode,
            timezone=str(spec.get("timezone") or launch.timezone_written or DEFAULT_TIMEZONE),
            keep_profiles_on_deactivate=spec.get("keep_profiles_on_deactivate") is True,
            launch=launch,
            launch_written=isinstance(spec.get("launch"), Mapping) and bool(spec.get("launch")),
            steps=_steps(spec.get("steps")),
            tags=_strings(spec.get("tags")),
            access_groups=_strings(spec.get("access_groups")),
            description=_text(spec.get("description")),
            raw=spec,
        )

    def step(self, step_id: str) -> ScenarioStep | None:
        return next((s for s in self.steps if s.id == step_id), None)


# --- FrequencyCap --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most `max` messages per contact within the rolling period `per` (DURATION text), of
    `message_types` (None: every type); a capped message waits (`defer`) or is cancelled
    (`drop`)."""

    max: int = 1
    per: str = "1d"
    message_types: tuple[str, ...] | None = None
    policy: str = CAP_POLICIES[0]
    description: str | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_spec(cls, spec: Spec) -> FrequencyCap:
        most = spec.get("max")
        policy = _text(spec.get("policy"))
        return cls(max=most if isinstance(most, int) and not isinstance(most, bool)
                   and most >= 1 else 1,
                   per=_text(spec.get("per")) or "1d",
                   message_types=_strings(spec.get("message_types")) or None,
                   policy=policy if policy in CAP_POLICIES else CAP_POLICIES[0],
                   description=_text(spec.get("description")), raw=spec)

    def covers(self, message_type: str | None) -> bool:
        return self.message_types is None or message_type in self.message_types


# --- one entry point -----------------------------------------------------------------------------

Model: TypeAlias = Segment | ChannelModel | Campaign | Plan | Scenario | FrequencyCap
_BUILDERS = {"Segment": Segment.from_spec, "Channel": Channel.from_spec,
             "Campaign": Campaign.from_spec, "Plan": Plan.from_spec,
             "Scenario": Scenario.from_spec, "FrequencyCap": FrequencyCap.from_spec}


def model_of(kind: str, spec: Spec | None) -> Model:
    """The model of a spec of `kind` (a Kind or its value, e.g. "Campaign")."""
    builder = _BUILDERS.get(str(kind))
    if builder is None:
        raise ValueError(f"unknown kind {kind!r}")
    return builder(spec or {})
