"""Run the reliability workloads at full size and print their figures.

    python3 tests/reliability/full_size.py                 # every workload, full size
    python3 tests/reliability/full_size.py --only chaos    # one of them
    python3 tests/reliability/full_size.py --size small    # what CI runs, as figures
    python3 tests/reliability/full_size.py -o json         # figures as JSON
    python3 tests/reliability/full_size.py --only hosts --store postgresql://USER@HOST/DB

Each `*_workload.py` beside this file exposes `measure(workdir, size=, seed=) -> dict` with an
`ok` figure (those that take `store=` run on PostgreSQL with `--store URL`, each state in a
schema of its own in that database); the pytest files of this folder call the same functions at
size "small". Exits 0 when every workload is ok, 1 otherwise. Needs the project installed (`pip
install -e '.[test]'`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def workloads() -> list[str]:
    return sorted(p.stem.removesuffix("_workload") for p in HERE.glob("*_workload.py"))


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "system": f"{platform.system()} {platform.release()}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {workloads()}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default=None,
                        help="a PostgreSQL URL: the workloads that take one run there")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    names = [n for n in workloads() if not args.only or n in args.only.split(",")]
    if not names:
        parser.error(f"no workload named {args.only!r}; known: {', '.join(workloads())}")
    sys.path.insert(0, str(HERE))

    results: dict[str, dict] = {}
    for name in names:
        module = importlib.import_module(f"{name}_workload")
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"campctl-{name}-") as tmp:
            extra = {}
            if args.store:
                if "store" not in inspect.signature(module.measure).parameters:
                    continue
                extra["store"] = args.store
            try:
                figures = module.measure(Path(tmp), size=args.size, seed=args.seed, **extra)
            except Exception as exc:  # a workload that crashes is a failed figure, not a stop
                figures = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                           "traceback": traceback.format_exc(limit=3)}
        figures.setdefault("seconds", round(time.perf_counter() - started, 1))
        results[name] = figures
        if args.output == "table":
            _print_one(name, figures, args.size)

    every_ok = all(f.get("ok") is True for f in results.values())
    summary = {"machine": machine(), "size": args.size, "seed": args.seed,
               "workloads": results, "ok": every_ok}
    if args.output == "json":
        print(json.dumps(summary, indent=2, default=str))
    else:
        info = summary["machine"]
        print(f"\n{info['date']} · {info['cpu']} · {info['cores']} cores · Python "
              f"{info['python']} · SQLite {info['sqlite']} · {info['system']}")
        print("all ok" if every_ok else "NOT OK: " + ", ".join(
            n for n, f in results.items() if f.get("ok") is not True))
    return 0 if every_ok else 1


def _print_one(name: str, figures: dict, size: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{name} ({size})", show_header=False, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if key != "traceback":
            table.add_row(key, str(value))
    console = Console()
    console.print(table)
    if "traceback" in figures:
        console.print(figures["traceback"], markup=False)


if __name__ == "__main__":
    sys.exit(main())
