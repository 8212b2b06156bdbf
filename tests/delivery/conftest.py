"""Fixtures for delivery tests: arranged rows, and real SMTP / HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from store_support import DirectState

from campctl.store.db import open_state

T0 = "2027-03-01T09:00:00Z"


class Arrange:
    """Writes the rows a delivery needs, straight into the state (arranging state only)."""

    def __init__(self, state) -> None:
        open_state(state, create=True).close()  # schema
        self.path = state
        self.conn = DirectState(state)
        self._contacts = 0

    def close(self) -> None:
        self.conn.close()

    def contact(self, ext: str, email: str | None = None, *, attrs: dict | None = None,
                groups=(), opt_out=(), phone: str | None = None) -> int:
        cid = self.conn.insert(
            "INSERT INTO contacts (external_id, email, phone, attrs, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ext, email, phone, json.dumps(attrs or {}), T0, T0),
        )
        for g in groups:
            self.conn.execute("INSERT INTO contact_groups VALUES (?, ?)", (g, cid))
        for t in opt_out:
            self.conn.execute("INSERT INTO contact_optouts VALUES (?, ?)", (cid, t))
        return cid

    def contacts(self, n: int, *, prefix: str = "c") -> list[int]:
        rows = [(f"{prefix}{i}", f"{prefix}{i}@example.com", json.dumps({"first_name": f"N{i}"}),
                 T0, T0) for i in range(n)]
        with self.conn.transaction():
            self.conn.executemany(
                "INSERT INTO contacts (external_id, email, attrs, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)", rows)
        return [r["id"] for r in self.conn.rows(
            "SELECT id FROM contacts WHERE external_id LIKE ? ORDER BY id", (f"{prefix}%",))]

    def _object(self, kind: str, name: str, spec: dict, status: str | None) -> None:
        self.conn.execute(
            "INSERT INTO objects (kind, name, version, spec, status, created_at, updated_at)"
            " VALUES (?, ?, 1, ?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET"
            " version = excluded.version, spec = excluded.spec, status = excluded.status,"
            " description = NULL, source = NULL, created_at = excluded.created_at,"
            " updated_at = excluded.updated_at, launched_at = NULL, created_by = NULL",
            (kind, name, json.dumps(spec), status, T0, T0))

    def channel(self, name: str, spec: dict) -> None:
        self._object("Channel", name, spec, None)

    def scenario(self, name: str, spec: dict, status: str = "active") -> None:
        self._object("Scenario", name, spec, status)

    def run(self, *, campaign: str = "spring", stage: str = "main", status: str = "queued",
            channel: str = "outbox", subject: str = "Hello {{ first_name }}",
            body: str = "Hi {{ first_name }}, id {{ id }}.", message_type: str = "promotional",
            include_opted_out: bool = False) -> int:
        spec = {"campaign": campaign, "stage": stage, "code": campaign, "timezone": "UTC",
                "channel": channel, "message_type": message_type, "audience": {"all": True},
                "include_opted_out": include_opted_out,
                "message": {"subject": subject, "body": body}, "window": None,
                "campaign_version": 1}
        return self.conn.insert(
            "INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", (campaign, stage, status, json.dumps(spec), T0, T0))

    def items(self, run_id: int | None, contact_ids, *, channel: str = "outbox",
              message_type: str = "promotional", scenario: str | None = None,
              step: str | None = None, profile_id: int | None = None) -> None:
        with self.conn.transaction():
            self.conn.executemany(
                "INSERT INTO queue_items (message_id, run_id, profile_id, scenario, step,"
                " contact_id, channel, message_type, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(f"m-{run_id or scenario}-{step or ''}-{c}", run_id, profile_id, scenario, step,
                  c, channel, message_type, T0) for c in contact_ids])

    def rows(self, sql: str, params=()) -> list[dict]:
        return self.conn.rows(sql, params)

    def statuses(self, run_id: int | None = None) -> dict[str, int]:
        sql = "SELECT status, count(*) AS n FROM queue_items"
        params: tuple = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params = (run_id,)
        return {r["status"]: r["n"] for r in self.conn.rows(sql + " GROUP BY status", params)}


@pytest.fixture
def arrange(state):
    a = Arrange(state)
    yield a
    a.close()


@pytest.fixture
def db(state, arrange):
    handle = open_state(state, create=True)
    yield handle
    handle.close()


# --- SMTP ------------------------------------------------------------------------------------
class SmtpRecorder:
    """An aiosmtpd handler: records messages; `script` holds SMTP replies to give at DATA
    (e.g. '451 try later') or 'drop' to close the connection, consumed one per message."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.script: list[str] = []
        self.rcpt_script: dict[str, str] = {}
        self.auth: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_script.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            action = self.script.pop(0) if self.script else "250 Message accepted"
        if action == "drop":
            server.transport.close()
            return "421 closing"
        if action.startswith("2"):
            from email import message_from_bytes

            msg = message_from_bytes(envelope.content)
            with self.lock:
                self.messages.append({"session": id(session), "to": envelope.rcpt_tos,
                                      "message_id": msg["Message-ID"],
                                      "mail_from": envelope.mail_from, "from": msg["From"],
                                      "subject": str(msg["Subject"]),
                                      "body": msg.get_payload(decode=True).decode()})
        return action


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    handler = SmtpRecorder()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    yield handler
    controller.stop()


@pytest.fixture
def smtp_factory():
    """start(**controller_options) -> SmtpRecorder with `.port`; stopped after the test."""
    from aiosmtpd.controller import Controller

    controllers = []

    def start(**options) -> SmtpRecorder:
        handler = SmtpRecorder()
        handler.port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=handler.port, **options)
        controller.start()
        controllers.append(controller)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_auth_server():
    """An SMTP server that requires AUTH (allowed without TLS, for the test only)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    handler = SmtpRecorder()

    def authenticator(server, session, envelope, mechanism, auth_data):
        handler.auth.append((auth_data.login.decode(), auth_data.password.decode()))
        ok = auth_data.login == b"mailer" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    port = _free_port()
    with warnings.catch_warnings():  # AUTH without TLS is what this loopback test wants
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        controller = Controller(handler, hostname="127.0.0.1", port=port,
                                authenticator=authenticator, auth_require_tls=False,
                                auth_required=True, auth_exclude_mechanism=["LOGIN"])
        controller.start()
    handler.port = port
    yield handler
    controller.stop()


# --- HTTP ------------------------------------------------------------------------------------
class HttpRecorder:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, float]] = []  # (status, delay seconds) per request
        self.lock = threading.Lock()


@pytest.fixture
def http_server():
    recorder = HttpRecorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            with recorder.lock:
                status, delay = recorder.script.pop(0) if recorder.script else (200, 0.0)
                recorder.requests.append({"headers": dict(self.headers), "body": body,
                                          "path": self.path, "status": status})
            if delay:
                time.sleep(delay)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "nope"}'
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield recorder
    server.shutdown()
    server.server_close()
