"""Held builds: queue builds that pile up before a later send schedule starts.

A date-triggered campaign (or an event-triggered one with a cron `queue_every`) builds a run at
each occurrence from its queue start; builds before `send_start` are held and all go out when it
arrives, so each contact gets one message per held build. This module counts them, for
`validate`, `preview campaign` and `tick --dry-run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from campctl.timeutil import parse_local_datetime, to_db

# Counting stops here: a minutely schedule held for a year needs no exact figure.
COUNT_CAP = 1000
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class HeldBuilds:
    """`count` builds at `first`..`last` are held until `send_start` (`capped`: at least)."""

    count: int
    first: datetime
    last: datetime
    send_start: datetime
    capped: bool = False

    def text(self) -> str:
        many = f"at least {self.count}" if self.capped else str(self.count)
        return (f"{many} queue build(s) ({to_db(self.first)} … {to_db(self.last)}) come before "
                f"send_start {to_db(self.send_start)} and are held until then: each contact in "
                f"them gets one message per build ({many}) when sending starts")


def _moment(value, tz: str, launch: datetime) -> datetime | None:
    if value is None:
        return None
    if value == "immediately":
        return launch
    if isinstance(value, dict) and "at" in value:
        return parse_local_datetime(str(value["at"]), tz)
    if isinstance(value, str):
        return parse_local_datetime(value, tz)
    return None


def held_builds(spec: dict, *, launch: datetime) -> HeldBuilds | None:
    """The builds of a campaign launched at `launch` that its send schedule holds, when there
    are several; None otherwise. Invalid specs give None: validation reports them."""
    kind = spec.get("type") or "one-off"
    raw = spec.get("schedule")
    schedule: dict = raw if isinstance(raw, dict) else {}
    tz = spec.get("timezone") or "UTC"
    try:
        if kind == "date-triggered":
            from campctl.engine.campaigns import DEFAULT_CRON

            expr = schedule.get("cron") or DEFAULT_CRON
            start = _moment(schedule.get("start", "immediately"), tz, launch) or launch
        elif kind == "event-triggered":
            expr = schedule.get("queue_every") or "on_event"
            if expr == "on_event":
                return None  # builds follow events: their number is unknown beforehand
            start = _moment(schedule.get("queue_start", "immediately"), tz, launch) or launch
        else:
            return None
        start = max(start, launch)
        send_start = _moment(schedule.get("send_start", "immediately"), tz, launch) or start
        until = send_start - _SECOND  # a build exactly at send_start is not held
        for limit in (_moment(schedule.get("until"), tz, launch),
                      _moment(spec.get("closes_at"), tz, launch)):
            if limit is not None:
                until = min(until, limit)
        begin = start - _SECOND
        if until <= begin:
            return None
        from campctl.engine import cron

        moments = cron.fire_times(expr, tz, after=begin, until=until, limit=COUNT_CAP + 1)
    except (ValueError, TypeError, OverflowError):
        return None
    if len(moments) < 2:  # one held build gives one message each: nobody is surprised
        return None
    capped = len(moments) > COUNT_CAP
    moments = moments[:COUNT_CAP]
    return HeldBuilds(len(moments), moments[0], moments[-1], send_start, capped)


def held_notes(db, *, now: datetime) -> list[str]:
    """One line per launched campaign with builds still to come that its send schedule holds
    (for `tick --dry-run`)."""
    from campctl.store.objects import list_objects
    from campctl.timeutil import from_db

    notes = []
    for obj in list_objects(db, "Campaign"):
        launched = from_db(obj.get("launched_at"))
        if obj.get("status") != "approved" or launched is None:
            continue
        held = held_builds(obj["spec"] or {}, launch=launched)
        if held is not None and held.send_start > now:
            notes.append(f"campaign {obj['name']}: {held.text()}")
    return notes
