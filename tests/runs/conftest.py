"""Arrange runs straight in the state (either store; the run engine lands in parallel)."""

from __future__ import annotations

import json

import pytest

SNAPSHOT = {
    "campaign": "spring-sale", "stage": "main", "code": "SPR-27", "timezone": "Europe/Paris",
    "channel": "outbox", "message_type": "promotional", "audience": {"all": True},
    "include_opted_out": False, "message": {"subject": "Hi {{ id }}", "body": "Hello"},
    "window": None, "campaign_version": 1,
}


@pytest.fixture
def make_run(cli, state):
    """make_run(status, items=(...statuses), **columns) -> run id, with contacts c1..cN."""
    from campctl.store.db import open_state

    open_state(state, create=True).close()  # what `campctl init` does, without building the CLI

    def make(status: str, items: tuple[str, ...] = (), **columns) -> int:
        db = open_state(state, create=False)
        try:
            values = {
                "campaign": "spring-sale", "stage": "main", "status": status,
                "scheduled_at": "2027-03-01T08:00:00Z", "spec": json.dumps(SNAPSHOT),
                "created_at": "2027-03-01T08:00:00Z", "updated_at": "2027-03-01T08:00:00Z",
                **columns,
            }
            with db.atomic():
                run_id = db.scalar(
                    f"INSERT INTO runs ({', '.join(values)})"
                    f" VALUES ({', '.join('?' for _ in values)}) RETURNING id",
                    list(values.values()),
                )
                for n, item_status in enumerate(items, start=1):
                    db.execute(
                        "INSERT INTO contacts (external_id, created_at, updated_at)"
                        " VALUES (?, ?, ?) ON CONFLICT (external_id) DO NOTHING",
                        (f"c{n}", "2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
                    )
                    contact = db.scalar("SELECT id FROM contacts WHERE external_id = ?",
                                        (f"c{n}",))
                    db.execute(
                        "INSERT INTO queue_items (message_id, run_id, contact_id, channel,"
                        " status, created_at) VALUES (?, ?, ?, 'outbox', ?,"
                        " '2027-03-01T08:00:00Z')",
                        (f"r{run_id}-c{contact}", run_id, contact, item_status),
                    )
            return int(run_id)
        finally:
            db.close()

    return make
