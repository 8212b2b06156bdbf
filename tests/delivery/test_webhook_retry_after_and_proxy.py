"""Webhook: a receiver's Retry-After sets the next attempt; HTTP_PROXY/NO_PROXY from the
command's environment route the POST (real servers on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from campctl.engine.context import TickContext
from campctl.engine.delivery import deliver_due
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")


class Server:
    """Records each POST (request line path, headers, body) and answers from `replies`:
    `(status, headers)` per request, 200 once they run out."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list[tuple[int, dict[str, str]]] = []
        self.url = ""
        self.address = ""


@pytest.fixture
def servers() -> Iterator[callable]:
    started: list[ThreadingHTTPServer] = []

    def start() -> Server:
        record = Server()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                status, headers = record.replies.pop(0) if record.replies else (200, {})
                record.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "body": body})
                payload = b'{"ok": true}' if status < 300 else b'{"error": "slow down"}'
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        port = server.server_address[1]
        record.address = f"127.0.0.1:{port}"
        record.url = f"http://127.0.0.1:{port}/hook"
        return record

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def setup_run(arrange, url: str, n: int = 1) -> int:
    arrange.channel("hook", {"type": "webhook", "url": url, "timeout": 5})
    ids = arrange.contacts(n)
    run = arrange.run(channel="hook")
    arrange.items(run, ids, channel="hook")
    return run


def next_attempt(arrange) -> str:
    return arrange.rows("SELECT next_attempt_at FROM queue_items")[0]["next_attempt_at"]


def test_retry_after_seconds_on_429_sets_the_next_attempt(arrange, db, servers):
    hook = servers()
    hook.replies = [(429, {"Retry-After": "600"})]
    run = setup_run(arrange, hook.url)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.retried == 1
    assert next_attempt(arrange) == "2027-03-01T09:10:00Z"  # not the usual 1 minute
    error = arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]
    assert error.startswith("HTTP 429") and "Retry-After: 600" in error
    early = deliver_due(TickContext(db, NOW + timedelta(minutes=5), {}), run_ids=[run],
                        scenario_items=False)
    assert early.sent == 0 and len(hook.requests) == 1
    later = deliver_due(TickContext(db, NOW + timedelta(minutes=10), {}), run_ids=[run],
                        scenario_items=False)
    assert later.sent == 1 and arrange.statuses(run) == {"sent": 1}


def test_retry_after_http_date_on_503_sets_the_next_attempt(arrange, db, servers):
    hook = servers()
    hook.replies = [(503, {"Retry-After": format_datetime(NOW + timedelta(minutes=20),
                                                          usegmt=True)})]
    run = setup_run(arrange, hook.url)
    deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert next_attempt(arrange) == "2027-03-01T09:20:00Z"


@pytest.mark.parametrize(("header", "expected"), [
    ("86400", "2027-03-01T10:00:00Z"),  # bounded: at most one hour
    ("5", "2027-03-01T09:01:00Z"),      # never before the usual backoff
    ("soon", "2027-03-01T09:01:00Z"),   # unreadable: the usual backoff
])
def test_retry_after_is_bounded(arrange, db, servers, header, expected):
    hook = servers()
    hook.replies = [(429, {"Retry-After": header})]
    run = setup_run(arrange, hook.url)
    deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert next_attempt(arrange) == expected


def test_retry_after_on_a_permanent_refusal_is_ignored(arrange, db, servers):
    hook = servers()
    hook.replies = [(400, {"Retry-After": "600"})]
    run = setup_run(arrange, hook.url)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.failed == 1 and arrange.statuses(run) == {"failed": 1}


def test_http_proxy_from_the_environment_carries_the_post(arrange, db, servers):
    hook, proxy = servers(), servers()
    run = setup_run(arrange, hook.url, n=2)
    environ = {"HTTP_PROXY": f"http://user:p%40ss@{proxy.address}"}
    report = deliver_due(TickContext(db, NOW, environ), run_ids=[run], scenario_items=False)
    assert report.sent == 2
    assert hook.requests == []  # the proxy answered; nothing went straight to the receiver
    assert [r["path"] for r in proxy.requests] == [hook.url, hook.url]
    first = proxy.requests[0]["headers"]
    assert first["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert first["Idempotency-Key"].startswith("m-")


def test_lower_case_proxy_variable_wins_and_no_proxy_bypasses(arrange, db, servers):
    hook, proxy = servers(), servers()
    run = setup_run(arrange, hook.url)
    environ = {"HTTP_PROXY": "http://127.0.0.1:1", "http_proxy": f"http://{proxy.address}",
               "NO_PROXY": "example.org, 127.0.0.1"}
    report = deliver_due(TickContext(db, NOW, environ), run_ids=[run], scenario_items=False)
    assert report.sent == 1
    assert proxy.requests == [] and [r["path"] for r in hook.requests] == ["/hook"]


def test_proxy_is_read_from_the_given_environment_only(arrange, db, servers, monkeypatch):
    hook = servers()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # not the command's environment
    run = setup_run(arrange, hook.url)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.sent == 1 and len(hook.requests) == 1


def test_unreachable_proxy_is_a_transient_failure_naming_it(arrange, db, servers):
    hook = servers()
    run = setup_run(arrange, hook.url)
    report = deliver_due(TickContext(db, NOW, {"HTTP_PROXY": "http://127.0.0.1:1"}), run_ids=[run],
                         scenario_items=False)
    assert report.retried == 1 and hook.requests == []
    error = arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]
    assert "via proxy 127.0.0.1:1" in error


def test_unusable_proxy_url_is_a_transient_failure(arrange, db, servers):
    hook = servers()
    run = setup_run(arrange, hook.url)
    report = deliver_due(TickContext(db, NOW, {"HTTP_PROXY": "socks5://127.0.0.1:1080"}),
                         run_ids=[run], scenario_items=False)
    assert report.retried == 1 and hook.requests == []
    error = arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]
    assert "http_proxy must look like http://host:port" in error
