"""Fixtures of the scenario tests (helpers live in scenario_support.py)."""

from __future__ import annotations

import pytest
from scenario_support import Scenarios


@pytest.fixture
def scn(cli, state, rows, write_yaml):
    return Scenarios(cli, state, rows, write_yaml)
