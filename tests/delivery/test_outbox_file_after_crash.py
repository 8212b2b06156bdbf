"""The outbox `dir:` file holds each message once, even after a process was killed between
writing a batch's lines and committing the batch (the state then never recorded them)."""

from __future__ import annotations

import json
from collections import Counter

T0 = "2027-03-01T09:00:00Z"
CONTACTS = 20


def _launch(cli, tmp_path, write_yaml) -> None:
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(CONTACTS)))
    text = (f"kind: Channel\nname: archive\ntype: outbox\ndir: {tmp_path / 'mail'}\n---\n"
            "kind: Campaign\nname: spring\ntimezone: UTC\ncloses_at: 2027-06-30T23:59\n"
            "type: one-off\nchannel: archive\nmessage: {subject: \"Hi\", body: \"Hello\"}\n"
            "audience: {all: true}\nschedule: {queue: immediately, send: immediately}\n")
    for step in (("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("defs.yaml", text))),
                 ("submit", "campaign", "spring"),
                 ("approve", "campaign", "spring", "--as", "boss"),
                 ("start", "campaign", "spring")):
        result = cli("--now", T0, *step)
        assert result.exit_code == 0, (step, result)


def _uncommitted_batch(rows, count: int) -> str:
    """The lines a killed tick would have appended for the next `count` queued items: written
    to the file, never committed to the state."""
    items = rows("SELECT message_id FROM queue_items WHERE status = 'queued' ORDER BY id"
                 " LIMIT ?", (count,))
    return "".join(json.dumps({"message_id": i["message_id"], "channel": "archive",
                               "subject": "Hi", "body": "Hello"}) + "\n" for i in items)


def test_lines_of_an_uncommitted_batch_are_cut_before_the_next_append(cli, rows, tmp_path,
                                                                       write_yaml):
    _launch(cli, tmp_path, write_yaml)
    assert cli("--now", T0, "tick", "--max-messages", "8").exit_code == 0
    path = tmp_path / "mail" / "archive.jsonl"
    assert len(path.read_text().splitlines()) == 8
    # Killed twice between write and commit, the second time in the middle of a line.
    with path.open("a") as f:
        f.write(_uncommitted_batch(rows, 5))
        f.write(_uncommitted_batch(rows, 3)[:40])
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == CONTACTS
    assert max(Counter(line["message_id"] for line in lines).values()) == 1
    listed = cli("outbox", "list", "--channel", "archive", "-o", "json").json
    assert lines == listed
    recorded = rows("SELECT committed_length FROM outbox_files")
    assert recorded == [{"committed_length": path.stat().st_size}]


def test_a_file_rotated_by_the_operator_is_appended_to(cli, rows, tmp_path, write_yaml):
    _launch(cli, tmp_path, write_yaml)
    assert cli("--now", T0, "tick", "--max-messages", "8").exit_code == 0
    path = tmp_path / "mail" / "archive.jsonl"
    path.rename(tmp_path / "mail" / "archive.jsonl.1")
    assert cli("--now", "2027-03-01T09:01:00Z", "tick").exit_code == 0
    assert len(path.read_text().splitlines()) == CONTACTS - 8
    assert rows("SELECT committed_length FROM outbox_files") == [
        {"committed_length": path.stat().st_size}]
