"""`campctl why`: a small audience and helpers to apply and launch definitions."""

from __future__ import annotations

import pytest
from why_support import CONTACTS, T0


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
    """Contacts a1 (vip, premium), b2 (news, opted out of promotional), c3 (news)."""
    csv = tmp_path / "contacts.csv"
    csv.write_text(CONTACTS)
    ok("contacts", "import", str(csv))

    class World:
        def apply(self, text: str, *, as_user: str = "tester", file: str = "d.yaml") -> None:
            ok("apply", str(write_yaml(file, text)), "--as", as_user)

        def launch(self, name: str, *, start: bool = True) -> None:
            ok("submit", "campaign", name)
            ok("approve", "campaign", name)
            if start:
                ok("start", "campaign", name)

        def why(self, contact: str, *args: str, now: str = T0) -> dict:
            return ok("--now", now, "why", contact, *args, "-o", "json").json

        def entry(self, contact: str, kind: str, name: str, now: str = T0) -> dict:
            entries = self.why(contact, kind, name, now=now)["objects"]
            assert len(entries) == 1, entries
            return entries[0]

    return World()
