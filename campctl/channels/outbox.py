"""The built-in outbox channel: rows in the state file, and optionally DIR/<channel>.jsonl."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from campctl.channels.base import Channel, ChannelError
from campctl.definitions.models import OutboxChannel as OutboxSettings


class OutboxChannel(Channel):
    """Hand-over is the outbox row itself, written in the transaction that marks the item sent
    (with `write_lines` for a `dir:` file); nothing leaves before that transaction commits."""

    type = "outbox"
    batch_size = 1000

    def __init__(self, name: str, spec: Mapping[str, Any], environ: Mapping[str, str], *,
                 base_dir: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, environ)
        folder = OutboxSettings.from_spec(self.spec).dir
        self.path: Path | None = None
        if folder:
            root = Path(os.path.expanduser(str(folder)))
            if not root.is_absolute():
                root = Path(base_dir or ".") / root
            # The file name comes from the channel name (a checked NAME): it cannot leave the dir.
            self.path = root / f"{name}.jsonl"
        self._written: tuple[int, int] | None = None

    def write_lines(self, records: list[dict], *, committed_length: int | None = None
                    ) -> int | None:
        """Append one JSON line per record; returns the file's length after them (None without a
        `dir`). The file is created 0600 and never followed if it is a symlink.

        Called inside the transaction that records the batch, which also records the returned
        length. `committed_length` is the length recorded by the last committed batch: anything
        beyond it was written by a batch whose transaction never committed (a kill between the
        write and the commit) and is cut off first, so the file holds each message once. A
        failed write (full disk, read-only folder) leaves the file as it was; so does
        `discard_written()` when the recording transaction fails."""
        self._written = None
        if self.path is None or not records:
            return None
        data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise ChannelError(f"cannot open outbox file {self.path}: {exc.strerror}") from None
        start = None
        try:
            # Appends happen under the state file's write lock, so no other campctl writes here
            # between `start` and the end of this batch.
            start = os.fstat(fd).st_size
            if committed_length is not None and start > committed_length:
                os.ftruncate(fd, committed_length)
                start = committed_length
            os.fchmod(fd, 0o600)
            view = memoryview(data.encode("utf-8"))
            while view:
                written = os.write(fd, view)
                view = view[written:]
            end = os.fstat(fd).st_size
            self._written = (start, end)
        except OSError as exc:
            if start is not None:  # never leave half a line: the next append would join it
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
            raise ChannelError(f"cannot write outbox file {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return end

    def discard_written(self) -> None:
        """Undo the last `write_lines` (its transaction did not commit), if nothing was appended
        after it."""
        written, self._written = self._written, None
        if written is None or self.path is None:
            return
        start, end = written
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                if os.fstat(fd).st_size == end:
                    os.ftruncate(fd, start)
            finally:
                os.close(fd)
