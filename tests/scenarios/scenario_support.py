"""Helpers for scenario tests: definitions, contacts written into the state, events, ticks."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

from store_support import insert_contacts

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def at(delta: timedelta = timedelta(0)) -> str:
    return (T0 + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scenarios:
    """Drives campctl through its CLI (contacts are written into the state, on either store)."""

    def __init__(self, cli, state, rows, write_yaml):
        self.cli = cli
        self.state = state
        self.rows = rows
        self.write_yaml = write_yaml
        self._n = 0

    def ok(self, *args, input=None):
        result = self.cli(*args, input=input)
        assert result.exit_code == 0, result
        return result

    def apply(self, text: str, now: str | None = None):
        self._n += 1
        path = self.write_yaml(f"def{self._n}.yaml", textwrap.dedent(text))
        return self.ok("apply", path, "--now", now or at())

    def contacts(self, *specs: dict):
        """Insert contacts: {id, email?, groups?, opt_out?, **attributes}."""
        self.ok("init")
        insert_contacts(self.state, specs, at())

    def activate(self, name: str, now: str | None = None):
        return self.ok("activate", "scenario", name, "--now", now or at())

    def deactivate(self, name: str, now: str):
        return self.ok("deactivate", "scenario", name, "--now", now)

    def event(self, name: str, contact: str, now: str):
        return self.ok("events", "emit", name, "--contact", contact, "--now", now)

    def tick(self, now: str):
        return self.ok("tick", "--now", now)

    def profiles(self, name: str, *extra: str, now: str | None = None):
        return self.ok("profiles", "scenario", name, *extra, "-o", "json",
                       "--now", now or at()).json

    def stats(self, name: str, now: str, since: str = "7d"):
        return self.ok("stats", "scenario", name, "--since", since, "-o", "json",
                       "--now", now).json

    def messages(self, scenario: str):
        """Queue items of the scenario: (contact, step, created_at, status), in creation order."""
        return [
            (r["contact"], r["step"], r["created_at"], r["status"])
            for r in self.rows(
                "SELECT c.external_id AS contact, q.step, q.created_at, q.status "
                "FROM queue_items q JOIN contacts c ON c.id = q.contact_id "
                "WHERE q.scenario = ? ORDER BY q.id", (scenario,))
        ]

    def launches(self, *extra: str):
        return self.ok("get", "launches", *extra, "-o", "json").json
