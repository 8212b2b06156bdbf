"""Console entry point, with a fast path for a `campctl tick` that has nothing to do."""

from __future__ import annotations

import os
import sys

# Options a plain tick may carry and still take the fast path (the others need the full CLI).
_FAST_VALUE_OPTIONS = {"--state", "--now", "-o", "--output", "--as"}


def _plain_tick(argv: list[str]) -> dict | None:
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
    if not os.path.isfile(state) or os.path.getsize(state) == 0:
        return None
    now_text = opts.get("--now") or os.environ.get("CAMPCTL_NOW")
    from datetime import UTC, datetime

    from campctl.timeutil import iso_z, parse_instant

    try:
        now = parse_instant(now_text) if now_text else datetime.now(UTC).replace(microsecond=0)
    except ValueError:
        return None
    from campctl.store.schedules import probe_file

    reason = probe_file(state, iso_z(now))
    if reason is not None:
        if reason in ("cannot open", "schema version differs", "probe failed"):
            return None
        return _direct_tick(state, now, output)
    stamp = iso_z(now)
    if output == "json":
        sys.stdout.write(
            '{\n  "now": "' + stamp + '",\n  "fired": 0,\n  "built": 0,\n  "sent": 0,\n'
            '  "failed": 0,\n  "cancelled": 0,\n  "skipped": 0,\n  "failed_objects": 0,\n'
            '  "object_failures": []\n}\n'
        )
    else:
        sys.stdout.write(
            f"tick {stamp}: fired 0, built 0, sent 0, failed 0, cancelled 0 (nothing due)\n"
        )
    return 0


def _direct_tick(state: str, now, output: str) -> int:
    """A plain tick with work to do, run without building the Typer app (saves the CLI's
    import time on every busy minute); errors are reported as the CLI would."""
    import sqlite3

    from campctl.errors import CampctlError

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
    except CampctlError as exc:
        sys.stderr.write(f"error: {' '.join(exc.message.split())}\n")
        return exc.exit_code
    except sqlite3.DatabaseError as exc:
        sys.stderr.write(f"error: state file problem: {exc}\n")
        return 4
    except Exception as exc:
        if environ.get("CAMPCTL_DEBUG") == "1":
            raise
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} "
                         "(rerun with --debug for details)\n")
        return 1
    for problem in report.warnings:
        sys.stderr.write(f"warning: {problem}\n")
    if output == "json":
        import json

        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        sys.stdout.write(
            f"tick {report.as_json()['now']}: fired {report.fired}, built {report.built}, sent "
            f"{report.sent}, failed {report.failed}, cancelled {report.cancelled}"
            + (f", skipped {report.skipped}" if report.skipped else "")
            + (f", failed objects {len(report.object_failures)}" if report.object_failures
               else "") + "\n")
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
