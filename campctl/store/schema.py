"""Schema migrations, in order. Each migration is a list of statements run in one transaction.

Never edit a migration that has shipped; append a new one. The version is PRAGMA user_version.
"""

from __future__ import annotations

# Version 1: the foundation (definitions, history, config) and the whole execution model, so that
# later features only add behaviour.
V1 = [
    """CREATE TABLE config (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # Every definition, all kinds. `status` is the business status (campaign, plan) or
    # active/inactive (scenario); NULL for segments and channels.
    """CREATE TABLE objects (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        description TEXT,
        status TEXT,
        source TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        launched_at TEXT,
        PRIMARY KEY (kind, name)
    )""",
    """CREATE TABLE object_versions (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        description TEXT,
        applied_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (kind, name, version)
    )""",
    # The action history of every object (definitions by kind/name, runs/instances/launches by id).
    """CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT,
        note TEXT
    )""",
    "CREATE INDEX history_object ON history (kind, name, id)",
]

MIGRATIONS: list[list[str]] = [V1]

SCHEMA_VERSION = len(MIGRATIONS)
