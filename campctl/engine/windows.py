"""Daily sending windows ("HH:MM-HH:MM" in a local zone): is it open now, and when does it open.

A window is the half-open wall-clock interval [start, end); an end earlier than the start wraps
past midnight. Openness is judged on the local wall clock, so during a fall-back repeat a window
can open twice, and a window lying wholly inside a spring-forward gap does not open that day.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo

from campctl.timeutil import parse_window, zone


def _tz(tz: str | tzinfo) -> tzinfo:
    return zone(tz) if isinstance(tz, str) else tz


def _wall_open(start: time, end: time, wall: time) -> bool:
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def is_open(window: str | None, tz: str | tzinfo, at: datetime) -> bool:
    """True if the local wall time of `at` is inside `window` (no window: always open)."""
    if not window:
        return True
    start, end = parse_window(window)
    local = at.astimezone(_tz(tz))
    return _wall_open(start, end, local.time().replace(tzinfo=None))


def next_open(window: str | None, tz: str | tzinfo, at: datetime) -> datetime:
    """The first instant at or after `at` at which `window` is open (`at` itself when open).

    Candidates are the window's start on each local day (both readings of an ambiguous wall
    time, the first instant after a gap) and the zone's transition instants (a fall-back can
    move the wall clock back into the window); the earliest open one wins.
    """
    at = at.astimezone(UTC)
    if is_open(window, tz, at):
        return at
    assert window  # is_open is True without a window
    start, _end = parse_window(window)
    zone_ = _tz(tz)
    first_day = at.astimezone(zone_).date() - timedelta(days=1)
    for offset in range(0, 400, 3):
        candidates: list[datetime] = []
        for n in range(offset, offset + 4):
            day = first_day + timedelta(days=n)
            wall = datetime.combine(day, start)
            for fold in (0, 1):
                moment = wall.replace(tzinfo=zone_, fold=fold).astimezone(UTC)
                if moment.astimezone(zone_).replace(tzinfo=None) != wall:
                    moment = _after_gap(wall, zone_)
                candidates.append(moment)
            candidates.extend(_transitions(day, zone_))
        opened = [c for c in candidates if c >= at and is_open(window, zone_, c)]
        if opened:
            return min(opened)
    raise ValueError(f"window {window!r} never opens in {zone_}")  # pragma: no cover


def _after_gap(wall: datetime, tz: tzinfo) -> datetime:
    from campctl.engine.cron import place

    return place(wall, tz)


def _transitions(day, tz: tzinfo) -> list[datetime]:
    """UTC instants during local `day` (± a few hours) at which the zone's offset changes."""
    lo = datetime.combine(day, time(0)).replace(tzinfo=UTC) - timedelta(hours=15)
    hi = lo + timedelta(hours=54)
    if lo.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset():
        # Assumes at most one change per day and none that cancel out within 54 h.
        mid_a = lo + timedelta(hours=18)
        mid_b = lo + timedelta(hours=36)
        offs = {m.astimezone(tz).utcoffset() for m in (lo, mid_a, mid_b, hi)}
        if len(offs) == 1:
            return []
    found = []
    step = timedelta(hours=1)
    probe = lo
    while probe < hi:
        nxt = probe + step
        if probe.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            a, b = probe, nxt
            while b - a > timedelta(minutes=1):
                mid = (a + (b - a) / 2).replace(second=0, microsecond=0)
                if mid <= a:
                    mid = a + timedelta(minutes=1)
                if mid.astimezone(tz).utcoffset() == a.astimezone(tz).utcoffset():
                    a = mid
                else:
                    b = mid
            found.append(b)
        probe = nxt
    return found
