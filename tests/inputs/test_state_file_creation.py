"""The state file: an empty file is initialised only by a command that writes, and every file
campctl creates (state, -wal, -shm, -lock, backups, outbox files) is private (0600)."""

from __future__ import annotations

import os
import stat

import pytest
from store_support import is_pg

READ_ONLY = [["get", "campaigns"], ["status"], ["log"], ["describe", "run", "1"],
             ["contacts", "list"], ["get", "runs"], ["history", "plan", "x"]]
CHANNEL_AND_CAMPAIGN = """kind: Channel
name: box
type: outbox
dir: {dir}
---
kind: Campaign
name: hello
type: one-off
channel: box
audience: {{all: true}}
message: {{body: hi}}
schedule: {{send: immediately}}
"""


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.sqlite_only("an empty state file (0 bytes) is a SQLite file")
@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c))
def test_a_read_only_command_leaves_an_empty_file_empty(cli, state, command):
    state.touch()
    result = cli(*command)
    assert result.exit_code == 4, result
    assert result.stderr.startswith("error: state file") and "0 bytes" in result.stderr, result
    assert len(result.stderr.strip().splitlines()) == 1
    assert state.stat().st_size == 0
    assert sorted(p.name for p in state.parent.iterdir() if p.name.startswith(state.name)) == [
        state.name]


@pytest.mark.sqlite_only("an empty state file (0 bytes) is a SQLite file")
def test_validate_treats_an_empty_state_file_as_no_objects(cli, state, tmp_path):
    state.touch()
    path = tmp_path / "seg.yaml"
    path.write_text("kind: Segment\nname: vip\nrules:\n  - {group: vip}\n")
    assert cli("validate", str(path)).exit_code == 0
    assert state.stat().st_size == 0


@pytest.mark.sqlite_only("an empty state file (0 bytes) is a SQLite file")
def test_apply_reads_an_empty_state_file_as_no_objects(cli, state, tmp_path):
    state.touch()
    path = tmp_path / "seg.yaml"
    path.write_text("kind: Segment\nname: vip\nrules:\n  - {group: vip}\n")
    dry = cli("apply", "--dry-run", str(path))
    assert dry.exit_code == 0, dry
    assert state.stat().st_size == 0
    applied = cli("apply", str(path))
    assert applied.exit_code == 0 and "segment/vip created" in applied.stdout, applied
    assert _mode(state) == 0o600


@pytest.mark.sqlite_only("file modes of the state file and its -wal/-shm")
def test_init_makes_an_empty_world_readable_file_private(cli, state, open_umask):
    state.touch(mode=0o666)
    assert _mode(state) == 0o666
    result = cli("init")
    assert result.exit_code == 0, result
    assert state.stat().st_size > 0
    for suffix in ("", "-wal", "-shm"):
        sibling = state.with_name(state.name + suffix)
        if sibling.exists():
            assert _mode(sibling) == 0o600, sibling


def test_every_file_campctl_creates_is_private(cli, state, tmp_path, open_umask):
    outbox = tmp_path / "outbox"
    defs = tmp_path / "defs.yaml"
    defs.write_text(CHANNEL_AND_CAMPAIGN.format(dir=outbox))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id,email\na,a@example.com\n")
    before = set(tmp_path.iterdir())
    assert cli("contacts", "import", str(contacts)).exit_code == 0
    assert cli("apply", str(defs)).exit_code == 0
    assert cli("submit", "campaign", "hello").exit_code == 0
    assert cli("approve", "campaign", "hello", "--as", "reviewer").exit_code == 0
    assert cli("start", "campaign", "hello").exit_code == 0
    ticked = cli("tick")
    assert ticked.exit_code == 0 and "sent 1" in ticked.stdout, ticked
    expected = {"box.jsonl"}
    if not is_pg(state):  # a PostgreSQL state is no file and is backed up by pg_dump
        assert cli("backup", str(tmp_path / "copy.db")).exit_code == 0
        expected |= {state.name, "copy.db"}
    created = [p for p in tmp_path.rglob("*") if p not in before and p.is_file()]
    names = {p.name for p in created}
    assert expected <= names, names
    for path in created:
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
