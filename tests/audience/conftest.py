"""Audience test helpers: the state file opened directly, files to import, stored segments, runs."""

from __future__ import annotations

from datetime import datetime

import pytest
from audience_helpers import NOW

from campctl.store.db import open_state
from campctl.timeutil import parse_instant


@pytest.fixture
def now() -> datetime:
    return parse_instant(NOW)


@pytest.fixture
def db(state):
    database = open_state(state, create=True)
    yield database
    database.close()


@pytest.fixture
def datafile(tmp_path):
    """datafile('x.csv', text) -> Path of a file to import."""

    def write(name: str, text: str | bytes):
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return write
