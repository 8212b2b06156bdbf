"""Tick hooks for scenarios (stubs until implemented)."""

from __future__ import annotations


def fire_due(db, *, now, report) -> None:
    """Fire due scenarios occurrences."""


def advance(db, *, now, report) -> None:
    """Advance running scenarios work."""
