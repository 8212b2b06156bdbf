"""Users, rights and work lists: a campaign applied by a given user over a small audience."""

from __future__ import annotations

import pytest

T0 = "2027-03-01T09:00:00Z"

CONTACTS = """id,email,groups
v1,v1@example.com,vip
v2,v2@example.com,vip;fr
s1,s1@example.com,staff
n1,n1@example.com,
n2,n2@example.com,fr
"""


def campaign_yaml(name: str = "spring", *, message_type: str | None = "promotional",
                  channel: str | None = None) -> str:
    lines = [
        "kind: Campaign",
        f"name: {name}",
        "timezone: UTC",
        "closes_at: 2027-06-30T23:59",
        "type: one-off",
        'message: {subject: "Hi {{ id }}", body: "Hello"}',
        "audience: {all: true}",
        "schedule: {queue: immediately, send: immediately}",
    ]
    if message_type:
        lines.append(f"message_type: {message_type}")
    if channel:
        lines.append(f"channel: {channel}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ok(cli):
    """ok(*args) -> Result, asserting exit 0 (at T0 unless --now is given)."""

    def run(*args: str, **kwargs):
        argv = list(args) if "--now" in args else ["--now", T0, *args]
        result = cli(*argv, **kwargs)
        assert result.exit_code == 0, (args, result)
        return result

    return run


@pytest.fixture
def world(ok, tmp_path, write_yaml):
    """Contacts v1 v2 (vip), s1 (staff), n1, n2 (no vip/staff); apply(yaml, as_user)."""
    csv = tmp_path / "contacts.csv"
    csv.write_text(CONTACTS)
    ok("contacts", "import", str(csv))

    class World:
        def apply(self, text: str, *, as_user: str, file: str = "defs.yaml") -> None:
            ok("apply", str(write_yaml(file, text)), "--as", as_user)

        def launch(self, name: str = "spring", *, as_user: str = "boss") -> None:
            ok("submit", "campaign", name, "--as", as_user)
            ok("approve", "campaign", name, "--as", "boss")
            ok("start", "campaign", name, "--as", as_user)

    return World()
