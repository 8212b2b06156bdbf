"""Cron details away from DST: field semantics against a plain model, aliases, exotic fields,
validation messages, catch-up reasons and their durations, limits and horizons."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest

from campctl.engine import cron

KOLKATA = "Asia/Kolkata"
KOLKATA_OFFSET = timedelta(hours=5, minutes=30)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- field semantics against a model --------------------------------------------------------------

def model_fires(minutes, hours, doms, months, dows, *, first: date, last: date,
                offset: timedelta) -> list[datetime]:
    """Daily slots of a cron expression in a fixed-offset zone, day by day. `doms`/`dows` None
    mean `*`; when both are restricted a day matches either (Vixie cron)."""
    out = []
    day = first
    while day <= last:
        weekday = day.isoweekday() % 7  # Sunday = 0
        in_dom = doms is None or day.day in doms
        in_dow = dows is None or weekday in dows
        if doms is not None and dows is not None:
            matches = day.day in doms or weekday in dows
        else:
            matches = in_dom and in_dow
        if (months is None or day.month in months) and matches:
            for h in hours:
                for m in minutes:
                    wall = datetime(day.year, day.month, day.day, h, m)  # noqa: DTZ001
                    out.append((wall - offset).replace(tzinfo=UTC))
        day += timedelta(days=1)
    return sorted(out)


ALL_MIN, ALL_HOURS = list(range(60)), list(range(24))
FIELD_CASES = [
    ("0 12 * 12,1 *", [0], [12], None, {12, 1}, None),            # months across the new year
    ("0 12 * 2 *", [0], [12], None, {2}, None),
    ("0 0 29 2 *", [0], [0], {29}, {2}, None),                      # leap days only
    ("0 0 31 * *", [0], [0], {31}, None, None),
    ("0 6 * * 0", [0], [6], None, None, {0}),                       # Sunday as 0
    ("0 6 * * 7", [0], [6], None, None, {0}),                       # Sunday as 7
    ("0 6 * * 6", [0], [6], None, None, {6}),                       # Saturday
    ("0 6 1,15 * 1", [0], [6], {1, 15}, None, {1}),                 # both: either matches
    ("30 6 * 2 1-5", [30], [6], None, {2}, {1, 2, 3, 4, 5}),
    ("*/20 */6 * * *", [0, 20, 40], [0, 6, 12, 18], None, None, None),
    ("59 23 31 12 *", [59], [23], {31}, {12}, None),                # the last minute of a year
    ("5,0 9,1 * 11-12 *", [0, 5], [1, 9], None, {11, 12}, None),   # written out of order
    ("* * 1 1 *", ALL_MIN, ALL_HOURS, {1}, {1}, None),              # every minute of one day
]


@pytest.mark.parametrize(("expr", "minutes", "hours", "doms", "months", "dows"), FIELD_CASES,
                         ids=[c[0] for c in FIELD_CASES])
@pytest.mark.parametrize("tz", ["UTC", KOLKATA])
def test_fields_agree_with_the_model(expr, minutes, hours, doms, months, dows, tz):
    offset = KOLKATA_OFFSET if tz == KOLKATA else timedelta(0)
    after, until = utc(2027, 11, 15), utc(2029, 3, 10)
    expected = [m for m in model_fires(minutes, hours, doms, months, dows,
                                       first=date(2027, 11, 14), last=date(2029, 3, 11),
                                       offset=offset) if after < m <= until]
    assert cron.fire_times(expr, tz, after=after, until=until) == expected
    assert cron.next_fire(expr, tz, after=after) == expected[0]


def test_a_leap_day_schedule_waits_years():
    assert cron.fire_times("0 0 29 2 *", "UTC", after=utc(2025, 1, 1), until=utc(2033, 1, 1)) == [
        utc(2028, 2, 29), utc(2032, 2, 29)]
    assert cron.next_fire("0 0 29 2 *", "UTC", after=utc(2028, 2, 29)) == utc(2032, 2, 29)


def test_limit_keeps_the_earliest():
    args = {"after": utc(2027, 1, 1), "until": utc(2027, 1, 2)}
    assert cron.fire_times("0 * * * *", "UTC", limit=3, **args) == [
        utc(2027, 1, 1, 1), utc(2027, 1, 1, 2), utc(2027, 1, 1, 3)]
    assert cron.fire_times("0 * * * *", "UTC", limit=1, **args) == [utc(2027, 1, 1, 1)]
    assert len(cron.fire_times("0 * * * *", "UTC", **args)) == 24
    assert cron.count_fire_times("0 * * * *", "UTC", **args) == 24


def test_a_zone_object_works_like_its_name():
    from zoneinfo import ZoneInfo

    args = {"after": utc(2027, 3, 27), "until": utc(2027, 3, 30)}
    assert cron.fire_times("30 2 * * *", ZoneInfo("Europe/Paris"), **args) == cron.fire_times(
        "30 2 * * *", "Europe/Paris", **args)
    assert cron.place(datetime(2027, 3, 28, 2, 30), ZoneInfo("Europe/Paris")) == utc(  # noqa: DTZ001
        2027, 3, 28, 1)


# --- aliases and spelling -------------------------------------------------------------------------

@pytest.mark.parametrize(("alias", "expansion"), [
    ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *"), (" @hourly ", "0 * * * *"),
])
def test_aliases(alias, expansion):
    assert cron.validate_cron(alias) is None
    args = {"after": utc(2026, 12, 20), "until": utc(2028, 1, 10)}
    got = cron.fire_times(alias, "UTC", **args)
    assert got == cron.fire_times(expansion, "UTC", **args) and got


def test_extra_spaces_do_not_matter():
    assert cron.validate_cron("0  9 *\t* *") is None
    args = {"after": utc(2027, 1, 1), "until": utc(2027, 1, 5)}
    assert cron.fire_times(" 0  9 * *  * ", "UTC", **args) == cron.fire_times(
        "0 9 * * *", "UTC", **args)


# --- L and # (through croniter) -----------------------------------------------------------------

def test_last_day_of_every_month():
    got = cron.fire_times("0 0 L * *", "UTC", after=utc(2024, 1, 1), until=utc(2025, 1, 1))
    assert got == [utc(2024, m, calendar.monthrange(2024, m)[1]) for m in range(1, 13)]


def test_second_monday_in_a_zone():
    got = cron.fire_times("0 8 * * 1#2", KOLKATA, after=utc(2024, 1, 1), until=utc(2025, 1, 1))
    mondays = []
    for month in range(1, 13):
        days = [d for d in range(1, 8 + 7) if date(2024, month, d).weekday() == 0]
        mondays.append(datetime(2024, month, days[1], 8) - KOLKATA_OFFSET)  # noqa: DTZ001
    assert got == [m.replace(tzinfo=UTC) for m in mondays]


def test_exotic_bounds_are_exclusive_then_inclusive():
    first = utc(2024, 1, 31)
    assert cron.fire_times("0 0 L * *", "UTC", after=first, until=utc(2024, 2, 29)) == [
        utc(2024, 2, 29)]
    assert cron.fire_times("0 0 L * *", "UTC", after=first - timedelta(seconds=1),
                           until=first) == [first]
    assert cron.next_fire("0 0 L * *", "UTC", after=utc(2024, 2, 29, 0, 0, 30)) == utc(2024, 3, 31)


# --- validation messages --------------------------------------------------------------------------

FIELDS = "minute hour day-of-month month day-of-week"


@pytest.mark.parametrize(("expr", "message"), [
    ("", 'empty cron expression: use 5 fields, e.g. "0 9 * * *"'),
    ("  ", 'empty cron expression: use 5 fields, e.g. "0 9 * * *"'),
    (None, 'empty cron expression: use 5 fields, e.g. "0 9 * * *"'),
    ("* * * *", f"cron expression '* * * *' has 4 fields; use 5 ({FIELDS}), "
                'e.g. "0 9 * * *"'),
    ("0 0 31 2 *", "cron expression '0 0 31 2 *' never fires (no matching date in 28 years, "
                   "e.g. 31 February); check the day-of-month and month fields"),
    ("0 0 H * *", "cron expression '0 0 H * *': random or hashed fields (H, R) are not "
                  "supported"),
    ("61 * * * *", "invalid cron expression '61 * * * *': [61 * * * *] is not acceptable, out "
                   f"of range (fields: {FIELDS})"),
])
def test_validation_messages(expr, message):
    assert cron.validate_cron(expr) == message


# --- catch-up reasons -----------------------------------------------------------------------------

NOW = utc(2027, 3, 10, 12)


def test_latest_reason_names_the_fired_slot():
    due = [NOW - timedelta(hours=2), NOW - timedelta(hours=1), NOW + timedelta(hours=1)]
    fire, skipped = cron.apply_catchup(due, None, now=NOW)
    assert fire == [NOW - timedelta(hours=1)]
    assert skipped == [(NOW - timedelta(hours=2), "missed: catchup latest fires only the most "
                        "recent occurrence (2027-03-10T11:00:00Z)")]


def test_all_fires_every_due_slot_once_in_order():
    due = [NOW, NOW - timedelta(hours=1), NOW, NOW + timedelta(seconds=1)]
    assert cron.apply_catchup(due, "all", now=NOW) == ([NOW - timedelta(hours=1), NOW], [])


@pytest.mark.parametrize(("late", "words"), [
    (timedelta(minutes=5, seconds=1), "5m01s"),
    (timedelta(minutes=6), "6m"),
    (timedelta(hours=1), "1h"),
    (timedelta(hours=1, seconds=1), "1h00m"),
    (timedelta(hours=1, minutes=5), "65m"),
    (timedelta(hours=1, minutes=5, seconds=30), "1h05m"),
    (timedelta(hours=2), "2h"),
    (timedelta(days=1), "1d"),
    (timedelta(days=1, seconds=1), "24h00m"),
    (timedelta(days=2, hours=3, minutes=7, seconds=1), "51h07m"),
    (timedelta(days=2, hours=3), "51h"),
])
def test_none_says_how_late(late, words):
    older = NOW - late - timedelta(hours=1)
    fire, skipped = cron.apply_catchup([older, NOW - late], "none", now=NOW)
    assert fire == []
    assert skipped == [
        (older, "missed: catchup none skips occurrences missed while nothing ticked"),
        (NOW - late, f"missed: catchup none, {words} late (grace 5m)"),
    ]


@pytest.mark.parametrize(("late", "grace", "words"), [
    (timedelta(seconds=45), timedelta(0), "45s late (grace 0s)"),
    (timedelta(seconds=60), timedelta(seconds=59), "1m late (grace 59s)"),
    (timedelta(seconds=61), timedelta(seconds=30), "1m01s late (grace 30s)"),
    (timedelta(seconds=3600), timedelta(seconds=90), "1h late (grace 1m30s)"),
])
def test_none_with_other_graces(late, grace, words):
    fire, skipped = cron.apply_catchup([NOW - late], "none", now=NOW, grace=grace)
    assert fire == [] and skipped == [(NOW - late, f"missed: catchup none, {words}")]


def test_none_grace_is_inclusive():
    on_edge = NOW - cron.MISFIRE_GRACE
    assert cron.apply_catchup([on_edge], "none", now=NOW) == ([on_edge], [])
    assert cron.apply_catchup([NOW], "none", now=NOW) == ([NOW], [])
    assert cron.apply_catchup([on_edge - timedelta(seconds=1)], "none", now=NOW)[0] == []


def test_nothing_due_and_unknown_policy():
    assert cron.apply_catchup([], "latest", now=NOW) == ([], [])
    assert cron.apply_catchup([NOW + timedelta(seconds=1)], "none", now=NOW) == ([], [])
    with pytest.raises(ValueError, match="unknown catchup policy 'sometimes': use latest, all or "
                                         "none"):
        cron.apply_catchup([NOW], "sometimes", now=NOW)


# --- horizons -------------------------------------------------------------------------------------

def test_next_fire_finds_a_slot_years_ahead():
    # 2100 is no leap year: eight years between two 29 Februaries.
    assert cron.next_fire("0 0 29 2 *", "UTC", after=utc(2096, 3, 1)) == utc(2104, 2, 29)
    assert cron.next_fire("0 0 1 1 *", "UTC", after=utc(2027, 1, 1)) == utc(2028, 1, 1)


def test_a_schedule_decades_apart():
    """The fifth Monday of February: only when 29 February is a Monday, 28 years apart, then 40
    (2100 is no leap year): found within the horizon, or None beyond it."""
    assert cron.next_fire("0 0 * 2 1#5", "UTC", after=utc(2016, 3, 1)) == utc(2044, 2, 29)
    assert cron.next_fire("0 0 * 2 1#5", "UTC", after=utc(2044, 3, 1)) == utc(2072, 2, 29)
    assert cron.next_fire("0 0 * 2 1#5", "UTC", after=utc(2072, 3, 1)) is None
