"""Small helpers the reliability workloads share (plain functions, no pytest)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
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


def campctl_argv(state: Path, now: datetime, *args: str) -> list[str]:
    """The command line of one campctl command on `state` at the virtual instant `now`."""
    return [sys.executable, "-m", "campctl", "--state", str(state), "--now", iso(now), *args]


def run_campctl(state: Path, now: datetime, *args: str,
                env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one campctl command that must succeed (a RuntimeError with its stderr otherwise)."""
    proc = subprocess.run(campctl_argv(state, now, *args), capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"campctl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def query(state: Path, sql: str, params=()) -> list[tuple]:
    """Rows of one read of the state file, on a connection of its own."""
    conn = sqlite3.connect(state, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
