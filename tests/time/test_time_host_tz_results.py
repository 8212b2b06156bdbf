"""Results are UTC instants computed in the schedule's zone, whatever the host's TZ says.

The host here is Pacific/Kiritimati (UTC+14) and the schedule's zone Pacific/Pago_Pago (UTC-11),
or the other way round: 25 hours apart, so that the dates differ by two days at times.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from campctl.engine import cron, windows

PAGO_PAGO = "Pacific/Pago_Pago"


KIRITIMATI = "Pacific/Kiritimati"


def _host(monkeypatch, name: str):
    monkeypatch.setenv("TZ", name)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def host_in_kiritimati(monkeypatch):
    yield from _host(monkeypatch, KIRITIMATI)


@pytest.fixture
def host_in_pago_pago(monkeypatch):
    yield from _host(monkeypatch, PAGO_PAGO)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_open_late_in_the_zones_evening(host_in_kiritimati):
    at = utc(2027, 5, 2, 10, 30)  # 23:30 on 1 May in Pago Pago, 00:30 on 3 May on the host
    assert windows.next_open("23:45-23:50", PAGO_PAGO, at) == utc(2027, 5, 2, 10, 45)
    opened = windows.next_open("23:00-23:59", PAGO_PAGO, at)
    assert opened == at and opened.utcoffset() == timedelta(0)
    assert windows.next_open("08:00-09:00", PAGO_PAGO, at).utcoffset() == timedelta(0)


def test_fire_times_and_reasons_are_utc(host_in_kiritimati):
    slots = cron.fire_times("30 23 * * *", PAGO_PAGO, after=utc(2027, 5, 1), until=utc(2027, 5, 4))
    assert slots == [utc(2027, 5, 1, 10, 30), utc(2027, 5, 2, 10, 30), utc(2027, 5, 3, 10, 30)]
    assert all(s.utcoffset() == timedelta(0) for s in slots)
    _, skipped = cron.apply_catchup(slots[:2], "latest", now=utc(2027, 5, 3, 11))
    assert skipped == [(slots[0], "missed: catchup latest fires only the most recent occurrence "
                                  "(2027-05-02T10:30:00Z)")]


def test_a_slot_just_after_the_start_is_found(host_in_kiritimati):
    # `after` is 23:00 in Pago Pago (00:00 two days later on the host); the slot is 30 min later.
    slots = cron.fire_times("30 23 * * *", PAGO_PAGO, after=utc(2027, 5, 1, 10),
                            until=utc(2027, 5, 1, 11))
    assert slots == [utc(2027, 5, 1, 10, 30)]


def test_a_slot_just_before_the_end_is_found(host_in_pago_pago):
    # `until` is 00:30 in Kiritimati, 23:30 two days earlier on the host.
    slots = cron.fire_times("15 0 * * *", KIRITIMATI, after=utc(2027, 5, 1, 10),
                            until=utc(2027, 5, 1, 10, 30))
    assert slots == [utc(2027, 5, 1, 10, 15)]


@pytest.mark.parametrize("host", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_a_gap_time_is_placed_in_utc(monkeypatch, host):
    for _ in _host(monkeypatch, host):
        placed = cron.place(datetime(2024, 3, 10, 2, 30), "America/New_York")  # noqa: DTZ001
        assert placed == utc(2024, 3, 10, 7) and placed.utcoffset() == timedelta(0)
        assert placed.tzinfo is UTC
        # The gap's first minute: the search ends on the later bound it started with.
        first = cron.place(datetime(2024, 3, 10, 2, 0), "America/New_York")  # noqa: DTZ001
        assert first == utc(2024, 3, 10, 7) and first.tzinfo is UTC
        plain = cron.place(datetime(2024, 3, 10, 12, 0), "America/New_York")  # noqa: DTZ001
        assert plain == utc(2024, 3, 10, 16) and plain.tzinfo is UTC
