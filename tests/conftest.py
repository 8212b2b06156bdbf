"""Shared fixtures: a state-file path, a fixed clock, and a runner that goes through main()."""

from __future__ import annotations

import json
import os
import socketserver
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_support import PG_URL, REQUIRE_PG, ensure_database, reset_pg
from store_support import query_rows
from typer.testing import CliRunner

from campctl.__main__ import main

NOW = "2027-03-01T09:00:00Z"

# The tests' HTTP receivers (webhooks, proxies) run `server.serve_forever()` in a thread and
# stop it with `server.shutdown()`, which waits for the serving loop to wake from its poll: 0.5 s
# by default, paid in the teardown of every test with a receiver. A 20 ms poll costs nothing and
# gives that time back; an explicit poll_interval still wins.
_serve_forever = socketserver.BaseServer.serve_forever


def _serve_forever_quick_shutdown(self, poll_interval: float = 0.02) -> None:
    _serve_forever(self, poll_interval)


socketserver.BaseServer.serve_forever = _serve_forever_quick_shutdown  # type: ignore[method-assign]


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Result(exit={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("CAMPCTL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CAMPCTL_USER", "tester")
    monkeypatch.chdir(tmp_path)


STORES = ["sqlite", pytest.param("pg", marks=pytest.mark.pg)]


def pytest_generate_tests(metafunc):
    """Every test that uses the state runs on both stores, unless its module is store-agnostic
    (`pytestmark = pytest.mark.store_agnostic`: nothing it asserts can differ by store) or it
    lives under tests/pg/ (PostgreSQL only)."""
    if "state" not in metafunc.fixturenames:
        return
    if "pg" in Path(str(metafunc.definition.path)).parent.parts[-1:]:
        return
    if any(m.name == "store_agnostic" for m in metafunc.definition.iter_markers()):
        return
    metafunc.parametrize("state", STORES, indirect=True)


@pytest.fixture
def state(request, tmp_path):
    """A SQLite path (`[sqlite]`) or the URL of the reset test database (`[pg]`)."""
    if getattr(request, "param", "sqlite") == "pg":
        return request.getfixturevalue("pg_state")
    return tmp_path / "state.db"


@pytest.fixture
def cli(state):
    """Run campctl in-process against `state` at NOW unless --now/--state are given."""

    def invoke(*args: str, input: str | None = None, env: dict | None = None) -> Result:
        argv = [str(a) for a in args]
        if "--state" not in argv:
            argv = ["--state", str(state), *argv]
        if "--now" not in argv and not (env and "CAMPCTL_NOW" in env):
            argv = ["--now", NOW, *argv]
        runner = CliRunner()
        with runner.isolation(input=input, env=env) as outstreams:
            try:
                code = main(argv)
            except SystemExit as exc:  # pragma: no cover - main() returns codes
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            stdout = outstreams[0].getvalue().decode()
            stderr = outstreams[1].getvalue().decode()
        return Result(code, stdout, stderr)

    return invoke


@pytest.fixture
def run_subprocess(state):
    """Run the real console script in a fresh process (for tests of the process boundary)."""

    def invoke(*args: str, env: dict | None = None, input: str | None = None, timeout=300):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "campctl", "--state", str(state), *map(str, args)],
            capture_output=True, text=True, env=full_env, input=input, timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return invoke


@pytest.fixture
def rows(state):
    """Rows straight from the state (either store): rows('SELECT ...', params) -> list[dict]."""

    def query(sql: str, params=()):
        return query_rows(state, sql, params)

    return query


@pytest.fixture
def write_yaml(tmp_path):
    """write_yaml('name.yaml', text) -> Path, in a definitions folder under tmp_path."""

    folder = tmp_path / "defs"
    folder.mkdir(exist_ok=True)

    def write(name: str, text: str) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    write.folder = folder  # type: ignore[attr-defined]
    return write


# --- PostgreSQL: markers `pg`, `sqlite_only(reason)`, `pg_fresh` (see tests/pg_support.py) -------

_PG_NOTE = pytest.StashKey[str]()


def pytest_configure(config):
    if PG_URL is not None:
        ensure_database()  # the xdist worker's own database (pytest -n), made on first use


def pytest_collection_modifyitems(config, items):
    """Deselect `pg` items that cannot run: all of them without a URL, and `sqlite_only` ones."""
    keep, no_url, sqlite_only = [], [], []
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None and not (marker.args and isinstance(marker.args[0], str)):
            raise pytest.UsageError(f"{item.nodeid}: sqlite_only needs a reason: "
                                    "@pytest.mark.sqlite_only(\"why\")")
        if item.get_closest_marker("pg") is None:
            keep.append(item)
        elif marker is not None:
            sqlite_only.append(item)
        elif PG_URL is None:
            no_url.append(item)
        else:
            keep.append(item)
    if no_url and REQUIRE_PG:
        raise pytest.UsageError(
            f"CAMPCTL_TEST_REQUIRE_PG=1 but CAMPCTL_TEST_PG_URL is unset: {len(no_url)} [pg] "
            "tests cannot run (.ci/run starts a throw-away PostgreSQL and sets both)")
    if no_url:
        config.stash[_PG_NOTE] = (
            f"{len(no_url)} [pg] tests deselected: CAMPCTL_TEST_PG_URL is unset "
            "(.ci/run starts a throw-away PostgreSQL cluster)")
    dropped = no_url + sqlite_only
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    note = config.stash.get(_PG_NOTE, None)
    if note:
        terminalreporter.write_line(note)


@pytest.fixture
def pg_state(request) -> str:
    """The URL of the test database, reset for this test (an empty schema with `pg_fresh`)."""
    if PG_URL is None:  # pragma: no cover - such items are deselected
        pytest.fail("pg_state needs CAMPCTL_TEST_PG_URL")
    reset_pg(PG_URL, fresh=request.node.get_closest_marker("pg_fresh") is not None)
    return PG_URL
