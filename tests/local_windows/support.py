"""Shared set-up of the local-window tests: five contacts (three zones, one without a zone, one
with an invalid zone) and a one-off campaign whose window is read in each contact's zone."""

from __future__ import annotations

CONTACTS = """\
id,email,timezone
ny,ny@example.com,America/New_York
be,be@example.com,Europe/Berlin
tk,tk@example.com,Asia/Tokyo
none,none@example.com,
bad,bad@example.com,Mars/Olympus
"""
ZONES = {"ny": "America/New_York", "be": "Europe/Berlin", "tk": "Asia/Tokyo",
         "none": "UTC", "bad": "UTC"}

CAMPAIGN = """\
kind: Campaign
name: local
timezone: UTC
type: one-off
message: {{subject: "Hello {{{{ id }}}}", body: "Local morning"}}
audience: {{all: true}}
schedule:
  queue: immediately
  send: immediately
  window: "{window}"
{extra}"""


def ok(cli, now, *args):
    result = cli("--now", now, *args)
    assert result.exit_code == 0, (args, result)
    return result


def launch(cli, tmp_path, write_yaml, now, *, window="09:00-17:00",
           extra="  window_timezone: contact\n", contacts=CONTACTS, name="local"):
    """Import the contacts, apply and start the campaign at `now`."""
    csv = tmp_path / "contacts.csv"
    csv.write_text(contacts)
    text = CAMPAIGN.format(window=window, extra=extra).replace("name: local", f"name: {name}")
    for step in (("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml(f"{name}.yaml", text))),
                 ("submit", "campaign", name),
                 ("approve", "campaign", name, "--as", "boss"),
                 ("start", "campaign", name)):
        ok(cli, now, *step)


def sent(rows) -> dict[str, str]:
    """{contact: sent_at} of the messages in the outbox."""
    return {r["contact"]: r["sent_at"] for r in rows(
        "SELECT contact, sent_at FROM outbox WHERE message_id NOT LIKE 'notify-%'")}
