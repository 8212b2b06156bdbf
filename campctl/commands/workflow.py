"""Commands: (to be written)."""

from __future__ import annotations


def register(app, groups) -> None:
    """Add this module's commands to the root app and the shared verb groups."""
