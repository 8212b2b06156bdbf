"""Fixtures of the objects/apply/workflow tests: applied base definitions, copied state files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from objects_defs import BASE_YAML, NOW
from store_support import is_pg


@pytest.fixture
def base_file(write_yaml) -> Path:
    return write_yaml("base.yaml", BASE_YAML)


@pytest.fixture
def applied(cli, base_file, state) -> Path:
    """A state file holding the base definitions (all draft / inactive)."""
    result = cli("apply", base_file)
    assert result.exit_code == 0, result
    return base_file


@pytest.fixture(scope="session")
def template_state(tmp_path_factory) -> Path:
    """The base definitions applied once; tests copy the file instead of re-applying."""
    from campctl.__main__ import main

    folder = tmp_path_factory.mktemp("template")
    defs = folder / "base.yaml"
    defs.write_text(BASE_YAML)
    path = folder / "template.db"
    code = main(["--state", str(path), "--now", NOW, "--as", "tester",
                 "apply", str(defs)])
    assert code == 0
    return path


@pytest.fixture
def fresh_copy(request, state) -> Path:
    """The state holding the base definitions: a copy of the template file on SQLite; on
    PostgreSQL (one database, reset per test) the definitions applied afresh."""
    if is_pg(state):
        request.getfixturevalue("applied")
        return state
    shutil.copyfile(request.getfixturevalue("template_state"), state)
    return state
