"""Codes of validation problems: one stable id and level per kind of problem, like lint rules.

Scripts and CI filter on the code (`campctl validate -o json | jq '.errors[].code'`), so a code
is never reused for another problem and never renumbered; a retired code stays out of the list.
Families: CC0xx files and YAML syntax, CC1xx fields, CC2xx names and references, CC3xx schedules
and time, CC4xx templates, CC9xx warnings. The README table is generated from `CODES`
(`markdown_table()`) and a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Code:
    code: str
    level: str
    summary: str


FAMILIES = {
    "CC0": "files and YAML syntax",
    "CC1": "fields",
    "CC2": "names and references",
    "CC3": "schedules and time",
    "CC4": "templates",
    "CC9": "warnings",
}

CODES: tuple[Code, ...] = (
    Code("CC001", ERROR, "a path given on the command line does not exist"),
    Code("CC002", ERROR, "a directory holds no *.yaml or *.yml file"),
    Code("CC003", ERROR, "a file cannot be read"),
    Code("CC004", ERROR, "a file is not UTF-8 text"),
    Code("CC005", ERROR, "invalid YAML syntax"),
    Code("CC006", ERROR, "a file larger than 2 MB"),
    Code("CC007", ERROR, "a YAML tag outside safe YAML (`!!python/*`, custom `!tags`, ...)"),
    Code("CC008", ERROR, "a value that does not fit its explicit standard tag (`!!int abc`)"),
    Code("CC009", ERROR, "a document larger than 20,000 nodes after expanding aliases"),
    Code("CC010", ERROR, "a document nested deeper than 64 levels, or a recursive alias"),
    Code("CC011", ERROR, "a mapping key that is not a plain string"),
    Code("CC012", ERROR, "a duplicate key in a mapping"),
    Code("CC013", ERROR, "a merge key (`<<`) that is not given mappings"),
    Code("CC014", ERROR, "a document that is not a mapping with kind and name"),
    Code("CC100", ERROR, "a field problem without a more specific code"),
    Code("CC101", ERROR, "an unknown key"),
    Code("CC102", ERROR, "a key that belongs to another type or variant"),
    Code("CC103", ERROR, "a missing required key"),
    Code("CC104", ERROR, "a value of the wrong type (a string, list or mapping was expected)"),
    Code("CC105", ERROR, "a value that is not true or false"),
    Code("CC106", ERROR, "a value that is not a number (or not an integer)"),
    Code("CC107", ERROR, "an empty string where text is required"),
    Code("CC108", ERROR, "a value that is not one of the allowed words"),
    Code("CC109", ERROR, "a number out of its range"),
    Code("CC110", ERROR, "a list with too few items"),
    Code("CC111", ERROR, "none, or more than one, of mutually exclusive keys or forms"),
    Code("CC112", ERROR, "an unknown kind, or an unknown type of a channel, schedule or launch"),
    Code("CC113", ERROR, "a segment rule of the wrong form"),
    Code("CC114", ERROR, "a segment rule value that does not match its operator"),
    Code("CC115", ERROR, "an audience `all` that is not true"),
    Code("CC116", ERROR, "an invalid group, event or message type name"),
    Code("CC117", ERROR, "an invalid contact attribute name"),
    Code("CC118", ERROR, "a rate that is not N/s, N/m or N/h"),
    Code("CC119", ERROR, "a URL that is not http:// or https://"),
    Code("CC120", ERROR, "a malformed `${VAR}` reference"),
    Code("CC121", ERROR, "a literal secret where a `${VAR}` reference is required"),
    Code("CC201", ERROR, "an invalid object or step name"),
    Code("CC202", ERROR, "the same kind and name defined twice"),
    Code("CC203", ERROR, "an unknown segment or channel"),
    Code("CC204", ERROR, "a plan stage naming an unknown campaign"),
    Code("CC205", ERROR, "a plan stage naming a stage the campaign does not have"),
    Code("CC206", ERROR, "a plan stage whose campaign stage is not `controlled_by_plan: true`"),
    Code("CC207", ERROR, "a duplicate stage name in a campaign"),
    Code("CC208", ERROR, "the same campaign stage listed twice in a plan"),
    Code("CC209", ERROR, "the reserved step id `end`"),
    Code("CC210", ERROR, "a duplicate step id"),
    Code("CC211", ERROR, "a `next`, `then` or `else` naming an unknown step"),
    Code("CC212", ERROR, "a step key that does not apply to the step's action"),
    Code("CC213", ERROR, "an unreachable step"),
    Code("CC214", ERROR, "a message type listed twice in a frequency cap"),
    Code("CC301", ERROR, "an invalid datetime"),
    Code("CC302", ERROR, "an invalid duration"),
    Code("CC303", ERROR, "an invalid daily window"),
    Code("CC304", ERROR, "an unknown timezone"),
    Code("CC305", ERROR, "an invalid cron expression, or one that never fires"),
    Code("CC306", ERROR, "a one-off campaign without a schedule"),
    Code("CC307", ERROR, "`queue.before_send` without `send: {at: ...}`"),
    Code("CC308", ERROR, "schedule instants out of order (sending before building)"),
    Code("CC309", ERROR, "a schedule `until` not after its start"),
    Code("CC310", ERROR, "a schedule instant at or after `closes_at`"),
    Code("CC311", ERROR, "scenario steps that loop without a wait"),
    Code("CC312", ERROR, "`schedule.window_timezone` without `schedule.window`"),
    Code("CC401", ERROR, "a template syntax error"),
    Code("CC402", ERROR, "a template that fails its test render with a synthetic contact"),
    Code("CC901", WARNING, "queue builds held until a later `send_start` (one message per "
                           "build to each contact)"),
)

BY_CODE: dict[str, Code] = {c.code: c for c in CODES}
FALLBACK = "CC100"


def markdown_table() -> str:
    """The README table of codes (a test compares it with the README)."""
    lines = ["| code | level | problem |", "|---|---|---|"]
    family = None
    for c in CODES:
        if c.code[:3] != family:
            family = c.code[:3]
            lines.append(f"| **{family}xx** | | **{FAMILIES[family]}** |")
        lines.append(f"| `{c.code}` | {c.level} | {c.summary} |")
    return "\n".join(lines)
