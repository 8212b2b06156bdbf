"""Each test parses its cron expressions afresh.

The parsed-expression caches of engine/cron.py live as long as the process: without this, a
test that runs after another one with the same expression would not exercise the parser at all
(and mutation testing, which forks one process per mutant from a warmed-up one, would see the
parse of the first run only).
"""

from __future__ import annotations

import pytest

from campctl.engine import cron


@pytest.fixture(autouse=True)
def _fresh_cron_caches():
    cron._parse.cache_clear()
    cron._compile.cache_clear()
    yield
