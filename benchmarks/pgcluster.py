"""A throw-away PostgreSQL cluster for the benchmarks, DURABLE (fsync and synchronous_commit at
their defaults), started with the steps of `.ci/run`; or the database of `CAMPCTL_BENCH_PG_URL`.

    with pg_database() as url:   # postgresql://campctl@127.0.0.1:PORT/campctl_bench
        ...

The CI cluster runs with fsync off, so figures taken on it mean nothing for a commit's cost:
this one keeps every durability setting at PostgreSQL's default. initdb runs as the `postgres`
OS user (or `nobody`) when this process is root, since initdb refuses root; the server listens
on 127.0.0.1 at a free port with trust authentication, its socket sits in a private temporary
directory, and everything is removed on exit (an immediate stop, then the directory).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV_URL = "CAMPCTL_BENCH_PG_URL"
DBNAME = "campctl_bench"


def pg_bin() -> Path:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise SystemExit("no PostgreSQL server here (initdb not found): install Debian's "
                     f"`postgresql` package, or set {ENV_URL} to an empty database")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _os_user() -> str | None:
    """The unprivileged user the cluster belongs to when we are root (None: ourselves)."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise SystemExit("running as root with neither a `postgres` nor a `nobody` user for initdb")


@contextlib.contextmanager
def cluster(settings: dict[str, str] | None = None) -> Iterator[str]:
    """Start a durable cluster; yield the URL of its empty database `campctl_bench`; remove it.

    `settings`: further server settings (`-c name=value`), e.g. `max_connections`."""
    binary = pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="campctl-bench-pg."))
    user = _os_user()
    run_as: list[str] = []
    if user is not None:
        shutil.chown(folder, user)
        run_as = ["runuser", "-u", user, "--"]
    data = folder / "data"
    port = _free_port()
    started = False
    try:
        _run([*run_as, str(binary / "initdb"), "-D", str(data), "-U", "campctl", "-A", "trust",
              "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], folder / "initdb.log")
        options = [f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}",
                   "-c max_connections=100"]
        options += [f"-c {name}={value}" for name, value in (settings or {}).items()]
        _run([*run_as, str(binary / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
              "-w", "-t", "60", "start", "-o", " ".join(options)], folder / "server.log")
        started = True
        _run([str(binary / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(port), "-U",
              "campctl", "-d", "postgres", "-c", f"CREATE DATABASE {DBNAME}"],
             folder / "createdb.log")
        yield f"postgresql://campctl@127.0.0.1:{port}/{DBNAME}"
    finally:
        if started:
            subprocess.run([*run_as, str(binary / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _run(cmd: list[str], log: Path) -> None:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        text = done.stdout.decode(errors="replace")
        if log.exists():
            text += log.read_text(errors="replace")
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text}")


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """`CAMPCTL_BENCH_PG_URL` when set (its database is emptied by the benchmark), else the URL
    of a fresh durable cluster's database, removed on exit."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    with cluster() as url:
        yield url


if __name__ == "__main__":  # a manual check: start, print the settings that matter, stop
    import psycopg

    with pg_database() as url, psycopg.connect(url) as conn:
        print(url)
        for name in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
                     "server_version"):
            print(f"  {name} = {conn.execute(f'SHOW {name}').fetchone()[0]}")
