"""Without psycopg: a PostgreSQL URL is one `error:` line naming the extra; SQLite never imports it.

No server is needed: the process finds a `psycopg` module that refuses to import (and leaves a
mark when something tries), placed ahead of the real one on PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import campctl

BLOCKER = '''\
import os
with open(os.environ["PSYCOPG_TRIED"], "a") as f:
    f.write("imported\\n")
raise ModuleNotFoundError("No module named 'psycopg' (blocked by the test)", name="psycopg")
'''


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, bool]:
    blocker = tmp_path / "no-psycopg"
    blocker.mkdir(exist_ok=True)
    (blocker / "psycopg.py").write_text(BLOCKER)
    tried = tmp_path / "psycopg-tried"
    tried.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    checkout = Path(campctl.__file__).resolve().parents[1]
    env.update(PYTHONPATH=os.pathsep.join([str(blocker), str(checkout)]),
               PSYCOPG_TRIED=str(tried), CAMPCTL_USER="tester")
    proc = subprocess.run([sys.executable, "-m", "campctl", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    return proc, tried.exists()


def test_a_postgresql_url_without_psycopg_exits_4_with_the_install_hint(tmp_path):
    secret = "pw-never-shown"
    proc, _ = _run(tmp_path, "--state", f"postgresql://campctl:{secret}@127.0.0.1:1/db",
                   "config", "get")
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "pip install 'campctl[postgres]'" in lines[0], proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert proc.stdout == ""


def test_the_sqlite_path_never_imports_psycopg(tmp_path):
    for args in (("init",), ("config", "get"), ("tick", "--now", "2027-03-01T09:00:00Z"),
                 ("status",)):
        proc, tried = _run(tmp_path, "--state", str(tmp_path / "state.db"), *args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert not tried, f"{args}: the SQLite path imported psycopg"
