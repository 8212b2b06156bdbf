"""Cron schedules in a local time zone: validation, DST-safe fire times, catch-up policies.

The only module that imports croniter. Cron is evaluated on *naive local wall-clock* slots (so
croniter never sees a DST transition), and each slot is then placed on the UTC time line:

- a wall time that exists once maps to its instant;
- a wall time inside a spring-forward gap maps to the first instant after the gap;
- an ambiguous wall time (fall-back) maps to its first occurrence (fold=0), so every wall-clock
  slot fires once — `30 1 * * *` once on the fall-back day, `*/30 * * * *` both 01:00 and 01:30;
- two slots that land on the same instant (`0 2,3 * * *` on a spring-forward day) fire once.

That is the default DST policy (`dst: {gap: shift, fold: once}`); `gap: skip` drops a slot
inside a gap, `fold: twice` fires an ambiguous wall time at both of its instants (two distinct
occurrences, kept in UTC order with the slots around them).

The placement is monotone in the wall time, so the UTC results strictly increase; nothing depends
on the host's `TZ` (zones come from `zoneinfo`/`tzdata`).
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

from campctl.definitions.models import DEFAULT_DST, DstPolicy
from campctl.timeutil import zone

CATCHUP_POLICIES = ("latest", "all", "none")
# The DST marks of an occurrence (`preview`, `status`): a gap moved it, or a fold doubled it.
SHIFTED, REPEATED = "shifted", "repeated"
# How late an occurrence may be seen and still count as "on time" for catchup: none.
MISFIRE_GRACE = timedelta(minutes=5)
# An expression that finds no slot within this many years never fires (e.g. `0 0 31 2 *`).
NEVER_YEARS = 28
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = "minute hour day-of-month month day-of-week"
_RANDOM = re.compile(r"(?i)(H(\(.*\))?(/\d+)?|R(/\d+)?)")


class _Expr:
    """A parsed expression: expanded field sets for the fast path, or croniter for L and #."""

    __slots__ = ("dom", "dow", "exotic", "hours", "minutes", "months", "text")

    def __init__(self, text: str) -> None:
        from croniter import croniter

        self.text = text
        parsed = croniter(text)
        minutes, hours, dom, months, dow = parsed.expanded[:5]
        self.exotic = bool(parsed.nth_weekday_of_month) or "l" in dom
        self.minutes = tuple(sorted(int(m) for m in minutes)) if minutes != ["*"] else tuple(
            range(60)
        )
        self.hours = tuple(sorted(int(h) for h in hours)) if hours != ["*"] else tuple(range(24))
        self.dom = None if dom == ["*"] or self.exotic else frozenset(int(d) for d in dom)
        self.months = None if months == ["*"] else frozenset(int(m) for m in months)
        self.dow = None if dow == ["*"] else frozenset(int(d) % 7 for d in dow)

    def day_matches(self, day: date) -> bool:
        if self.months is not None and day.month not in self.months:
            return False
        if self.dom is None and self.dow is None:
            return True
        weekday = (day.weekday() + 1) % 7  # cron: Sunday = 0
        if self.dom is None:
            return weekday in self.dow  # type: ignore[operator]
        if self.dow is None:
            return day.day in self.dom
        return day.day in self.dom or weekday in self.dow  # both restricted: either (Vixie cron)

    def walls_after(self, start: datetime, stop: datetime) -> Iterator[datetime]:
        """Naive wall-clock slots strictly after `start`, up to `stop` (both naive)."""
        if self.exotic:
            yield from self._croniter_walls(start, stop)
            return
        day = start.date()
        last_day = stop.date()
        one = timedelta(days=1)
        while day <= last_day:
            if self.months is not None and day.month not in self.months:
                # Jump to the first day of the next month.
                day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
                continue
            if self.day_matches(day):
                y, mo, d = day.year, day.month, day.day
                for h in self.hours:
                    for m in self.minutes:
                        wall = datetime(y, mo, d, h, m)  # noqa: DTZ001 - a naive wall time on purpose
                        if wall <= start:
                            continue
                        if wall > stop:
                            return
                        yield wall
            day += one

    def _croniter_walls(self, start: datetime, stop: datetime) -> Iterator[datetime]:
        from croniter import CroniterBadDateError, croniter

        it = croniter(self.text, start.replace(second=0, microsecond=0),
                      max_years_between_matches=NEVER_YEARS)
        while True:
            try:
                wall = it.get_next(datetime)
            except CroniterBadDateError:
                return
            if wall > stop:
                return
            if wall > start:
                yield wall


@lru_cache(maxsize=512)
def _parse(expr: str) -> _Expr:
    problem = validate_cron(expr)
    if problem:
        raise ValueError(problem)
    return _compile(expr)


def _normalise(expr: str) -> str:
    text = " ".join(str(expr).split())
    return _ALIASES.get(text.lower(), text)


@lru_cache(maxsize=512)
def _compile(expr: str) -> _Expr:
    return _Expr(_normalise(expr))


def validate_cron(expr: str) -> str | None:
    """None if `expr` is a usable 5-field cron expression, else a one-line message saying why."""
    if not isinstance(expr, str) or not expr.strip():
        return "empty cron expression: use 5 fields, e.g. \"0 9 * * *\""
    text = _normalise(expr)
    fields = text.split()
    if len(fields) != 5:
        return (
            f"cron expression {expr!r} has {len(fields)} fields; use 5 ({_FIELDS}), "
            "e.g. \"0 9 * * *\""
        )
    if any(_RANDOM.fullmatch(f) for f in fields):
        return f"cron expression {expr!r}: random or hashed fields (H, R) are not supported"
    try:
        from croniter import CroniterError

        compiled = _compile(expr)
    except (CroniterError, ValueError, KeyError, IndexError, TypeError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        return f"invalid cron expression {expr!r}: {detail} (fields: {_FIELDS})"
    start = datetime(2001, 1, 1)  # noqa: DTZ001 - wall-clock search, no zone involved
    stop = start.replace(year=2001 + NEVER_YEARS)
    if next(compiled.walls_after(start, stop), None) is None:
        return (
            f"cron expression {expr!r} never fires (no matching date in {NEVER_YEARS} years, "
            "e.g. 31 February); check the day-of-month and month fields"
        )
    return None


def _tz(tz: str | tzinfo) -> tzinfo:
    return zone(tz) if isinstance(tz, str) else tz


def place(wall: datetime, tz: str | tzinfo) -> datetime:
    """A naive local wall time → its UTC instant (gap: first instant after it; fold: the first)."""
    zone_ = _tz(tz)
    aware = wall.replace(tzinfo=zone_, fold=0)
    moment = aware.astimezone(UTC)
    if moment.astimezone(zone_).replace(tzinfo=None) == wall:
        return moment
    return _gap_end(wall, zone_)


def _gap_end(wall: datetime, tz: tzinfo) -> datetime:
    """The transition instant that ends the gap `wall` falls in (binary search on minutes)."""
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)  # pre-gap offset: after the jump
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # post-gap offset: before the jump
    if early > late:
        early, late = late, early
    after_offset = late.astimezone(tz).utcoffset()
    lo, hi = early, late
    step = timedelta(minutes=1)
    while hi - lo > step:
        mid = lo + (hi - lo) // 2
        mid = mid.replace(second=0, microsecond=0)
        if mid <= lo:
            mid = lo + step
        if mid.astimezone(tz).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid
    return hi


@lru_cache(maxsize=4096)  # listings evaluate many schedules in few zones on few days
def _uniform_offset(day: date, tz: tzinfo) -> timedelta | None:
    """The zone's UTC offset if it is the same all `day` long (no gap, no repeat), else None."""
    start = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - wall time, zone added below
    probes = (start, start + timedelta(hours=12), start + timedelta(days=1))
    offsets = {p.replace(tzinfo=tz, fold=f).utcoffset() for p in probes for f in (0, 1)}
    return offsets.pop() if len(offsets) == 1 else None


def _iter_fire(expr: str, tz: str | tzinfo, after: datetime, until: datetime,
               dst: DstPolicy = DEFAULT_DST) -> Iterator[tuple[datetime, str | None]]:
    """(instant, mark) of each occurrence in (after, until], strictly increasing; `mark` is
    SHIFTED for an occurrence a spring-forward gap moved, REPEATED for one of the two readings
    of an ambiguous wall time that `fold: twice` fires, else None."""
    compiled = _parse(expr)
    zone_ = _tz(tz)
    after = after.astimezone(UTC)
    until = until.astimezone(UTC)
    # Start a day early: the UTC placement of a wall slot may be later than its naive reading.
    start_wall = after.astimezone(zone_).replace(tzinfo=None) - timedelta(days=1)
    stop_wall = until.astimezone(zone_).replace(tzinfo=None) + timedelta(days=1)
    last: datetime | None = None
    day_offsets: dict[date, timedelta | None] = {}
    # Second readings (fold: twice) wait here until no later wall slot can come before them.
    pending: list[tuple[datetime, int, str | None]] = []  # (instant, order, mark)
    order = itertools.count()
    for wall in compiled.walls_after(start_wall, stop_wall):
        day = wall.date()
        if day not in day_offsets:
            day_offsets[day] = _uniform_offset(day, zone_)
        offset = day_offsets[day]
        if offset is not None and not pending:  # the fast path: no transition that day
            moment = (wall - offset).replace(tzinfo=UTC)
            if moment <= after or moment == last:
                continue
            if moment > until:
                return
            last = moment
            yield moment, None
            continue
        if offset is not None:
            floor = (wall - offset).replace(tzinfo=UTC)
            candidates: list[tuple[datetime, str | None]] = [(floor, None)]
        else:  # a transition day: place each slot by the DST rules and the policy
            floor, candidates = _placements(wall, zone_, dst)
        for moment, mark in candidates:
            heapq.heappush(pending, (moment, next(order), mark))
        # Every later slot is placed at or after `floor` (placement is monotone).
        while pending and pending[0][0] <= floor:
            moment, _, mark = heapq.heappop(pending)
            if moment <= after or moment == last:
                continue
            if moment > until:
                return
            last = moment
            yield moment, mark
    while pending:
        moment, _, mark = heapq.heappop(pending)
        if moment <= after or moment == last:
            continue
        if moment > until:
            return
        last = moment
        yield moment, mark


def _placements(wall: datetime, tz: tzinfo,
                dst: DstPolicy) -> tuple[datetime, list[tuple[datetime, str | None]]]:
    """(the slot's default placement, the (instant, mark) pairs it fires at under `dst`)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) != wall:  # inside a spring-forward gap
        moved = _gap_end(wall, tz)
        return moved, ([] if dst.gap == "skip" else [(moved, SHIFTED)])
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if second != first and second.astimezone(tz).replace(tzinfo=None) == wall:
        if dst.fold == "twice":  # an ambiguous wall time: both readings
            early, late = sorted((first, second))
            return early, [(early, REPEATED), (late, REPEATED)]
    return first, [(first, None)]


def fire_times(
    expr: str, tz: str | tzinfo, *, after: datetime, until: datetime, limit: int | None = None,
    dst: DstPolicy = DEFAULT_DST,
) -> list[datetime]:
    """UTC instants at which `expr` fires in zone `tz`: strictly after `after`, at most `until`.

    Strictly increasing, no duplicates. `limit` caps the number returned (the earliest ones).
    `dst`: what a daylight saving time change does to a slot (default: shift, once).
    """
    return [moment for moment, _ in fire_marks(expr, tz, after=after, until=until, limit=limit,
                                               dst=dst)]


def fire_marks(
    expr: str, tz: str | tzinfo, *, after: datetime, until: datetime, limit: int | None = None,
    dst: DstPolicy = DEFAULT_DST,
) -> list[tuple[datetime, str | None]]:
    """As fire_times, each instant with its DST mark: SHIFTED, REPEATED or None."""
    out: list[tuple[datetime, str | None]] = []
    for item in _iter_fire(expr, tz, after, until, dst):
        out.append(item)
        if limit is not None and len(out) >= limit:
            break
    return out


def mark_of(expr: str, tz: str | tzinfo, moment: datetime,
            dst: DstPolicy = DEFAULT_DST) -> str | None:
    """The DST mark of the occurrence at `moment` (None when it is not one, or unmarked)."""
    zone_ = _tz(tz)
    if _uniform_offset(moment.astimezone(zone_).date(), zone_) is not None:
        return None  # no transition that local day: nothing moved or doubled
    found = fire_marks(expr, tz, after=moment - timedelta(seconds=1), until=moment, limit=1,
                       dst=dst)
    return found[0][1] if found and found[0][0] == moment else None


def count_fire_times(expr: str, tz: str | tzinfo, *, after: datetime, until: datetime,
                     dst: DstPolicy = DEFAULT_DST) -> int:
    """How many instants fire_times would return, without building the list."""
    return sum(1 for _ in _iter_fire(expr, tz, after, until, dst))


@lru_cache(maxsize=1024)  # a listing asks once per object; objects share schedules and zones
def next_fire(expr: str, tz: str | tzinfo, *, after: datetime,
              dst: DstPolicy = DEFAULT_DST) -> datetime | None:
    """The first fire time strictly after `after`, or None if there is none within ~28 years."""
    horizon = after + timedelta(days=366 * (NEVER_YEARS + 1))
    found = next(_iter_fire(expr, tz, after, horizon, dst), None)
    return found[0] if found is not None else None


def apply_catchup(
    due: list[datetime], policy: str | None, *, now: datetime, grace: timedelta = MISFIRE_GRACE
) -> tuple[list[datetime], list[tuple[datetime, str]]]:
    """Split due occurrences (scheduled at or before `now`) into those to fire and those skipped.

    - `latest` (default): fire only the most recent due occurrence; skip the older ones.
    - `all`: fire every due occurrence, oldest first.
    - `none`: fire the most recent one only if it is at most `grace` late; skip the rest.
    Occurrences later than `now` are not due and are ignored. `skipped` holds
    `(scheduled_at, reason)` pairs so that every skip can be recorded.
    """
    policy = policy or "latest"
    if policy not in CATCHUP_POLICIES:
        raise ValueError(f"unknown catchup policy {policy!r}: use latest, all or none")
    slots = sorted({d for d in due if d <= now})
    if not slots:
        return [], []
    if policy == "all":
        return slots, []
    latest = slots[-1]
    older = slots[:-1]
    if policy == "latest":
        reason = f"missed: catchup latest fires only the most recent occurrence ({_z(latest)})"
        return [latest], [(s, reason) for s in older]
    skipped = [(s, "missed: catchup none skips occurrences missed while nothing ticked")
               for s in older]
    if now - latest <= grace:
        return [latest], skipped
    late = f"missed: catchup none, {_human(now - latest)} late (grace {_human(grace)})"
    return [], [*skipped, (latest, late)]


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
