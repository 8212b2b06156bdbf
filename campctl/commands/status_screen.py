"""The status screen: its sections, summarised when they do not fit (shared by `status`, the
daemon's live screen and the demo)."""

from __future__ import annotations

from campctl.commands.common import PLAIN_ABOVE, cell, object_zones

# A section longer than this is summarised on the status screen (counts per status and the rows
# needing attention); `status --all` lists every row.
SCREEN_ROWS = 20
ATTENTION = {"paused", "failed", "failing"}


class PlainSection:
    """A section too long for a rich table (status --all on a large state): plain rows."""

    def __init__(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        self.title, self.header, self.rows = title, header, rows


def status_renderable(db, *, now, data=None, footer: str | None = None):
    """The status screen as one rich renderable (the daemon's and the demo's live view)."""
    from rich.console import Group
    from rich.text import Text

    parts = status_parts(db, now=now, data=data, full=False)
    if footer:
        parts.append(Text(footer))
    return Group(*parts)


def status_parts(db, *, now, data=None, full: bool, runs: bool = True) -> list:
    """The sections of the status screen (`runs=False`: without the active runs, which the
    daemon's screen shows its own way)."""
    from campctl.engine.status import collect

    data = data or collect(db, now=now)
    zone_of = object_zones(db)
    failing = {(f["kind"], f["name"]) for f in data.get("failing") or []}
    screen = _Screen(full=full)
    screen.section("Plans", ["NAME", "STATUS", "SCHEDULE", "NEXT"], data["plans"],
                   lambda p: (p["name"], p["status"] or "-", p["schedule_type"] or "-",
                              _next(p["next_occurrence"], zone_of({"plan": p["name"]}),
                                    p.get("next_dst"))),
                   status=lambda p: _flagged(p["status"], ("Plan", p["name"]) in failing),
                   rest="campctl get plans")
    screen.section("Campaigns", ["NAME", "STATUS", "TYPE", "LAUNCHED", "NEXT"],
                   data["campaigns"],
                   lambda c: (c["name"], c["status"] or "-", c["type"],
                              cell(c["launched_at"], c["timezone"]),
                              _next(c["next_occurrence"], c["timezone"], c.get("next_dst"))),
                   status=lambda c: _flagged(c["status"], ("Campaign", c["name"]) in failing),
                   rest="campctl get campaigns")
    if runs:
        screen.section("Active runs", ["RUN", "CAMPAIGN/STAGE", "STATUS", "PROGRESS", "SENT",
                                       "FAILED", "STALE"], data["runs"], _run_cells,
                       status=lambda r: "failed" if r["failed"] and r["status"] != "paused"
                       else r["status"], rest="campctl get runs")
    screen.section("Active instances", ["ID", "NAME", "PLAN", "STATUS", "STAGE", "STARTED"],
                   data["instances"],
                   lambda i: (str(i["id"]), i["name"], i["plan"], i["status"],
                              i.get("stage") or "-",
                              cell(i["started_at"], zone_of({"plan": i["plan"]}))),
                   status=lambda i: i["status"], rest="campctl get instances")
    screen.section("Scenarios", ["NAME", "ACTIVE", "LAUNCH", "PROFILES", "BY STEP"],
                   data["scenarios"], _scenario_cells,
                   status=lambda s: _flagged("active" if s["active"] else "inactive",
                                             ("Scenario", s["name"]) in failing),
                   rest="campctl get scenarios")
    screen.section("Next occurrences", ["KIND", "NAME", "AT"], data["next_occurrences"],
                   lambda o: (o["kind"], o["name"],
                              _next(o["next_due_at"], zone_of({o["kind"].lower(): o["name"]}),
                                    o.get("dst"))),
                   status=None, rest="campctl get campaigns")
    if data.get("failing"):
        screen.section("Failing (retried at every tick)",
                       ["KIND", "NAME", "SINCE", "TICKS", "REASON"], data["failing"],
                       lambda f: (f["kind"], f["name"],
                                  cell(f["since"], zone_of({f["kind"].lower(): f["name"]})),
                                  str(f["ticks"]), f["reason"]),
                       status=lambda f: "failing", rest="campctl status --all")
    return screen.parts


def _next(at, tz: str | None, mark: str | None) -> str:
    """A next occurrence, marked when a DST change moved (gap) or doubled (fold) it."""
    text = cell(at, tz)
    return f"{text} ({mark}, DST)" if mark else text


def _flagged(status: str | None, failing: bool) -> str:
    return "failing" if failing else status or "-"


def _run_cells(r: dict) -> tuple:
    from rich.progress_bar import ProgressBar

    total = r["queued"] + r["sent"] + r["failed"] + r["cancelled"]
    done = total - r["queued"]
    bar = ProgressBar(total=max(total, 1), completed=done if total else 0, width=20)
    return (str(r["id"]), f"{r['campaign']}/{r['stage']}", r["status"], bar,
            f"{r['sent']}/{total}", str(r["failed"]), str(r.get("stale", 0)))


def _scenario_cells(s: dict) -> tuple:
    return (s["name"], "yes" if s["active"] else "no", s["launch_type"] or "-",
            str(s["profiles_active"]),
            ", ".join(f"{k}: {v}" for k, v in (s.get("by_step") or {}).items()) or "-")


class _Screen:
    """Collects the sections of the status screen; a long section is summarised unless `full`."""

    def __init__(self, *, full: bool) -> None:
        self.full = full
        self.parts: list = []

    def section(self, title: str, columns: list[str], items: list[dict], cells, *,
                status, rest: str) -> None:
        from rich.text import Text

        if not items:
            self.parts.append(Text(f"{title}: none", style="dim"))
            return
        if self.full or len(items) <= SCREEN_ROWS or status is None:
            shown = items if self.full or len(items) <= SCREEN_ROWS else items[:SCREEN_ROWS]
            self._rows(title, columns, [cells(i) for i in shown])
            if len(shown) < len(items):
                self.parts.append(Text(f"... {len(items) - len(shown)} more: {rest}",
                                       style="dim"))
            return
        counts: dict[str, int] = {}
        picked: list[dict] = []
        for item in items:
            state = status(item)
            counts[state] = counts.get(state, 0) + 1
            if state in ATTENTION and len(picked) < SCREEN_ROWS:
                picked.append(item)
        self.parts.append(Text(f"{title}: {len(items)} ("
                               + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                               + ")"))
        if picked:
            self._rows(f"{title} needing attention", columns, [cells(i) for i in picked])
        self.parts.append(Text(f"... {len(items) - len(picked)} more not shown: "
                               f"campctl status --all, or {rest}", style="dim"))

    def _rows(self, title: str, columns: list[str], rows: list[tuple]) -> None:
        if len(rows) > PLAIN_ABOVE:
            self.parts.append(PlainSection(title, columns, [
                [_plain_cell(c) for c in row] for row in rows]))
            return
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_lines=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        self.parts.append(table)


def _plain_cell(value) -> str:
    """A status cell as text (a progress bar becomes its percentage)."""
    if isinstance(value, str):
        return value
    total, done = getattr(value, "total", None), getattr(value, "completed", None)
    if total:
        return f"{100 * (done or 0) / total:.0f}%"
    return str(value)
