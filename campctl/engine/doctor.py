"""`campctl doctor`: health checks of a state, each a `Check` with what to do when it fails.

Everything is read-only. The clock (`now`) and the environment come from the command layer;
the time zone sources are read from this process's `zoneinfo` setup (the one ticks use too).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from campctl.channels.redact import variables_in
from campctl.store import doctor as store
from campctl.store.db import Database
from campctl.timeutil import from_db, iso_z

PROBLEM, WARNING, OK = "problem", "warning", "ok"
DEFAULT_TICK_GRACE = timedelta(minutes=10)
# Larger than any WAL a checkpointed state keeps (SQLite checkpoints at ~4 MiB): a WAL this size
# means checkpoints cannot finish (a reader that never ends) and every read walks it.
WAL_LIMIT = 64 * 1024 * 1024
# PostgreSQL: dead tuples in queue_items above this count and share of the live ones: a warning.
DEAD_TUPLES_MIN, DEAD_TUPLES_SHARE = 10_000, 0.5
TZ_HORIZON = timedelta(days=2 * 366)  # how far ahead two time zone rule sets are compared


@dataclass(frozen=True)
class Check:
    """One check: `severity` is ok, warning (told, exit 0) or problem (exit 1)."""

    name: str
    severity: str
    detail: str
    advice: str | None = None

    @property
    def ok(self) -> bool:
        return self.severity != PROBLEM

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "severity": self.severity,
                "detail": self.detail, "advice": self.advice}


@dataclass(frozen=True)
class DoctorInput:
    db: Database
    now: datetime
    environ: Mapping[str, str]
    tick_grace: timedelta = DEFAULT_TICK_GRACE


def run_checks(given: DoctorInput) -> list[Check]:
    from campctl.engine.run_control import NOTIFY_MAX_ATTEMPTS

    db, now = given.db, given.now
    checks = [
        _ticks(db, now, given.tick_grace),
        _unfinished_ticks(db, now, given.tick_grace),
        _claims(db, now),
        _sending_runs(db),
        _notifications(db, now, given.tick_grace, NOTIFY_MAX_ATTEMPTS),
        _failing_objects(db),
        _integrity(db),
        *_files(db),
        _channel_variables(db, given.environ),
        tzdata_check(store.object_zones(db), now=now),
    ]
    return checks


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} days"


def _later(*texts: str | None) -> str | None:
    present = [t for t in texts if t]
    return max(present) if present else None


# --- ticks --------------------------------------------------------------------------------------

def _ticks(db: Database, now: datetime, grace: timedelta) -> Check:
    marks = store.tick_marks(db)
    last = marks.finished
    seen = f"last full tick finished {last}" if last else "no full tick recorded"
    waiting = store.waiting_since(db, now=now)
    if waiting is None:
        return Check("ticks", OK, f"no work waits for a tick; {seen}")
    reason, since = waiting
    # Work that appeared after the last tick counts from its own time; work a tick already saw
    # counts from that tick: either way, this long without a tick while it waits.
    quiet_from = from_db(_later(since, last))
    assert quiet_from is not None
    quiet = now - quiet_from
    if quiet <= grace:
        return Check("ticks", OK, f"work waits since {since} ({reason}); {seen}")
    return Check(
        "ticks", PROBLEM,
        f"no tick for {_minutes(quiet)} while work waits ({reason}, since {since}); {seen}",
        "check that cron runs `campctl tick` every minute (or that `campctl daemon` is up) "
        "with this --state, then run `campctl tick` once")


def _unfinished_ticks(db: Database, now: datetime, grace: timedelta) -> Check:
    marks = store.tick_marks(db)
    if marks.started is None or (marks.finished is not None and marks.finished >= marks.started):
        return Check("unfinished ticks", OK, "every tick that started has finished")
    started = from_db(marks.started)
    assert started is not None
    if now - started <= grace:
        return Check("unfinished ticks", OK, f"a tick started at {marks.started} and may still "
                     "be running")
    last = marks.finished or "never"
    return Check(
        "unfinished ticks", PROBLEM,
        f"ticks have started since {marks.started} and none finished (last finished: {last}); "
        "a tick that crashes every time misses its occurrences",
        "run `campctl --debug tick` to see the error; `campctl log` shows what the last "
        "ticks did")


# --- delivery -----------------------------------------------------------------------------------

def _claims(db: Database, now: datetime) -> Check:
    claims = store.expired_claims(db, now=now)
    if not claims["count"]:
        return Check("claims", OK, "no queue item is claimed past its lease")
    handing = (f"; {claims['handing']} were being handed over (maybe sent: they are not sent "
               "again and are marked unsure)" if claims["handing"] else "")
    return Check(
        "claims", PROBLEM,
        f"{claims['count']} queue items still claimed after their lease ended "
        f"(oldest {claims['oldest']}){handing}",
        "a tick was killed while delivering: run `campctl tick`, which takes them again with "
        "the same message ids")


def _sending_runs(db: Database) -> Check:
    ids = store.idle_sending_runs(db)
    if not ids:
        return Check("sending runs", OK, "every run `sending` has messages left")
    shown = ", ".join(str(i) for i in ids[:10]) + (" ..." if len(ids) > 10 else "")
    return Check(
        "sending runs", PROBLEM,
        f"{len(ids)} runs `sending` with nothing left to deliver: {shown}",
        "run `campctl tick` (it completes them); if they stay, see `campctl describe run ID`")


def _notifications(db: Database, now: datetime, grace: timedelta, max_attempts: int) -> Check:
    from campctl.store.config import get_config

    found = store.undelivered_notifications(db, max_attempts=max_attempts)
    channel = get_config(db, "notify_channel")
    if not found["count"]:
        return Check("notifications", OK, "every operator notification was delivered")
    if not channel:
        return Check("notifications", OK, f"{found['count']} notifications kept for "
                     "`campctl notifications` (no notify_channel set)")
    oldest = from_db(found["oldest"])
    late = oldest is not None and now - oldest > grace
    if not found["given_up"] and not late:
        return Check("notifications", OK, f"{found['count']} notifications waiting for the "
                     "next tick")
    error = f"; last error: {found['error']}" if found["error"] else ""
    return Check(
        "notifications", PROBLEM,
        f"{found['count']} operator notifications undelivered through channel {channel} "
        f"(oldest {found['oldest']}, {found['given_up']} given up after {max_attempts} "
        f"attempts){error}",
        f"test the channel with `campctl channel test {channel} --to ADDRESS`; check "
        "`campctl config get notify_to`; `campctl notifications` lists them")


def _failing_objects(db: Database) -> Check:
    failing = store.object_failures(db)
    if not failing:
        return Check("failing objects", OK, "no object is set aside by the tick")
    first = failing[0]
    return Check(
        "failing objects", PROBLEM,
        f"{len(failing)} objects set aside by every tick, e.g. {first['kind']} {first['name']}: "
        f"{first['reason']}",
        "fix the definition or its data and apply it; `campctl log` shows each failure")


# --- the state itself ---------------------------------------------------------------------------

def _integrity(db: Database) -> Check:
    result = store.integrity(db)
    if not db.d.is_postgres:
        if result["ok"]:
            return Check("integrity", OK, f"SQLite quick_check: ok (schema version "
                         f"{result['version']})")
        # A quick_check row may hold several lines ("*** in database main ***\nPage 8: ..."):
        # the problem stays on one line.
        parts = [part for line in result["lines"] for part in line.splitlines() if part]
        return Check(
            "integrity", PROBLEM, "SQLite quick_check: " + "; ".join(parts),
            "stop cron and daemons, restore the latest `campctl backup`, or save what can be "
            "read with `campctl state copy` into a new state")
    detail = (f"PostgreSQL answers; schema version {result['version']}; queue_items "
              f"{result['live']} live, {result['dead']} dead tuples")
    if not result["ok"]:  # pragma: no cover - a server that answers but not `SELECT 1`
        return Check("integrity", PROBLEM, detail, "check the server's logs")
    if result["dead"] >= DEAD_TUPLES_MIN and result["dead"] > DEAD_TUPLES_SHARE * max(
            result["live"], 1):
        return Check("integrity", WARNING, detail + " (autovacuum is behind)",
                     "run VACUUM (ANALYZE) queue_items, or tune autovacuum for that table")
    return Check("integrity", OK, detail)


def _files(db: Database) -> list[Check]:
    if db.d.is_postgres:
        return [Check("file modes", OK, "PostgreSQL: no state file"),
                Check("wal size", OK, "PostgreSQL: WAL is the server's")]
    return [file_modes(db.path), wal_size(db.path)]


def state_files(path: Path) -> Iterator[Path]:
    for suffix in ("", "-wal", "-shm"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            yield candidate


def file_modes(path: Path) -> Check:
    loose = []
    for file in state_files(path):
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            loose.append((file, mode))
    if not loose:
        return Check("file modes", OK, f"{path} and its -wal/-shm are private (0600)")
    shown = ", ".join(f"{f} is {m:04o}" for f, m in loose)
    names = " ".join(str(f) for f, _ in loose)
    return Check("file modes", PROBLEM, f"{shown}: contacts' data readable by other users",
                 f"chmod 600 {names}")


def wal_size(path: Path) -> Check:
    wal = path.with_name(path.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    detail = f"{wal.name}: {size / 1048576:.1f} MiB"
    if size <= WAL_LIMIT:
        return Check("wal size", OK, detail)
    return Check(
        "wal size", PROBLEM, f"{detail} (over {WAL_LIMIT // 1048576} MiB: checkpoints cannot "
        "finish, every read walks it)",
        "end long-lived readers of the file (an open sqlite3 shell, a stuck process); the "
        "next tick's checkpoint then starts it again from the beginning")


# --- environment --------------------------------------------------------------------------------

def _channel_variables(db: Database, environ: Mapping[str, str]) -> Check:
    missing: list[str] = []
    for name, spec in store.channel_specs(db):
        absent = [v for v in variables_in(spec) if v not in environ]
        if absent:
            missing.append(f"channel {name} needs " + ", ".join("${" + v + "}" for v in absent))
    if not missing:
        return Check("channel variables", OK, "every ${VAR} of every channel is set in this "
                     "environment")
    return Check(
        "channel variables", PROBLEM, "; ".join(missing) + " (not set in this environment)",
        "export them where cron or the daemon runs campctl (doctor sees only its own "
        "environment)")


# --- time zone rules ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TzSource:
    """One copy of the IANA rules: the system's (a TZPATH folder) or the tzdata package."""

    label: str
    version: str | None
    open_zone: Any  # name -> binary file object, or None when this copy lacks the zone


def _system_source(tzpath: Sequence[str]) -> TzSource | None:
    for folder in tzpath:
        base = Path(folder)
        if not base.is_dir():
            continue
        version = None
        marker = base / "tzdata.zi"
        if marker.is_file():
            with marker.open(encoding="utf-8", errors="replace") as handle:
                first = handle.readline().strip()
            if first.startswith("# version "):
                version = first.removeprefix("# version ").strip()

        def open_zone(name: str, base: Path = base) -> Any:
            file = base / name
            return file.open("rb") if file.is_file() else None

        return TzSource(f"system {base}", version, open_zone)
    return None


def _package_source() -> TzSource | None:
    import importlib
    from importlib import resources

    try:  # the declared dependency; zoneinfo falls back to it (no type stubs: imported by name)
        tzdata = importlib.import_module("tzdata")
    except ImportError:
        return None

    def open_zone(name: str) -> Any:
        node: Any = resources.files("tzdata.zoneinfo")
        for part in name.split("/"):
            node = node.joinpath(part)
        return node.open("rb") if node.is_file() else None

    return TzSource("tzdata package", str(tzdata.IANA_VERSION), open_zone)


def _version_key(version: str | None) -> tuple[int, str]:
    match = re.fullmatch(r"(\d{4})([a-z]*)", version or "")
    return (int(match.group(1)), match.group(2)) if match else (0, "")


def _load(source: TzSource, name: str) -> Any:
    from zoneinfo import ZoneInfo

    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    handle = source.open_zone(name)
    if handle is None:
        return None
    with handle:
        return ZoneInfo.from_file(handle, key=name)


def first_difference(a: Any, b: Any, *, start: datetime, until: datetime) -> datetime | None:
    """The first hour in [start, until) at which two rule sets give different UTC offsets."""
    moment = start.replace(minute=0, second=0, microsecond=0)
    while moment < until:
        if moment.astimezone(a).utcoffset() != moment.astimezone(b).utcoffset():
            return moment
        moment += timedelta(hours=1)
    return None


def tzdata_check(zones: Sequence[str], *, now: datetime,
                 tzpath: Sequence[str] | None = None) -> Check:
    """Which copy of the rules the zones in use come from, and whether a newer copy on this
    machine (system files or the tzdata package) gives them other offsets within two years."""
    import zoneinfo

    system = _system_source(zoneinfo.TZPATH if tzpath is None else tzpath)
    package = _package_source()
    sources = [s for s in (system, package) if s is not None]
    versions = ", ".join(f"{s.label} {s.version or 'unknown version'}" for s in sources)
    if not zones:
        return Check("tzdata", OK, f"no definition names a time zone; rules: {versions}")
    stale: list[str] = []
    for name in zones:
        used = next((s for s in sources if _load(s, name) is not None), None)
        if used is None:
            continue  # an unknown zone: validation reports it
        newer = [s for s in sources if s is not used
                 and _version_key(s.version) > _version_key(used.version)]
        for other in newer:
            ours, theirs = _load(used, name), _load(other, name)
            if theirs is None:
                continue
            moment = first_difference(ours, theirs, start=now, until=now + TZ_HORIZON)
            if moment is not None:
                stale.append(f"{name}: {used.label} {used.version} differs from {other.label} "
                             f"{other.version} from {iso_z(moment)}")
    if not stale:
        return Check("tzdata", OK, f"{len(zones)} zones in use; rules: {versions}; no newer "
                     "copy on this machine changes their offsets in the next two years")
    shown = "; ".join(stale[:5]) + (f"; and {len(stale) - 5} more zones" if len(stale) > 5 else "")
    return Check(
        "tzdata", PROBLEM, shown,
        "update the system's time zone rules (e.g. apt-get install tzdata) or run campctl "
        "with PYTHONTZPATH set empty so that the tzdata package's rules are used")


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {"problems": sum(c.severity == PROBLEM for c in checks),
            "warnings": sum(c.severity == WARNING for c in checks),
            "checks": len(checks)}

