"""A built wheel installs like a package: metadata, the example definitions, and a working demo
from a fresh virtual environment that sees no source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

# Store-agnostic: the wheel and the version.
pytestmark = pytest.mark.store_agnostic

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def _run(args: list, *, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree (the build leaves build/ behind)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", "*.db-*")
    # symlinks=True: the build itself must follow campctl/data/plans to the root plans/
    shutil.copytree(ROOT / "campctl", source / "campctl", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "plans", source / "plans", ignore=ignore)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", dist, source], cwd=work)
    (built,) = dist.glob("campctl-*.whl")
    return built


def test_the_wheel_ships_the_examples_license_and_type_marker(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = {n.removeprefix("campctl/data/plans/"): archive.read(n)
                   for n in names if n.startswith("campctl/data/plans/")}
        metadata = archive.read(f"campctl-{VERSION}.dist-info/METADATA").decode()
    examples = {p.relative_to(ROOT / "plans").as_posix(): p.read_bytes()
                for p in (ROOT / "plans").rglob("*") if p.is_file()}
    assert shipped == examples
    assert "campctl/py.typed" in names
    assert "campctl/data/contacts.csv" in names
    assert f"campctl-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata
    assert "Project-URL: Source, " in metadata
    assert "Requires-Dist: croniter<8,>=7.0" in metadata


def test_an_installed_wheel_runs_the_demo_outside_the_source_tree(wheel, tmp_path):
    venv = tmp_path / "venv"
    # Dependencies come from this machine's site-packages; campctl itself must be the wheel's.
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
         cwd=tmp_path)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith("CAMPCTL_")}
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
          wheel], cwd=tmp_path, env=env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    imported = _run([python, "-c", "import campctl; print(campctl.__file__)"], cwd=elsewhere,
                    env=env).stdout.strip()
    assert Path(imported).is_relative_to(venv), imported

    campctl = venv / "bin" / "campctl"
    assert _run([campctl, "--version"], cwd=elsewhere, env=env).stdout == f"campctl {VERSION}\n"
    demo = _run([campctl, "demo", "--days", "1", "-o", "json"], cwd=elsewhere, env=env)
    assert '"runs"' in demo.stdout
    assert list(elsewhere.iterdir()) == []  # the demo kept its state in a temporary file


def test_version_comes_from_the_package_metadata(cli):
    from importlib.metadata import version

    result = cli("--version")
    assert (result.exit_code, result.stdout) == (0, f"campctl {version('campctl')}\n"), result
