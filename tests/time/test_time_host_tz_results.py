"""Results are UTC instants computed in the schedule's zone, whatever the host's TZ says.

The host here is Pacific/Kiritimati (UTC+14) and the schedule's zone Pacific/Pago_Pago (UTC-11):
25 hours apart, so that the host's date is two days ahead of the zone's late in the evening.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from campctl.engine import cron, windows

PAGO_PAGO = "Pacific/Pago_Pago"


@pytest.fixture
def host_in_kiritimati(monkeypatch):
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


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
