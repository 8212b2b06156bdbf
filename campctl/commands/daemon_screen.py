"""The daemon's screen: a header with the state file and the clock, the active runs with their
sending speed, ETA and why each one waits, then the status summary and the last tick's line."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campctl.commands.common import cell, local_text
from campctl.commands.tick_output import summary_line

RUN_COLUMNS = ["RUN", "CAMPAIGN/STAGE", "STATUS", "SENT", "LEFT", "MSG/S", "ETA", "WAITS FOR"]


@dataclass
class DaemonScreen:
    """What the screen remembers between ticks: each run's sent count at the previous tick,
    to tell messages per second on the daemon's clock (virtual with --now, else real)."""

    state_path: str
    virtual: bool
    interval: float
    _seen: dict[int, tuple[datetime, int]] = field(default_factory=dict)
    _last: tuple[datetime, int] | None = None

    def header(self, now: datetime, total_rate: float | None) -> str:
        clock = (f"virtual: --now, +{_seconds(self.interval)} per tick" if self.virtual
                 else "real")
        speed = "-" if total_rate is None else f"{total_rate:.1f}"
        return (f"campctl daemon  state {self.state_path}  clock {cell(now)} ({clock})  "
                f"messages/s {speed}")

    def rows(self, db: Any, data: dict, *, now: datetime, notes: list[str]) -> list[list[str]]:
        """One row per active run; times in its campaign's zone."""
        from campctl.engine.status import run_waits

        waits = run_waits(db, data["runs"], now=now, notes=notes)
        zones = {c["name"]: c.get("timezone") for c in data["campaigns"]}
        rows = []
        seen: dict[int, tuple[datetime, int]] = {}
        for run in data["runs"]:
            tz = zones.get(run["campaign"])
            left = run["queued"]
            rate = self._rate(self._seen.get(run["id"]), now, run["sent"])
            seen[run["id"]] = (now, run["sent"])
            why = waits.get(run["id"])
            eta = (now + timedelta(seconds=left / rate) if rate and left and why is None
                   else None)
            rows.append([str(run["id"]), f"{run['campaign']}/{run['stage']}", run["status"],
                         str(run["sent"]), str(left), "-" if rate is None else f"{rate:.1f}",
                         cell(eta, tz) if eta else ("done" if not left else "-"),
                         local_text(why, tz) if why else "-"])
        self._seen = seen
        return rows

    def total_rate(self, now: datetime, sent: int) -> float | None:
        """Messages per second over all runs since the previous tick."""
        total = sent + (self._last[1] if self._last else 0)
        rate = self._rate(self._last, now, total)
        self._last = (now, total)
        return rate

    @staticmethod
    def _rate(before: tuple[datetime, int] | None, now: datetime, sent: int) -> float | None:
        if before is None:
            return None
        seconds = (now - before[0]).total_seconds()
        return max(0, sent - before[1]) / seconds if seconds > 0 else None

    def renderable(self, db: Any, *, now: datetime, report: Any) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from campctl.commands.status_screen import status_parts
        from campctl.engine.status import collect

        data = collect(db, now=now)
        total = self.total_rate(now, report.sent)
        parts: list[Any] = [Text(self.header(now, total), style="bold")]
        rows = self.rows(db, data, now=now, notes=list(report.notes))
        if rows:
            table = Table(title="Active runs", title_justify="left")
            for column in RUN_COLUMNS:
                table.add_column(column)
            for row in rows[:40]:
                table.add_row(*row)
            parts.append(table)
            if len(rows) > 40:
                parts.append(Text(f"... {len(rows) - 40} more: campctl get runs", style="dim"))
        else:
            parts.append(Text("Active runs: none", style="dim"))
        parts += status_parts(db, now=now, data=data, full=False, runs=False)
        parts.append(Text(summary_line(report.as_json())))
        return Group(*parts)


def _seconds(value: float) -> str:
    whole = int(value)
    if whole == value and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{value:g}s"
