"""Real receiving servers on 127.0.0.1 that count what campctl hands over.

Plain classes (no pytest), so the full-size script can use them too:

    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        ... smtp.port, hook.url ...
        smtp.keys()   -> list of Message-IDs in arrival order (duplicates kept)
        hook.keys()   -> list of Idempotency-Keys in arrival order

Each arrival also keeps `time.time()` at receipt (`arrivals()`), for "nothing after X" checks.
`delay=SECONDS` makes each message (SMTP DATA, webhook POST) take that long to answer, after its
receipt is recorded: a slow channel, so that batches and operator actions interleave.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[tuple[str, float, dict]] = []

    def _add(self, key: str, info: dict) -> None:
        with self._lock:
            self._arrivals.append((key, time.time(), info))

    def arrivals(self) -> list[tuple[str, float, dict]]:
        with self._lock:
            return list(self._arrivals)

    def keys(self) -> list[str]:
        return [key for key, _, _ in self.arrivals()]

    def duplicates(self) -> int:
        """Arrivals beyond the first for each key."""
        return sum(n - 1 for n in Counter(self.keys()).values() if n > 1)


class SmtpReceiver(_Recorder):
    """An aiosmtpd server that accepts every message and records its Message-ID."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.port = free_port()
        self._controller = None

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        msg = message_from_bytes(envelope.content)
        self._add(str(msg["Message-ID"]), {"to": list(envelope.rcpt_tos),
                                           "subject": str(msg["Subject"])})
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        return "250 Message accepted"

    def __enter__(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._controller is not None:
            self._controller.stop()


class WebhookReceiver(_Recorder):
    """A threading HTTP server that answers 200 to every POST and records its Idempotency-Key."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        recorder = self
        self.delay = delay

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The answer goes out in two writes (headers, body); with Nagle on, the body waits
            # for the client's delayed ACK: 40 ms per request on loopback.
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                recorder._add(self.headers.get("Idempotency-Key") or "", {"body": body})
                if recorder.delay:
                    time.sleep(recorder.delay)
                payload = b'{"ok": true}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
