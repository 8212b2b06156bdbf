"""`dst: {gap: shift|skip, fold: once|twice}` per schedule, across the 2027 transitions.

The expected instants are derived here from `zoneinfo` alone (a wall time with fold=0/1, and
03:00 local as the first instant after each zone's 02:00-03:00 gap), not from engine/cron.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campctl.definitions.models import DEFAULT_DST, DstPolicy
from campctl.engine import cron
from campctl.timeutil import iso_z

# (zone, the 2027 spring-forward day, the 2027 fall-back day); every gap is 02:00-03:00 local,
# the repeated hour is 02:00-03:00 in Paris and Sydney, 01:00-02:00 in New York.
TRANSITIONS = [
    ("Europe/Paris", date(2027, 3, 28), date(2027, 10, 31)),
    ("America/New_York", date(2027, 3, 14), date(2027, 11, 7)),
    ("Australia/Sydney", date(2027, 10, 3), date(2027, 4, 4)),
]
POLICIES = [DstPolicy(gap, fold) for gap, fold in itertools.product(("shift", "skip"),
                                                                     ("once", "twice"))]
# 01:30 and 02:30 local: in each zone one of them falls in the gap, one in the repeated hour.
CRON = "30 1,2 * * *"


def _wall(day: date, hour: int, minute: int, tz: str, fold: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(tz)).replace(
        fold=fold).astimezone(UTC)


def _exists(day: date, hour: int, minute: int, tz: str) -> bool:
    moment = _wall(day, hour, minute, tz)
    return moment.astimezone(ZoneInfo(tz)).replace(tzinfo=None) == datetime.combine(
        day, time(hour, minute))


def _ambiguous(day: date, hour: int, minute: int, tz: str) -> bool:
    return _exists(day, hour, minute, tz) and (
        _wall(day, hour, minute, tz, 0) != _wall(day, hour, minute, tz, 1))


def expected(tz: str, day: date, policy: DstPolicy) -> list[tuple[datetime, str | None]]:
    """The (instant, mark) of `30 1,2 * * *` on `day` under `policy`, from zoneinfo alone."""
    out: list[tuple[datetime, str | None]] = []
    for hour in (1, 2):
        if not _exists(day, hour, 30, tz):
            if policy.gap == "shift":
                out.append((_wall(day, 3, 0, tz), "shifted"))
        elif _ambiguous(day, hour, 30, tz) and policy.fold == "twice":
            out += [(_wall(day, hour, 30, tz, 0), "repeated"),
                    (_wall(day, hour, 30, tz, 1), "repeated")]
        else:
            out.append((_wall(day, hour, 30, tz, 0), None))
    return sorted(out, key=lambda item: item[0])


def _day_span(tz: str, day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0, 0), ZoneInfo(tz)).astimezone(UTC)
    return start, datetime.combine(day, time(12, 0), ZoneInfo(tz)).astimezone(UTC)


# --- engine/cron.py ------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{p.gap}-{p.fold}")
@pytest.mark.parametrize(("tz", "spring", "fall"), TRANSITIONS, ids=[t[0] for t in TRANSITIONS])
def test_fire_marks_follow_the_policy_on_both_transition_days(tz, spring, fall, policy):
    for day in (spring, fall):
        after, until = _day_span(tz, day)
        got = cron.fire_marks(CRON, tz, after=after, until=until, dst=policy)
        assert got == expected(tz, day, policy), (tz, day, policy)
        assert cron.fire_times(CRON, tz, after=after, until=until, dst=policy) == [
            m for m, _ in got]
        assert cron.count_fire_times(CRON, tz, after=after, until=until, dst=policy) == len(got)


def test_twice_keeps_utc_order_when_both_readings_interleave_with_other_slots():
    # Every 30 minutes through New York's repeated hour: 01:00 EDT, 01:30 EDT, 01:00 EST, ...
    got = cron.fire_marks("*/30 1 * * *", "America/New_York",
                          after=datetime(2027, 11, 7, 4, tzinfo=UTC),
                          until=datetime(2027, 11, 7, 8, tzinfo=UTC), dst=DstPolicy(fold="twice"))
    assert [(iso_z(m), mark) for m, mark in got] == [
        ("2027-11-07T05:00:00Z", "repeated"), ("2027-11-07T05:30:00Z", "repeated"),
        ("2027-11-07T06:00:00Z", "repeated"), ("2027-11-07T06:30:00Z", "repeated")]


def test_next_fire_walks_both_readings_one_after_the_other():
    twice = DstPolicy(fold="twice")
    first = cron.next_fire("30 1 * * *", "America/New_York",
                           after=datetime(2027, 11, 7, 0, tzinfo=UTC), dst=twice)
    second = cron.next_fire("30 1 * * *", "America/New_York", after=first, dst=twice)
    assert (iso_z(first), iso_z(second)) == ("2027-11-07T05:30:00Z", "2027-11-07T06:30:00Z")
    assert cron.mark_of("30 1 * * *", "America/New_York", second, twice) == "repeated"
    assert cron.mark_of("30 1 * * *", "America/New_York", second, DEFAULT_DST) is None


def test_skip_collapsing_slots_and_shift_dedup():
    # `0 2,3 * * *` on the spring-forward day: shift fires once at 03:00 (both slots there),
    # skip fires the real 03:00 only, unmarked.
    after, until = _day_span("America/New_York", date(2027, 3, 14))
    shift = cron.fire_marks("0 2,3 * * *", "America/New_York", after=after, until=until)
    skip = cron.fire_marks("0 2,3 * * *", "America/New_York", after=after, until=until,
                           dst=DstPolicy(gap="skip"))
    assert [(iso_z(m), k) for m, k in shift] == [("2027-03-14T07:00:00Z", "shifted")]
    assert [(iso_z(m), k) for m, k in skip] == [("2027-03-14T07:00:00Z", None)]


# --- the default policy is today's behaviour ------------------------------------------------------

def _reference_fire_times(expr, tz, after, until):
    """engine/cron.py's `_iter_fire` as it was before DST policies (the default's oracle)."""
    compiled = cron._parse(expr)
    zone_ = ZoneInfo(tz)
    start_wall = after.astimezone(zone_).replace(tzinfo=None) - timedelta(days=1)
    stop_wall = until.astimezone(zone_).replace(tzinfo=None) + timedelta(days=1)
    last = None
    out = []
    for wall in compiled.walls_after(start_wall, stop_wall):
        offset = cron._uniform_offset(wall.date(), zone_)
        moment = cron.place(wall, zone_) if offset is None else (wall - offset).replace(
            tzinfo=UTC)
        if moment <= after or moment == last:
            continue
        if moment > until:
            break
        last = moment
        out.append(moment)
    return out


ZONES = ["Europe/Paris", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
         "America/Santiago", "Asia/Kolkata", "UTC"]
# Random starts, and starts within three days before a 2027 transition (or of the day itself).
STARTS = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 1)),  # noqa: DTZ001
    st.builds(lambda day, hours: datetime.combine(day, time()) + timedelta(hours=hours),
              st.sampled_from([d for _, *days in TRANSITIONS for d in days]),
              st.integers(min_value=-72, max_value=12)))
EXPRS = ["30 2 * * *", "0 2,3 * * *", "*/30 * * * *", "0 * * * *", "15 1,2,3 * * 0",
         "*/20 0-4 * * *", "0 0 * * *", "45 23 L * *", "0 1 * * 0#1"]


@settings(max_examples=150, deadline=None)
@given(expr=st.sampled_from(EXPRS), tz=st.sampled_from(ZONES),
       start=STARTS,
       hours=st.integers(min_value=1, max_value=24 * 40))
def test_shift_once_equals_the_behaviour_before_policies(expr, tz, start, hours):
    after = start.replace(tzinfo=UTC)
    until = after + timedelta(hours=hours)
    reference = _reference_fire_times(expr, tz, after, until)
    assert cron.fire_times(expr, tz, after=after, until=until) == reference
    assert cron.fire_times(expr, tz, after=after, until=until,
                           dst=DstPolicy("shift", "once")) == reference
    marks = cron.fire_marks(expr, tz, after=after, until=until)
    assert [m for m, _ in marks] == reference
    assert {k for _, k in marks} <= {None, "shifted"}  # `once` never marks a repeat


@settings(max_examples=100, deadline=None)
@given(expr=st.sampled_from(EXPRS), tz=st.sampled_from(ZONES),
       start=STARTS,
       hours=st.integers(min_value=1, max_value=24 * 40),
       gap=st.sampled_from(("shift", "skip")), fold=st.sampled_from(("once", "twice")))
def test_every_policy_gives_strictly_increasing_distinct_instants(expr, tz, start, hours, gap,
                                                                   fold):
    after = start.replace(tzinfo=UTC)
    until = after + timedelta(hours=hours)
    policy = DstPolicy(gap, fold)
    got = cron.fire_times(expr, tz, after=after, until=until, dst=policy)
    assert all(a < b for a, b in itertools.pairwise(got))
    assert all(after < m <= until for m in got)
    default = set(cron.fire_times(expr, tz, after=after, until=until))
    # skip only removes shifted instants; twice only adds second readings.
    if gap == "skip" and fold == "once":
        assert set(got) <= default
    if gap == "shift" and fold == "twice":
        assert default <= set(got)


# --- definitions ---------------------------------------------------------------------------------

def test_dst_policy_model_defaults_and_fallbacks():
    assert DstPolicy.from_spec(None) == DEFAULT_DST == DstPolicy("shift", "once")
    assert DstPolicy.from_spec({"gap": "skip"}) == DstPolicy("skip", "once")
    assert DstPolicy.from_spec({"fold": "twice", "gap": "junk"}) == DstPolicy("shift", "twice")
