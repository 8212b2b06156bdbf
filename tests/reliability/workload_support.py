"""Small helpers the reliability workloads share (plain functions, no pytest)."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path


def iso(at: datetime) -> str:
    """An aware UTC datetime as campctl's `--now` takes it."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_env(user: str | None = None) -> dict[str, str]:
    """This process's environment without CAMPCTL_* settings (and with CAMPCTL_USER=user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    if user is not None:
        env["CAMPCTL_USER"] = user
    return env


def dump(state: Path) -> list[str]:
    """Every table of the state file as SQL text, for before/after comparisons."""
    conn = sqlite3.connect(state)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
