"""The channel interface: a message, an outcome, secrets from the environment, rate parsing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campctl.definitions.models import Channel as ChannelDefinition
from campctl.definitions.models import ChannelModel

SENT = "sent"
TRANSIENT = "transient"  # retried with backoff until max_attempts
PERMANENT = "permanent"  # failed at once

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_CONNECTIONS = 4
MAX_CONNECTIONS = 64
_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")
_RATE_UNITS = {"s": 1, "m": 60, "h": 3600}


class ChannelError(Exception):
    """A channel cannot be used as configured; `reason` is one line for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingSecret(ChannelError):
    """A `${VAR}` the channel needs is not set in the environment."""


@dataclass(frozen=True)
class Message:
    """One message ready to hand over. `record` is the object the outbox stores and the webhook
    posts (message_id, run, campaign, stage, scenario, step, contact, channel, subject, body,
    sent_at, to)."""

    message_id: str
    to: str | None
    subject: str
    body: str
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    status: str  # SENT | TRANSIENT | PERMANENT
    reason: str | None = None
    # A receiver's Retry-After: a delay, or an instant (HTTP date); the engine bounds it.
    retry_after: timedelta | datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == SENT


def resolve_secrets(value: Any, environ: Mapping[str, str], *, what: str) -> Any:
    """Replace each `${VAR}` in a string from `environ`; a missing one raises MissingSecret.

    Resolved values exist only in memory for one hand-over; nothing here is ever stored.
    """
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in environ:
            raise MissingSecret(
                f"environment variable {name} is not set (needed by {what}); "
                "export it where campctl runs"
            )
        return environ[name]

    return _SECRET.sub(sub, value)


def parse_rate(text: Any) -> tuple[int, int] | None:
    """`N/s`, `N/m`, `N/h` -> (N, window seconds); None when absent."""
    if text is None or text == "":
        return None
    match = _RATE.match(str(text))
    if not match or int(match.group(1)) < 1:
        raise ChannelError(f"bad rate {text!r}: use N/s, N/m or N/h with N >= 1 (e.g. 200/s)")
    return int(match.group(1)), _RATE_UNITS[match.group(2)]


def parse_connections(value: Any, name: str) -> int:
    """`connections: N`: how many SMTP sessions / HTTP connections one delivery uses at once."""
    if value is None:
        return DEFAULT_CONNECTIONS
    if not isinstance(value, int) or isinstance(value, bool) or not (
            1 <= value <= MAX_CONNECTIONS):
        raise ChannelError(f"channel {name}: connections must be a whole number from 1 to "
                           f"{MAX_CONNECTIONS}")
    return value


def parse_timeout(value: Any, default: float) -> float:
    """`timeout: 10` (seconds) or a duration such as `30s`."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    from campctl.timeutil import parse_duration

    try:
        return parse_duration(str(value)).total_seconds()
    except ValueError as exc:
        raise ChannelError(f"bad timeout {value!r}: {exc}") from None


class Channel:
    """One configured channel: what every type has (name, rate, max_attempts, a batch size and
    the redactor for its secrets). How messages leave depends on the type: `NetworkChannel`
    hands them to a server one by one; the outbox (`channels.outbox.OutboxChannel`) writes them
    in the transaction that records them."""

    type = "?"
    batch_size = 100

    def __init__(self, name: str, spec: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.name = name
        self.spec = dict(spec or {})
        # The typed definition (rate, max_attempts, the type's own settings); `spec` stays for
        # the raw values a type checks itself (connections' bounds, ${VAR} secrets).
        self.definition: ChannelModel = ChannelDefinition.from_spec(self.spec)
        self.environ = environ
        self.rate = parse_rate(self.definition.rate)
        attempts = self.definition.max_attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ChannelError(f"channel {name}: max_attempts must be a whole number >= 1")
        self.max_attempts = attempts
        from campctl.channels.redact import redactor_for

        # Every reason a channel gives passes through this before anyone stores or prints it.
        self.redact = redactor_for(self.spec, environ)

    def secret(self, key: str) -> Any:
        return resolve_secrets(self.spec.get(key), self.environ, what=f"channel {self.name} {key}")

    def close(self) -> None:
        """Release connections kept between batches."""


class NetworkChannel(Channel):
    """A channel that hands messages to a server (SMTP, HTTP). One instance holds one
    connection and is used by one thread at a time; `connections` says how many instances a
    delivery may use at once."""

    def __init__(self, name: str, spec: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        super().__init__(name, spec, environ)
        self.connections = parse_connections(self.spec.get("connections"), name)

    def another(self) -> NetworkChannel:
        """One more connection of this channel (a fresh instance of the same definition)."""
        return type(self)(self.name, self.spec, self.environ)

    def deliver(self, messages: Iterable[Message]) -> Iterator[Outcome]:
        """Hand the messages over one by one, yielding each outcome as soon as it is known, so
        the caller can record a message before the next one goes (and stop early). `messages`
        is read lazily, one message after each outcome. Reasons come out with the channel's
        secrets masked."""
        for outcome in self._deliver(messages):
            if outcome.reason:
                outcome = dataclasses.replace(outcome, reason=self.redact(outcome.reason))
            yield outcome

    def _deliver(self, messages: Iterable[Message]) -> Iterator[Outcome]:  # pragma: no cover
        raise NotImplementedError
