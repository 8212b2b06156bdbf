"""Daily sending windows: wrap past midnight, DST gaps and repeats, no window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from campctl.engine.windows import is_open, next_open

NY = "America/New_York"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_simple_window_in_local_time():
    # 12:00-17:00 Paris = 11:00-16:00 UTC in winter.
    assert not is_open("12:00-17:00", "Europe/Paris", utc(2027, 3, 1, 10, 59))
    assert is_open("12:00-17:00", "Europe/Paris", utc(2027, 3, 1, 11, 0))
    assert not is_open("12:00-17:00", "Europe/Paris", utc(2027, 3, 1, 16, 0))  # end excluded
    assert next_open("12:00-17:00", "Europe/Paris", utc(2027, 3, 1, 6)) == utc(2027, 3, 1, 11)
    assert next_open("12:00-17:00", "Europe/Paris", utc(2027, 3, 1, 16)) == utc(2027, 3, 2, 11)
    at = utc(2027, 3, 1, 12, 30, 15)
    assert next_open("12:00-17:00", "Europe/Paris", at) == at


def test_window_wrapping_past_midnight():
    w = "22:00-06:00"
    assert is_open(w, "UTC", utc(2027, 3, 1, 23, 30))
    assert is_open(w, "UTC", utc(2027, 3, 2, 5, 59))
    assert not is_open(w, "UTC", utc(2027, 3, 2, 6, 0))
    assert next_open(w, "UTC", utc(2027, 3, 2, 6, 0)) == utc(2027, 3, 2, 22, 0)


def test_no_window_is_always_open():
    assert is_open(None, "UTC", utc(2027, 3, 1))
    assert next_open(None, "UTC", utc(2027, 3, 1, 3)) == utc(2027, 3, 1, 3)


def test_window_start_in_a_spring_forward_gap_opens_after_the_gap():
    # 02:30 does not exist on 2024-03-10 in New York: the window opens at 03:00 EDT.
    assert next_open("02:30-04:00", NY, utc(2024, 3, 10, 5)) == utc(2024, 3, 10, 7)


def test_window_wholly_inside_a_gap_waits_for_the_next_day():
    assert next_open("02:10-02:50", NY, utc(2024, 3, 10, 5)) == utc(2024, 3, 11, 6, 10)


def test_fall_back_reopens_a_window_during_the_repeated_hour():
    # 01:00-01:30 on 2024-11-03: open 05:00-05:30 UTC (EDT) and again 06:00-06:30 UTC (EST).
    assert next_open("01:00-01:30", NY, utc(2024, 11, 3, 5, 40)) == utc(2024, 11, 3, 6, 0)
    # The wall clock jumps back into 00:30-01:30 at the transition itself (06:00 UTC).
    assert next_open("00:30-01:30", NY, utc(2024, 11, 3, 5, 45)) == utc(2024, 11, 3, 6, 0)


def test_bad_window_is_a_value_error():
    with pytest.raises(ValueError, match="window"):
        is_open("9:00-17:00", "UTC", utc(2027, 3, 1))
