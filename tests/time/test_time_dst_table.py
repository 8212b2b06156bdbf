"""DST table: cron placement, fire times and windows on transition days, against hand-written
instants and against an independent minute-by-minute model (dst_oracle.py).

Zones: America/New_York and Europe/Paris (one-hour shifts at different local times),
Australia/Lord_Howe (a 30-minute shift, southern hemisphere) and Asia/Kolkata (no DST, +05:30).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import dst_oracle as oracle
import pytest

from campctl.engine import cron, windows

NY, PARIS, LORD_HOWE, KOLKATA = (
    "America/New_York", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kolkata")

# Transition days (local dates), written from the zones' published rules.
TRANSITION_DAYS = [
    (NY, date(2024, 3, 10)), (NY, date(2024, 11, 3)),
    (NY, date(2027, 3, 14)), (NY, date(2027, 11, 7)),
    (PARIS, date(2024, 3, 31)), (PARIS, date(2024, 10, 27)),
    (PARIS, date(2027, 3, 28)), (PARIS, date(2027, 10, 31)),
    (LORD_HOWE, date(2024, 4, 7)), (LORD_HOWE, date(2024, 10, 6)),
    (LORD_HOWE, date(2027, 4, 4)), (LORD_HOWE, date(2027, 10, 3)),
    (KOLKATA, date(2024, 3, 10)),
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def wall(*args: int) -> datetime:
    return datetime(*args)  # noqa: DTZ001 - a naive local wall time on purpose


# --- place: hand-written instants ---------------------------------------------------------------

PLACE_CASES = [
    # New York, spring forward 2024-03-10 02:00 EST -> 03:00 EDT (07:00Z)
    (NY, wall(2024, 3, 10, 1, 59), utc(2024, 3, 10, 6, 59)),
    (NY, wall(2024, 3, 10, 2, 0), utc(2024, 3, 10, 7, 0)),
    (NY, wall(2024, 3, 10, 2, 30), utc(2024, 3, 10, 7, 0)),
    (NY, wall(2024, 3, 10, 2, 59), utc(2024, 3, 10, 7, 0)),
    (NY, wall(2024, 3, 10, 3, 0), utc(2024, 3, 10, 7, 0)),
    (NY, wall(2024, 3, 10, 3, 1), utc(2024, 3, 10, 7, 1)),
    # New York, fall back 2024-11-03 02:00 EDT -> 01:00 EST (06:00Z)
    (NY, wall(2024, 11, 3, 0, 59), utc(2024, 11, 3, 4, 59)),
    (NY, wall(2024, 11, 3, 1, 0), utc(2024, 11, 3, 5, 0)),
    (NY, wall(2024, 11, 3, 1, 30), utc(2024, 11, 3, 5, 30)),
    (NY, wall(2024, 11, 3, 1, 59), utc(2024, 11, 3, 5, 59)),
    (NY, wall(2024, 11, 3, 2, 0), utc(2024, 11, 3, 7, 0)),
    # Paris, spring forward 2024-03-31 02:00 CET -> 03:00 CEST (01:00Z)
    (PARIS, wall(2024, 3, 31, 1, 59), utc(2024, 3, 31, 0, 59)),
    (PARIS, wall(2024, 3, 31, 2, 0), utc(2024, 3, 31, 1, 0)),
    (PARIS, wall(2024, 3, 31, 2, 30), utc(2024, 3, 31, 1, 0)),
    (PARIS, wall(2024, 3, 31, 3, 0), utc(2024, 3, 31, 1, 0)),
    (PARIS, wall(2024, 3, 31, 3, 30), utc(2024, 3, 31, 1, 30)),
    # Paris, fall back 2024-10-27 03:00 CEST -> 02:00 CET (01:00Z)
    (PARIS, wall(2024, 10, 27, 1, 59), utc(2024, 10, 26, 23, 59)),
    (PARIS, wall(2024, 10, 27, 2, 0), utc(2024, 10, 27, 0, 0)),
    (PARIS, wall(2024, 10, 27, 2, 30), utc(2024, 10, 27, 0, 30)),
    (PARIS, wall(2024, 10, 27, 2, 59), utc(2024, 10, 27, 0, 59)),
    (PARIS, wall(2024, 10, 27, 3, 0), utc(2024, 10, 27, 2, 0)),
    # Lord Howe, back 30 minutes 2024-04-07 02:00 +11 -> 01:30 +10:30 (2024-04-06 15:00Z)
    (LORD_HOWE, wall(2024, 4, 7, 1, 29), utc(2024, 4, 6, 14, 29)),
    (LORD_HOWE, wall(2024, 4, 7, 1, 30), utc(2024, 4, 6, 14, 30)),
    (LORD_HOWE, wall(2024, 4, 7, 1, 59), utc(2024, 4, 6, 14, 59)),
    (LORD_HOWE, wall(2024, 4, 7, 2, 0), utc(2024, 4, 6, 15, 30)),
    # Lord Howe, forward 30 minutes 2024-10-06 02:00 +10:30 -> 02:30 +11 (2024-10-05 15:30Z)
    (LORD_HOWE, wall(2024, 10, 6, 1, 59), utc(2024, 10, 5, 15, 29)),
    (LORD_HOWE, wall(2024, 10, 6, 2, 0), utc(2024, 10, 5, 15, 30)),
    (LORD_HOWE, wall(2024, 10, 6, 2, 15), utc(2024, 10, 5, 15, 30)),
    (LORD_HOWE, wall(2024, 10, 6, 2, 29), utc(2024, 10, 5, 15, 30)),
    (LORD_HOWE, wall(2024, 10, 6, 2, 30), utc(2024, 10, 5, 15, 30)),
    (LORD_HOWE, wall(2024, 10, 6, 2, 31), utc(2024, 10, 5, 15, 31)),
    # Kolkata: no DST, +05:30 all year
    (KOLKATA, wall(2024, 3, 10, 2, 30), utc(2024, 3, 9, 21, 0)),
    (KOLKATA, wall(2024, 11, 3, 1, 30), utc(2024, 11, 2, 20, 0)),
]


@pytest.mark.parametrize(("tz", "local", "expected"), PLACE_CASES)
def test_place_hand_written(tz, local, expected):
    assert cron.place(local, tz) == expected
    assert oracle.place(local, tz) == expected  # the model agrees with the hand-written table


@pytest.mark.parametrize(("tz", "day"), TRANSITION_DAYS)
def test_place_agrees_with_the_model_every_ten_minutes(tz, day):
    start = datetime.combine(day, time(0))
    for n in range(0, 6 * 60, 10):  # 00:00 to 05:50, where every transition of the table lies
        local = start + timedelta(minutes=n)
        assert cron.place(local, tz) == oracle.place(local, tz), local


# --- fire times on transition days --------------------------------------------------------------

DAILY = [
    ("30 1 * * *", [30], [1]),
    ("0 2 * * *", [0], [2]),
    ("15 2 * * *", [15], [2]),
    ("45 1,2,3 * * *", [45], [1, 2, 3]),
    ("0 2,3 * * *", [0], [2, 3]),
    ("*/15 0-4 * * *", [0, 15, 30, 45], [0, 1, 2, 3, 4]),
    ("0,30 * * * *", [0, 30], list(range(24))),
]


@pytest.mark.parametrize(("tz", "day"), TRANSITION_DAYS)
@pytest.mark.parametrize(("expr", "minutes", "hours"), DAILY, ids=[d[0] for d in DAILY])
def test_fire_times_agree_with_the_model(tz, day, expr, minutes, hours):
    days = [day + timedelta(days=n) for n in (-2, -1, 0, 1, 2)]
    after = oracle.place(datetime.combine(day - timedelta(days=1), time(0)), tz)
    until = oracle.place(datetime.combine(day + timedelta(days=1), time(23, 59)), tz)
    expected = oracle.fire_times(minutes, hours, tz, days, after=after, until=until)
    got = cron.fire_times(expr, tz, after=after, until=until)
    assert got == expected
    assert cron.count_fire_times(expr, tz, after=after, until=until) == len(expected)
    assert cron.next_fire(expr, tz, after=after) == expected[0]
    # Strictly after `after`, at most `until`: the bounds themselves.
    assert cron.fire_times(expr, tz, after=expected[0], until=expected[1]) == [expected[1]]
    assert cron.fire_times(expr, tz, after=expected[0] - timedelta(seconds=1),
                           until=expected[0]) == [expected[0]]


def test_fire_times_hand_written_lord_howe():
    """A half-hour fall-back: 01:30 and 01:45 happen twice and fire once; 02:00 is the later
    offset. A half-hour spring-forward: 02:00 and 02:15 fall in the gap and join 02:30."""
    back = cron.fire_times("*/15 1-2 * * *", LORD_HOWE, after=utc(2024, 4, 6, 13),
                           until=utc(2024, 4, 6, 17))
    assert back == [utc(2024, 4, 6, 14, 0), utc(2024, 4, 6, 14, 15), utc(2024, 4, 6, 14, 30),
                    utc(2024, 4, 6, 14, 45), utc(2024, 4, 6, 15, 30), utc(2024, 4, 6, 15, 45),
                    utc(2024, 4, 6, 16, 0), utc(2024, 4, 6, 16, 15)]
    forward = cron.fire_times("*/15 1-2 * * *", LORD_HOWE, after=utc(2024, 10, 5, 14),
                              until=utc(2024, 10, 5, 17))
    assert forward == [utc(2024, 10, 5, 14, 30), utc(2024, 10, 5, 14, 45),
                       utc(2024, 10, 5, 15, 0), utc(2024, 10, 5, 15, 15),
                       utc(2024, 10, 5, 15, 30), utc(2024, 10, 5, 15, 45)]


def test_fire_times_across_the_year_in_every_zone():
    """A whole year of a daily slot: one fire per local day, each at the model's instant."""
    for tz in (NY, PARIS, LORD_HOWE, KOLKATA):
        after, until = utc(2027, 1, 1), utc(2028, 1, 1)
        got = cron.fire_times("30 2 * * *", tz, after=after, until=until)
        days = [date(2026, 12, 31) + timedelta(days=n) for n in range(367)]
        assert got == oracle.fire_times([30], [2], tz, days, after=after, until=until), tz


# --- windows on transition days -----------------------------------------------------------------

WINDOWS = ["01:00-02:00", "02:00-03:00", "02:10-02:20", "01:40-01:50", "22:00-02:30",
           "03:00-04:00", "09:00-17:00"]


@pytest.mark.parametrize(("tz", "day"), TRANSITION_DAYS)
def test_windows_agree_with_the_model(tz, day):
    start_at = oracle.place(datetime.combine(day, time(0)), tz) - timedelta(hours=2)
    for window in WINDOWS:
        start, end = (time.fromisoformat(t) for t in window.split("-"))
        for n in range(0, 9 * 60, 35):  # every 35 minutes over nine hours around the change
            at = start_at + timedelta(minutes=n)
            assert windows.is_open(window, tz, at) == oracle.is_open(start, end, tz, at), (
                window, at)
            assert windows.next_open(window, tz, at) == oracle.next_open(start, end, tz, at), (
                window, at)
            between = at + timedelta(seconds=30)  # not on a minute: open now, or a later minute
            assert windows.next_open(window, tz, between) == oracle.next_open(
                start, end, tz, between), (window, between)


WINDOW_CASES = [
    # A window wholly inside the New York gap does not open that day: the next day, EDT.
    ("02:10-02:50", NY, utc(2024, 3, 10, 6), utc(2024, 3, 11, 6, 10)),
    # A window that the gap cuts: open from the first instant after the gap.
    ("02:30-03:30", NY, utc(2024, 3, 10, 6), utc(2024, 3, 10, 7, 0)),
    # Fall-back: the wall clock returns into 01:00-01:30 at the transition instant.
    ("01:00-01:30", NY, utc(2024, 11, 3, 5, 45), utc(2024, 11, 3, 6, 0)),
    ("01:00-01:30", NY, utc(2024, 11, 3, 5, 15), utc(2024, 11, 3, 5, 15)),
    # Paris: 02:00-02:30 opens twice on the fall-back day.
    ("02:00-02:30", PARIS, utc(2024, 10, 27, 0, 40), utc(2024, 10, 27, 1, 0)),
    ("02:00-02:30", PARIS, utc(2024, 10, 27, 1, 40), utc(2024, 10, 28, 1, 0)),
    # Lord Howe: the half-hour repeat reopens 01:30-02:00 at the transition.
    ("01:30-02:00", LORD_HOWE, utc(2024, 4, 6, 14, 50), utc(2024, 4, 6, 14, 50)),
    ("01:45-02:00", LORD_HOWE, utc(2024, 4, 6, 14, 50), utc(2024, 4, 6, 14, 50)),
    ("01:40-01:50", LORD_HOWE, utc(2024, 4, 6, 14, 55), utc(2024, 4, 6, 15, 10)),
    # Lord Howe's half-hour gap: 02:00-02:20 is inside it; next day.
    ("02:00-02:20", LORD_HOWE, utc(2024, 10, 5, 15), utc(2024, 10, 6, 15, 0)),
    # Kolkata, a wrapping window.
    ("22:00-06:00", KOLKATA, utc(2024, 3, 10, 0, 29), utc(2024, 3, 10, 0, 29)),  # 05:59
    ("22:00-06:00", KOLKATA, utc(2024, 3, 10, 0, 30), utc(2024, 3, 10, 16, 30)),  # 06:00
    ("22:00-06:00", KOLKATA, utc(2024, 3, 10, 1, 0, 30), utc(2024, 3, 10, 16, 30)),
]


@pytest.mark.parametrize(("window", "tz", "at", "expected"), WINDOW_CASES)
def test_next_open_hand_written(window, tz, at, expected):
    assert windows.next_open(window, tz, at) == expected
    start, end = (time.fromisoformat(t) for t in window.split("-"))
    assert oracle.next_open(start, end, tz, at) == expected


def test_window_edges_are_half_open():
    assert windows.is_open("09:00-17:00", KOLKATA, utc(2024, 5, 1, 3, 30))      # 09:00 local
    assert not windows.is_open("09:00-17:00", KOLKATA, utc(2024, 5, 1, 11, 30))  # 17:00 local
    assert windows.is_open("09:00-17:00", KOLKATA, utc(2024, 5, 1, 11, 29, 59))
    assert not windows.is_open("09:00-17:00", KOLKATA, utc(2024, 5, 1, 3, 29, 59))
    assert windows.is_open("22:00-06:00", KOLKATA, utc(2024, 5, 1, 16, 30))      # 22:00 local
    assert not windows.is_open("22:00-06:00", KOLKATA, utc(2024, 5, 1, 0, 30))   # 06:00 local
    assert windows.is_open("22:00-06:00", KOLKATA, utc(2024, 5, 1, 0, 29))
    assert not windows.is_open("22:00-06:00", KOLKATA, utc(2024, 5, 1, 16, 29))
    assert windows.is_open(None, KOLKATA, utc(2024, 5, 1))
    assert windows.is_open("", NY, utc(2024, 5, 1))
    assert windows.next_open(None, NY, utc(2024, 5, 1, 0, 0, 7)) == utc(2024, 5, 1, 0, 0, 7)
