"""Fixtures for the campaign engine tests: a launched campaign, ticks at given times, outbox."""

from __future__ import annotations

import pytest
from launch_support import approve_campaigns


def contacts_csv(count: int) -> str:
    lines = ["id,email,first_name"]
    lines += [f"c{i:03d},c{i:03d}@example.org,Name{i}" for i in range(1, count + 1)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def launch(cli, write_yaml, tmp_path):
    """launch(yaml_text, at=ISO, contacts=N, start=True): import contacts, apply, approve and
    (unless start=False) start the campaign(s) named in the YAML at `at`."""

    def setup(text: str, *, at: str, contacts: int = 3, start: bool = True) -> list[str]:
        csv = tmp_path / "contacts.csv"
        csv.write_text(contacts_csv(contacts))
        result = cli("--now", at, "contacts", "import", str(csv))
        assert result.exit_code == 0, result
        path = write_yaml("campaign.yaml", text)
        result = cli("--now", at, "apply", str(path))
        assert result.exit_code == 0, result
        return approve_campaigns(cli, text, at=at, start=start)

    return setup


@pytest.fixture
def tick(cli):
    def run(at: str, *extra: str) -> dict:
        result = cli("--now", at, "-o", "json", "tick", *extra)
        assert result.exit_code == 0, result
        return result.json

    return run


@pytest.fixture
def outbox(rows):
    def read(campaign: str | None = None) -> list[dict]:
        sql = "SELECT message_id, run_id, contact, sent_at FROM outbox"
        params: tuple = ()
        if campaign:
            sql += " WHERE campaign = ?"
            params = (campaign,)
        return rows(sql + " ORDER BY sent_at, message_id", params)

    return read


@pytest.fixture
def runs(rows):
    def read(campaign: str | None = None) -> list[dict]:
        sql = ("SELECT id, stage, status, scheduled_at, queue_at, send_at, built_at, finished_at "
               "FROM runs")
        params: tuple = ()
        if campaign:
            sql += " WHERE campaign = ?"
            params = (campaign,)
        return rows(sql + " ORDER BY id", params)

    return read


@pytest.fixture
def webhook():
    """A real HTTP server on 127.0.0.1 that accepts every POST and records Idempotency-Keys."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    keys: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            keys.append(self.headers.get("Idempotency-Key") or "")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Info:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    Info.keys = keys  # type: ignore[attr-defined]
    yield Info
    server.shutdown()
    server.server_close()
