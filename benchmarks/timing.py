"""Timing fresh processes for the benchmarks: wall and CPU time of a child, medians of commands
run alternately (a shared machine's changing load then falls on all of them alike)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time

# Children run as an installed package does: pip writes the .pyc files at install, so the
# modules are not compiled again on every run (PYTHONDONTWRITEBYTECODE would make them so).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child: user + system, bytes written on stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=CHILD_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed: {err.read().decode()}")
        return wall, usage.ru_utime + usage.ru_stime, out.tell()


def medians(commands: list[list[str]], runs: int) -> list[tuple[float, float, int]]:
    """Median wall and CPU time and the output size of each command, run alternately."""
    for cmd in commands:
        timed(cmd)  # warm the page cache
    samples: list[list[tuple[float, float]]] = [[] for _ in commands]
    sizes = [0] * len(commands)
    for _ in range(runs):
        for i, cmd in enumerate(commands):
            wall, cpu, size = timed(cmd)
            samples[i].append((wall, cpu))
            sizes[i] = size
    return [(statistics.median(w for w, _ in taken), statistics.median(c for _, c in taken),
             size) for taken, size in zip(samples, sizes, strict=True)]
