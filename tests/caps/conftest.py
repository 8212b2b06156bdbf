"""Fixtures of the frequency-cap tests (helpers live in caps_support.py)."""

from __future__ import annotations

import pytest
from caps_support import Caps


@pytest.fixture
def caps(cli, rows, write_yaml, tmp_path) -> Caps:
    return Caps(cli, rows, write_yaml, tmp_path)
