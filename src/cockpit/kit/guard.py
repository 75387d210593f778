"""The front door of the console and the REST API: nothing unbounded or unstorable gets in.

An ASGI middleware, so that it runs before anything reads or parses the request:

- a request body is limited **as it streams in** (413 as soon as it passes its route's limit, and at
  once when ``Content-Length`` says so), and the limit depends on who is asking: a request without
  valid credentials gets the small anonymous allowance, or a 401 from the REST API without a byte of
  its body being read (``Allowance``, decided by the caller of ``InputGuard``);
- every answer gets ``Cache-Control: no-store`` unless its route set one (pages show people's data
  and, once, secrets such as a new API token or an invitation link);
- text that cannot be stored (NUL, lone surrogates; see ``kit.text``) in the path, the query string,
  a JSON body or a form is refused with 400 ``invalid_text`` naming the field, and so is JSON nested
  deeper than ``kit.text.MAX_DEPTH`` levels (which would otherwise exhaust the stack of the parsers
  behind).

The gateway (``/v1/``) is dispatched before this middleware and reads its own body the same way.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cockpit.kit.errors import CockpitError, NotAuthenticated
from cockpit.kit.text import MAX_DEPTH, Unstorable, find_unstorable


class PayloadTooLarge(CockpitError):
    status = 413
    default_code = "payload_too_large"


def invalid_text(field: str, reason: str) -> CockpitError:
    message = f"'{field}' {reason}: remove it and try again."
    return CockpitError("invalid_text", message, details=[{"field": field, "message": reason}])


@dataclass(frozen=True)
class Allowance:
    """How large a body this request may send, or why it may not send one at all."""

    limit: int
    refusal: CockpitError | None = None


# Decides the allowance of a request from its scope and headers (lower-cased names).
Decide = Callable[[Scope, dict[str, str]], Awaitable[Allowance]]
# Renders an error in the shape the surface expects (REST JSON or an HTML page).
Render = Callable[[Request, CockpitError], Awaitable[Response]]

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


class InputGuard:
    def __init__(self, app: ASGIApp, *, decide: Decide, render: Render, skip: tuple[str, ...] = ()) -> None:
        self.app, self.decide, self.render, self.skip = app, decide, render, skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        send = _no_store(send)
        problem = _check_target(scope)
        if problem is not None:
            await self._refuse(scope, receive, send, problem)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length_header = headers.get("content-length")
        has_body = "transfer-encoding" in headers or (length_header not in (None, "", "0"))
        if not has_body and scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        allowance = await self.decide(scope, headers)
        if allowance.refusal is not None and has_body:
            await self._refuse(scope, receive, send, allowance.refusal)
            return
        limit = allowance.limit
        too_large = PayloadTooLarge(
            "payload_too_large", f"The request body is larger than the {limit:,} bytes allowed here."
        )
        if length_header is not None and length_header.isdigit() and int(length_header) > limit:
            await self._refuse(scope, receive, send, too_large)
            return
        pieces: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing to answer
            piece = message.get("body", b"")
            size += len(piece)
            if size > limit:
                await self._refuse(scope, receive, send, too_large)
                return
            pieces.append(piece)
            if not message.get("more_body", False):
                break
        body = b"".join(pieces)
        problem = _check_body(body, headers.get("content-type", ""))
        if problem is not None:
            await self._refuse(scope, receive, send, problem)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: CockpitError) -> None:
        request = Request(scope, receive)
        response = await self.render(request, error)
        if isinstance(error, PayloadTooLarge):
            # The rest of the body was not read: the connection cannot carry another request.
            response.headers["connection"] = "close"
        await response(scope, receive, send)


def _no_store(send: Send) -> Send:
    """Console pages and API answers carry people's data and sometimes secrets shown once (a new
    token, an invitation link): no browser or proxy cache keeps them, unless a route said otherwise."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.setdefault("headers", [])
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                message["headers"] = [*headers, (b"cache-control", b"no-store")]
        await send(message)

    return wrapped


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


def _check_target(scope: Scope) -> CockpitError | None:
    if "\x00" in scope["path"]:
        return invalid_text("path", "contains a NUL character")
    query = scope.get("query_string", b"")
    if query:
        text = query.decode("latin-1")
        if "%00" in text or "\x00" in text:
            for name, value in parse_qsl(text, keep_blank_values=True, errors="replace"):
                if "\x00" in name or "\x00" in value:
                    return invalid_text(name.replace("\x00", "")[:40] or "query", "contains a NUL character")
    return None


def _check_body(body: bytes, content_type: str) -> CockpitError | None:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(body)
        except RecursionError:
            return invalid_text("body", f"is nested more than {MAX_DEPTH} levels deep")
        except ValueError:
            return None  # not JSON: the route says so in its own words
        try:
            find_unstorable(data, root="")
        except Unstorable as exc:
            return invalid_text(exc.path, exc.reason)
        return None
    if kind == "multipart/form-data":
        return _check_multipart(body, content_type)
    if kind == "application/x-www-form-urlencoded":
        if b"\x00" in body:
            return invalid_text("body", "contains a NUL character")
        text = body.decode("latin-1")
        if "%00" in text:
            for name, value in parse_qsl(text, keep_blank_values=True, errors="replace"):
                if "\x00" in name or "\x00" in value:
                    return invalid_text(name.replace("\x00", "")[:40] or "form", "contains a NUL character")
    return None


def _check_multipart(body: bytes, content_type: str) -> CockpitError | None:
    """A NUL in a text field of a multipart form (files may hold any bytes): refused like the
    urlencoded form's. A form that cannot be parsed is the route's to refuse."""
    if b"\x00" not in body:
        return None
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        return None
    found: list[str] = []
    state: dict[str, Any] = {"name": "", "file": False, "header": b"", "value": b""}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        if state["header"].lower() == b"content-disposition":
            _, disposition = parse_options_header(data[start:end])
            state["name"] = disposition.get(b"name", b"").decode("latin-1")
            state["file"] = b"filename" in disposition

    def on_header_end() -> None:
        state["header"] = b""

    def on_part_begin() -> None:
        state.update(name="", file=False, header=b"")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not state["file"] and b"\x00" in data[start:end]:
            found.append(state["name"])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception:  # not a well-formed form: the route answers in its own words
        return None
    if found:
        return invalid_text(found[0].replace("\x00", "")[:40] or "form", "contains a NUL character")
    return None


def refusal_for_missing_token() -> NotAuthenticated:
    return NotAuthenticated(
        "missing_token", "Send an API token in the header 'Authorization: Bearer <token>'."
    )


def refusal_for_invalid_token() -> NotAuthenticated:
    return NotAuthenticated("invalid_token", "The API token is invalid, expired or revoked.")
