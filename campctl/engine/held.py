"""Held builds: queue builds that pile up before a later send schedule starts.

A date-triggered campaign (or an event-triggered one with a cron `queue_every`) builds a run at
each occurrence from its queue start; builds before `send_start` are held and all go out when it
arrives, so each contact gets one message per held build. This module counts them, for
`validate`, `preview campaign` and `tick --dry-run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campctl.definitions.models import Campaign, DateSchedule, EventSchedule, OneOffSchedule
from campctl.timeutil import to_db

# Counting stops here: a minutely schedule held for a year needs no exact figure.
COUNT_CAP = 1000


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


def held_builds(model: Campaign, *, launch: datetime) -> HeldBuilds | None:
    """The builds of a campaign launched at `launch` that its send schedule holds, when there
    are several; None otherwise. Invalid specs give None: validation reports them."""
    schedule = model.schedule
    if isinstance(schedule, OneOffSchedule) or (
            isinstance(schedule, EventSchedule) and schedule.on_event):
        return None  # one build, or builds that follow events: their number is unknown
    from campctl.engine.campaigns import held_window

    try:
        span = held_window(model, launch)
        if span is None:
            return None
        from campctl.engine import cron

        expr = schedule.cron if isinstance(schedule, DateSchedule) else schedule.queue_every
        begin, until, send_start = span
        moments = cron.fire_times(expr, model.timezone, after=begin, until=until,
                                  limit=COUNT_CAP + 1, dst=schedule.dst)
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
    from campctl.store.objects import list_records
    from campctl.timeutil import from_db

    notes = []
    for obj in list_records(db, "Campaign"):
        launched = from_db(obj.launched_at)
        if obj.status != "approved" or launched is None:
            continue
        held = held_builds(Campaign.from_spec(obj.spec), launch=launched)
        if held is not None and held.send_start > now:
            notes.append(f"campaign {obj.name}: {held.text()}")
    return notes
