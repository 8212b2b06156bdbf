"""An independent model of the DST rules, for checking engine/cron.py and engine/windows.py.

It shares no code with them and uses no binary search, fold juggling or transition probes: it
walks the UTC time line minute by minute and reads the local wall clock with `zoneinfo`. The
rules it encodes are the documented ones:

- a wall time is placed at the first UTC minute whose local wall clock reads that time or later
  (an existing time: its instant; an ambiguous one: its first occurrence; one inside a gap: the
  first instant after the gap);
- a window is open when the local wall clock is inside [start, end) (wrapping past midnight
  when end < start); it next opens at the first minute at or after a given instant at which it
  is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# The windows of the tests stay open for at least this long each time they open, so that a scan
# in these steps cannot step over an opening.
COARSE = timedelta(minutes=5)
# No zone is further than 14 h from UTC: a wall time's instant lies within 15 h of its UTC
# reading.
REACH = timedelta(hours=15)


def wall_of(moment: datetime, tz: str | tzinfo) -> datetime:
    return moment.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz).replace(tzinfo=None)


def place(wall: datetime, tz: str | tzinfo) -> datetime:
    """The first UTC minute whose local wall clock reads `wall` or later."""
    # Hour steps while the wall clock is more than 3 h short (one step moves it by at most
    # 1 h plus a DST shift of at most 1 h, so this never overshoots), then minute steps.
    moment = (wall - REACH).replace(tzinfo=UTC)
    while wall_of(moment + HOUR, tz) < wall - 3 * HOUR:
        moment += HOUR
    end = (wall + REACH).replace(tzinfo=UTC)
    while moment <= end:
        if wall_of(moment, tz) >= wall:
            return moment
        moment += MINUTE
    raise AssertionError(f"no instant for {wall} in {tz}")


def fire_times(minutes: Iterable[int], hours: Iterable[int], tz: str | tzinfo,
               days: Iterable[date], *, after: datetime, until: datetime) -> list[datetime]:
    """Daily `M H * * *` slots on `days`, placed, deduplicated, in (after, until], sorted."""
    placed = {place(datetime.combine(day, time(h, m)), tz)
              for day in days for h in hours for m in minutes}
    return sorted(p for p in placed if after < p <= until)


def is_open(start: time, end: time, tz: str | tzinfo, at: datetime) -> bool:
    wall = wall_of(at, tz).time()
    if start < end:
        return start <= wall < end
    return not (end <= wall < start)


def next_open(start: time, end: time, tz: str | tzinfo, at: datetime, *, days: int = 3) -> datetime:
    if is_open(start, end, tz, at):
        return at
    moment = at.replace(second=0, microsecond=0) + MINUTE
    for _ in range(days * 24 * 60 // 5):
        if is_open(start, end, tz, moment + COARSE):
            break
        moment += COARSE
    for _ in range(6):  # the first open minute is at most 5 minutes on
        if is_open(start, end, tz, moment):
            return moment
        moment += MINUTE
    raise AssertionError(f"window {start}-{end} does not open within {days} days of {at}")
