"""How a tick's outcome is printed, and how an error becomes one `error:` line and an exit code:
shared by the Typer `tick`/`daemon` commands and the console script's fast path (so this module
imports nothing heavy: no typer, no rich, and json only when a report holds nested values)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Mapping
from typing import Any

from campctl.errors import CampctlError
from campctl.store.dialect import PgError

# The keys of a tick report in JSON, in order (models.TickReport.as_json).
REPORT_KEYS = ("now", "fired", "built", "sent", "failed", "cancelled", "skipped",
               "failed_objects", "object_failures")


def summary_line(data: Mapping[str, Any]) -> str:
    """`tick NOW: fired F, built B, sent S, failed X, cancelled C[, skipped K][, failed objects
    N]` from a report's JSON form (`TickReport.as_json()`)."""
    return (f"tick {data['now']}: fired {data['fired']}, built {data['built']}, sent "
            f"{data['sent']}, failed {data['failed']}, cancelled {data['cancelled']}"
            + (f", skipped {data['skipped']}" if data["skipped"] else "")
            + (f", failed objects {data['failed_objects']}" if data["failed_objects"] else ""))


def nothing_due(stamp: str) -> dict[str, Any]:
    """The report of a tick at `stamp` that had nothing to do."""
    return {"now": stamp, "fired": 0, "built": 0, "sent": 0, "failed": 0, "cancelled": 0,
            "skipped": 0, "failed_objects": 0, "object_failures": []}


def report_text(data: Mapping[str, Any], output: str, *, nothing_was_due: bool = False) -> str:
    """The whole stdout of `campctl tick` for a report in JSON form: indented JSON with `-o
    json`, else the summary line (marked when the indexed probe found nothing due)."""
    if output == "json":
        return json_text(data) + "\n"
    return summary_line(data) + (" (nothing due)" if nothing_was_due else "") + "\n"


def json_text(data: Mapping[str, Any]) -> str:
    """`json.dumps(data, indent=2, ensure_ascii=False)`, as every `-o json`; a flat report is
    written without importing json (the no-op tick's budget counts milliseconds)."""
    if any(isinstance(v, dict | list) and v for v in data.values()) or any(
            isinstance(v, str) and ('"' in v or "\\" in v or not (v.isascii() and v.isprintable()))
            for v in data.values()):
        import json

        return json.dumps(data, indent=2, ensure_ascii=False)
    lines = []
    for key, value in data.items():
        if isinstance(value, str):
            shown = f'"{value}"'
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        elif value is None:
            shown = "null"
        elif isinstance(value, list):
            shown = "[]"
        elif isinstance(value, dict):
            shown = "{}"
        else:
            shown = str(value)
        lines.append(f'  "{key}": {shown}')
    return "{\n" + ",\n".join(lines) + "\n}"


def error_line(message: str) -> str:
    """The one `error:` line of a failed command (a message on several lines is joined)."""
    first = " ".join(str(message).strip().splitlines()) or "unknown error"
    return f"error: {first}\n"


def exit_for(exc: BaseException, *, debug: bool) -> int:
    """Report an error the way every campctl command does and return its exit code: a domain
    error's own code, 4 for a state-file problem, 1 (with a hint to --debug) for a bug. With
    `debug`, the traceback is printed first."""
    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, CampctlError):
        message, code = exc.message, exc.exit_code
    elif isinstance(exc, sqlite3.DatabaseError | PgError):
        message, code = f"state file problem: {exc}", 4
    else:
        message = f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)"
        code = 1
    sys.stderr.write(error_line(message))
    sys.stderr.flush()
    return code
