"""What travels through one tick or delivery pass: the state, the instant, the environment, the
budget, dry-run and the report, as one object instead of the same six parameters everywhere."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from campctl.models import TickReport
from campctl.store.db import Database


@dataclass(frozen=True)
class Budget:
    """How much one pass may do: at most `max_messages` messages, no new batch after `deadline`
    (a `monotonic()` value), and none once `stop_requested()` says so (asked between batches)."""

    max_messages: int | None = None
    deadline: float | None = None
    stop_requested: Callable[[], bool] | None = None

    @classmethod
    def of(cls, *, max_messages: int | None = None, max_seconds: float | None = None,
           stop_requested: Callable[[], bool] | None = None,
           monotonic: Callable[[], float] = time.monotonic) -> Budget:
        """The budget of a pass starting now: `max_seconds` becomes a deadline."""
        deadline = monotonic() + max_seconds if max_seconds is not None else None
        return cls(max_messages, deadline, stop_requested)

    def stopped(self) -> bool:
        return self.stop_requested is not None and self.stop_requested()


UNLIMITED = Budget()


@dataclass(frozen=True)
class TickContext:
    """One pass of the engine at `now` (see `engine.tick`). `report` collects what it did (a new
    one unless given); `monotonic` and `sleep` pace delivery (rate windows, the deadline) and
    are replaced by tests."""

    db: Database
    now: datetime
    environ: Mapping[str, str] = field(default_factory=dict)
    budget: Budget = UNLIMITED
    dry_run: bool = False
    report: TickReport = field(default=None)  # type: ignore[assignment]  # set in __post_init__
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.report is None:
            object.__setattr__(self, "report", TickReport(now=self.now))
