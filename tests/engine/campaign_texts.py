"""Campaign definitions as text and small readers shared by the engine tests."""

from __future__ import annotations

HEAD = """kind: Campaign
name: {name}
timezone: {tz}
audience: {{all: true}}
message: {{subject: "Hi {{{{ first_name }}}}", body: "Hello {{{{ first_name }}}}"}}
"""


def campaign(body: str, *, name: str = "promo", tz: str = "UTC") -> str:
    return HEAD.format(name=name, tz=tz) + body


def built_at(runs, name="promo"):
    return [r["built_at"] for r in runs(name)]


def sent_at(outbox, name="promo"):
    return sorted({m["sent_at"] for m in outbox(name)})


EVENT = "type: event-triggered\ntrigger: {event: form_submitted}\n"


def emit(cli, at, contact, event="form_submitted"):
    result = cli("--now", at, "events", "emit", event, "--contact", contact)
    assert result.exit_code == 0, result
