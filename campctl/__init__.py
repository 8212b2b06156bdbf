"""campctl: marketing campaigns, execution plans and journeys from YAML and one SQLite file."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # The version lives once, in the package metadata; read it only when asked (keeps the
    # no-op tick's imports small).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("campctl")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'campctl' has no attribute {name!r}")
