"""Console entry point."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from campctl.cli import run

    code = run(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return code



def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
