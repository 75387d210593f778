"""Text that can be stored: every string that reaches the database passes through here.

Two kinds of characters are valid in a Python string (and in JSON, as ``\\u0000`` and ``\\ud800``
escapes) but cannot be stored:

- a *lone surrogate* (half of a UTF-16 pair) has no UTF-8 encoding, so neither SQLite's driver nor
  PostgreSQL's can send it;
- NUL (U+0000) is refused by PostgreSQL in ``text`` and ``jsonb`` values.

Input from people and programs (REST bodies, forms, query strings, gateway requests) is *refused*
with a clear error naming the field (``find_unstorable``); text that Cockpit must keep whatever it
contains (a usage record of a call that was refused for that very reason, an upstream's answer) is
*made storable* (``storable``), each bad character replaced by U+FFFD.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"
# JSON documents nested deeper than this are refused: nothing Cockpit accepts needs more, and
# recursive code (json, pydantic, tiktoken helpers) must never meet a document that exhausts the stack.
MAX_DEPTH = 64


def is_storable(text: str) -> bool:
    if text.isascii():
        return "\x00" not in text
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(text: str) -> str:
    """``text`` with every NUL and lone surrogate replaced by U+FFFD (a valid pair is kept)."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16: surrogates that form a pair are joined, lone ones become U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def storable_json(value: Any, depth: int = 0) -> Any:
    """A JSON-like value with every string (keys included) made storable; deeper than MAX_DEPTH
    levels, the rest is replaced by a note (a stored copy, never sent anywhere)."""
    if isinstance(value, str):
        return storable(value)
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        return "[nested too deeply]"
    if isinstance(value, dict):
        return {storable(str(k)): storable_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_json(v, depth + 1) for v in value]
    return value


class Unstorable(Exception):
    """A value that cannot be accepted: where it is (a path such as ``messages[0].content``) and why."""

    def __init__(self, path: str, reason: str) -> None:
        path = path or "body"
        if len(path) > 120:
            path = path[:117] + "..."
        super().__init__(f"{path} {reason}")
        self.path, self.reason = path, reason


def _describe(text: str) -> str:
    return "contains a NUL character" if "\x00" in text else "contains invalid Unicode (a lone surrogate)"


def check_text(text: str, path: str) -> None:
    if not is_storable(text):
        raise Unstorable(path, _describe(text))


def find_unstorable(value: Any, *, root: str = "body", max_depth: int = MAX_DEPTH, nul: bool = True) -> None:
    """Raise ``Unstorable`` for the first string (or key) that cannot be stored, or for nesting
    deeper than ``max_depth``. With ``nul=False`` only lone surrogates are refused (text that goes
    on to an upstream, where NUL is valid; it is made storable when recorded).

    Iterative, so that it cannot itself exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not _ok(item, nul):
                raise Unstorable(path, _describe(item))
            continue
        if isinstance(item, dict | list) and depth >= max_depth:
            raise Unstorable(path, f"is nested more than {max_depth} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                key_text = str(key)
                child_path = f"{path}.{key_text[:40]}" if path else key_text[:40]
                if not _ok(key_text, nul):
                    raise Unstorable(child_path, "has a name that " + _describe(key_text))
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                stack.append((child, f"{path}[{index}]", depth + 1))


def _ok(text: str, nul: bool) -> bool:
    if nul:
        return is_storable(text)
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def is_header_name(text: str) -> bool:
    """An HTTP field name (RFC 9110 token) of at most 100 characters."""
    return 0 < len(text) <= 100 and all(c in _TCHARS for c in text)


def is_header_value(text: str) -> bool:
    """Text that can be sent as (part of) an HTTP header value as it is: visible ASCII only."""
    return text.isascii() and all(33 <= ord(c) <= 126 for c in text)
