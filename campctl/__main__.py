"""Console entry point, with a fast path for a `campctl tick` that has nothing to do."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

# Options a plain tick may carry and still take the fast path (the others need the full CLI).
_FAST_VALUE_OPTIONS = {"--state", "--now", "-o", "--output", "--as"}


def _plain_tick(argv: list[str]) -> dict[str, str] | None:
    """The global options of `campctl [opts] tick [opts]` without tick options, else None."""
    opts: dict[str, str] = {}
    seen_tick = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _FAST_VALUE_OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            opts[name] = value
        elif arg == "tick" and not seen_tick:
            seen_tick = True
        else:
            return None  # --dry-run, --max-*, --debug, --help ...: the full CLI handles them
        i += 1
    return opts if seen_tick else None


def _fast_tick(argv: list[str]) -> int | None:
    """Answer a plain tick without Typer (sqlite3 alone when nothing is due); None means
    'run the full CLI'."""
    opts = _plain_tick(argv)
    if opts is None:
        return None
    output = opts.get("-o") or opts.get("--output") or "table"
    if output not in ("table", "json"):
        return None
    state = opts.get("--state") or os.environ.get("CAMPCTL_STATE") or "campctl.db"
    if "://" in state:  # only a URL pays for the import
        from campctl.store.location import is_pg_url

        if is_pg_url(state):
            return None  # PostgreSQL: the full tick (the probe reads an SQLite file)
    if not os.path.isfile(state) or os.path.getsize(state) == 0:
        return None
    now_text = opts["--now"] if "--now" in opts else (os.environ.get("CAMPCTL_NOW") or None)
    if now_text is not None and not now_text.strip():
        return None  # the full CLI refuses an empty --now (and ignores an empty CAMPCTL_NOW)
    from datetime import UTC, datetime

    from campctl.timeutil import iso_z, parse_instant

    try:
        now = parse_instant(now_text) if now_text else datetime.now(UTC).replace(microsecond=0)
    except ValueError:
        return None  # the full CLI reports it (exit 2)
    from campctl.store.schedules import probe_file

    stamp = iso_z(now)
    if stamp is None:  # pragma: no cover - never for a datetime
        return None
    reason = probe_file(state, stamp)
    if reason is not None:
        if reason in ("cannot open", "schema version differs", "probe failed"):
            return None
        return _direct_tick(state, now, output)
    from campctl.commands.tick_output import nothing_due, report_text

    sys.stdout.write(report_text(nothing_due(stamp), output, nothing_was_due=True))
    return 0


def _direct_tick(state: str, now: datetime, output: str) -> int:
    """A plain tick with work to do, run without building the Typer app (saves the CLI's
    import time on every busy minute); output and errors exactly as the Typer command's."""
    from campctl.commands.tick_output import exit_for, report_text

    environ = dict(os.environ)
    try:
        from campctl.engine.tick import tick
        from campctl.store.db import open_db

        busy = environ.get("CAMPCTL_BUSY_TIMEOUT", "5000")
        db = open_db(state, create=True, busy_timeout_ms=int(busy) if busy.isdigit() else 5000)
        try:
            report = tick(db, now=now, environ=environ)
            try:
                from campctl.engine.run_control import deliver_pending_notifications

                deliver_pending_notifications(db, now=now, environ=environ)
            except Exception as exc:  # a notification problem never fails the tick
                sys.stderr.write(f"warning: notifications not delivered: {exc}\n")
        finally:
            db.close()
    except Exception as exc:
        return exit_for(exc, debug=environ.get("CAMPCTL_DEBUG") == "1")
    for problem in report.warnings:
        sys.stderr.write(f"warning: {problem}\n")
    sys.stdout.write(report_text(report.as_json(), output))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "tick" in args:
        code = _fast_tick(args)
        if code is not None:
            return code
    from campctl.cli import run

    code = run(args)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return code


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
