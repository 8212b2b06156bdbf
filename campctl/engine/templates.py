"""Message templates: a sandboxed, size-capped Jinja2 environment, compiled once and cached."""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# One rendered subject or body may not exceed this many characters. Also the largest integer
# argument a template may pass to a call or filter: `'x'|center(10**9)` would allocate first.
MAX_OUTPUT = 1_000_000
MAX_EXPONENT = 64
_FORMAT_WIDTH = re.compile(r"\d{7,}")
_CACHE_SIZE = 256


class TemplateFailed(Exception):
    """A template could not render for one contact; `reason` says why (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TooBig(Exception):
    pass


def _check_args(args: tuple, kwargs: dict) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
            raise _TooBig(f"argument {value} is larger than the template limit ({MAX_OUTPUT})")


def _sized(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


@functools.lru_cache(maxsize=1)
def environment():
    """The one sandboxed environment (created on first use: importing jinja2 costs ~50 ms)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class CappedSandbox(ImmutableSandboxedEnvironment):
        # Intercepting also stops the compiler from folding `'a' * 10**7` at compile time.
        intercepted_binops = frozenset(["*", "**", "%"])

        def call_binop(self, context, operator, left, right):
            if operator == "*":
                if isinstance(left, int) and not isinstance(right, int):
                    left, right = right, left
                if isinstance(right, int) and _sized(left) * max(right, 0) > MAX_OUTPUT:
                    raise SecurityError(
                        f"repetition would exceed the template output limit ({MAX_OUTPUT} chars)"
                    )
            elif operator == "**":
                if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                    raise SecurityError(f"exponent {right} is too large (limit {MAX_EXPONENT})")
            elif operator == "%" and isinstance(left, str) and _FORMAT_WIDTH.search(left):
                raise SecurityError("format width is too large")
            return super().call_binop(context, operator, left, right)

        def call(__self, __context, __obj, *args, **kwargs):
            try:
                _check_args(args, kwargs)
            except _TooBig as exc:
                raise SecurityError(str(exc)) from None
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value):
            wrapped = super().wrap_str_format(value)
            if wrapped is not None and _FORMAT_WIDTH.search(value.__self__):
                raise SecurityError("format width is too large")
            return wrapped

    env = CappedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    for name, flt in list(env.filters.items()):
        env.filters[name] = _capped_filter(flt, SecurityError, check_format=name == "format")
    return env


def _capped_filter(flt, error, *, check_format: bool):
    @functools.wraps(flt)  # keeps jinja_pass_arg (context/environment-passing filters)
    def capped(*args, **kwargs):
        try:
            _check_args(args, kwargs)
            if check_format and args and _FORMAT_WIDTH.search(str(args[0])):
                raise _TooBig("format width is too large")
        except _TooBig as exc:
            raise error(str(exc)) from None
        return flt(*args, **kwargs)

    return capped


def _reason(exc: BaseException) -> str:
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.sandbox import SecurityError

    if isinstance(exc, TemplateSyntaxError):
        return f"template syntax error at line {exc.lineno}: {exc.message}"
    if isinstance(exc, UndefinedError):
        return f"undefined variable: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"template not allowed: {exc}"
    if isinstance(exc, MemoryError | RecursionError):
        return f"template too expensive: {type(exc).__name__}"
    text = " ".join(str(exc).split())[:300]
    return f"template error: {type(exc).__name__}: {text}"


class _Part:
    """One template (subject or body), compiled once."""

    __slots__ = ("constant", "globals", "label", "template")

    def __init__(self, source: str | None, label: str) -> None:
        self.label = label
        source = "" if source is None else str(source)
        # Plain text needs no Jinja at all: most subjects have no tag.
        if "{" not in source:
            self.constant: str | None = source
            self.template = None
            return
        self.constant = None
        try:
            self.template = environment().from_string(source)
        except Exception as exc:
            raise TemplateFailed(f"{label}: {_reason(exc)}") from None
        # Jinja copies its globals ChainMap into every new context; one flat copy, made here,
        # then a shared context per render is ~2x faster.
        self.globals = dict(self.template.globals)

    def render(self, context: dict) -> str:
        if self.constant is not None:
            return self.constant
        size = 0
        chunks: list[str] = []
        try:
            frame = self.template.new_context({**self.globals, **context}, shared=True)
            for chunk in self.template.root_render_func(frame):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateFailed(
                        f"{self.label}: rendered text exceeds the limit of {MAX_OUTPUT} characters"
                    )
                chunks.append(chunk)
        except TemplateFailed:
            raise
        except Exception as exc:
            raise TemplateFailed(f"{self.label}: {_reason(exc)}") from None
        return "".join(chunks)


@dataclass(frozen=True)
class CompiledMessage:
    """A message's subject and body templates, compiled; render once per contact."""

    subject: _Part
    body: _Part

    def render(self, context: dict) -> tuple[str, str]:
        """(subject, body) for one contact; raises TemplateFailed(reason)."""
        subject = self.subject.render(context)
        # A header must be one line: a newline from a contact's data must not inject headers.
        if "\n" in subject or "\r" in subject:
            subject = " ".join(subject.split())
        return subject, self.body.render(context)


_cache: OrderedDict[tuple[str, str], CompiledMessage] = OrderedDict()


def compile_message(message: dict | None) -> CompiledMessage:
    """Compile `{subject, body}` once (cached by source text); TemplateFailed on bad syntax."""
    message = message or {}
    subject = message.get("subject")
    body = message.get("body")
    key = ("" if subject is None else str(subject), "" if body is None else str(body))
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    compiled = CompiledMessage(_Part(key[0], "subject"), _Part(key[1], "body"))
    _cache[key] = compiled
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return compiled


def contact_context(
    *, external_id: str, email: str | None, phone: str | None, attrs: dict | None,
    groups: list[str] | None,
) -> dict:
    """What a template sees: the contact's attributes, then id, email, phone and groups
    (the fixed fields win over attributes of the same name)."""
    context = dict(attrs or {})
    context.update(id=external_id, email=email, phone=phone, groups=list(groups or []))
    return context


def check_message(message: dict | None, sample_context: dict | None) -> list[str]:
    """Problems of a message before a launch: syntax errors, and failures with a sample contact."""
    try:
        compiled = compile_message(message)
    except TemplateFailed as exc:
        return [exc.reason]
    if sample_context is None:
        return []
    problems = []
    for part in (compiled.subject, compiled.body):
        try:
            part.render(sample_context)
        except TemplateFailed as exc:
            problems.append(exc.reason)
    return problems
