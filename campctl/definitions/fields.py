"""The field tables of the six kinds: structure, value formats and their docs."""

from __future__ import annotations

import re
from typing import Any

from campctl.definitions.types import (
    INVALID,
    Bool,
    Choice,
    Ctx,
    Enum,
    F,
    ListOf,
    Map,
    Number,
    Scalar,
    Tagged,
    Text,
    Type,
    describe,
    did_you_mean,
    label,
)
from campctl.definitions.yamlsrc import Node
from campctl.models import NAME_PATTERN
from campctl.timeutil import shorten

# Years 2000-2999 only (timeutil.MIN_YEAR/MAX_YEAR): the pattern says so for editors too.
DATETIME_PATTERN = (r"^2\d{3}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?"
                    r"(Z|z|[+-]\d{2}:?\d{2})?$")
DURATION_PATTERN = r"^\d+[smhdw]$"
WINDOW_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$"
RATE_PATTERN = r"^[1-9][0-9]{0,5}/[smh]$"
TOKEN_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
ATTR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$"
SECRET_PATTERN = r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"
URL_PATTERN = r"^https?://\S+$"
_VAR_REF = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- value formats -------------------------------------------------------------------------------

def check_name(text: str) -> str | None:
    if re.match(NAME_PATTERN, text):
        return None
    return (f"invalid name {text!r}: use lower-case letters, digits and '-', starting with a "
            "letter or digit, at most 63 characters")


def check_duration(text: str) -> str | None:
    from campctl.timeutil import parse_duration

    try:
        parse_duration(text)
    except ValueError as exc:
        return str(exc)
    return None


def check_positive_duration(text: str) -> str | None:
    problem = check_duration(text)
    if problem is None and not re.match(r"^0*[1-9]", text):
        return f"invalid duration {text!r}: it must be longer than zero"
    return problem


def check_window(text: str) -> str | None:
    from campctl.timeutil import parse_window

    try:
        parse_window(text)
    except ValueError as exc:
        return str(exc)
    return None


def check_datetime(text: str) -> str | None:
    from datetime import datetime

    from campctl.timeutil import MAX_YEAR, MIN_YEAR

    year = re.match(r"^(\d{4})-", text)
    if year and not MIN_YEAR <= int(year.group(1)) <= MAX_YEAR:
        return f"datetime {text!r} is out of range: use a year from {MIN_YEAR} to {MAX_YEAR}"
    if not re.match(DATETIME_PATTERN, text):
        return (f"bad datetime {text!r}: use YYYY-MM-DDTHH:MM (local to the timezone) or add an "
                "offset, e.g. 2027-04-02T10:00 or 2027-04-02T10:00+02:00")
    raw = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        datetime.fromisoformat(raw)
    except ValueError:
        return f"bad datetime {text!r}: no such date or time"
    return None


def check_timezone(text: str) -> str | None:
    from campctl.timeutil import zone

    try:
        zone(text)
    except ValueError:
        from zoneinfo import available_timezones

        hint = did_you_mean(text, available_timezones())
        return f"unknown timezone {text!r}{hint}: use an IANA name such as Europe/Paris"
    return None


CRON_FIELDS = (("minute", 60), ("hour", 24), ("day-of-month", 31), ("month", 12),
               ("day-of-week", 7))
_CRON_STEP = re.compile(r"/(\d+)")


def check_cron(text: str) -> str | None:
    from campctl.engine.cron import validate_cron

    for (field_name, size), part in zip(CRON_FIELDS, text.split(), strict=False):
        for step in _CRON_STEP.findall(part):
            if len(step) > 3 or int(step) > size:
                return (f"cron step /{shorten(step)} in the {field_name} field is larger than the "
                        f"field's {size} values; use a step from 1 to {size}")
    return validate_cron(text)


def check_queue_every(text: str) -> str | None:
    if text == "on_event":
        return None
    problem = check_cron(text)
    return f"expected on_event or a cron expression: {problem}" if problem else None


def _pattern(regex: str, message: str):
    compiled = re.compile(regex)

    def check(text: str) -> str | None:
        return None if compiled.match(text) else message.format(text=shorten(text))

    return check


check_rate = _pattern(RATE_PATTERN, "bad rate {text!r}: use N/s, N/m or N/h with N from 1 to "
                                    "999999, e.g. 200/s")
check_token = _pattern(TOKEN_PATTERN, "invalid name {text!r}: use letters, digits, '_', '.', "
                                      "':' or '-' (no spaces)")
check_attr = _pattern(ATTR_PATTERN, "invalid attribute name {text!r}: use letters, digits, '_' "
                                    "or '-', starting with a letter or '_'")
check_url = _pattern(URL_PATTERN, "bad url {text!r}: use http:// or https://")


def check_var_refs(text: str) -> str | None:
    for ref in _VAR_REF.findall(text):
        if not _VAR_NAME.match(ref):
            return f"bad variable reference ${{{ref}}}: use ${{NAME}} with letters, digits and _"
    if text.count("${") != len(_VAR_REF.findall(text)):
        return "unterminated ${...} reference: write ${NAME}"
    return None


def check_secret(text: str) -> str | None:
    if re.match(SECRET_PATTERN, text):
        return None
    return ("secrets are never stored: write this value as ${VAR} and set VAR in the environment "
            "of campctl (e.g. password: ${SMTP_PASSWORD})")


def check_url_refs(text: str) -> str | None:
    return check_url(text) or check_var_refs(text)


def url_problem_code(problem: str) -> str:
    return "CC119" if problem.startswith("bad url") else "CC120"


class Template(Text):
    """A Jinja2 template, compiled in the sandbox at validation time for syntax errors, then
    rendered once for a synthetic contact (engine.templates.template_problems)."""

    def __init__(self, description: str = "") -> None:
        super().__init__(description)

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        value = super().check(node, ctx, path)
        if value is INVALID:
            return value
        from jinja2 import TemplateSyntaxError

        try:
            _template_environment().from_string(value)
        except TemplateSyntaxError as exc:
            lineno = exc.lineno or 1
            # A block scalar (|, >) starts on the line after its indicator.
            block = node.quoted and node.text and "\n" in node.text
            line = node.line + lineno if block else node.line
            ctx.error((line, node.col), label(path, f"template error: {exc.message}"),
                      code="CC401")
            return INVALID
        from campctl.engine.templates import template_problems

        # Rendered once for a synthetic contact: what fails whatever the contact (its budget,
        # the sandbox, an error no data can avoid) is refused here, before any send.
        problems = template_problems(value)
        for problem in problems:
            ctx.error((node.line, node.col),
                      label(path, f"{problem} (test render with a synthetic contact)"),
                      code="CC402")
        return INVALID if problems else value


def _template_environment():
    """The delivery engine's sandbox, so that filters known at send time are known here."""
    from campctl.engine.templates import environment

    return environment()


class NameText(Text):
    """A name: a string in the file too. A plain `12`, `0755` or `true` is refused with a hint to
    quote it, because YAML tools (and the JSON Schema) read it as a number or a boolean."""

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind == "scalar" and not node.quoted and node.value is not None and (
                not isinstance(node.value, str) or node.tag11 in ("int", "float", "bool")):
            ctx.error(node, label(path, f"expected a name (a string), got {describe(node)}, "
                                        "which YAML reads as a number or a boolean; quote it"),
                      code="CC104")
            return INVALID
        return super().check(node, ctx, path)


def name_ref(description: str) -> Text:
    return NameText(description, validate=check_name, pattern=NAME_PATTERN, code="CC201")


NAME = name_ref
DATETIME = Text("Local date and time in the object's timezone (YYYY-MM-DDTHH:MM), or with an "
                "offset.", validate=check_datetime, pattern=DATETIME_PATTERN, code="CC301",
                examples=["2027-04-02T10:00"])
DURATION = Text("Duration: a number and s, m, h, d or w (30s, 15m, 6h, 2d, 1w).",
                validate=check_duration, pattern=DURATION_PATTERN, code="CC302")
STALE_AFTER_PATTERN = r"^0*[1-9]\d*[smhdw]$"
STALE_AFTER = Text("Staleness deadline: a message not handed over by its intended send time plus "
                   "this duration (elapsed time: 30m, 6h, 1d) is cancelled with the reason "
                   "stale instead of going out late.", validate=check_positive_duration,
                   pattern=STALE_AFTER_PATTERN, code="CC302", examples=["2h"])
WINDOW = Text("Daily window \"HH:MM-HH:MM\" in the object's timezone; an end before the start "
              "wraps past midnight. Quote it.", validate=check_window, pattern=WINDOW_PATTERN,
              code="CC303", examples=["12:00-17:00"])
TIMEZONE = Text("IANA timezone name, e.g. Europe/Paris.", validate=check_timezone, code="CC304")
CRON = Text("Cron expression (5 fields: minute hour day-of-month month day-of-week). Quote it.",
            validate=check_cron, examples=["0 9 * * *"], code="CC305")
RATE = Text("Throttle: N/s, N/m or N/h.", validate=check_rate, pattern=RATE_PATTERN,
            code="CC118")
MAX_ATTEMPTS = Number("Attempts before a message fails for good (transient errors are retried "
                      "with exponential backoff).", integer=True, minimum=1, maximum=100)
TIMEOUT = Number("Network timeout in seconds.", exclusive_minimum=0, maximum=3600)
CONNECTIONS = Number("SMTP sessions or HTTP connections one tick or daemon uses at once "
                     "(default 4; the rate holds across them).", integer=True, minimum=1,
                     maximum=64)
EVENT = Text("Event name.", validate=check_token, pattern=TOKEN_PATTERN, code="CC116")
MESSAGE_TYPE = Text("Message type, matched against contacts' opt_out.", validate=check_token,
                    pattern=TOKEN_PATTERN, code="CC116")
DST = Map({
    "gap": F(Enum(("shift", "skip"), "A slot whose local time does not exist (clocks spring "
                  "forward): shift (default) fires it at the first instant after the gap, skip "
                  "drops it.")),
    "fold": F(Enum(("once", "twice"), "A slot whose local time happens twice (clocks fall "
                   "back): once (default) fires it at its first occurrence, twice at both.")),
}, "What a daylight saving time change does to the cron's occurrences (default "
   "{gap: shift, fold: once}).")
PRIORITY = Number("Frequency caps: when several messages compete for a contact's last slots, the "
                  "highest priority goes first (0-100, default 50).", integer=True, minimum=0,
                  maximum=100)
CATCHUP = Enum(("latest", "all", "none"),
               "Occurrences missed while nothing ticked: latest (default) fires the last one, "
               "all fires each, none skips them.")


# --- audiences and segment rules ------------------------------------------------------------------

class TrueOnly(Bool):
    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        value = super().check(node, ctx, path)
        if value is False:
            ctx.error(node, label(path, "must be true (leave it out to use segment or groups)"),
                  code="CC115")
            return INVALID
        return value

    def schema(self) -> dict:
        return self.with_doc({"const": True})


AUDIENCE = Map({
    "segment": F(NAME("A Segment by name.")),
    "groups": F(ListOf(Text("Group name.", validate=check_token, pattern=TOKEN_PATTERN,
                            code="CC116"),
                       "Contacts in any of these groups.", min_items=1)),
    "all": F(TrueOnly("Every contact (must be true).")),
    "include_opted_out": F(Bool("Also message contacts whose opt_out lists the message type "
                                "(default false).")),
}, "Who receives the messages: {segment: NAME}, {groups: [...]} or {all: true}.",
    one_of=("segment", "groups", "all"))

class RuleValue(Type):
    """Checked against its op by _check_attr_value; here only its shape is described."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        from campctl.definitions.yamlsrc import to_plain

        return to_plain(node)

    def schema(self) -> dict:
        return self.with_doc({"type": ["string", "number", "boolean", "array"]})


ATTR_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists",
            "not_exists", "within_days", "older_than_days")
NO_VALUE_OPS = ("exists", "not_exists")
LIST_OPS = ("in", "not_in")
DAY_OPS = ("within_days", "older_than_days")
MAX_DAYS = 36500

ATTR_RULE = Map({
    "attr": F(Text("Contact attribute (or id, email, phone).", validate=check_attr,
                   pattern=ATTR_PATTERN, code="CC117"), required=True),
    "op": F(Enum(ATTR_OPS, "Comparison."), required=True),
    "value": F(RuleValue("Value to compare with (a list for in/not_in, days for within_days and "
                         "older_than_days; none for exists/not_exists).")),
})
GROUP_RULE = Map({"group": F(Text("The contact is in this group.", validate=check_token,
                                  pattern=TOKEN_PATTERN, code="CC116"), required=True)})
EVENT_RULE = Map({"event": F(EVENT, required=True),
                  "within": F(DURATION, required=True)})


class Rule(Type):
    """One segment rule: {attr, op, value}, {group} or {event, within}."""

    def __init__(self, forms: tuple[str, ...] = ("attr", "group", "event")) -> None:
        self.forms = forms
        self.description = "A rule: " + ", ".join(
            {"attr": "{attr, op, value}", "group": "{group}", "event": "{event, within}"}[f]
            for f in forms)

    def check(self, node: Node, ctx: Ctx, path: str) -> Any:
        if node.kind != "map":
            ctx.error(node, label(path, f"expected a rule mapping, got {describe(node)}"),
                      code="CC104")
            return INVALID
        present = [f for f in ("attr", "group", "event") if node.get(f) is not None]
        allowed = [f for f in present if f in self.forms]
        if len(present) != 1 or not allowed:
            forms = " or ".join(self.forms)
            if not present:
                keys = [k.text for k, _ in node.items]
                hint = did_you_mean(keys[0], self.forms) if keys else ""
                ctx.error(node, label(path, f"a rule needs one of {forms}{hint}"), code="CC113")
            elif len(present) > 1:
                ctx.error(node, label(path, f"a rule takes only one of {forms}, got "
                                            f"{' and '.join(present)}"), code="CC113")
            else:
                ctx.error(node, label(path, f"{present[0]} rules are not allowed here; "
                                            f"use {forms}"), code="CC113")
            return INVALID
        form = allowed[0]
        table = {"attr": ATTR_RULE, "group": GROUP_RULE, "event": EVENT_RULE}[form]
        value = table.check(node, ctx, path)
        if form == "attr" and isinstance(value, dict) and "op" in value:
            return _check_attr_value(node, value, ctx, path)
        return value

    def schema(self) -> dict:
        attr = ATTR_RULE.schema()
        attr["allOf"] = [
            {"if": {"properties": {"op": {"enum": list(NO_VALUE_OPS)}}},
             "then": {"not": {"required": ["value"]}}, "else": {"required": ["value"]}},
            {"if": {"properties": {"op": {"enum": list(LIST_OPS)}}},
             "then": {"properties": {"value": {"type": "array", "minItems": 1, "items": {
                 "type": ["string", "number", "boolean"]}}}}},
            {"if": {"properties": {"op": {"enum": [o for o in ATTR_OPS if o not in (
                *NO_VALUE_OPS, *LIST_OPS, *DAY_OPS)]}}},
             "then": {"properties": {"value": {"type": ["string", "number", "boolean"]}}}},
            {"if": {"properties": {"op": {"enum": list(DAY_OPS)}}},
             "then": {"properties": {"value": {"type": "integer", "minimum": 0,
                                               "maximum": MAX_DAYS}}}},
        ]
        forms = {"attr": attr, "group": GROUP_RULE.schema(), "event": EVENT_RULE.schema()}
        return {"description": self.description, "oneOf": [forms[f] for f in self.forms]}


def _check_attr_value(node: Node, rule: dict, ctx: Ctx, path: str) -> Any:
    op = rule["op"]
    value_node = node.get("value")
    if op in NO_VALUE_OPS:
        if value_node is not None:
            ctx.error(value_node, label(f"{path}.value" if path else "value",
                                        f"op {op} takes no value; remove it"), code="CC114")
            return INVALID
        return rule
    if value_node is None:
        ctx.error(node, label(path, f"op {op} needs a value"), code="CC114")
        return INVALID
    sub = f"{path}.value" if path else "value"
    if op in LIST_OPS:
        items = ListOf(Scalar(), min_items=1).check(value_node, ctx, sub)
        if items is INVALID:
            return INVALID
        rule["value"] = items
    elif op in DAY_OPS:
        days = Number(integer=True, minimum=0, maximum=MAX_DAYS).check(value_node, ctx, sub)
        if days is INVALID:
            return INVALID
        rule["value"] = days
    else:
        if value_node.kind != "scalar":
            ctx.error(value_node, label(sub, f"op {op} takes one value, got "
                                        f"{describe(value_node)}"
                                        + ("; use op in for a list" if value_node.kind == "seq"
                                           and op in ("eq", "ne") else "")), code="CC114")
            return INVALID
        scalar = Scalar().check(value_node, ctx, sub)
        if scalar is INVALID:
            return INVALID
        rule["value"] = scalar
    return rule


# --- messages, schedules --------------------------------------------------------------------------

MESSAGE_FIELDS = {
    "subject": F(Template("Subject template (Jinja2, sandboxed): contact fields and attributes.")),
    "body": F(Template("Body template (Jinja2, sandboxed).")),
}
MESSAGE = Map({"subject": MESSAGE_FIELDS["subject"],
               "body": F(MESSAGE_FIELDS["body"].type, required=True)},
              "The message: subject and body templates.")
MESSAGE_OVERRIDE = Map(dict(MESSAGE_FIELDS), "Overrides of the campaign message, key by key.")

AT = Map({"at": F(DATETIME, required=True)})
START = Choice(("immediately",), {"at": AT}, "immediately (at launch) or {at: DATETIME}.")

WINDOW_TIMEZONE = Enum(
    ("contact", "campaign"),
    "Whose zone schedule.window is read in: campaign (default: the campaign's timezone) or "
    "contact (each recipient's `timezone` attribute, an IANA name; missing or invalid: the "
    "campaign's timezone, counted as window_fallback). Fixed when the queue is built.")

ONE_OFF_SCHEDULE = Map({
    "queue": F(Choice(("immediately",), {
        "at": AT,
        "before_send": Map({"before_send": F(DURATION, required=True)}),
    }, "When messages are built: immediately (default, at launch), {at: DATETIME} or "
       "{before_send: DURATION} before send.at.")),
    "send": F(Choice(("immediately", "after_queue"), {"at": AT},
                     "When sending starts: {at: DATETIME}, immediately or after_queue."),
              required=True),
    "window": F(WINDOW),
    "window_timezone": F(WINDOW_TIMEZONE),
}, "One-off schedule: queue (build) phase and send phase.")

DATE_SCHEDULE = Map({
    "start": F(START),
    "cron": F(CRON),
    "dst": F(DST),
    "send_start": F(Choice(("immediately",), {"at": AT},
                           "When sending starts (not before start); default immediately.")),
    "until": F(DATETIME),
    "catchup": F(CATCHUP),
    "window": F(WINDOW),
    "window_timezone": F(WINDOW_TIMEZONE),
}, "Date-triggered schedule: each cron occurrence (default \"0 9 * * *\") after start builds.")

EVENT_SCHEDULE = Map({
    "queue_start": F(START),
    "send_start": F(Choice(("immediately",), {"at": AT},
                           "When sending starts (not before queue_start).")),
    "queue_every": F(Text("on_event (default: build at the next tick after the event) or a cron "
                          "expression that batches events.", validate=check_queue_every,
                          examples=["on_event", "0 8 * * 5"], code="CC305")),
    "dst": F(DST),
    "catchup": F(Enum(("latest", "all", "none"),
                      "With a cron queue_every, occurrences missed while nothing ticked: latest "
                      "(default) and all build one batch of every waiting event at once, none "
                      "keeps the events for the next occurrence on time.")),
    "build_window": F(WINDOW),
    "window": F(WINDOW),
    "window_timezone": F(WINDOW_TIMEZONE),
}, "Event-triggered schedule.")

STAGE = Map({
    "name": F(NAME("Stage name, unique in the campaign."), required=True),
    "controlled_by_plan": F(Bool("Run only as part of a plan instance (default false).")),
    "audience": F(AUDIENCE),
    "message": F(MESSAGE_OVERRIDE),
    "channel": F(NAME("Channel override.")),
    "stale_after": F(STALE_AFTER),
})


def _common(kind: str) -> dict[str, F]:
    return {
        "kind": F(Enum((kind,)), required=True),
        "name": F(NAME(f"{kind} name: lower-case letters, digits and '-'."), required=True),
        "description": F(Text("Free text.", min_length=0)),
    }


def _explain_schedule_keys() -> None:
    """A schedule key of another campaign type gets a precise message, not "unknown key"."""
    tables = {"one-off": ONE_OFF_SCHEDULE, "date-triggered": DATE_SCHEDULE,
              "event-triggered": EVENT_SCHEDULE}
    for ctype, table in tables.items():
        owners: dict[str, list[str]] = {}
        for other, other_table in tables.items():
            for key in other_table.fields if other != ctype else ():
                if key not in table.fields:
                    owners.setdefault(key, []).append(other)
        table.elsewhere = {k: f"is not used by {ctype} campaigns (only by {', '.join(v)})"
                           for k, v in owners.items()}


_explain_schedule_keys()

USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$"
# Tags (for `get ... --tag`) and access groups (who may change, activate and launch the object).
ACCESS_FIELDS = {
    "tags": F(ListOf(Text("A tag.", validate=check_token, pattern=TOKEN_PATTERN),
                     "Tags for finding the object: campctl get ... --tag T.", min_items=1)),
    "access_groups": F(ListOf(Text("A user name.", pattern=USER_NAME_PATTERN,
                                   validate=_pattern(USER_NAME_PATTERN, "invalid user name "
                                                     "{text!r}: use letters, digits, '.', '_', "
                                                     "'@' and '-'")),
                              "The users who may change, activate and launch the object "
                              "(default: everyone).", min_items=1)),
}

CAMPAIGN_COMMON = {
    **_common("Campaign"),
    **ACCESS_FIELDS,
    "code": F(Text("Campaign code (default: the name).")),
    "timezone": F(TIMEZONE),
    "closes_at": F(DATETIME),
    "channel": F(NAME("Channel name (default: outbox).")),
    "message_type": F(MESSAGE_TYPE),
    "audience": F(AUDIENCE, required=True),
    "message": F(MESSAGE, required=True),
    "stages": F(ListOf(STAGE, "Stages (default: one stage named main).", min_items=1)),
    "stale_after": F(STALE_AFTER),
    "priority": F(PRIORITY),
}
CAMPAIGN_TYPES = ("one-off", "date-triggered", "event-triggered")


# A one-off campaign needs a schedule unless every stage runs only inside plans (then its own
# schedule would never be used); semantics._campaign checks the same rule.
PLAN_ONLY = {"if": {"required": ["stages"], "properties": {"stages": {"items": {
    "required": ["controlled_by_plan"], "properties": {"controlled_by_plan": {"const": True}}}}}},
    "else": {"required": ["schedule"]}}


def _campaign(ctype: str, schedule: Map, extra: dict | None = None,
              schema_extra: dict | None = None) -> Map:
    return Map({**CAMPAIGN_COMMON, "type": F(Enum((ctype,)), required=True),
                "schedule": F(schedule), **(extra or {})},
               f"A {ctype} campaign.", title=f"Campaign ({ctype})", schema_extra=schema_extra)


CAMPAIGN = Tagged("type", {
    "one-off": _campaign("one-off", ONE_OFF_SCHEDULE, schema_extra=PLAN_ONLY),
    "date-triggered": _campaign("date-triggered", DATE_SCHEDULE),
    "event-triggered": _campaign("event-triggered", EVENT_SCHEDULE, {
        "trigger": F(Map({"event": F(EVENT, required=True)}, "The event that triggers a build."),
                     required=True)}),
}, "A campaign: who gets which message, when.", noun="campaign type")

CHANNEL_COMMON = _common("Channel")
CHANNEL = Tagged("type", {
    "outbox": Map({**CHANNEL_COMMON, "type": F(Enum(("outbox",)), required=True),
                   "dir": F(Text("Also append each message as a JSON line to "
                                 "DIR/<channel>.jsonl.")),
                   # Throttling and retries work as on the other types, so a send plan can
                   # be rehearsed offline before it goes to a real server.
                   "rate": F(RATE), "max_attempts": F(MAX_ATTEMPTS)},
                  title="Channel (outbox)"),
    "smtp": Map({**CHANNEL_COMMON, "type": F(Enum(("smtp",)), required=True),
                 "host": F(Text("SMTP server host.", validate=check_var_refs, code="CC120"),
                         required=True),
                 "port": F(Number("SMTP port (default 25).", integer=True, minimum=1,
                                  maximum=65535)),
                 "starttls": F(Bool("Upgrade the connection with STARTTLS (default false).")),
                 "username": F(Text("Login name; may be ${VAR}.", validate=check_var_refs,
                                    code="CC120")),
                 "password": F(Text("Password, always as ${VAR} (read from the environment at "
                                    "send time, never stored).", validate=check_secret,
                                    pattern=SECRET_PATTERN, code="CC121")),
                 "from": F(Text("Sender, e.g. \"Shop <news@example.com>\"."), required=True),
                 "rate": F(RATE), "max_attempts": F(MAX_ATTEMPTS), "timeout": F(TIMEOUT),
                 "connections": F(CONNECTIONS)},
                title="Channel (smtp)"),
    "webhook": Map({**CHANNEL_COMMON, "type": F(Enum(("webhook",)), required=True),
                    "url": F(Text("Endpoint (http or https); may contain ${VAR}.",
                                  validate=check_url_refs, pattern=URL_PATTERN,
                                  code=url_problem_code), required=True),
                    "headers": F(Map(values=Text("Header value; may contain ${VAR}.",
                                                 validate=check_var_refs, min_length=0,
                                                 code="CC120"),
                                     description="Extra HTTP headers.")),
                    "timeout": F(TIMEOUT), "rate": F(RATE), "max_attempts": F(MAX_ATTEMPTS),
                    "connections": F(CONNECTIONS)},
                   title="Channel (webhook)"),
}, "A delivery channel: how messages leave (outbox, SMTP, webhook).", noun="channel type")

SEGMENT = Map({
    **_common("Segment"),
    "match": F(Enum(("all", "any"), "all (default): every rule; any: at least one.")),
    "rules": F(ListOf(Rule(), "Rules on attributes, groups and recent events.", min_items=1),
               required=True),
    "limit_percent": F(Number("Deterministic sample of this share of the matches (0 < p <= 100).",
                              exclusive_minimum=0, maximum=100)),
}, "A dynamic audience: rules over contact attributes, groups and events.", title="Segment")

FREQUENCY_CAP = Map({
    **_common("FrequencyCap"),
    "max": F(Number("Messages per contact within `per` (at least 1).", integer=True, minimum=1,
                    maximum=1000000), required=True),
    "per": F(Text("Rolling period: a number and s, m, h, d or w (1d, 12h, 1w).",
                  validate=check_positive_duration, pattern=STALE_AFTER_PATTERN, code="CC302",
                  examples=["1d"]), required=True),
    "message_types": F(ListOf(MESSAGE_TYPE, "The message types counted and capped (default: "
                              "every message type).", min_items=1)),
    "policy": F(Enum(("defer", "drop"), "A capped message: defer (default) waits until the cap "
                     "frees a slot, drop cancels it (reason capped).")),
}, "A frequency cap: at most `max` messages per contact per rolling period, across every "
   "campaign and scenario.", title="FrequencyCap")

PLAN_SCHEDULE = Tagged("type", {
    "manual": Map({"type": F(Enum(("manual",)), required=True),
                   "timezone": F(TIMEZONE)}, "Started with campctl start plan NAME."),
    "once": Map({"type": F(Enum(("once",)), required=True),
                 "at": F(DATETIME, required=True),
                 "timezone": F(TIMEZONE, required=True),
                 "catchup": F(CATCHUP)}, "Fires once at `at`."),
    "recurrent": Map({"type": F(Enum(("recurrent",)), required=True),
                      "cron": F(CRON, required=True),
                      "dst": F(DST),
                      "timezone": F(TIMEZONE, required=True),
                      "overlap": F(Enum(("skip", "queue"), "When an instance is still running at "
                                        "the next occurrence: skip (default) or queue.")),
                      "catchup": F(CATCHUP)}, "Fires at each cron occurrence."),
}, "When instances start.", noun="schedule type")

PLAN = Map({
    **_common("Plan"),
    **ACCESS_FIELDS,
    "transition": F(Enum(("completed", "sent"), "Next stage when all messages are built "
                         "(completed, default) or sent (sent).")),
    "schedule": F(PLAN_SCHEDULE, required=True),
    "stages": F(ListOf(Map({"campaign": F(NAME("Campaign name."), required=True),
                            "stage": F(NAME("Stage of that campaign, controlled_by_plan: true."),
                                       required=True)}),
                       "The execution tree, run top to bottom.", min_items=1), required=True),
}, "A multi-stage execution plan: campaign stages run in order.", title="Plan")

SEND_STEP = Map({
    "channel": F(NAME("Channel (default: outbox).")),
    "message_type": F(MESSAGE_TYPE),
    "subject": MESSAGE_FIELDS["subject"],
    "body": F(MESSAGE_FIELDS["body"].type, required=True),
    "stale_after": F(STALE_AFTER),
    "priority": F(PRIORITY),
}, "Send one message.")

IF_CONDITION = Choice((), {
    "event": Map({"event": F(EVENT, required=True), "within": F(DURATION, required=True)},
                 "The contact had this event within the duration."),
    "rules": Map({"rules": F(ListOf(Rule(("attr", "group")), min_items=1), required=True),
                  "match": F(Enum(("all", "any")))}, "Conditions on the contact's attributes."),
}, "{event, within} or {rules, match}.")

STEP_REF = NameText("A step id, or end.", validate=check_name, pattern=NAME_PATTERN, code="CC201")
STEP = Map({
    "id": F(NAME("Step id, unique in the scenario (end is reserved)."), required=True),
    "send": F(SEND_STEP),
    "wait": F(DURATION),
    "if": F(IF_CONDITION),
    "next": F(STEP_REF),
    "then": F(STEP_REF),
    "else": F(STEP_REF),
}, "One step: exactly one of send, wait, if.", one_of=("send", "wait", "if"))

SCENARIO_LAUNCH = Tagged("type", {
    "event": Map({"type": F(Enum(("event",)), required=True),
                  "event": F(EVENT, required=True),
                  "audience": F(AUDIENCE),
                  "allow_manual": F(Bool("May be started by hand for one contact: campctl "
                                         "start scenario NAME --contact ID (default false)."))},
                 "Capture contacts when the event arrives (those matching `audience`, when "
                 "given)."),
    "schedule": Map({"type": F(Enum(("schedule",)), required=True),
                     "cron": F(CRON, required=True),
                     "dst": F(DST),
                     "timezone": F(TIMEZONE, required=True),
                     "audience": F(AUDIENCE, required=True),
                     "deactivate_after": F(DATETIME)}, "Capture a segment at each occurrence."),
    "manual": Map({"type": F(Enum(("manual",)), required=True)},
                  "Launched with campctl start scenario NAME."),
}, "How contacts enter.", noun="launch type")

SCENARIO = Map({
    **_common("Scenario"),
    **ACCESS_FIELDS,
    "reentry": F(Enum(("once", "after_exit", "restart", "parallel"),
                      "Re-entry mode (default once).")),
    "timezone": F(Text("IANA timezone in which wait days count (default: launch.timezone, "
                       "else UTC).", validate=check_timezone)),
    "keep_profiles_on_deactivate": F(Bool("Freeze profiles on deactivation instead of exiting "
                                          "them (default false).")),
    "launch": F(SCENARIO_LAUNCH, required=True),
    "steps": F(ListOf(STEP, "Steps, run in order unless next/then/else jump.", min_items=1),
               required=True),
}, "A customer journey: steps each contact goes through (send, wait, if).", title="Scenario")

KINDS: dict[str, Type] = {
    "Segment": SEGMENT,
    "Channel": CHANNEL,
    "Campaign": CAMPAIGN,
    "Plan": PLAN,
    "Scenario": SCENARIO,
    "FrequencyCap": FREQUENCY_CAP,
}

DOCUMENT = Tagged("kind", KINDS, "A campctl definition document.",  # type: ignore[arg-type]
                  noun="kind", ref_prefix="#/$defs/")
