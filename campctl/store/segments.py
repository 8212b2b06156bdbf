"""Segments and audiences compiled to parameterised SQL over the contacts table (no value is
ever spliced into SQL text: only fixed fragments and `?` placeholders)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campctl.errors import NotFound, ValidationFailed
from campctl.store.db import Database
from campctl.store.dialect import SQLITE, Dialect
from campctl.timeutil import parse_duration, to_db

ATTR_OPS = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists", "not_exists",
    "within_days", "older_than_days",
)
NO_VALUE_OPS = ("exists", "not_exists")
# Built-in contact fields a rule may name as `attr`; everything else is an imported attribute.
COLUMN_FIELDS = {"id": "external_id", "email": "email", "phone": "phone"}
_ALIAS = re.compile(r"^[a-z_][a-z0-9_]*$")
_DATE_GLOB = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'"
_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_NUM = "IN ('integer', 'real')"

# Deterministic sampling: a two-round integer hash of (sample_key, contact id) into 0..9999,
# computable in SQL without overflow (ids < 2**31, multipliers < 2**20, P = 2**31 - 1).
_P = 2147483647
_Q = 2097143


def _sample_seed(key: str) -> tuple[int, int, int, int]:
    digest = hashlib.sha256(key.encode()).digest()
    a1, b1, a2, b2 = (int.from_bytes(digest[i : i + 4], "big") for i in (0, 4, 8, 12))
    return a1 % (1 << 20) | 1, b1 % _P, a2 % (1 << 20) | 1, b2 % _P


def sample_bucket(key: str, contact_pk: int) -> int:
    """The bucket (0..9999) of a contact for a sample key; in the sample iff bucket < pct*100."""
    a1, b1, a2, b2 = _sample_seed(key)
    h = (contact_pk * a1 + b1) % _P
    h = h ^ (h >> 15)
    h = ((h % _Q) * a2 + b2) % _P
    return h % 10000


def _sample_sql(key: str, percent: float, alias: str) -> tuple[str, list]:
    a1, b1, a2, b2 = _sample_seed(key)
    h1 = f"(({alias}.id * ? + ?) % {_P})"
    # SQLite has no XOR: a ^ b == (a | b) - (a & b)
    mixed = f"(({h1} | ({h1} >> 15)) - ({h1} & ({h1} >> 15)))"
    sql = f"(((({mixed} % {_Q}) * ? + ?) % {_P}) % 10000 < ?)"
    return sql, [a1, b1, a1, b1, a1, b1, a1, b1, a2, b2, percent_threshold(percent)]


def percent_threshold(percent: float) -> int:
    return round(float(percent) * 100)


# --- validation --------------------------------------------------------------------------------


def rule_problems(rules: Any, match: Any = "all", limit_percent: Any = None) -> list[str]:
    """Every problem with a segment's rules (empty when valid); used by compile and validate."""
    problems: list[str] = []
    if match not in ("all", "any"):
        problems.append(f"match must be all or any, not {match!r}")
    if limit_percent is not None and (
        isinstance(limit_percent, bool)
        or not isinstance(limit_percent, int | float)
        or not 0 < limit_percent <= 100
    ):
        problems.append(
            f"limit_percent must be a number above 0 and at most 100, not {limit_percent!r}"
        )
    if rules is None:
        return problems
    if not isinstance(rules, list):
        return [*problems, "rules must be a list"]
    for index, rule in enumerate(rules):
        problems += [f"rules[{index}]: {p}" for p in _rule_problems(rule)]
    return problems


_RULE_KEYS = {"attr": {"attr", "op", "value"}, "group": {"group"}, "event": {"event", "within"}}


def _rule_problems(rule: Any) -> list[str]:
    if not isinstance(rule, Mapping):
        return ["a rule is a mapping: {attr, op, value}, {group} or {event, within}"]
    kinds = [k for k in ("attr", "group", "event") if k in rule]
    if len(kinds) != 1:
        return ["a rule has exactly one of attr, group or event"]
    kind = kinds[0]
    extra = sorted(set(rule) - _RULE_KEYS[kind])
    if extra:
        return [f"unknown key(s) {', '.join(map(str, extra))} in a {kind} rule"]
    if kind == "group":
        return [] if _text(rule["group"]) else ["group must be a non-empty string"]
    if kind == "event":
        return _event_problems(rule)
    return _attr_problems(rule)


def _event_problems(rule: Mapping) -> list[str]:
    if not _text(rule["event"]):
        return ["event must be a non-empty string"]
    if "within" in rule:
        try:
            parse_duration(rule["within"])
        except ValueError as exc:
            return [f"within: {exc}"]
    return []


def _attr_problems(rule: Mapping) -> list[str]:
    attr, op = rule.get("attr"), rule.get("op")
    if not isinstance(attr, str) or not _text(attr):
        return ["attr must be a non-empty string"]
    if '"' in attr or "\\" in attr:
        return [f"attr {attr!r} may not contain quotes or backslashes"]
    if op not in ATTR_OPS:
        return [f"unknown op {op!r}; use one of {', '.join(ATTR_OPS)}"]
    if op in NO_VALUE_OPS:
        return [] if "value" not in rule else [f"{op} takes no value"]
    if "value" not in rule:
        return [f"{op} needs a value"]
    problem = _value_problem(op, rule["value"])
    return [problem] if problem else []


def _value_problem(op: str, value: Any) -> str | None:
    """What is wrong with the value of an operator that takes one, if anything."""
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            return f"{op} needs a non-empty list value"
        bad = [v for v in value if not _scalar(v)]
        return f"{op} values must be strings, numbers or booleans" if bad else None
    if op in ("within_days", "older_than_days"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{op} needs a whole number of days (0 or more)"
        return None
    number_or_text = not isinstance(value, bool) and isinstance(value, int | float | str)
    if op in _CMP:
        return None if number_or_text else f"{op} compares with a number or a string"
    if op == "contains":
        return None if number_or_text else (
            "contains needs a string (substring or list element) or a number (list element)")
    return None if _scalar(value) else f"{op} needs a string, number or boolean value"


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


# --- compilation -------------------------------------------------------------------------------


class _Field:
    """SQL for one attribute's JSON type and value over contacts alias `a`."""

    def __init__(self, attr: str, alias: str) -> None:
        column = COLUMN_FIELDS.get(attr)
        self.alias = alias
        if column:
            self.type_sql = f"CASE WHEN {alias}.{column} IS NULL THEN NULL ELSE 'text' END"
            self.value_sql = f"{alias}.{column}"
            self.params: list = []
            self.path: str | None = None
        else:
            self.path = f'$."{attr}"'
            self.type_sql = f"json_type({alias}.attrs, ?)"
            self.value_sql = f"json_extract({alias}.attrs, ?)"

    def t(self) -> tuple[str, list]:
        return self.type_sql, ([self.path] if self.path else [])

    def v(self) -> tuple[str, list]:
        return self.value_sql, ([self.path] if self.path else [])


def _typed_in(field: _Field, values: Sequence) -> tuple[str, list]:
    """The attribute equals one of `values`, types respected (numbers as numbers).

    json_extract yields text only for text (and JSON text for arrays/objects, which starts with
    `[` or `{`), numbers for numbers and 0/1 for booleans; so a type test (a second JSON call
    per row) is added only where a value could be confused: 0/1, or text starting with [ or {.
    """
    parts, params = [], []
    bools = [("true" if v else "false") for v in values if isinstance(v, bool)]
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    texts = [v for v in values if isinstance(v, str)]
    t_sql, t_par = field.t()
    v_sql, v_par = field.v()
    if bools:
        parts.append(f"{t_sql} IN ({', '.join('?' * len(bools))})")
        params += t_par + bools
    if nums:
        sql = f"{v_sql} IN ({', '.join('?' * len(nums))})"
        params += v_par + nums
        if any(n in (0, 1) for n in nums):
            sql = f"({sql} AND {t_sql} {_NUM})"
            params += t_par
        parts.append(sql)
    if texts:
        sql = f"{v_sql} IN ({', '.join('?' * len(texts))})"
        params += v_par + texts
        if field.path and any(t[:1] in ("[", "{") for t in texts):
            sql = f"({sql} AND {t_sql} = 'text')"
            params += t_par
        parts.append(sql)
    return "(" + " OR ".join(parts) + ")", params


def _bounds(op: str, value: float) -> tuple[float, float]:
    """The closed float range [low, high] that `gt|gte|lt|lte value` accepts."""
    low, high = -sys.float_info.max, sys.float_info.max
    if op == "gt":
        low = math.nextafter(float(value), math.inf)
    elif op == "gte":
        low = value
    elif op == "lt":
        high = math.nextafter(float(value), -math.inf)
    else:
        high = value
    return low, high


def _number_range(field: _Field, op: str, value: float) -> tuple[str, list]:
    """A numeric comparison as one BETWEEN: text sorts above every number in SQLite, so the
    upper bound DBL_MAX also rules out text, with a single JSON call per row."""
    v_sql, v_par = field.v()
    low, high = _bounds(op, value)
    sql, params = f"{v_sql} BETWEEN ? AND ?", [*v_par, low, high]
    if low <= 0 <= high or low <= 1 <= high:  # booleans read as 0/1
        t_sql, t_par = field.t()
        sql = f"({sql} AND {t_sql} {_NUM})"
        params += t_par
    return sql, params


def _attr_rule(rule: Mapping, alias: str, now: datetime) -> tuple[str, list]:
    field = _Field(rule["attr"], alias)
    op = rule["op"]
    value: Any = rule.get("value")  # validated by rule_problems for this op
    t_sql, t_par = field.t()
    v_sql, v_par = field.v()
    negate = op in ("ne", "not_in", "not_exists")
    if op in ("eq", "ne"):
        sql, params = _typed_in(field, [value])
    elif op in ("in", "not_in"):
        sql, params = _typed_in(field, value)
    elif op in ("exists", "not_exists"):
        sql, params = f"{t_sql} <> 'null'", t_par
    elif op in _CMP and not isinstance(value, str):
        sql, params = _number_range(field, op, value)
    elif op in _CMP:
        sql = f"({t_sql} = 'text' AND {v_sql} {_CMP[op]} ?)"
        params = t_par + v_par + [value]
    elif op == "contains":
        member = (
            "j.type = 'text' AND j.value = ?" if isinstance(value, str)
            else f"j.type {_NUM} AND j.value = ?"
        )
        parts, params = [], []
        if isinstance(value, str):
            parts.append(f"({t_sql} = 'text' AND instr({v_sql}, ?) > 0)")
            params += t_par + v_par + [value]
        if field.path:
            parts.append(
                f"({t_sql} = 'array' AND EXISTS (SELECT 1 FROM json_each({alias}.attrs, ?) j "
                f"WHERE {member}))"
            )
            params += [*t_par, field.path, value]
        sql = "(" + (" OR ".join(parts) or "false") + ")"
    else:  # within_days / older_than_days: date text (YYYY-MM-DD...) against today (UTC)
        today = now.date()
        day = f"substr({v_sql}, 1, 10)"
        if op == "within_days":
            bound = f"{day} BETWEEN ? AND ?"
            bounds = [*v_par, today.isoformat(), (today + timedelta(days=value)).isoformat()]
        else:
            bound = f"{day} < ?"
            bounds = [*v_par, (today - timedelta(days=value)).isoformat()]
        # Numbers, booleans and JSON text of arrays/objects never look like a date.
        sql = f"({day} GLOB {_DATE_GLOB} AND {bound})"
        params = v_par + bounds
    # An absent attribute makes a rule NULL, which AND/OR treat as false; a negated rule must
    # first become two-valued (absent: eq false, so ne true). rules_where() makes the whole
    # expression two-valued once, which is cheaper than once per rule.
    return (f"NOT coalesce({sql}, false)", params) if negate else (sql, params)


# --- the attribute rules on PostgreSQL ----------------------------------------------------------
# The same meaning as the SQLite rules above, on the stored jsonb copy of the attributes
# (`contacts.attrs_j`): values keep their JSON type (1 equals 1.0, not true, not the text 1),
# numbers compare as numbers, text as text in code point order (COLLATE "C", as SQLite's
# BINARY), dates are text that starts with YYYY-MM-DD. A column field (id, email, phone) is
# text, compared as SQLite compares a TEXT column with a number: as the number's text.
_PG_DATE = "'^[0-9]{4}-[0-9]{2}-[0-9]{2}$'"


def _sqlite_real_text(value: float | int) -> str:
    """A number as SQLite writes it as text (REAL: "%!.15g", so 2.0 is "2.0", 1e20 "1.0e+20")."""
    if isinstance(value, int):
        return str(value)
    text = format(value, ".15g")
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa and mantissa.lstrip("-").isdigit():
        mantissa += ".0"
    return mantissa + e + exponent


class _PgField:
    """One rule's field on PostgreSQL: `js` (jsonb, attributes only) and `text` (the value as
    text when it is JSON text; the column for column fields), each with its parameters."""

    def __init__(self, attr: str, alias: str) -> None:
        column = COLUMN_FIELDS.get(attr)
        self.column = column is not None
        if column is not None:
            self.text_sql, self.text_par = f"{alias}.{column}", []
            self.is_text_sql, self.is_text_par = f"{alias}.{column} IS NOT NULL", []
            self.js_sql, self.js_par = "NULL", []
        else:
            self.js_sql, self.js_par = f"({alias}.attrs_j -> CAST(? AS TEXT))", [attr]
            self.text_sql = f"(({alias}.attrs_j -> CAST(? AS TEXT)) #>> '{{}}')"
            self.text_par = [attr]
            self.is_text_sql = f"jsonb_typeof({self.js_sql}) = 'string'"
            self.is_text_par = [attr]

    def typeof(self, json_type: str) -> tuple[str, list]:
        return f"jsonb_typeof({self.js_sql}) = '{json_type}'", list(self.js_par)


def _pg_typed_in(field: _PgField, values: Sequence) -> tuple[str, list]:
    if not field.column:
        sql = f"{field.js_sql} IN ({', '.join(['CAST(? AS jsonb)'] * len(values))})"
        return sql, [*field.js_par, *(json.dumps(v) for v in values)]
    # SQLite compares a TEXT column with a number as the number's text; never with a boolean,
    # and never with 0 or 1 among the numbers (the rule then asks for a JSON number).
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    texts = [v for v in values if isinstance(v, str)]
    if not any(n in (0, 1) for n in nums):
        texts += [_sqlite_real_text(n) for n in nums]
    if not texts:
        return "false", []
    return f"{field.text_sql} IN ({', '.join('?' * len(texts))})", [*field.text_par, *texts]


def _pg_attr_rule(rule: Mapping, alias: str, now: datetime) -> tuple[str, list]:
    field = _PgField(rule["attr"], alias)
    op = rule["op"]
    value: Any = rule.get("value")
    negate = op in ("ne", "not_in", "not_exists")
    params: list
    if op in ("eq", "ne"):
        sql, params = _pg_typed_in(field, [value])
    elif op in ("in", "not_in"):
        sql, params = _pg_typed_in(field, value)
    elif op in ("exists", "not_exists"):
        if field.column:
            sql, params = field.is_text_sql, []
        else:
            sql, params = f"jsonb_typeof({field.js_sql}) <> 'null'", list(field.js_par)
    elif op in _CMP and not isinstance(value, str):
        if field.column:  # as SQLite: the column's text against the bounds' text
            sql, params = _number_range_as_text(field, op, value)
        else:
            is_number, number_par = field.typeof("number")
            sql = (f"(CASE WHEN {is_number} THEN CAST({field.js_sql} AS numeric) END "
                   f"{_CMP[op]} CAST(? AS numeric))")
            params = [*number_par, *field.js_par, repr(value)]
    elif op in _CMP:
        sql = (f"({field.is_text_sql} AND {field.text_sql} COLLATE \"C\" {_CMP[op]} ?)")
        params = [*field.is_text_par, *field.text_par, value]
    elif op == "contains":
        parts, params = [], []
        if isinstance(value, str):
            parts.append(f"({field.is_text_sql} AND strpos({field.text_sql}, ?) > 0)")
            params += [*field.is_text_par, *field.text_par, value]
        if not field.column:
            is_array, array_par = field.typeof("array")
            parts.append(f"({is_array} AND {field.js_sql} @> CAST(? AS jsonb))")
            params += [*array_par, *field.js_par, json.dumps([value])]
        sql = "(" + (" OR ".join(parts) or "false") + ")"
    else:  # within_days / older_than_days
        today = now.date()
        day = f"substr({field.text_sql}, 1, 10)"
        if op == "within_days":
            bound = f"{day} COLLATE \"C\" BETWEEN ? AND ?"
            bounds = [*field.text_par, today.isoformat(),
                      (today + timedelta(days=value)).isoformat()]
        else:
            bound = f"{day} COLLATE \"C\" < ?"
            bounds = [*field.text_par, (today - timedelta(days=value)).isoformat()]
        sql = f"({field.is_text_sql} AND {day} ~ {_PG_DATE} AND {bound})"
        params = [*field.is_text_par, *field.text_par, *bounds]
    return (f"NOT coalesce({sql}, false)", params) if negate else (sql, params)


def _number_range_as_text(field: _PgField, op: str, value: float) -> tuple[str, list]:
    """A numeric comparison on a column field, as SQLite runs `_number_range` on it: the TEXT
    column against the bounds written as text; never true when 0 or 1 lies in the range."""
    low, high = _bounds(op, value)
    if low <= 0 <= high or low <= 1 <= high:
        return "false", []
    return (f"{field.text_sql} BETWEEN ? AND ?",
            [*field.text_par, _sqlite_real_text(low), _sqlite_real_text(high)])


def _rule_sql(rule: Mapping, alias: str, now: datetime,
              dialect: Dialect = SQLITE) -> tuple[str, list]:
    if "group" in rule:
        return (
            "EXISTS (SELECT 1 FROM contact_groups g WHERE g.grp = ? "
            f"AND g.contact_id = {alias}.id)",
            [rule["group"]],
        )
    if "event" in rule:
        sql = (
            "EXISTS (SELECT 1 FROM events e WHERE e.contact_id = "
            f"{alias}.id AND e.name = ? AND e.at <= ?"
        )
        params: list = [rule["event"], to_db(now)]
        if rule.get("within") is not None:
            since, _ = within_bounds(now, rule["within"])
            sql += " AND e.at >= ?"
            params.append(since)
        return sql + ")", params
    if dialect.is_postgres:
        return _pg_attr_rule(rule, alias, now)
    return _attr_rule(rule, alias, now)


def within_bounds(now: datetime, within: str) -> tuple[str, str]:
    """`within: D` as instants in database text: an event counts when `since <= at <= until`.

    Both ends are included, in segment rules and in scenario `if` steps alike: an event exactly
    D before now is within D.
    """
    return to_db(now - parse_duration(within)), to_db(now)


def rules_where(
    rules: Sequence[Mapping] | None, match: str = "all", *, now: datetime, alias: str = "c",
    dialect: Dialect = SQLITE,
) -> tuple[str, list]:
    """A boolean SQL expression over contacts row `alias` (in `dialect`: the store's `db.d`);
    no rules matches everyone."""
    if not _ALIAS.match(alias):
        raise ValueError(f"bad SQL alias {alias!r}")
    problems = rule_problems(list(rules or []), match)
    if problems:
        raise ValidationFailed("invalid segment rules: " + "; ".join(problems))
    if not rules:
        return "true", []
    parts, params = [], []
    for rule in rules:
        sql, par = _rule_sql(rule, alias, now, dialect)
        parts.append(sql)
        params += par
    joiner = " AND " if match == "all" else " OR "
    return "coalesce(" + joiner.join(parts) + ", false)", params


def segment_spec(db: Database, name: str) -> dict:
    text = db.scalar("SELECT spec FROM objects WHERE kind = 'Segment' AND name = ?", (name,))
    if text is None:
        raise NotFound(f"no segment named {name!r} (see 'campctl get segments')")
    return json.loads(text)


def segment_where(
    db: Database,
    name: str,
    *,
    now: datetime,
    alias: str = "c",
    sample_key: str | None = None,
    sample: bool = True,
) -> tuple[str, list]:
    """The condition of a stored segment, with its `limit_percent` sample (key: `sample_key`,
    else the segment's name) unless `sample=False`."""
    spec = segment_spec(db, name)
    problems = rule_problems(spec.get("rules") or [], spec.get("match", "all"),
                             spec.get("limit_percent"))
    if problems:
        raise ValidationFailed(f"segment {name} is invalid: " + "; ".join(problems))
    sql, params = rules_where(spec.get("rules") or [], spec.get("match", "all"), now=now,
                              alias=alias, dialect=db.d)
    percent = spec.get("limit_percent")
    if sample and percent is not None and percent < 100:
        s_sql, s_par = _sample_sql(sample_key or f"segment:{name}", percent, alias)
        sql, params = f"({sql} AND {s_sql})", params + s_par
    return sql, params


@dataclass(frozen=True, slots=True)
class AudienceQuery:
    """Who an audience selects, built once and compiled by `audience_where` / `audience_query`.

    `audience` is `{segment: NAME}`, `{groups: [..]}` or `{all: true}` (with an optional
    `include_opted_out: true` inside it). Contacts opted out of `message_type` (or of `all`)
    are left out unless `include_opted_out`; no message type, no opt-outs. `sample_key` keys a
    segment's `limit_percent` sample (None: `"segment:<name>"`). `extra` is one more condition
    on contacts row `c` (a creator's sending rights), positional parameters in order.
    """

    audience: Mapping[str, Any]
    message_type: str | None = None
    include_opted_out: bool = False
    sample_key: str | None = None
    extra: tuple[str, Sequence[Any]] | None = None


def audience_where(
    db: Database, query: AudienceQuery, *, now: datetime, alias: str = "c"
) -> tuple[str, list]:
    """The boolean condition behind `audience_query`, for callers that add their own filters
    (`extra`, a condition on row `c`, needs `alias="c"`)."""
    audience = query.audience
    if not isinstance(audience, Mapping):
        raise ValidationFailed("audience must be {segment: NAME}, {groups: [..]} or {all: true}")
    forms = [k for k in ("segment", "groups", "all") if k in audience]
    unknown = sorted(set(audience) - {"segment", "groups", "all", "include_opted_out"})
    if len(forms) != 1 or unknown:
        raise ValidationFailed(
            "audience must have exactly one of segment, groups or all (plus include_opted_out)"
        )
    if query.extra is not None and alias != "c":
        raise ValueError("an audience's extra condition is written for contacts row c")
    if "segment" in audience:
        sql, params = segment_where(db, audience["segment"], now=now, alias=alias,
                                    sample_key=query.sample_key)
    elif "groups" in audience:
        groups = audience["groups"]
        if isinstance(groups, str):
            groups = [groups]
        if not groups or not all(_text(g) for g in groups):
            raise ValidationFailed("audience groups must be a non-empty list of group names")
        sql = (
            f"EXISTS (SELECT 1 FROM contact_groups g WHERE g.contact_id = {alias}.id "
            f"AND g.grp IN ({', '.join('?' * len(groups))}))"
        )
        params = list(groups)
    else:
        if audience["all"] is not True:
            raise ValidationFailed("audience all must be true")
        sql, params = "true", []
    message_type = query.message_type
    if message_type and not (query.include_opted_out
                             or audience.get("include_opted_out") is True):
        # A contact opted out of "all" refuses every message type. NOT IN builds the (small)
        # set of opted-out contacts once per statement instead of probing per contact.
        sql = (
            f"{sql} AND {alias}.id NOT IN (SELECT o.contact_id FROM contact_optouts o"
            " WHERE o.message_type IN (?, 'all'))"
        )
        params = [*params, message_type]
    if query.extra is not None:
        sql = f"({sql}) AND ({query.extra[0]})"
        params = [*params, *query.extra[1]]
    return sql, params


def audience_query(db: Database, query: AudienceQuery, *, now: datetime) -> tuple[str, list]:
    """`SELECT contact_id` of an audience (qmark parameters, in order), to embed in set-based
    INSERTs."""
    where, params = audience_where(db, query, now=now)
    return f"SELECT c.id AS contact_id FROM contacts c WHERE {where}", params


def count_query(db: Database, sql: str, params: Sequence) -> int:
    """How many rows a `SELECT contact_id` query (audience_query) yields."""
    return db.scalar(f"SELECT count(*) FROM ({sql}) AS src", list(params))


def contact_filter(
    db: Database, *, now: datetime, groups: Sequence[str] = (), segment: str | None = None
) -> tuple[str, list]:
    """The condition of `contacts list|count`: in any of `groups` and in `segment` (its
    limit_percent sample included)."""
    parts, params = [], []
    if groups:
        sql, par = audience_where(db, AudienceQuery({"groups": list(groups)}), now=now)
        parts.append(sql)
        params += par
    if segment:
        sql, par = segment_where(db, segment, now=now)
        parts.append(sql)
        params += par
    return (" AND ".join(f"({p})" for p in parts) or "true"), params
