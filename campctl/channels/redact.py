"""Redaction of channel secrets: whatever a channel resolved from the environment (and the
credentials written into its URL) is masked in every text campctl stores or prints."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit, urlunsplit

MASK = "***"
# Shorter values are not masked: they are no secret, and masking "25" or "ok" everywhere
# would garble every reason (a 4-character password is masked).
MIN_SECRET = 4
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|passw|cookie|signature", re.IGNORECASE)


class Redactor:
    """Masks each secret, and the encodings in which a server may echo it (JSON-escaped,
    percent-encoded, HTML-escaped, base64), in a text."""

    def __init__(self, secrets: Iterable[str] = (), encoded: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str) or len(secret) < MIN_SECRET:
                continue
            forms |= {secret, json.dumps(secret)[1:-1],
                      json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe=""),
                      quote_plus(secret), html.escape(secret), _b64(secret)}
        forms |= {e for e in encoded if len(e) >= MIN_SECRET}
        self.forms = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, self.forms))) if self.forms else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str | None) -> str | None:
        if text is None or self._pattern is None:
            return text
        return self._pattern.sub(MASK, str(text))

    def clip(self, text: str, limit: int, *, cut_tail: bool = False) -> str:
        """Redact, then fold whitespace and cut to `limit` characters (redacting first, so a cut
        never leaves half a secret). `cut_tail`: the text is itself a cut read (a body read up to
        N bytes) and may end in the first characters of a secret: drop such an ending."""
        out = " ".join((self(text) or "").split())
        if cut_tail and self._pattern is not None:
            for form in self.forms:
                for size in range(min(len(form) - 1, len(out)), MIN_SECRET - 2, -1):
                    if size > 0 and out.endswith(form[:size]):
                        out = out[:-size] + MASK
                        break
        return out[:limit]


NOTHING = Redactor()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def variables_in(spec: Mapping[str, Any]) -> list[str]:
    """The names of the `${VAR}` references anywhere in a channel definition, sorted, once each."""
    return sorted({name for text in _strings(dict(spec)) for name in _REFERENCE.findall(text)})


def _fill(text: str, environ: Mapping[str, str]) -> str:
    """`${VAR}` replaced where the environment has it; left as written where it has not."""
    return _REFERENCE.sub(lambda m: environ.get(m.group(1), m.group(0)), text)


def url_secrets(url: str) -> list[str]:
    """The userinfo and the query values of a URL (raw and decoded)."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return []
    found = [v for v in (username, password) if v]
    if parts.username is not None and "@" in parts.netloc:
        found.append(parts.netloc.rsplit("@", 1)[0])
    for raw in parts.query.split("&"):
        if "=" in raw:
            found.append(raw.split("=", 1)[1])
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    return [f for f in found if f]


def redactor_for(spec: Mapping[str, Any] | None, environ: Mapping[str, str]) -> Redactor:
    """What to mask for one channel definition: the value of every `${VAR}` it references that
    the environment holds, the userinfo and query values of its URL, and its login as the SMTP
    AUTH exchange encodes it."""
    spec = spec or {}
    secrets: list[str] = []
    secrets += [environ[name] for name in variables_in(spec) if name in environ]
    encoded: list[str] = []
    url = spec.get("url")
    if isinstance(url, str):
        resolved = _fill(url, environ)
        secrets += url_secrets(resolved)
        try:
            parts = urlsplit(resolved)
            if parts.username is not None:
                encoded.append(_b64(f"{parts.username}:{parts.password or ''}"))
            written_path = url if url.startswith("${") else urlsplit(url).path
            if _REFERENCE.search(written_path) and parts.path not in ("", "/"):
                # A URL kept in the environment may carry its token in the path (chat webhooks).
                secrets.append(parts.path)
                secrets.append(parts.path.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            pass
    username, password = spec.get("username"), spec.get("password")
    if isinstance(password, str):
        user = _fill(username, environ) if isinstance(username, str) else ""
        secret = _fill(password, environ)
        secrets.append(secret)
        encoded += [_b64(f"\0{user}\0{secret}"), _b64(f"{user}\0{user}\0{secret}")]
    return Redactor(secrets, encoded)


def mask_url(url: str) -> str:
    """A URL for display: its password and query values masked (`${VAR}` references stay)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    netloc = parts.netloc
    if password and not _REFERENCE.fullmatch(password):
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = "&".join(
        f"{pair.split('=', 1)[0]}={MASK}" if "=" in pair and pair.split("=", 1)[1]
        and not _REFERENCE.fullmatch(pair.split("=", 1)[1]) else pair
        for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def display_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A channel spec fit to print: URL credentials and literal passwords or credential headers
    masked; `${VAR}` references shown as written (they hold no secret)."""
    out = dict(spec)
    if isinstance(out.get("url"), str):
        out["url"] = mask_url(out["url"])
    for key in ("password",):
        value = out.get(key)
        if isinstance(value, str) and value and not _REFERENCE.fullmatch(value):
            out[key] = MASK
    headers = out.get("headers")
    if isinstance(headers, Mapping):
        out["headers"] = {
            name: (MASK if isinstance(value, str) and _SENSITIVE_HEADER.search(str(name))
                   and not _REFERENCE.search(value) else value)
            for name, value in headers.items()}
    return out


def display_leaf(path: str, value: Any) -> Any:
    """One changed value of a channel spec (dotted `path`, as `apply` lists changes), fit to
    print."""
    if not isinstance(value, str):
        return value
    top, _, rest = path.partition(".")
    if top == "headers" and rest:
        return display_spec({"headers": {rest: value}})["headers"][rest]
    if top in ("url", "password") and not rest:
        return display_spec({top: value})[top]
    return value
