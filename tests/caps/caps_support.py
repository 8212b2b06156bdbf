"""Helpers of the frequency-cap tests: definitions, and a state driven through the CLI."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

# The real receivers (plain classes) live beside the reliability workloads.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

T0 = "2027-03-01T09:00:00Z"


def cap(*, max: int = 1, per: str = "1d", policy: str = "defer",
        types: str = "[promotional]") -> str:
    return textwrap.dedent(f"""\
        kind: FrequencyCap
        name: marketing
        max: {max}
        per: {per}
        message_types: {types}
        policy: {policy}
        """)


def campaign(name: str, *, priority: int | None = None, channel: str = "outbox",
             message_type: str = "promotional", send: str = "immediately") -> str:
    extra = f"priority: {priority}\n" if priority is not None else ""
    return textwrap.dedent(f"""\
        kind: Campaign
        name: {name}
        type: one-off
        channel: {channel}
        message_type: {message_type}
        message: {{subject: "{name}", body: "{name} for {{{{ id }}}}"}}
        audience: {{all: true}}
        schedule: {{queue: immediately, send: {send}}}
        """) + extra


class Caps:
    """A state with contacts and definitions, driven through the CLI at chosen instants."""

    def __init__(self, cli, rows, write_yaml, tmp_path) -> None:
        self.cli, self.rows, self.write_yaml, self.tmp_path = cli, rows, write_yaml, tmp_path

    def ok(self, *args: str, now: str = T0):
        result = self.cli("--now", now, *args)
        assert result.exit_code == 0, result
        return result

    def setup(self, n: int, *docs: str) -> None:
        csv = self.tmp_path / "contacts.csv"
        csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(n)))
        self.ok("init")
        self.ok("contacts", "import", str(csv))
        self.ok("apply", str(self.write_yaml("defs.yaml", "---\n".join(docs))))

    def start(self, *names: str, now: str = T0) -> None:
        for name in names:
            for verb in ("submit", "approve", "start"):
                self.ok(*((verb, "campaign", name) + (("--as", "boss") if verb == "approve"
                                                       else ())), now=now)

    def tick(self, now: str) -> dict:
        return self.ok("tick", "-o", "json", now=now).json

    def sent(self) -> list[tuple[str, str]]:
        """(campaign or scenario/step, contact) of every message handed over, sorted."""
        return sorted((r["what"], r["contact"]) for r in self.rows(
            "SELECT coalesce(campaign, scenario || '/' || step) AS what, contact FROM outbox"
            " WHERE message_id NOT LIKE 'notify-%'"))

    def runs(self, now: str = T0) -> dict[str, dict]:
        return {r["campaign"]: r for r in self.ok("get", "runs", "-o", "json", now=now).json}
