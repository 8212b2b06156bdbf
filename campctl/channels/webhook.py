"""The webhook channel: POST one JSON object per message with an Idempotency-Key header."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from campctl.channels.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    Channel,
    ChannelError,
    Message,
    Outcome,
    parse_timeout,
)

READ_LIMIT = 4000  # bytes of an answer read for its reason


class WebhookChannel(Channel):
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
        self._conn = None
        self._target: tuple | None = None

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
        import http.client

        if self._conn is None:
            if scheme == "https":
                self._conn = http.client.HTTPSConnection(host, port, timeout=self.timeout)
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:
                pass

    def _deliver(self, messages: list[Message]) -> Iterator[Outcome]:
        try:
            scheme, host, port, path, headers = self._resolve()
        except ChannelError as exc:
            yield from (Outcome(TRANSIENT, exc.reason) for _ in messages)
            return
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
                if response.will_close:
                    self.close()
            except TimeoutError:
                self.close()
                return Outcome(TRANSIENT, f"no answer from {host}:{port} within {self.timeout:g}s")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server closed: one fresh try, same key.
                self.close()
                if attempt == 1 and reused:
                    continue
                return Outcome(TRANSIENT, f"connection lost: {e or type(e).__name__}")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                return Outcome(TRANSIENT, f"cannot reach {host}:{port}: "
                                          f"{detail or type(exc).__name__}")
            break
        # Masked before the cut, so a cut never leaves half a secret behind.
        snippet = self.redact.clip(text.decode("utf-8", "replace"), 200,
                                   cut_tail=len(text) >= READ_LIMIT)
        if 200 <= status < 300:
            return Outcome(SENT)
        reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        if status == 429 or status >= 500 or status == 408:
            return Outcome(TRANSIENT, reason)
        return Outcome(PERMANENT, reason)


def resolve(value: Any, channel: WebhookChannel, key: str) -> Any:
    from campctl.channels.base import resolve_secrets

    return resolve_secrets(value, channel.environ, what=f"channel {channel.name} header {key}")
