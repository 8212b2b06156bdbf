"""Cron in local zones: validation, DST rules (an ambiguous local time fires once, at its first
occurrence; a skipped one at the first instant after the gap), host-TZ independence, catch-up,
speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from campctl.engine.cron import (
    apply_catchup,
    count_fire_times,
    fire_times,
    next_fire,
    validate_cron,
)

NY, PARIS, SYDNEY = "America/New_York", "Europe/Paris", "Australia/Sydney"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_strings(slots, tz):
    return [s.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M%z") for s in slots]


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("expr", ["0 9 * * *", "*/15 9-17 * * 1-5", "0 0 1 jan,jul *",
                                  "30 2 * * *", "0 0 L * *", "0 0 * * 1#2", "@daily",
                                  "0 0 29 2 *"])
def test_valid_expressions(expr):
    assert validate_cron(expr) is None


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 0 31 2 *", "never fires"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("* * * *", "4 fields"),
        ("0 0 * * * *", "6 fields"),
        ("61 * * * *", "invalid cron expression"),
        ("0 25 * * *", "invalid cron expression"),
        ("0 9 * * mon-xyz", "invalid cron expression"),
        ("0 0 H * *", "not supported"),
        ("0 R * * *", "not supported"),
        ("", "empty"),
    ],
)
def test_invalid_expressions_say_why(expr, words):
    message = validate_cron(expr)
    assert message is not None and words in message, message
    assert "\n" not in message
    with pytest.raises(ValueError):
        fire_times(expr, "UTC", after=utc(2027, 1, 1), until=utc(2027, 2, 1))


# --- DST regressions (PITFALLS: croniter repeats fall-back slots, shifts spring-forward) ---------

def test_spring_forward_gap_fires_once_at_first_instant_after_gap():
    slots = fire_times("30 2 * * *", NY, after=utc(2024, 3, 8), until=utc(2024, 3, 12))
    assert local_strings(slots, NY) == [
        "2024-03-08 02:30-0500", "2024-03-09 02:30-0500",
        "2024-03-10 03:00-0400",  # 02:30 does not exist: the first instant after the gap
        "2024-03-11 02:30-0400",
    ]


def test_fall_back_ambiguous_time_fires_once_at_first_occurrence():
    slots = fire_times("30 1 * * *", NY, after=utc(2024, 11, 2), until=utc(2024, 11, 5))
    assert local_strings(slots, NY) == [
        "2024-11-02 01:30-0400", "2024-11-03 01:30-0400", "2024-11-04 01:30-0500",
    ]


def test_every_30_minutes_gives_both_halves_of_the_repeated_hour():
    slots = fire_times("*/30 * * * *", NY, after=utc(2024, 11, 3, 4), until=utc(2024, 11, 3, 8))
    assert local_strings(slots, NY) == [
        "2024-11-03 00:30-0400", "2024-11-03 01:00-0400", "2024-11-03 01:30-0400",
        "2024-11-03 02:00-0500", "2024-11-03 02:30-0500", "2024-11-03 03:00-0500",
    ]


def test_two_slots_landing_on_one_instant_fire_once():
    # 02:00 (in the gap) moves to 03:00, where the 03:00 slot already is: one occurrence.
    slots = fire_times("0 2,3 * * *", NY, after=utc(2024, 3, 10), until=utc(2024, 3, 11))
    assert local_strings(slots, NY) == ["2024-03-10 03:00-0400"]


def test_hourly_across_spring_forward_and_fall_back():
    spring = fire_times("0 * * * *", PARIS, after=utc(2024, 3, 31, 0), until=utc(2024, 3, 31, 3))
    # after = 01:00 CET (exclusive); 02:00 does not exist and joins 03:00 CEST.
    assert local_strings(spring, PARIS) == [
        "2024-03-31 03:00+0200", "2024-03-31 04:00+0200", "2024-03-31 05:00+0200",
    ]
    autumn = fire_times("0 * * * *", PARIS, after=utc(2024, 10, 26, 23), until=utc(2024, 10, 27, 3))
    # 02:00 happens twice; it fires at its first occurrence only.
    assert local_strings(autumn, PARIS) == [
        "2024-10-27 02:00+0200", "2024-10-27 03:00+0100", "2024-10-27 04:00+0100",
    ]


def test_sydney_dst_daily():
    spring = fire_times("30 2 * * *", SYDNEY, after=utc(2024, 10, 4), until=utc(2024, 10, 8))
    assert local_strings(spring, SYDNEY)[1] == "2024-10-06 03:00+1100"
    autumn = fire_times("30 2 * * *", SYDNEY, after=utc(2024, 4, 4), until=utc(2024, 4, 9))
    days = [s[:10] for s in local_strings(autumn, SYDNEY)]
    assert len(days) == len(set(days))
    assert "2024-04-07 02:30+1100" in local_strings(autumn, SYDNEY)


@pytest.mark.parametrize("tz", [NY, PARIS, SYDNEY])
@pytest.mark.parametrize("expr", ["30 2 * * *", "30 1 * * *", "0 3 * * *", "59 23 * * *"])
def test_daily_cron_fires_exactly_once_per_local_day_2000_2037(tz, expr):
    zone = ZoneInfo(tz)
    slots = fire_times(expr, tz, after=utc(2000, 1, 1), until=utc(2038, 1, 1))
    days = [s.astimezone(zone).date() for s in slots]
    assert len(days) == len(set(days))
    first, last = days[0], days[-1]
    assert len(days) == (last - first).days + 1  # no local day missing either
    assert all(b > a for a, b in pairwise(slots))


def test_result_is_the_same_in_every_zone_reading_and_order():
    # after/until may be given in any offset; the result is the same instants.
    a = fire_times("0 9 * * *", PARIS, after=utc(2027, 3, 1), until=utc(2027, 3, 5))
    b = fire_times("0 9 * * *", PARIS, after=utc(2027, 3, 1).astimezone(ZoneInfo("Asia/Tokyo")),
                   until=utc(2027, 3, 5).astimezone(ZoneInfo(NY)))
    assert a == b
    assert all(s.tzinfo is UTC for s in a)


def test_after_is_exclusive_and_until_inclusive():
    slots = fire_times("0 9 * * *", "UTC", after=utc(2027, 3, 1, 9), until=utc(2027, 3, 3, 9))
    assert slots == [utc(2027, 3, 2, 9), utc(2027, 3, 3, 9)]
    assert next_fire("0 9 * * *", "UTC", after=utc(2027, 3, 1, 9)) == utc(2027, 3, 2, 9)
    assert fire_times("0 9 * * *", "UTC", after=utc(2027, 3, 1), until=utc(2027, 3, 9),
                      limit=3) == [utc(2027, 3, d, 9) for d in (1, 2, 3)]


def test_next_fire_in_a_zone_and_exotic_fields():
    assert next_fire("0 9 * * *", "Asia/Kolkata", after=utc(2027, 3, 1, 9)) == utc(
        2027, 3, 2, 3, 30)
    # Second Monday of the month (croniter's # syntax) in local time.
    assert next_fire("0 8 * * 1#2", PARIS, after=utc(2027, 3, 1)) == utc(2027, 3, 8, 7)
    # Last day of the month.
    assert next_fire("0 12 L * *", "UTC", after=utc(2027, 2, 1)) == utc(2027, 2, 28, 12)


# --- host TZ must not matter ------------------------------------------------------------------

_PROBE = """
import json
from datetime import UTC, datetime
from campctl.engine.cron import fire_times
from campctl.engine.windows import next_open
out = {}
for tz in ["America/New_York", "Europe/Paris", "Australia/Sydney", "Asia/Kolkata", "UTC"]:
    for expr in ["30 2 * * *", "30 1 * * *", "*/30 1-3 * * *", "0 2,3 * * 0"]:
        slots = fire_times(expr, tz, after=datetime(2024, 1, 1, tzinfo=UTC),
                           until=datetime(2025, 1, 1, tzinfo=UTC))
        out[tz + expr] = [s.isoformat() for s in slots]
    out[tz + "window"] = next_open("02:10-02:50", tz, datetime(2024, 3, 10, tzinfo=UTC)).isoformat()
print(json.dumps(out, sort_keys=True))
"""


def test_results_do_not_depend_on_host_tz():
    outputs = set()
    for host_tz in ("UTC", "Asia/Kolkata", "America/New_York"):
        env = {**os.environ, "TZ": host_tz}
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              env=env, timeout=120, check=True)
        outputs.add(proc.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop())  # non-empty


# --- catch-up ---------------------------------------------------------------------------------

def test_catchup_latest_fires_the_newest_and_records_the_others():
    due = [utc(2027, 3, 1) + timedelta(hours=h) for h in range(72)]
    fire, skipped = apply_catchup(due, "latest", now=utc(2027, 3, 4, 0))
    assert fire == [utc(2027, 3, 3, 23)]
    assert len(skipped) == 71 and all(reason for _, reason in skipped)
    assert len(fire) + len(skipped) == 72


def test_catchup_default_is_latest_and_all_fires_everything():
    due = [utc(2027, 3, 1, h) for h in range(5)]
    assert apply_catchup(due, None, now=utc(2027, 3, 1, 6)) == apply_catchup(
        due, "latest", now=utc(2027, 3, 1, 6))
    fire, skipped = apply_catchup(list(reversed(due)), "all", now=utc(2027, 3, 1, 6))
    assert fire == due and skipped == []


def test_catchup_none_fires_only_an_on_time_occurrence():
    due = [utc(2027, 3, 1, h) for h in range(5)]
    fire, skipped = apply_catchup(due, "none", now=utc(2027, 3, 1, 4, 1))
    assert fire == [utc(2027, 3, 1, 4)] and len(skipped) == 4
    fire, skipped = apply_catchup(due, "none", now=utc(2027, 3, 1, 6))
    assert fire == [] and len(skipped) == 5
    assert "late" in skipped[-1][1]


def test_catchup_ignores_future_slots_and_rejects_unknown_policy():
    fire, skipped = apply_catchup([utc(2027, 3, 2)], "all", now=utc(2027, 3, 1))
    assert fire == [] and skipped == []
    with pytest.raises(ValueError, match="catchup"):
        apply_catchup([], "sometimes", now=utc(2027, 3, 1))


# --- speed ------------------------------------------------------------------------------------

def test_ten_thousand_missed_hourly_slots_are_fast():
    start = time.perf_counter()
    slots = fire_times("0 * * * *", PARIS, after=utc(2026, 1, 1), until=utc(2027, 2, 22))
    due = fire_times("0 * * * *", PARIS, after=utc(2026, 1, 1), until=utc(2027, 2, 22))
    fire, skipped = apply_catchup(due, "latest", now=utc(2027, 2, 22))
    elapsed = time.perf_counter() - start
    assert len(slots) >= 10_000
    assert len(fire) + len(skipped) == len(slots)
    assert elapsed < 60, f"{len(slots)} slots took {elapsed:.3f}s"  # a guard, not a target
    assert count_fire_times("*/5 * * * *", "UTC", after=utc(2027, 1, 1),
                            until=utc(2027, 1, 2)) == 288


def test_far_future_slot_is_found():
    assert next_fire("0 0 29 2 *", "UTC", after=utc(2097, 3, 1)) == utc(2104, 2, 29)
    assert next_fire("0 0 1 1 *", NY, after=utc(2027, 1, 1, 6)) == utc(2028, 1, 1, 5)
    assert next_fire("0 0 1 1 *", NY, after=utc(2027, 1, 1, 5) - timedelta(seconds=1)) == utc(
        2027, 1, 1, 5)
