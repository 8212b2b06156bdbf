"""`rate` on an outbox channel: throttling inside sending windows, rehearsed without a server."""

from __future__ import annotations

from .campaign_texts import campaign

THROTTLED_OUTBOX = """kind: Channel
name: rehearsal
type: outbox
rate: 2/h
max_attempts: 3
---
"""


def test_validate_accepts_rate_on_an_outbox_channel(cli, write_yaml):
    path = write_yaml("channel.yaml", THROTTLED_OUTBOX.removesuffix("---\n"))
    result = cli("validate", str(path))
    assert result.exit_code == 0, result
    bad = write_yaml("bad.yaml", "kind: Channel\nname: x\ntype: outbox\nrate: fast\n")
    result = cli("validate", str(bad))
    assert result.exit_code == 1, result
    assert "bad rate 'fast'" in result.stdout + result.stderr


def test_schema_lists_rate_for_outbox(cli):
    result = cli("schema")
    assert result.exit_code == 0, result
    assert '"rate"' in result.stdout
    schema = result.json
    text = str(schema)
    # the outbox branch carries rate next to dir
    assert "'dir'" in text and text.count("'rate'") >= 3


def test_outbox_rate_throttles_inside_the_window(launch, tick, outbox):
    body = ("type: one-off\nchannel: rehearsal\n"
            "schedule: {send: immediately, window: \"10:00-12:00\"}\n")
    launch(THROTTLED_OUTBOX + campaign(body), at="2027-03-01T09:00:00Z", contacts=5)
    assert tick("2027-03-01T09:30:00Z")["sent"] == 0  # window closed
    first = tick("2027-03-01T10:00:00Z")
    assert first["sent"] == 2
    assert len(outbox()) == 2
    held = tick("2027-03-01T10:30:00Z")  # same hour: the rate holds the rest
    assert held["sent"] == 0
    assert len(outbox()) == 2
    assert tick("2027-03-01T11:00:00Z")["sent"] == 2
    assert tick("2027-03-01T12:30:00Z")["sent"] == 0  # window closed again
    assert len(outbox()) == 4
    assert tick("2027-03-02T10:00:00Z")["sent"] == 1
    assert len(outbox()) == 5
    assert len({m["message_id"] for m in outbox()}) == 5
