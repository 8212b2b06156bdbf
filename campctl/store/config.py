"""State-wide settings (`campctl config`)."""

from __future__ import annotations

from campctl.store.db import Database

# key -> (default, parser description)
CONFIG_KEYS: dict[str, str | None] = {
    "four_eyes": "false",
    "notify_channel": None,
    "notify_to": None,
    "strict_users": "false",
}


def get_config(db: Database, key: str) -> str | None:
    value = db.scalar("SELECT value FROM config WHERE key = ?", (key,))
    return CONFIG_KEYS.get(key) if value is None else value


def all_config(db: Database) -> dict[str, str | None]:
    stored = {row["key"]: row["value"] for row in db.query("SELECT key, value FROM config")}
    return {key: stored.get(key, default) for key, default in CONFIG_KEYS.items()}


def set_config(db: Database, key: str, value: str | None) -> None:
    if value is None:
        db.execute("DELETE FROM config WHERE key = ?", (key,))
    else:
        db.execute(
            "INSERT INTO config (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def four_eyes(db: Database) -> bool:
    return (get_config(db, "four_eyes") or "false") == "true"
