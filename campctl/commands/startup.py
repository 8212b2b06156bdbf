"""Cheap start-up: the root group builds only the command that is invoked, and typer's
parameter coercion runs without pydantic for the plain values campctl's commands take.

Building all ~120 commands costs ~90 ms and typer's coercion imports pydantic (~150 ms); a
command line needs one top-level command and plain strings and integers. `--help`, shell
completion and anything that walks `commands` still see every command (they load on access).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any


class LazyCommands(MutableMapping[str, Any]):
    """The root group's `commands`: every name in `names` (in that order), each click command
    built by `load(name)` on first access."""

    def __init__(self, names: tuple[str, ...], load: Callable[[str], Any]) -> None:
        self._names = names
        self._load = load
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = self._load(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]  # a built-in name, once deleted, loads again on access

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys((*self._names, *self._built)))

    def __len__(self) -> int:
        return len(set(self._names) | set(self._built))

    def __contains__(self, name: object) -> bool:
        return name in self._names or name in self._built

    @property
    def built(self) -> tuple[str, ...]:
        """The names built so far (tests check that a command line builds one)."""
        return tuple(self._built)


_DECIMAL = re.compile(r"-?[0-9]{1,18}")  # within 64 bits; anything else goes to typer


class QuickCoercion:
    """Typer's coercion of one parameter (`_TyperParameter._runtime_param`) for the values a
    command line gives campctl: strings, lists of strings, decimal integers in range, paths.
    Every other value (and every error) goes to typer's own coercion, built on first need, so
    results and messages are typer's (tests/test_startup.py compares the two)."""

    def __init__(self, descriptor: Any, build: Callable[[Any], Any],
                 open_path: Callable[..., Any]) -> None:
        self._descriptor = descriptor
        self._build = build
        self._open_path = open_path
        self._typer: Any = None
        info = descriptor.parameter_info
        annotation = descriptor.annotation
        self._kind = None
        if descriptor.file_annotation is not None or info.parser is not None:
            return
        if annotation is str:
            self._kind = "str"
        elif annotation == list[str]:
            self._kind = "list"
        elif annotation is int and not info.clamp:
            self._kind = "int"
        elif annotation is Path and info.path_type is None:
            self._kind = "path"

    def _fallback(self) -> Any:
        if self._typer is None:
            self._typer = self._build(self._descriptor)
        return self._typer

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:
            return () if multiple else None
        quick = self._quick(value, multiple, param, ctx)
        if quick is not _SLOW:
            return quick
        return self._fallback().coerce(value, param=param, ctx=ctx)

    def _quick(self, value: Any, multiple: bool, param: Any, ctx: Any) -> Any:
        kind = self._kind
        if kind == "list":
            if isinstance(value, list | tuple) and all(type(v) is str for v in value):
                return list(value)
            return _SLOW
        if multiple:
            return _SLOW
        if kind == "str":
            return value if type(value) is str else _SLOW
        if kind == "int":
            if type(value) is str and _DECIMAL.fullmatch(value):
                number = int(value)
            elif type(value) is int:
                number = value
            else:
                return _SLOW
            info = self._descriptor.parameter_info
            if (info.min is not None and number < info.min) or (
                    info.max is not None and number > info.max):
                return _SLOW  # typer words the error
            return number
        if kind == "path" and type(value) is str and value:
            # typer's own checks on the text as given (its messages quote it); the Path that
            # pydantic would make of a non-empty str is Path(text)
            checked = self._open_path(value, self._descriptor.parameter_info, path_type=None,
                                      param=param, ctx=ctx)
            return Path(checked) if isinstance(checked, str) else _SLOW
        return _SLOW


_SLOW = object()


def quicken(command: Any, *, subcommands: bool = True) -> None:
    """Give every typer parameter of `command` (and of its subcommands) a QuickCoercion. Does
    nothing with a typer that has no such hook (the parameters then coerce as typer does)."""
    try:
        from typer._coercion import build_runtime_param
        from typer._param_types import coerce_cli_path
    except ImportError:  # pragma: no cover - another typer: its own coercion, only slower
        return
    _quicken(command, build_runtime_param, coerce_cli_path, subcommands)


def _quicken(command: Any, build: Callable[[Any], Any], open_path: Callable[..., Any],
             subcommands: bool) -> None:
    def quick(param: Any) -> Any:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", "absent") is None:
            param._runtime_param = QuickCoercion(descriptor, build, open_path)
        return param

    for param in command.params:
        quick(param)
    # click makes the --help option on first use, outside `params`
    make_help_option = command.get_help_option
    command.get_help_option = lambda ctx: quick(make_help_option(ctx))
    if subcommands:
        for sub in getattr(command, "commands", {}).values():
            _quicken(sub, build, open_path, subcommands)
