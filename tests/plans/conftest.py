"""Helpers for plan tests: definitions, contacts, approval, ticks, and reading the log."""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CAMPAIGN = """\
kind: Campaign
name: {name}
code: {code}
timezone: Europe/Paris
closes_at: "{closes_at}"
channel: {channel}
message_type: promotional
audience: {{all: true}}
message:
  subject: "{subject}"
  body: "Hello {{{{ id }}}}"
type: one-off
schedule:
  queue: immediately
  send: immediately
stages:
  - name: teaser
    controlled_by_plan: true
    message: {{subject: "Teaser {subject}", body: "Soon, {{{{ id }}}}"}}
  - name: main
    controlled_by_plan: {main_controlled}
"""

CHANNEL = """\
kind: Channel
name: slow
type: webhook
url: {url}
rate: {rate}
"""

PLAN = """\
kind: Plan
name: {name}
transition: {transition}
schedule:
{schedule}
stages:
{stages}
"""


class PlanWorld:
    """Builds a state file with contacts, a campaign and a plan through the real CLI."""

    def __init__(self, cli, write_yaml, rows, tmp_path, hook_url: str, received: list,
                 hook_status: list):
        self.hook_url = hook_url
        self.received = received  # JSON bodies the webhook receiver got
        self.hook_status = hook_status  # [HTTP status the receiver answers]
        self.cli = cli
        self.write_yaml = write_yaml
        self.rows = rows
        self.tmp_path = tmp_path
        self.now = "2027-03-01T09:00:00Z"

    def ok(self, *args, now: str | None = None):
        result = self.cli("--now", now or self.now, *args)
        assert result.exit_code == 0, result
        return result

    def contacts(self, count: int) -> None:
        path = self.tmp_path / "contacts.csv"
        lines = ["id,email,first_name"] + [f"c{i:03d},c{i:03d}@example.com,N{i}"
                                           for i in range(count)]
        path.write_text("\n".join(lines) + "\n")
        self.ok("contacts", "import", str(path))

    def campaign(self, *, name="spring-sale", code="SPR-27", closes_at="2027-06-30T23:59",
                 channel="outbox", subject="v1", main_controlled="true", rate=None) -> None:
        text = CAMPAIGN.format(name=name, code=code, closes_at=closes_at, channel=channel,
                               subject=subject, main_controlled=main_controlled)
        if rate:
            text = CHANNEL.format(rate=rate, url=self.hook_url) + "---\n" + text
        self.ok("apply", str(self.write_yaml(f"{name}.yaml", text)))

    def plan(self, *, name="spring-launch", transition="completed", schedule=None,
             stages=(("spring-sale", "teaser"), ("spring-sale", "main"))) -> None:
        schedule = schedule or {"type": "manual"}
        sched = "\n".join(f"  {k}: {_yaml_value(v)}" for k, v in schedule.items())
        stage_text = "\n".join(f"  - {{campaign: {c}, stage: {s}}}" for c, s in stages)
        text = PLAN.format(name=name, transition=transition, schedule=sched, stages=stage_text)
        self.ok("apply", str(self.write_yaml(f"plan-{name}.yaml", text)))

    def approve(self, kind: str, name: str, now: str | None = None) -> None:
        self.ok("submit", kind, name, now=now)
        self.ok("approve", kind, name, now=now)

    def tick(self, now: str) -> dict:
        return self.ok("-o", "json", "tick", now=now).json

    def instances(self, plan: str | None = None) -> list[dict]:
        args = ["-o", "json", "get", "instances"] + (["--plan", plan] if plan else [])
        return self.ok(*args).json

    def log(self, event: str | None = None, plan: str | None = None) -> list[dict]:
        sql = "SELECT * FROM exec_log WHERE 1 = 1"
        params: list = []
        if event:
            sql += " AND event = ?"
            params.append(event)
        if plan:
            sql += " AND plan = ?"
            params.append(plan)
        return self.rows(sql + " ORDER BY id", params)

    def sent(self, run: int) -> int:
        """Messages of a run handed over (any channel)."""
        return self.rows("SELECT count(*) AS n FROM queue_items WHERE run_id = ? AND "
                         "status = 'sent'", (run,))[0]["n"]

    def outbox(self, run: int | None = None) -> list[dict]:
        if run is None:
            return self.rows("SELECT * FROM outbox ORDER BY message_id")
        return self.rows("SELECT * FROM outbox WHERE run_id = ? ORDER BY message_id", (run,))


def _yaml_value(value) -> str:
    if isinstance(value, str) and (" " in value or ":" in value or "*" in value):
        return f'"{value}"'
    return str(value)


@pytest.fixture
def webhook():
    """A webhook receiver on 127.0.0.1 that accepts everything: (url, received bodies)."""
    received: list = []
    status = [200]  # tests may change the answer: status[0] = 400

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length) or b"null"))
            self.send_response(status[0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, status
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def world(cli, write_yaml, rows, tmp_path, webhook) -> PlanWorld:
    w = PlanWorld(cli, write_yaml, rows, tmp_path, *webhook)
    w.ok("init")
    return w


def dedent(text: str) -> str:
    return textwrap.dedent(text)
