"""Cron placement and windows in made-up zones that change at odd minutes, and (for windows)
twice within one day, against the minute-by-minute model: a search that happens to land on
whole hours, or a transition probe moved by some hours, no longer passes by luck."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import dst_oracle as oracle
import pytest
from made_zones import AFTERNOON, BLIP, EVENING_HOUR, NOON_HOUR, ODD_MINUTES

from campctl.engine import cron, windows


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("local", "expected"), [
    (datetime(2027, 3, 28, 2, 12), utc(2027, 3, 28, 1, 12)),   # noqa: DTZ001 - the last minute before
    (datetime(2027, 3, 28, 2, 13), utc(2027, 3, 28, 1, 13)),   # noqa: DTZ001 - in the gap
    (datetime(2027, 3, 28, 2, 50), utc(2027, 3, 28, 1, 13)),   # noqa: DTZ001
    (datetime(2027, 3, 28, 3, 12), utc(2027, 3, 28, 1, 13)),   # noqa: DTZ001
    (datetime(2027, 3, 28, 3, 13), utc(2027, 3, 28, 1, 13)),   # noqa: DTZ001 - the gap's end
    (datetime(2027, 3, 28, 3, 14), utc(2027, 3, 28, 1, 14)),   # noqa: DTZ001
    (datetime(2027, 10, 31, 1, 47), utc(2027, 10, 30, 23, 47)),  # noqa: DTZ001 - first of two
    (datetime(2027, 10, 31, 2, 46), utc(2027, 10, 31, 0, 46)),   # noqa: DTZ001
    (datetime(2027, 10, 31, 2, 47), utc(2027, 10, 31, 1, 47)),   # noqa: DTZ001 - once again
])
def test_place_at_odd_minutes(local, expected):
    assert cron.place(local, ODD_MINUTES) == expected
    assert oracle.place(local, ODD_MINUTES) == expected


@pytest.mark.parametrize(("zone", "day"), [
    (ODD_MINUTES, date(2027, 3, 28)), (ODD_MINUTES, date(2027, 10, 31)),
    (AFTERNOON, date(2027, 4, 10)), (AFTERNOON, date(2027, 9, 20)),
])
@pytest.mark.parametrize(("expr", "minutes", "hours"), [
    ("*/7 0-4 * * *", list(range(0, 60, 7)), [0, 1, 2, 3, 4]),
    ("13,47 * * * *", [13, 47], list(range(24))),
    ("50 2 * * *", [50], [2]),
    ("*/10 13-17 * * *", list(range(0, 60, 10)), [13, 14, 15, 16, 17]),
])
def test_fire_times_at_odd_minutes(zone, day, expr, minutes, hours):
    days = [day + timedelta(days=n) for n in (-1, 0, 1)]
    after, until = utc(day.year, day.month, day.day) - timedelta(hours=12), utc(
        day.year, day.month, day.day, 23)
    expected = oracle.fire_times(minutes, hours, zone, days, after=after, until=until)
    assert cron.fire_times(expr, zone, after=after, until=until) == expected


@pytest.mark.parametrize(("expr", "minutes", "hours"), [
    ("*/10 10-14 * * *", list(range(0, 60, 10)), [10, 11, 12, 13, 14]),
    ("*/7 * * * *", list(range(0, 60, 7)), list(range(24))),
])
def test_fire_times_around_an_hour_of_summer_time_at_noon(expr, minutes, hours):
    """Two changes in one local day, one of them around noon."""
    days = [date(2027, 6, 14), date(2027, 6, 15), date(2027, 6, 16)]
    after, until = utc(2027, 6, 14, 12), utc(2027, 6, 16, 12)
    expected = oracle.fire_times(minutes, hours, NOON_HOUR, days, after=after, until=until)
    assert cron.fire_times(expr, NOON_HOUR, after=after, until=until) == expected


WINDOWS = ["02:00-02:30", "02:20-03:20", "01:50-02:10", "02:40-02:50", "04:00-04:50",
           "04:30-05:00", "05:10-05:40", "23:00-04:45", "22:00-23:00"]


@pytest.mark.parametrize(("zone", "day"), [
    (ODD_MINUTES, date(2027, 3, 28)), (ODD_MINUTES, date(2027, 10, 31)),
    (BLIP, date(2027, 6, 15)), (EVENING_HOUR, date(2027, 7, 20)),
])
def test_windows_in_made_zones(zone, day):
    start_at = utc(day.year, day.month, day.day) - timedelta(hours=3)
    for window in WINDOWS:
        start, end = (time.fromisoformat(t) for t in window.split("-"))
        for n in range(0, 10 * 60, 13):
            at = start_at + timedelta(minutes=n)
            assert windows.is_open(window, zone, at) == oracle.is_open(start, end, zone, at)
            assert windows.next_open(window, zone, at) == oracle.next_open(start, end, zone, at), (
                window, at)


def test_a_window_reopened_by_a_short_spell_of_summer_time():
    # 03:10Z is 05:10 (+02:00), after the window; at 03:23Z the clock goes back to 04:23, inside.
    assert windows.next_open("04:00-04:50", BLIP, utc(2027, 6, 15, 3, 10)) == utc(
        2027, 6, 15, 3, 23)
    # 04:00-04:20 lies in the jump (03:37 to 04:37) and is not reached on the way back either.
    assert windows.next_open("04:00-04:20", BLIP, utc(2027, 6, 15, 2)) == utc(2027, 6, 16, 3)


def test_a_window_reopened_by_an_hour_of_summer_time_in_the_evening():
    # 21:15Z is 23:15 (+02:00), after the window; at 21:30Z the clock goes back to 22:30.
    assert windows.next_open("22:00-23:00", EVENING_HOUR, utc(2027, 7, 20, 21, 15)) == utc(
        2027, 7, 20, 21, 30)
