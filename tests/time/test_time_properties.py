"""Hypothesis properties of cron fire times and daily windows across zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from croniter import croniter  # test oracle only; the package imports it in engine/cron.py alone
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from campctl.engine.cron import fire_times, validate_cron
from campctl.engine.windows import is_open, next_open

ZONES = ["Australia/Sydney", "Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata",
         "Australia/Lord_Howe"]
PROPS = settings(max_examples=80, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _field(low: int, high: int):
    value = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.tuples(value, value).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.integers(2, max(2, (high - low) // 2)).map(lambda k: f"*/{k}"),
        st.lists(value, min_size=2, max_size=4, unique=True).map(
            lambda xs: ",".join(map(str, sorted(xs)))),
    )


crons = st.tuples(
    _field(0, 59), _field(0, 23),
    st.one_of(st.just("*"), st.just("*"), _field(1, 31)),
    st.one_of(st.just("*"), st.just("*"), _field(1, 12)),
    st.one_of(st.just("*"), st.just("*"), _field(0, 6)),
).map(" ".join)

# Starts biased towards the months that hold DST transitions in the zones above.
starts = st.builds(
    lambda year, month, day, minute: datetime(year, month, 1, tzinfo=UTC)
    + timedelta(days=day, minutes=minute),
    st.integers(2000, 2037),
    st.sampled_from([3, 4, 10, 11, 1, 6]),
    st.integers(0, 30),
    st.integers(0, 24 * 60),
)


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    return moment.astimezone(zone).utcoffset()  # type: ignore[return-value]


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


@PROPS
@given(expr=crons, tz=st.sampled_from(ZONES), start=starts, days=st.integers(1, 12))
def test_cron_slots_increase_match_and_cover(expr, tz, start, days):
    assume(validate_cron(expr) is None)
    zone = ZoneInfo(tz)
    until = start + timedelta(days=days)
    slots = fire_times(expr, tz, after=start, until=until, limit=3000)
    assume(len(slots) < 3000)
    # Strictly increasing UTC, so no duplicates; all inside (after, until].
    assert all(b > a for a, b in pairwise(slots))
    assert all(start < s <= until for s in slots)
    for slot in slots:
        local = slot.astimezone(zone).replace(tzinfo=None)
        if croniter.match(expr, local):
            continue
        # Otherwise it must be the first instant after a gap holding a matching wall time.
        assert _offset(slot - timedelta(seconds=1), zone) != _offset(slot, zone), (slot, local)
        gap = _offset(slot, zone) - _offset(slot - timedelta(seconds=1), zone)
        walls = [local - gap + timedelta(minutes=m) for m in range(int(gap.total_seconds() // 60))]
        assert any(croniter.match(expr, w) for w in walls), (slot, local)
    # Completeness: every matching wall-clock slot of the period is fired (at its instant, or at
    # the end of its gap); an ambiguous wall time at its first occurrence.
    wanted = set()
    it = croniter(expr, start.astimezone(zone).replace(tzinfo=None) - timedelta(days=1))
    while True:
        wall = it.get_next(datetime)
        if wall > until.astimezone(zone).replace(tzinfo=None) + timedelta(days=1):
            break
        if _exists(wall, zone):
            moment = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if start < moment <= until:
                wanted.add(moment)
    assert wanted <= set(slots)


@settings(max_examples=60, deadline=None)
@given(hour=st.integers(0, 23), minute=st.sampled_from([0, 15, 30, 59]),
       tz=st.sampled_from(ZONES), year=st.integers(2000, 2037))
def test_daily_cron_fires_once_per_local_day(hour, minute, tz, year):
    zone = ZoneInfo(tz)
    slots = fire_times(f"{minute} {hour} * * *", tz, after=datetime(year, 1, 1, tzinfo=UTC),
                       until=datetime(year + 1, 1, 1, tzinfo=UTC))
    days = [s.astimezone(zone).date() for s in slots]
    assert len(days) == len(set(days))
    assert len(days) >= 364 and (days[-1] - days[0]).days + 1 == len(days)


# --- windows ------------------------------------------------------------------------------------

windows = st.tuples(st.integers(0, 23), st.sampled_from([0, 10, 30, 45, 59]),
                    st.integers(0, 23), st.sampled_from([0, 15, 30, 50])).filter(
    lambda t: (t[0], t[1]) != (t[2], t[3])).map(
    lambda t: f"{t[0]:02d}:{t[1]:02d}-{t[2]:02d}:{t[3]:02d}")

# Instants near the DST days of the zones above, to the second.
window_ats = st.builds(
    lambda base, minutes, second: base + timedelta(minutes=minutes, seconds=second),
    st.sampled_from([datetime(2024, 3, 10, tzinfo=UTC), datetime(2024, 11, 3, tzinfo=UTC),
                     datetime(2024, 3, 31, tzinfo=UTC), datetime(2024, 10, 27, tzinfo=UTC),
                     datetime(2024, 4, 7, tzinfo=UTC), datetime(2024, 10, 6, tzinfo=UTC),
                     datetime(2031, 6, 15, tzinfo=UTC)]),
    st.integers(-1440, 2880),
    st.sampled_from([0, 0, 30]),
)


def _brute_next_open(window, tz, at):
    if is_open(window, tz, at):
        return at
    probe = at.replace(second=0) + timedelta(minutes=1)
    for _ in range(4 * 24 * 60):
        if is_open(window, tz, probe):
            return probe
        probe += timedelta(minutes=1)
    raise AssertionError("window never opened")


@settings(max_examples=150, deadline=None)
@given(window=windows, tz=st.sampled_from(ZONES), at=window_ats)
def test_next_open_is_the_first_open_minute(window, tz, at):
    opened = next_open(window, tz, at)
    assert opened >= at
    assert is_open(window, tz, opened)
    assert opened == _brute_next_open(window, tz, at)
