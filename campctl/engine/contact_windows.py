"""Sending windows in each recipient's zone (`schedule.window_timezone: contact`): the zone of
every queue item, fixed when the run is built, which zones of a run are open now, and when the
next one opens.

A contact's zone is its `timezone` attribute (an IANA name). Missing or not a valid zone: the
run's own timezone, and the item counts as a `window_fallback`. Each zone's window follows its
own wall clock across DST (engine/windows.py). A contact who moves later takes effect at the
next build: an item's zone never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from campctl.engine import windows
from campctl.store import queue as queue_store
from campctl.timeutil import zone

ATTRIBUTE = "timezone"


def valid_zone(value: object) -> bool:
    try:
        zone(value)  # type: ignore[arg-type,unused-ignore]  # refuses what is not a name
    except ValueError:
        return False
    return True


def assign_at_build(db, run_id: int, *, fallback: str) -> int:
    """Fix the window zone of every item of the run (caller's transaction): its contact's
    valid zone, else `fallback`. Set-based: each distinct value is checked once in Python.
    Returns how many items fell back."""
    queue_store.copy_contact_zones(db, run_id, ATTRIBUTE)
    valid = [v for v in queue_store.window_zone_values(db, run_id)
             if v is not None and valid_zone(v)]
    return queue_store.fallback_window_zones(db, run_id, valid, fallback=fallback)


@dataclass(frozen=True)
class ZoneState:
    """One zone of a run with queued items: how many, whether its window is open at `now`,
    and when it opens (`now` itself when open)."""

    zone: str
    queued: int
    open: bool
    opens: datetime


@dataclass(frozen=True)
class RunZones:
    """The zones of a run holding queued items, at one instant."""

    zones: tuple[ZoneState, ...]

    @property
    def open(self) -> tuple[str, ...]:
        return tuple(z.zone for z in self.zones if z.open)

    @property
    def held(self) -> tuple[ZoneState, ...]:
        return tuple(z for z in self.zones if not z.open)

    @property
    def next_open(self) -> datetime | None:
        """The earliest opening of a zone whose window is closed (None: none is)."""
        held = self.held
        return min(z.opens for z in held) if held else None

    @property
    def held_items(self) -> int:
        return sum(z.queued for z in self.held)


def run_zones(db, run_ids: list[int], window: dict[int, str], *,
              now: datetime) -> dict[int, RunZones]:
    """Per run: its zones with queued items, open or not at `now` (one query for all runs)."""
    out: dict[int, RunZones] = {}
    for run_id, zones in queue_store.queued_zones(db, run_ids).items():
        states = []
        for name, queued in sorted(zones.items()):
            opens = windows.next_open(window[run_id], name, now)
            states.append(ZoneState(name, queued, opens <= now, opens))
        out[run_id] = RunZones(tuple(states))
    return out


def describe_held(zones: RunZones) -> str:
    """`window (3 zones), next opens …`-style text of what a run waits for."""
    held = zones.held
    nxt = zones.next_open
    when = nxt.strftime("%Y-%m-%dT%H:%M:%SZ") if nxt else "?"
    return (f"window ({len(held)} zone{'s' if len(held) != 1 else ''}, "
            f"{zones.held_items} messages), next opens {when}")


def zone_view(db, run_id: int, window: str, *, now: datetime) -> list[dict]:
    """Per zone of a run: its item counts, fallbacks, and (while it holds queued items) whether
    its window is open at `now` and when it next opens (`describe run`)."""
    from campctl.timeutil import to_db

    out = []
    for row in queue_store.zone_counts(db, run_id):
        opens = windows.next_open(window, row["zone"], now) if row["queued"] else None
        out.append({**row, "open": opens is not None and opens <= now,
                    "opens": to_db(opens) if opens is not None else None})
    return out
