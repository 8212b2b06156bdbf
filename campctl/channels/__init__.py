"""Channels: outbox, smtp, webhook behind one small interface; `open_channel` picks one."""

from __future__ import annotations

import os
from collections.abc import Mapping

from campctl.channels.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    Channel,
    ChannelError,
    Message,
    MissingSecret,
    NetworkChannel,
    Outcome,
)
from campctl.definitions.models import BUILTIN_OUTBOX as BUILTIN_OUTBOX_DEFINITION
from campctl.definitions.models import ChannelModel

BUILTIN_OUTBOX = "outbox"
TYPES = ("outbox", "smtp", "webhook")

__all__ = [
    "BUILTIN_OUTBOX", "PERMANENT", "SENT", "TRANSIENT", "Channel", "ChannelError", "Message",
    "MissingSecret", "NetworkChannel", "Outcome", "open_channel",
]


def open_channel(name: str, definition: ChannelModel | None, environ: Mapping[str, str], *,
                 base_dir: str | os.PathLike | None = None) -> Channel:
    """A channel from its typed definition (`definitions.models.Channel.from_spec`).
    `definition=None` is allowed only for the built-in `outbox`. Secrets are resolved later, at
    send time. `base_dir` anchors a relative outbox `dir:` (the state file's folder)."""
    if definition is None:
        if name != BUILTIN_OUTBOX:
            raise ChannelError(
                f"channel {name!r} is not defined; apply a Channel named {name} or use 'outbox'"
            )
        definition = BUILTIN_OUTBOX_DEFINITION
    kind, spec = definition.type, definition.raw
    if kind == "outbox":
        from campctl.channels.outbox import OutboxChannel

        return OutboxChannel(name, spec, environ, base_dir=base_dir)
    if kind == "smtp":
        from campctl.channels.smtp import SmtpChannel

        return SmtpChannel(name, spec, environ)
    if kind == "webhook":
        from campctl.channels.webhook import WebhookChannel

        return WebhookChannel(name, spec, environ)
    raise ChannelError(f"channel {name}: unknown type {kind!r}; use one of {', '.join(TYPES)}")
