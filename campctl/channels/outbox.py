"""The built-in outbox channel: rows in the state file, and optionally DIR/<channel>.jsonl."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from campctl.channels.base import SENT, Channel, ChannelError, Message, Outcome


class OutboxChannel(Channel):
    """Hand-over is the outbox row itself, written in the transaction that marks the item sent."""

    type = "outbox"
    in_store = True
    batch_size = 1000

    def __init__(self, name: str, spec: Mapping[str, Any], environ: Mapping[str, str], *,
                 base_dir: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, environ)
        folder = self.spec.get("dir")
        self.path: Path | None = None
        if folder:
            root = Path(os.path.expanduser(str(folder)))
            if not root.is_absolute():
                root = Path(base_dir or ".") / root
            # The file name comes from the channel name (a checked NAME): it cannot leave the dir.
            self.path = root / f"{name}.jsonl"

    def send_batch(self, messages: list[Message]) -> list[Outcome]:
        return [Outcome(SENT) for _ in messages]

    def write_lines(self, records: list[dict]) -> None:
        """Append one JSON line per record; the file is created 0600 and never followed if it is
        a symlink. Called before the recording transaction commits, so a crash can duplicate a
        line (same message_id) but never lose one."""
        if self.path is None or not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise ChannelError(f"cannot open outbox file {self.path}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data.encode("utf-8"))
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            raise ChannelError(f"cannot write outbox file {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)
