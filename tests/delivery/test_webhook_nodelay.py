"""The webhook channel's connections do not stall on small writes (Nagle + delayed ACK): a
receiver answering in 20 ms took ~67 ms a message over one connection before
(`python3 benchmarks/bench_delivery.py --network` measures it; these tests check the socket
options that remove the stall, on a real connection to a real server on 127.0.0.1)."""

from __future__ import annotations

import socket

import pytest

from campctl.channels import Message
from campctl.channels.webhook import WebhookChannel, _connection_classes


def _message(i: int) -> Message:
    record = {"message_id": f"m-{i}", "to": f"c{i}@example.com", "subject": "s", "body": "b"}
    return Message(f"m-{i}", f"c{i}@example.com", "s", "b", record)


def test_a_kept_alive_webhook_connection_sends_without_nagle_delay(http_server):
    channel = WebhookChannel("hook", {"type": "webhook", "url": http_server.url}, {})
    try:
        outcomes = list(channel.deliver([_message(i) for i in range(3)]))
        assert [o.ok for o in outcomes] == [True, True, True]
        assert channel._conn is not None and channel._conn.sock is not None
        sock = channel._conn.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        channel.close()
    # One connection for the three messages (kept alive), each with its key.
    assert [r["headers"]["Idempotency-Key"] for r in http_server.requests] == \
        ["m-0", "m-1", "m-2"]


class _Recording:
    """A real socket that notes the options set on it (everything else goes to the socket)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level, option, value):
        self.options.append((level, option, value))
        return self._sock.setsockopt(level, option, value)

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux-only")
def test_each_answer_is_read_with_quick_acks(http_server):
    """The receiver's answer headers are acknowledged at once, so an answer written in two
    pieces (as http.server writes it) does not wait for a delayed ACK: set before every read."""
    plain, _ = _connection_classes()
    port = int(http_server.url.rsplit(":", 1)[1].split("/")[0])
    conn = plain("127.0.0.1", port, timeout=5)
    try:
        conn.connect()
        recording = _Recording(conn.sock)
        conn.sock = recording  # type: ignore[assignment]
        for i in range(3):
            conn.request("POST", "/hook", body=b"{}", headers={"Idempotency-Key": f"k{i}"})
            assert conn.getresponse().read() == b'{"ok": true}'
    finally:
        conn.close()
    quick = (socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    assert recording.options.count(quick) == 3
    assert len(http_server.requests) == 3
