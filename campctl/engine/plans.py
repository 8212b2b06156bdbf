"""Tick hooks for plans (stubs until implemented)."""

from __future__ import annotations


def fire_due(db, *, now, report) -> None:
    """Fire due plans occurrences."""


def advance(db, *, now, report) -> None:
    """Advance running plans work."""
