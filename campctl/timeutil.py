"""Instants, durations, daily windows and local datetimes: parsing and the one database format."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

DB_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Instants outside these years are refused wherever they enter (--now, definitions): below 1000
# a year is not written with four digits (the text neither sorts nor parses back), and near 9999
# adding a duration overflows.
MIN_YEAR = 2000
MAX_YEAR = 2999
MAX_DURATION = timedelta(days=3650)
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_LOCAL_DT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def to_db(moment: datetime) -> str:
    """The one text form of an instant in the database: UTC, second precision, sortable."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware one is required")
    return moment.astimezone(UTC).strftime(DB_FORMAT)


def from_db(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, DB_FORMAT).replace(tzinfo=UTC)


def iso_z(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with Z, as JSON output wants it."""
    return None if moment is None else to_db(moment)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 timestamp with an offset or Z (the --now form); returns aware UTC."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 timestamp: {shorten(text)!r}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {shorten(text)!r} has no offset; add Z or +HH:MM")
    check_year(moment, text)
    return moment.astimezone(UTC).replace(microsecond=0)


def check_year(moment: datetime, text: str) -> None:
    """ValueError when the (local) year of `moment` is outside MIN_YEAR..MAX_YEAR."""
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValueError(f"{shorten(str(text))!r} is out of range: use a year from {MIN_YEAR} "
                         f"to {MAX_YEAR}")


def shorten(text: str, limit: int = 40) -> str:
    """A value as quoted in an error line: long input cut, so the line stays one line."""
    return text if len(text) <= limit else text[:limit] + "..."


CALENDAR_DAYS = {"d": 1, "w": 7}


def _duration_parts(text: str) -> tuple[int, str]:
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"bad duration {shorten(str(text))!r}: use a number and one of s, m, "
                         "h, d, w (e.g. 15m, 2d)")
    digits, unit = match.group(1), match.group(2)
    if len(digits) > 12 or int(digits) * _UNITS[unit] > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {shorten(str(text))!r} is too long: at most "
                         f"{MAX_DURATION.days}d")
    return int(digits), unit


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `6h`, `2d`, `1w` as elapsed time (a day is 24 h): for look-backs such as
    `within` and `--since`. Schedules use `shift`, where a day is a calendar day."""
    count, unit = _duration_parts(text)
    return timedelta(seconds=count * _UNITS[unit])


def shift(moment: datetime, text: str, tz: str | tzinfo, *, back: bool = False) -> datetime:
    """`moment` moved forward (or `back`) by the duration `text`, as a marketer means it.

    `s`, `m` and `h` are elapsed time. `d` and `w` are calendar days on the local wall clock of
    `tz`: `1d` is the same local time the next day, 23 or 25 hours away across a DST change. A
    wall time that does not exist moves to the first instant after the gap; an ambiguous one
    takes its first reading (as for every local time)."""
    count, unit = _duration_parts(text)
    if unit not in CALENDAR_DAYS:
        step = timedelta(seconds=count * _UNITS[unit])
        return moment - step if back else moment + step
    tz_ = zone(tz) if isinstance(tz, str) else tz
    days = timedelta(days=count * CALENDAR_DAYS[unit])
    wall = moment.astimezone(tz_).replace(tzinfo=None)
    try:
        wall = wall - days if back else wall + days
    except OverflowError as exc:
        raise ValueError(f"{moment.isoformat()} moved by {text} is out of range") from exc
    return localize(wall, tz_)


def parse_window(text: str) -> tuple[time, time]:
    """`HH:MM-HH:MM`; an end earlier than the start wraps past midnight."""
    match = _WINDOW.match(str(text).strip())
    if not match:
        raise ValueError(f"bad window {shorten(str(text))!r}: use \"HH:MM-HH:MM\" (quoted), "
                         "e.g. \"12:00-17:00\"")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if (h1, m1) == (h2, m2):
        raise ValueError(f"bad window {text!r}: start and end are the same")
    return time(h1, m1), time(h2, m2)


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """An IANA time zone; ValueError if unknown."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"unknown timezone {name!r}")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # here: a no-op tick never needs it

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError) as exc:
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as Europe/Paris") from exc


def parse_local_datetime(text: str, tz_name: str) -> datetime:
    """A datetime from YAML: with an offset/Z it is absolute; without, it is local to `tz_name`.

    A local time inside a DST gap moves to the first instant after the gap; an ambiguous one
    takes its first occurrence (fold=0).
    """
    raw = str(text).strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(
            f"bad datetime {shorten(str(text))!r}: use YYYY-MM-DDTHH:MM (local) or add an "
            "offset") from exc
    check_year(moment, text)
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    return localize(moment, zone(tz_name))


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """Naive local wall time → aware UTC, resolving DST gaps forward and folds to the first."""
    wall = naive.replace(tzinfo=None)
    if _exists(wall, tz):
        return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # Inside a gap: the first instant after it is the first whole minute that exists.
    probe = wall.replace(second=0, microsecond=0)
    for _ in range(24 * 60):
        probe += timedelta(minutes=1)
        if _exists(probe, tz):
            return probe.replace(tzinfo=tz, fold=0).astimezone(UTC)
    raise ValueError(f"cannot place local time {wall} in {tz}")


def _exists(wall: datetime, tz: tzinfo) -> bool:
    placed = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return placed.astimezone(tz).replace(tzinfo=None) == wall


def is_local_datetime_text(text: str) -> bool:
    return bool(_LOCAL_DT.match(str(text).strip()))


def local_date(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def display(moment: datetime | None, tz_name: str | None = None) -> str:
    """A table cell: local time in the object's zone with its abbreviation."""
    if moment is None:
        return "-"
    tz = zone(tz_name) if tz_name else UTC
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")
