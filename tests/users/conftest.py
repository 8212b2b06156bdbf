"""Users, rights and work lists: a campaign applied by a given user over a small audience."""

from __future__ import annotations

import pytest
from users_support import CONTACTS, T0


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
