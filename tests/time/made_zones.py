"""Time zones made for tests, as real `zoneinfo` zones (built from TZif data in memory).

IANA zones change at whole or half hours and at most once a day; these do neither, so that a
search that lands on the hour by luck, or a probe that relies on one change a day, shows.
"""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def made_zone(key: str, base: int, changes: list[tuple[datetime, int]]) -> ZoneInfo:
    """A zone at UTC offset `base` seconds that moves to each `(utc instant, offset)` in turn."""
    offsets = sorted({base, *(offset for _, offset in changes)})
    abbrevs = b"".join(b"Z%d\0" % i for i in range(len(offsets)))
    types = b"".join(struct.pack(">lBB", offset, int(offset != base), 3 * i)
                     for i, offset in enumerate(offsets))
    times = b"".join(struct.pack(">l", int(at.timestamp())) for at, _ in changes)
    indices = bytes(offsets.index(offset) for _, offset in changes)
    header = b"TZif" + b"\0" * 16 + struct.pack(
        ">6l", 0, 0, 0, len(changes), len(offsets), len(abbrevs))
    # The first local time type is the one before the first change.
    if offsets[0] != base:
        raise ValueError("base must be the smallest offset")
    return ZoneInfo.from_file(io.BytesIO(header + times + indices + types + abbrevs), key=key)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


H = 3600
# +01:00, summer time +02:00 from 2027-03-28 01:13Z to 2027-10-31 00:47Z: a gap 02:13-03:12
# and a repeat 01:47-02:46 in local time.
ODD_MINUTES = made_zone("Test/OddMinutes", H, [(_utc(2027, 3, 28, 1, 13), 2 * H),
                                               (_utc(2027, 10, 31, 0, 47), H)])
# +01:00 with a 46-minute spell of +02:00 on 2027-06-15 (02:37Z-03:23Z): the local clock jumps
# from 03:37 to 04:37, then goes back from 05:23 to 04:23; two changes within one day.
BLIP = made_zone("Test/Blip", H, [(_utc(2027, 6, 15, 2, 37), 2 * H),
                                  (_utc(2027, 6, 15, 3, 23), H)])
# +01:00 with one hour of +02:00 on 2027-06-15 (10:00Z-11:00Z): 11:00-11:59 local is skipped,
# then 12:00-12:59 happens twice; 13:00 is plain again.
NOON_HOUR = made_zone("Test/NoonHour", H, [(_utc(2027, 6, 15, 10), 2 * H),
                                           (_utc(2027, 6, 15, 11), H)])
# +01:00, summer time +02:00 from 2027-04-10 13:07Z to 2027-09-20 14:21Z: the clock changes in
# the afternoon (14:07 to 15:07, then 16:21 back to 15:21).
AFTERNOON = made_zone("Test/Afternoon", H, [(_utc(2027, 4, 10, 13, 7), 2 * H),
                                            (_utc(2027, 9, 20, 14, 21), H)])
# +01:00 with one hour of +02:00 on 2027-07-20 (20:30Z-21:30Z): the clock jumps from 21:30 to
# 22:30, then goes back from 23:30 to 22:30.
EVENING_HOUR = made_zone("Test/EveningHour", H, [(_utc(2027, 7, 20, 20, 30), 2 * H),
                                                 (_utc(2027, 7, 20, 21, 30), H)])
