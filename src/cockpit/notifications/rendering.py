"""Rendering notification templates: Jinja2 in its immutable sandbox, with limits on what a template
may do and how much it may produce.

A template is written by an administrator and rendered by the job queue for every event, so it must
neither reach Python's internals (the sandbox refuses ``__class__`` and friends) nor stall a worker
or exhaust its memory. Beyond the sandbox:

- the language is cut down to what a message needs: output, ``if``, ``for`` (not recursive),
  ``set``-free expressions and a list of plain filters; no macros, includes, imports, blocks,
  ``set`` or ``namespace`` (the tools of unbounded growth);
- every ``for`` loop draws from one budget of iterations per rendering (``MAX_STEPS``), so nested
  loops cannot multiply; ``range`` is capped likewise;
- arithmetic and filters refuse numbers above ``MAX_NUMBER`` (``'x' * 10**9``, ``center(10**9)``) and
  results longer than ``MAX_VALUE``; string formatting with ``%`` and ``.format`` is refused;
- the output is cut off at the caller's cap while it streams.

Undefined variables render empty (a template of an older event, a variable a caller left out): a
friendly default for people who write messages, listed as warnings when the template is saved.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context

MAX_SOURCE = 10_000  # characters of a template's source
MAX_SUBJECT = 200  # characters of a rendered subject (one line)
MAX_BODY = 10_000  # characters of a rendered body
MAX_STEPS = 10_000  # loop iterations per rendering, all loops together
MAX_NUMBER = 10_000  # the largest number an operation or a filter may take
MAX_VALUE = 20_000  # the longest string or list an operation or a filter may produce
_STEPS_KEY = "cockpit:steps"  # not a name a template can spell: the budget of this rendering

_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.For, nodes.Name, nodes.Const,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.Compare, nodes.Operand,
    nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Concat, nodes.CondExpr, nodes.Add,
    nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.List, nodes.Tuple,
    nodes.Dict, nodes.Pair, nodes.Keyword, nodes.Call,
)  # fmt: skip
_SAFE_FILTERS = (
    "abs", "capitalize", "center", "count", "d", "default", "first", "float", "int", "join", "last",
    "length", "list", "lower", "max", "min", "replace", "reverse", "round", "sort", "string", "sum",
    "title", "trim", "truncate", "unique", "upper", "wordcount", "wordwrap", "indent", "striptags",
    "urlencode", "filesizeformat", "batch", "slice", "map", "select", "reject", "selectattr",
    "rejectattr", "dictsort", "tojson",
)  # fmt: skip
_CALLABLE_GLOBALS = frozenset({"range"})


class TemplateProblem(Exception):
    """A template that cannot be used: the reason, and its line when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line = message, line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class _Steps:
    def __init__(self) -> None:
        self.left = MAX_STEPS

    def take(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise SecurityError(f"the template loops more than {MAX_STEPS:,} times")


def _check_args(args: Iterable[Any]) -> None:
    for value in args:
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
            raise SecurityError(f"numbers above {MAX_NUMBER:,} are not allowed here")


def _check_result(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE:
        raise SecurityError(f"a value longer than {MAX_VALUE:,} would be made")
    return value


def _limited(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps jinja_pass_arg (context/environment filters)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[1:])  # the first is the value filtered (or the context)
        _check_args(kwargs.values())
        return _check_result(fn(*args, **kwargs))

    return wrapper


@pass_context
def _budget(context: Context, iterable: Any) -> Iterator[Any]:
    steps: _Steps = context.get(_STEPS_KEY) or _Steps()
    for item in iterable:
        steps.take()
        yield item


def _range(*args: int) -> range:
    """``range`` with bounded arguments (a loop over it draws from the budget like any other)."""
    _check_args(args)
    return range(*args)


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("formatting strings with % is not allowed")
        if operator in ("*", "**"):
            _check_args((left, right))
        return _check_result(super().call_binop(context, operator, left, right))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in ("format", "format_map"):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to {attribute!r} is not allowed")

    def call(self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_args(args)
        _check_args(kwargs.values())
        return _check_result(super().call(__context, __obj, *args, **kwargs))


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters = {name: _limited(env.filters[name]) for name in _SAFE_FILTERS}
    env.filters["_budget"] = _budget
    env.globals = {"range": _range}
    return env


_ENV = _environment()


@dataclass(frozen=True)
class Checked:
    """A template that parsed and uses only what is allowed: the variables it names that the event
    does not have (warnings, not errors)."""

    unknown: list[str] = field(default_factory=list)


def _parse(source: str) -> nodes.Template:
    if len(source) > MAX_SOURCE:
        raise TemplateProblem(f"A template has at most {MAX_SOURCE:,} characters.")
    try:
        return _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", exc.lineno) from None


def _restrict(tree: nodes.Template) -> nodes.Template:
    """Refuse what a message does not need; make every loop draw from the budget."""
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            kind = type(node).__name__.lower()
            raise TemplateProblem(f"“{kind}” is not allowed in a notification template", node.lineno)
        if isinstance(node, nodes.For):
            if node.recursive:
                raise TemplateProblem("recursive loops are not allowed", node.lineno)
            node.iter = nodes.Filter(node.iter, "_budget", [], [], None, None, lineno=node.lineno)
        if isinstance(node, nodes.Filter) and node.name not in _ENV.filters:
            raise TemplateProblem(f"the filter “{node.name}” is not available", node.lineno)
        if isinstance(node, nodes.Call) and not (
            isinstance(node.node, nodes.Name) and node.node.name in _CALLABLE_GLOBALS
        ):
            raise TemplateProblem("only range() may be called", node.lineno)
    return tree


def check(source: str, variables: Iterable[str]) -> Checked:
    """Parse and vet a template (``TemplateProblem`` when it cannot be used); the names it uses that
    are not among ``variables`` come back as warnings."""
    tree = _restrict(_parse(source))
    try:
        names = meta.find_undeclared_variables(tree)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", exc.lineno) from None
    return Checked(unknown=sorted(names - set(variables) - set(_ENV.globals)))


def _render(source: str, data: dict[str, Any], limit: int) -> str:
    tree = _restrict(_parse(source))
    try:
        template = _ENV.from_string(tree)
        out: list[str] = []
        size = 0
        for chunk in template.generate({**data, _STEPS_KEY: _Steps()}):
            out.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    except TemplateError as exc:
        raise TemplateProblem(str(exc) or type(exc).__name__, getattr(exc, "lineno", None)) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as exc:
        raise TemplateProblem(f"{type(exc).__name__}: {exc}"[:300]) from None
    return "".join(out)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_subject(source: str, data: dict[str, Any]) -> str:
    """One line of at most MAX_SUBJECT characters (``TemplateProblem`` when it cannot render)."""
    return _cut(" ".join(_render(source, data, MAX_SUBJECT * 4).split()), MAX_SUBJECT)


def render_body(source: str, data: dict[str, Any]) -> str:
    return _cut(_render(source, data, MAX_BODY).strip(), MAX_BODY)
