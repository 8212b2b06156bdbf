"""Message templates: a sandboxed Jinja2 environment under a work budget, compiled once and cached.

The sandbox bounds what a template may touch; the budget bounds how much work one message may
cost. Every loop iteration, call, filter and operator of a render is counted, and every string it
builds is measured, against one `_Budget` per message; exceeding it fails that message only.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# One rendered subject or body may not exceed this many characters. Also the largest integer
# argument a template may pass to a call or filter: `'x'|center(10**9)` would allocate first.
MAX_OUTPUT = 1_000_000
MAX_EXPONENT = 64
# The work budget of one message (subject and body together): loop iterations, calls, filters
# and operators (a filter also counts the items of a list or range it is given) ...
MAX_STEPS = 20_000
# ... and the characters of all the strings it builds (each one also at most MAX_OUTPUT).
MAX_BUILT = 10 * MAX_OUTPUT
# A last resort for work the counters cannot see (one slow operation on large data): a message
# whose rendering takes longer than this fails. The counters stop every known case long before.
MAX_RENDER_SECONDS = 5.0
_CLOCK_EVERY = 1024  # steps between two looks at the clock
_FORMAT_WIDTH = re.compile(r"\d{7,}")
_CACHE_SIZE = 256


class TemplateFailed(Exception):
    """A template could not render for one contact; `reason` says why (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TooBig(Exception):
    pass


class BudgetExceeded(Exception):
    """A render did more work than one message may cost."""


class _Budget:
    """The work left to one message's render; every hook below charges the active one."""

    __slots__ = ("built", "clock", "deadline", "exceeded", "next_look", "steps")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.steps = 0
        self.built = 0
        self.clock = clock
        self.deadline = clock() + MAX_RENDER_SECONDS
        self.next_look = _CLOCK_EVERY
        self.exceeded: str | None = None

    def _fail(self, reason: str) -> None:
        # Sticky: code that swallows an exception (a filter, a test) cannot win more work.
        self.exceeded = self.exceeded or reason
        raise BudgetExceeded(self.exceeded)

    def step(self, count: int = 1) -> None:
        if self.exceeded:
            raise BudgetExceeded(self.exceeded)
        self.steps += count
        if self.steps > MAX_STEPS:
            self._fail(f"more than {MAX_STEPS} loop iterations, calls and filters in one "
                       "message")
        if self.steps >= self.next_look:
            self.next_look = self.steps + _CLOCK_EVERY
            if self.clock() > self.deadline:
                self._fail(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")

    def text(self, size: int) -> None:
        if size > MAX_OUTPUT:
            self._fail(f"a string of {size} characters exceeds the template limit "
                       f"({MAX_OUTPUT})")
        self.built += size
        if self.built > MAX_BUILT:
            self._fail(f"more than {MAX_BUILT} characters built in one message")


_local = threading.local()


def _active() -> _Budget | None:
    return getattr(_local, "budget", None)


def _charge_result(budget: _Budget, value: Any) -> None:
    if isinstance(value, str):
        budget.text(len(value))
    elif isinstance(value, list | tuple | dict | set | frozenset):
        budget.step(len(value))


def _counted(iterable: Iterable) -> Iterator:
    """A loop's items, each charged to the active budget."""
    budget = _active()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.step()
        yield item


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
    from jinja2 import StrictUndefined, nodes, pass_context
    from jinja2.compiler import CodeGenerator
    from jinja2.runtime import LoopContext
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class BudgetedCode(CodeGenerator):
        """Compiles every loop over a counted iterable and every `~` through a size check."""

        def visit_Template(self, node, frame=None):
            # Before the generator collects the filters it needs.
            for loop in node.find_all(nodes.For):
                loop.iter = nodes.Filter(loop.iter, "__counted", [], [], None, None,
                                         lineno=loop.lineno)
            super().visit_Template(node, frame)

        def visit_Concat(self, node, frame):
            self.write("environment.budget_concat(")
            super().visit_Concat(node, frame)
            self.write(")")

    class CappedSandbox(ImmutableSandboxedEnvironment):
        code_generator_class = BudgetedCode
        # Intercepting also stops the compiler from folding `'a' * 10**7` at compile time.
        intercepted_binops = frozenset(["*", "**", "%", "+"])

        def call_binop(self, context, operator, left, right):
            budget = _active()
            if budget is not None:
                budget.step()
            if operator == "*":
                if isinstance(left, int) and not isinstance(right, int):
                    left, right = right, left
                if isinstance(right, int) and _sized(left) * max(right, 0) > MAX_OUTPUT:
                    raise SecurityError(
                        f"repetition would exceed the template output limit ({MAX_OUTPUT} chars)"
                    )
            elif operator == "+":
                if _sized(left) + _sized(right) > MAX_OUTPUT and not isinstance(left, int):
                    raise SecurityError(
                        f"concatenation would exceed the template output limit ({MAX_OUTPUT} "
                        "chars)"
                    )
            elif operator == "**":
                if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                    raise SecurityError(f"exponent {right} is too large (limit {MAX_EXPONENT})")
            elif operator == "%" and isinstance(left, str) and _FORMAT_WIDTH.search(left):
                raise SecurityError("format width is too large")
            result = super().call_binop(context, operator, left, right)
            if budget is not None:
                _charge_result(budget, result)
            return result

        def call(__self, __context, __obj, *args, **kwargs):
            try:
                _check_args(args, kwargs)
            except _TooBig as exc:
                raise SecurityError(str(exc)) from None
            budget = _active()
            if budget is None:
                return super().call(__context, __obj, *args, **kwargs)
            budget.step()
            if isinstance(__obj, LoopContext) and args:  # loop(children) of a recursive loop
                args = (_counted(args[0]), *args[1:])
            result = super().call(__context, __obj, *args, **kwargs)
            _charge_result(budget, result)
            return result

        def budget_concat(self, value):
            budget = _active()
            if budget is not None:
                budget.step()
                budget.text(len(value))
            return value

        def wrap_str_format(self, value):
            wrapped = super().wrap_str_format(value)
            if wrapped is not None and _FORMAT_WIDTH.search(value.__self__):
                raise SecurityError("format width is too large")
            return wrapped

    def finalize(value):
        # Every `{{ ... }}` passes here: text written into `{% set %}` blocks and macro bodies
        # counts too.
        budget = _active()
        if budget is not None and isinstance(value, str):
            budget.text(len(value))
        return value

    env = CappedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                        finalize=finalize)
    # Writes text without bound and has no use in a message.
    env.globals.pop("lipsum", None)
    for name, flt in list(env.filters.items()):
        env.filters[name] = _capped_filter(flt, SecurityError, check_format=name == "format")

    @pass_context  # never folded at compile time: a constant list is counted when it runs too
    def counted(context, iterable):
        return _counted(iterable)

    env.filters["__counted"] = counted
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
        budget = _active()
        if budget is None:
            return flt(*args, **kwargs)
        # The value filtered is the first argument not passed by Jinja itself.
        subject = next((a for a in args if isinstance(a, list | tuple | dict | range | set
                                                       | frozenset | str)), None)
        budget.step(1 + (len(subject) if subject is not None and not isinstance(subject, str)
                         else 0))
        result = flt(*args, **kwargs)
        _charge_result(budget, result)
        return result

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
    if isinstance(exc, BudgetExceeded):
        return f"template exceeds its budget: {exc}"
    if isinstance(exc, MemoryError | RecursionError):
        return f"template too expensive: {type(exc).__name__}"
    text = " ".join(str(exc).split())[:300]
    return f"template error: {type(exc).__name__}: {text}"


class _OutputTooLong(Exception):
    pass


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

    def render(self, context: dict, budget: _Budget | None = None) -> str:
        """This part for one contact, charged to `budget` (a fresh one when None)."""
        try:
            return self.render_raw(context, budget)
        except Exception as exc:
            raise TemplateFailed(f"{self.label}: {_reason(exc)}") from None

    def render_raw(self, context: dict, budget: _Budget | None = None) -> str:
        """As `render`, raising what the template raised."""
        if self.constant is not None:
            return self.constant
        template = self.template
        assert template is not None  # compiled whenever the text is not constant
        size = 0
        chunks: list[str] = []
        values = {**self.globals, **context}
        if isinstance(context, _SampleContact):
            values = _SampleContact(values)
            values.touched = context.touched
        outer = _active()
        _local.budget = budget or _Budget()
        try:
            frame = template.new_context(values, shared=True)
            for chunk in template.root_render_func(frame):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise _OutputTooLong(f"rendered text exceeds the limit of {MAX_OUTPUT} "
                                         "characters")
                chunks.append(chunk)
        finally:
            _local.budget = outer
            if isinstance(context, _SampleContact):
                context.touched = values.touched  # type: ignore[attr-defined]
        return "".join(chunks)


@dataclass(frozen=True)
class CompiledMessage:
    """A message's subject and body templates, compiled; render once per contact."""

    subject: _Part
    body: _Part

    def render(self, context: dict) -> tuple[str, str]:
        """(subject, body) for one contact, under one budget; raises TemplateFailed(reason)."""
        budget = _Budget()
        subject = self.subject.render(context, budget)
        # A header must be one line: a newline from a contact's data must not inject headers.
        if "\n" in subject or "\r" in subject:
            subject = " ".join(subject.split())
        return subject, self.body.render(context, budget)


# --- the test render: a synthetic contact ---------------------------------------------------------

class _SampleContact(dict):
    """A synthetic contact: the fixed fields, and every other name reads as an empty, lenient
    value, so that a test render follows the template's own structure, not a person's data."""

    touched = False  # set once the render has read a name the contact does not have

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> Any:
        from jinja2 import ChainableUndefined

        self.touched = True
        return ChainableUndefined(name=key)


def sample_contact() -> dict:
    """The synthetic contact of `validate`, `approve` and delivery's first look at a message."""
    return _SampleContact(id="sample", email="sample@example.com", phone="+10000000000",
                          groups=[])


def _intrinsic(exc: BaseException) -> bool:
    """A failure that comes from the template's own work, whatever the contact's data."""
    from jinja2.sandbox import SecurityError

    return isinstance(exc, BudgetExceeded | SecurityError | _OutputTooLong | RecursionError
                      | MemoryError)


def _sample_problem(part: _Part, budget: _Budget, *, intrinsic_only: bool) -> str | None:
    """Why `part` fails its render with the synthetic contact, if it does. An error that may come
    from the missing attributes (an undefined value used) is not a problem: real contacts have
    them."""
    from jinja2 import UndefinedError

    context = sample_contact()
    try:
        part.render_raw(context, budget)
    except Exception as exc:
        if _intrinsic(exc) or not (intrinsic_only or isinstance(exc, UndefinedError)
                                   or context.touched):  # type: ignore[attr-defined]
            return _reason(exc)
    return None


def _sample_problems(compiled: CompiledMessage, *, intrinsic_only: bool) -> list[str]:
    budget = _Budget()  # one message: subject and body share it, as at delivery
    problems: list[str] = []
    for part in (compiled.subject, compiled.body):
        problem = _sample_problem(part, budget, intrinsic_only=intrinsic_only)
        if problem is not None:
            problems.append(f"{part.label}: {problem}")
            if budget.exceeded:
                break  # the body has no budget left to be judged by
    return problems


def template_problems(source: str) -> list[str]:
    """Problems of one template (a subject or a body alone) for `validate`: its syntax, and its
    test render with the synthetic contact, without a `subject:`/`body:` prefix."""
    try:
        part = _Part(source, "")
    except TemplateFailed as exc:
        return [exc.reason.removeprefix(": ")]
    problem = _sample_problem(part, _Budget(), intrinsic_only=False)
    return [] if problem is None else [problem]


def render_problems(message: dict | None) -> list[str]:
    """What `validate` and `approve` report for a message: syntax errors, and what fails when it
    is rendered for a synthetic contact (budget, sandbox, errors that no contact data can avoid),
    each starting with `subject:` or `body:`."""
    try:
        compiled = _compile(message)
    except TemplateFailed as exc:
        return [exc.reason]
    return _sample_problems(compiled, intrinsic_only=False)


# --- the cache ------------------------------------------------------------------------------------

_cache: OrderedDict[tuple[str, str], CompiledMessage | TemplateFailed] = OrderedDict()


def _key(message: dict | None) -> tuple[str, str]:
    message = message or {}
    subject = message.get("subject")
    body = message.get("body")
    return ("" if subject is None else str(subject), "" if body is None else str(body))


def _compile(message: dict | None) -> CompiledMessage:
    key = _key(message)
    return CompiledMessage(_Part(key[0], "subject"), _Part(key[1], "body"))


def compile_message(message: dict | None) -> CompiledMessage:
    """Compile `{subject, body}` once (cached by source text). TemplateFailed on bad syntax, and
    when the synthetic contact's render exceeds the budget or the sandbox: such a template fails
    every message at once, without costing its budget once per contact."""
    key = _key(message)
    found = _cache.get(key)
    if found is None:
        try:
            found = _compile(message)
            problems = _sample_problems(found, intrinsic_only=True)
            if problems:
                found = TemplateFailed(problems[0])
        except TemplateFailed as exc:
            found = exc
        _cache[key] = found
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    if isinstance(found, TemplateFailed):
        raise TemplateFailed(found.reason)
    return found


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
    budget = _Budget()
    for part in (compiled.subject, compiled.body):
        try:
            part.render(sample_context, budget)
        except TemplateFailed as exc:
            problems.append(exc.reason)
    return problems
