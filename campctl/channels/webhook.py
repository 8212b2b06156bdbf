"""The webhook channel: POST one JSON object per message with an Idempotency-Key header,
through the proxy the environment names, honouring a receiver's Retry-After."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from campctl.channels.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    ChannelError,
    Message,
    NetworkChannel,
    Outcome,
    parse_timeout,
)

if TYPE_CHECKING:
    import http.client

READ_LIMIT = 4000  # bytes of an answer read for its reason
RETRY_AFTER_STATUSES = (429, 503)


class Proxy(NamedTuple):
    host: str
    port: int
    authorization: str | None  # a Proxy-Authorization header value


def proxies_from(environ: Mapping[str, str]) -> dict[str, str]:
    """`<scheme>_proxy` variables of `environ`, keyed by scheme (`no` for NO_PROXY), the
    lower-case name winning over the upper-case one, as curl and urllib read them."""
    proxies: dict[str, str] = {}
    for lower_only in (False, True):
        for name, value in environ.items():
            if name[-6:].lower() != "_proxy" or (lower_only and name != name.lower()):
                continue
            if value:
                proxies[name[:-6].lower()] = value
            elif lower_only:
                proxies.pop(name[:-6].lower(), None)
    return proxies


def proxy_for(scheme: str, host: str, port: int, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy a request to `scheme://host:port` goes through, or None (no proxy variable, or
    NO_PROXY names the host). Raises ChannelError for a proxy URL that cannot be used."""
    from urllib.parse import unquote, urlsplit
    from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

    proxies = proxies_from(environ)
    url = proxies.get(scheme)
    if not url or proxy_bypass_environment(f"{host}:{port}", proxies):
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    try:
        proxy_port = parts.port or 80
    except ValueError:
        proxy_port = 0
    if parts.scheme != "http" or not parts.hostname or not proxy_port:
        raise ChannelError(f"{scheme}_proxy must look like http://host:port (an http proxy)")
    authorization = None
    if parts.username is not None:
        import base64

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, proxy_port, authorization)


def retry_after(value: str | None) -> timedelta | datetime | None:
    """A Retry-After header: delay seconds or an HTTP date (None when absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return timedelta(seconds=min(int(value), 10**9))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class WebhookChannel(NetworkChannel):
    type = "webhook"
    batch_size = 50

    def __init__(self, name: str, spec: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        super().__init__(name, spec, environ)
        url = self.spec.get("url")
        if not isinstance(url, str) or not url:
            raise ChannelError(f"channel {name}: webhook needs a url")
        headers = self.spec.get("headers") or {}
        if not isinstance(headers, dict):
            raise ChannelError(f"channel {name}: headers must be a mapping of name: value")
        self.timeout = parse_timeout(self.spec.get("timeout"), 10.0)
        self._conn: http.client.HTTPConnection | None = None
        self._proxy: Proxy | None = None

    def _resolve(self) -> tuple[str, str, int, str, dict[str, str]]:
        from urllib.parse import urlsplit

        url = self.secret("url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChannelError(f"channel {self.name}: url must be http:// or https://")
        headers = {
            str(k): str(resolve(v, self, k))
            for k, v in (self.spec.get("headers") or {}).items()
        }
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, parts.hostname, port, path, headers

    def _connection(self, scheme: str, host: str, port: int):
        """The kept-alive connection: to the receiver, to the http proxy (http:// URLs) or
        through a CONNECT tunnel of the proxy (https:// URLs)."""
        if self._conn is None:
            proxy = self._proxy
            if proxy is None:
                connect_host, connect_port = host, port
            else:
                connect_host, connect_port = proxy.host, proxy.port
            plain, secure = _connection_classes()
            if scheme == "https":
                conn: http.client.HTTPConnection = secure(
                    connect_host, connect_port, timeout=self.timeout)
                if proxy is not None:
                    tunnel = {"Proxy-Authorization": proxy.authorization} if (
                        proxy.authorization) else None
                    conn.set_tunnel(host, port, headers=tunnel)
            else:
                conn = plain(connect_host, connect_port, timeout=self.timeout)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:
                pass

    def _deliver(self, messages: Iterable[Message]) -> Iterator[Outcome]:
        try:
            scheme, host, port, path, headers = self._resolve()
            proxy = proxy_for(scheme, host, port, self.environ)
        except ChannelError as exc:
            yield from (Outcome(TRANSIENT, exc.reason) for _ in messages)
            return
        if proxy != self._proxy:
            self.close()
            self._proxy = proxy
        if proxy is not None and scheme == "http":
            # An http proxy takes the absolute URL in the request line.
            path = f"http://{host}:{port}{path}"
            if proxy.authorization:
                headers = {**headers, "Proxy-Authorization": proxy.authorization}
        for message in messages:
            yield self._post(scheme, host, port, path, headers, message)

    def _post(self, scheme, host, port, path, headers, message: Message) -> Outcome:
        import http.client

        payload = dict(message.record)
        payload.setdefault("message_id", message.message_id)
        payload.setdefault("to", message.to)
        payload.setdefault("subject", message.subject)
        payload.setdefault("body", message.body)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        sent_headers = {
            "Content-Type": "application/json",
            "User-Agent": "campctl",
            **headers,
            "Idempotency-Key": message.message_id,
        }
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection(scheme, host, port)
            try:
                conn.request("POST", path, body=body, headers=sent_headers)
                response = conn.getresponse()
                text = response.read(READ_LIMIT)
                status = response.status
                asked = (response.getheader("Retry-After") or "").strip()[:64]
                wait = retry_after(asked) if status in RETRY_AFTER_STATUSES else None
                if response.will_close:
                    self.close()
            except TimeoutError:
                self.close()
                return Outcome(TRANSIENT, f"no answer from {host}:{port}{self._via()} within "
                                          f"{self.timeout:g}s")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server closed: one fresh try, same key.
                self.close()
                if attempt == 1 and reused:
                    continue
                return Outcome(TRANSIENT, f"connection lost: {e or type(e).__name__}")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                return Outcome(TRANSIENT, f"cannot reach {host}:{port}{self._via()}: "
                                          f"{detail or type(exc).__name__}")
            break
        # Masked before the cut, so a cut never leaves half a secret behind.
        snippet = self.redact.clip(text.decode("utf-8", "replace"), 200,
                                   cut_tail=len(text) >= READ_LIMIT)
        if 200 <= status < 300:
            return Outcome(SENT)
        reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        if wait is not None:
            reason += f" (Retry-After: {self.redact(asked)})"
        if status == 429 or status >= 500 or status == 408:
            return Outcome(TRANSIENT, reason, retry_after=wait)
        return Outcome(PERMANENT, reason)

    def _via(self) -> str:
        return "" if self._proxy is None else (
            f" via proxy {self._proxy.host}:{self._proxy.port}")


@functools.cache
def _connection_classes() -> tuple[type[http.client.HTTPConnection],
                                   type[http.client.HTTPSConnection]]:
    """http.client's connections without the 40 ms stalls of small writes on a kept-alive
    connection. http.client writes a request's headers and its body separately, and many
    receivers (Python's http.server among them) write an answer's headers and body separately:
    Nagle's algorithm holds the second write until the first is acknowledged, and the other
    side delays that ACK (~40 ms on Linux), so a receiver taking 20 ms answered in ~67 ms.
    TCP_NODELAY sends our second write at once; TCP_QUICKACK (Linux), set again before each
    answer is read, acknowledges the receiver's first write at once. (Imported here: a no-op
    tick must not load http.client.)"""
    import http.client
    import socket

    quick_ack = getattr(socket, "TCP_QUICKACK", None)

    def tcp(sock: socket.socket | None) -> bool:
        return sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)

    def no_delay(sock: socket.socket | None) -> None:
        if sock is not None and tcp(sock):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def ack_at_once(sock: socket.socket | None) -> None:
        # Linux clears quick-ACK mode by itself after a while: set it for every answer.
        if quick_ack is not None and sock is not None and tcp(sock):
            sock.setsockopt(socket.IPPROTO_TCP, quick_ack, 1)

    class Plain(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()  # for Secure: the TLS handshake too (HTTPSConnection comes next)
            no_delay(self.sock)

        def getresponse(self) -> http.client.HTTPResponse:
            ack_at_once(self.sock)
            return super().getresponse()

    class Secure(Plain, http.client.HTTPSConnection):
        pass

    return Plain, Secure


def resolve(value: Any, channel: WebhookChannel, key: str) -> Any:
    from campctl.channels.base import resolve_secrets

    return resolve_secrets(value, channel.environ, what=f"channel {channel.name} header {key}")
