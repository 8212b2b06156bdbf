"""The error hierarchy: every expected failure is a CampctlError carrying its exit code."""

from __future__ import annotations


class CampctlError(Exception):
    """Something went wrong."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else (self.__doc__ or "").strip()


class ValidationFailed(CampctlError):
    """The definitions are not valid."""

    exit_code = 1

    def __init__(self, message: str | None = None, issues: list | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []


class ActionRefused(CampctlError):
    """The action is not allowed in the current state."""

    exit_code = 1


class UsageProblem(CampctlError):
    """The command line is not valid."""

    exit_code = 2


class NotFound(CampctlError):
    """No such object."""

    exit_code = 3


class StateFileError(CampctlError):
    """The state file cannot be used."""

    exit_code = 4


class NoState(StateFileError):
    """There is no campctl state there yet (run 'campctl init')."""


class StateLocked(StateFileError):
    """The state file stayed locked by another process for longer than the busy timeout."""
