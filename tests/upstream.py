"""A local stand-in for the OpenAI and Anthropic HTTP APIs, for tests and benchmarks.

A real HTTP/1.1 server (raw ``asyncio``, standard library only) with keep-alive and pipelining.
Request bodies may use ``Content-Length`` or ``Transfer-Encoding: chunked``. JSON answers carry a
``Content-Length``; SSE answers are ``Content-Type: text/event-stream`` sent with
``Transfer-Encoding: chunked``, one HTTP chunk per SSE event.

Use it inside a running loop::

    async with Upstream() as up:
        client = openai.AsyncOpenAI(base_url=up.base_url + "/v1", api_key="x")

or in a daemon thread with its own loop::

    up = Upstream.start_in_thread()
    ...
    up.stop()

or as a process: ``python -m tests.upstream --port 9100`` prints ``READY <port>`` once listening and
serves until killed (``--api-key KEY`` enforces a key, ``--no-record`` skips recording).

Endpoints
---------
OpenAI (errors as ``{"error": {"message", "type", "param", "code"}}``):

* ``GET /v1/models`` and ``GET /v1/models/<id>`` (OpenAI shape unless an ``anthropic-version`` header
  is present, see below).
* ``POST /v1/chat/completions``. Non-stream: a ``chat.completion`` with id ``chatcmpl-up-<n>`` (``n`` =
  the server's request counter, from 1), content ``Upstream.reply_text`` ("Hello from upstream."),
  usage ``prompt_tokens = 7 * len(messages)``, ``completion_tokens = 5``,
  ``prompt_tokens_details.cached_tokens = 0``. Stream (``"stream": true``): a role chunk (content ""),
  N content chunks (default 20, the i-th, from 0, with content ``"tok<i> "``), a finish chunk
  (``finish_reason "stop"``), then, only when ``stream_options.include_usage`` is true, a usage chunk
  with ``choices: []`` and ``completion_tokens = N``; then ``data: [DONE]``.
* ``POST /v1/embeddings``: 8-dimensional vectors, the i-th input's vector is
  ``[(j + 1) / 8 + i for j in range(8)]`` (exact in float32); ``encoding_format: "base64"`` (the
  ``openai`` package's default) is honoured; usage ``prompt_tokens = total_tokens = 3 * inputs``.

Anthropic (errors as ``{"type": "error", "error": {"type", "message"}}``):

* ``GET /v1/models`` and ``GET /v1/models/<id>`` with an ``anthropic-version`` header: Anthropic's
  shape ``{data: [{type: "model", id, display_name, created_at}], has_more, first_id, last_id}``.
* ``POST /v1/messages``: requires the ``anthropic-version`` header and an integer ``max_tokens``
  (else 400 ``invalid_request_error``). Non-stream: a ``message`` with id ``msg_up_<n>``, one text
  block ``reply_text``, ``stop_reason "end_turn"``, usage ``input_tokens = 7 * len(messages)``,
  ``output_tokens = 5``, ``cache_read_input_tokens = 0``, ``cache_creation_input_tokens = 0``.
  Stream: ``event: <name>\\ndata: <json>\\n\\n`` frames message_start, content_block_start, ping, N
  content_block_delta (text_delta ``"tok<i> "``), content_block_stop, message_delta
  (``stop_reason``, ``usage.output_tokens = N``), message_stop.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": 7 * len(messages)}``.

Everything else: 404 in OpenAI's shape. A body that is not a JSON object: 400 in the path's shape.
When ``api_key`` is set, OpenAI paths need ``Authorization: Bearer <key>`` and Anthropic paths
(``/v1/messages*``, or any request with ``anthropic-version``) need ``x-api-key: <key>``, else 401.

Scenarios
---------
Behaviour is picked per call by the request's ``model``. The model is split on ``-``; a keyword
token (followed by its integer argument where it takes one) switches a behaviour on, every other
token is ignored, so ``gpt-4o-mini-chunks-5-chunkdelay-50`` is "gpt-4o-mini, 5 chunks, 50 ms apart"::

    error-<status>    answer <status> (400, 401, 403, 404, 429, 500, 502, 503, 529, ...) in the
                      protocol's error shape; 400's message is "upstream says the request is bad"
    slow-<ms>         wait <ms> before answering (before the status line, also for streams)
    chunks-<n>        stream <n> content chunks (default 20)
    chunkdelay-<ms>   wait <ms> between consecutive content chunks
    nousage           stream without any usage (even if include_usage is asked); JSON without usage
    cut-<k>           stream: send k content chunks, then close the connection without finishing
                      the chunked body; JSON: send the headers and half the body, then close
    hang              read the request and never answer (the connection stays open)
    redirect          302 to http://example.invalid/
    gate              answer only once the test calls ``Upstream.open_gate()`` (at most 10 s later)
    cached-<k>        prompt_tokens_details.cached_tokens / cache_read_input_tokens = k
    fill              JSON chat: spend the whole output limit, as a model that never stops early
                      would: ``n`` choices (default 1) of ``max_tokens`` completion tokens each
                      (``max_tokens`` read first, as some upstreams do; then
                      ``max_completion_tokens``; 16 when neither is sent)
    earlyhints        send an interim ``103 Early Hints`` response before the final one
    trickle-<ms>      write the whole response (head and body) 97 bytes at a time, <ms> apart: a
                      slow upstream whose every silence is short
    drop              read the request, then close the connection without answering
    leak-<k>          stream: k content chunks, then a provider error event whose message contains
                      the API key the request was sent with ("quota exceeded for key Bearer sk-..."),
                      then the end of the body (no ``[DONE]``, no ``message_stop``)
    runon-<kib>       stream: after the first events, one event of <kib> KiB that never ends (no
                      blank line), then the end of the body

``cut`` is also the scenario of a server that closes the connection in the middle of a body (JSON
or stream).

``ForwardProxy`` (below) is a small HTTP forward proxy for tests: ``CONNECT`` tunnels and
absolute-form plain HTTP, counting what it forwarded. ``Upstream(ssl=context)`` serves HTTPS.

Every request is recorded as a :class:`Recorded`; ``Upstream.requests`` is a snapshot list of the
last ``max_recorded`` (10,000 by default), oldest first; ``clear()`` forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import ssl as ssl_module
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Self

__all__ = ["ForwardProxy", "Recorded", "Scenario", "Upstream", "parse_scenario"]

DEFAULT_CHUNKS = 20
PROMPT_TOKENS_PER_MESSAGE = 7
COMPLETION_TOKENS = 5
EMBEDDING_TOKENS_PER_INPUT = 3
EMBEDDING_DIM = 8
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
_CACHE_LIMIT = 1024
_CREATED = 1_700_000_000

_REASONS: dict[int, str] = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}

# (OpenAI type, OpenAI code, Anthropic type, message) per error status.
_ERRORS: dict[int, tuple[str, str | None, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "upstream says the request is bad"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "invalid api key"),
    403: ("permission_error", None, "permission_error", "upstream says this is forbidden"),
    404: (
        "invalid_request_error",
        "model_not_found",
        "not_found_error",
        "upstream says the model is unknown",
    ),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "upstream says: rate limit reached"),
    500: ("server_error", None, "api_error", "upstream had an internal error"),
    502: ("server_error", None, "api_error", "upstream bad gateway"),
    503: ("server_error", None, "api_error", "upstream is unavailable"),
    529: ("server_error", None, "overloaded_error", "upstream is overloaded"),
}

DEFAULT_OPENAI_MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
DEFAULT_ANTHROPIC_MODELS: tuple[str, ...] = ("claude-sonnet-4-5", "claude-haiku-4-5")


@dataclass(slots=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes
    json: Any  # the parsed body, or None when there is none or it is not JSON


@dataclass(slots=True, frozen=True)
class Scenario:
    """What the ``model`` value asks the server to do (see the module docstring)."""

    error: int | None = None
    slow_ms: int = 0
    chunks: int = DEFAULT_CHUNKS
    chunk_delay_ms: int = 0
    no_usage: bool = False
    cut: int | None = None
    hang: bool = False
    redirect: bool = False
    cached: int = 0
    gate: bool = False
    fill: bool = False
    early_hints: bool = False
    trickle_ms: int = 0
    drop: bool = False
    leak: int | None = None
    run_on_kib: int = 0


_INT_KEYWORDS = {"error", "slow", "chunks", "chunkdelay", "cut", "cached", "trickle", "leak", "runon"}
_PLAIN_SCENARIO = Scenario()


def parse_scenario(model: str) -> Scenario:
    """Read the scenario keywords out of a model name; unknown tokens are ignored."""
    if "-" not in model:
        return _PLAIN_SCENARIO
    values: dict[str, Any] = {}
    tokens = model.split("-")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _INT_KEYWORDS and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            number = int(tokens[i + 1])
            key = {
                "error": "error",
                "slow": "slow_ms",
                "chunks": "chunks",
                "chunkdelay": "chunk_delay_ms",
                "cut": "cut",
                "cached": "cached",
                "trickle": "trickle_ms",
                "leak": "leak",
                "runon": "run_on_kib",
            }[token]
            values[key] = number
            i += 2
            continue
        if token == "nousage":
            values["no_usage"] = True
        elif token == "hang":
            values["hang"] = True
        elif token == "redirect":
            values["redirect"] = True
        elif token == "gate":
            values["gate"] = True
        elif token == "fill":
            values["fill"] = True
        elif token == "earlyhints":
            values["early_hints"] = True
        elif token == "drop":
            values["drop"] = True
        i += 1
    return Scenario(**values) if values else _PLAIN_SCENARIO


class _BadRequest(Exception):
    pass


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


@dataclass(slots=True)
class _Deferred:
    """A response written over time: wait, head, frames (``gap`` apart), then tail or a cut."""

    delay: float = 0.0
    head: bytes = b""
    frames: list[bytes] = field(default_factory=list)
    gap: float = 0.0
    tail: bytes = b""
    cut: bool = False
    hang: bool = False
    gate: threading.Event | None = None  # answer once it is set
    trickle: float = 0.0  # write everything in small pieces this far apart instead


_Response = bytes | _Deferred


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_LAST_CHUNK = b"0\r\n\r\n"
_EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </hint.css>; rel=preload; as=style\r\n\r\n"
_TRICKLE_BYTES = 97  # an odd size: the pieces cut across every framing element


class _DateCache:
    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


class _Connection(asyncio.Protocol):
    """One client connection: parse requests in order, answer each before reading the next."""

    def __init__(self, upstream: Upstream) -> None:
        self._up = upstream
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._sent_continue = False

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._up._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._up._connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # ------------------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def _write(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    def _process(self) -> None:
        while not self._busy and not self._closed:
            try:
                request = self._parse()
            except _BadRequest as exc:
                self._write(_plain_error(400, str(exc), self._up._date.get(), close=True))
                self.close()
                return
            if request is None:
                return
            response = self._up._handle(request)
            if b"gate" in request.body and self._up.gated(request):
                if isinstance(response, bytes):
                    response = _Deferred(head=response)
                response.gate = self._up.gate
            if isinstance(response, bytes):
                self._write(response)
                if not request.keep_alive:
                    self.close()
            else:
                self._busy = True
                self._task = asyncio.get_running_loop().create_task(self._run(response, request.keep_alive))

    async def _run(self, response: _Deferred, keep_alive: bool) -> None:
        try:
            if response.hang:
                await asyncio.Event().wait()  # until the client or the server closes
            if response.gate is not None:
                deadline = time.monotonic() + 10
                # A threading.Event: the test opens it from another thread and event loop.
                while not response.gate.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            if response.delay:
                await asyncio.sleep(response.delay)
            if response.trickle:
                whole = response.head + b"".join(response.frames) + (b"" if response.cut else response.tail)
                for start in range(0, len(whole), _TRICKLE_BYTES):
                    if start:
                        await asyncio.sleep(response.trickle)
                    if self._closed:
                        return
                    self._write(whole[start : start + _TRICKLE_BYTES])
                if response.cut or not keep_alive:
                    self.close()
                return
            self._write(response.head)
            for index, frame in enumerate(response.frames):
                if response.gap and index:
                    await asyncio.sleep(response.gap)
                if self._closed:
                    return
                self._write(frame)
            if response.cut:
                self.close()  # flushes what was written, then FIN: the body is left unfinished
                return
            self._write(response.tail)
            if not keep_alive:
                self.close()
        except asyncio.CancelledError:
            self.close()
            raise
        finally:
            self._busy = False
            self._task = None
        if not self._closed and self._buf:
            self._process()

    def _parse(self) -> _Request | None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise _BadRequest("request headers too large")
            return None
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest("malformed header line")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = _decode_chunked(buf, start)
            if decoded is None:
                self._maybe_continue(headers)
                return None
            body, consumed = decoded
        else:
            length_text = headers.get("content-length", "0")
            if not length_text.isdigit():
                raise _BadRequest("bad content-length")
            length = int(length_text)
            if length > MAX_BODY_BYTES:
                raise _BadRequest("request body too large")
            if len(buf) - start < length:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[start : start + length])
            consumed = start + length
        del buf[:consumed]
        self._sent_continue = False
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        path, _, query = target.partition("?")
        return _Request(method, path, query, headers, body, keep_alive)

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._sent_continue and headers.get("expect", "").lower() == "100-continue":
            self._sent_continue = True
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")


def _decode_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``; None while incomplete, else (body, end offset)."""
    out = bytearray()
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest("bad chunk size") from None
        pos = line_end + 2
        if size == 0:
            while True:  # trailers, up to the empty line
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                if line_end == pos:
                    return bytes(out), pos + 2
                pos = line_end + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        if len(out) > MAX_BODY_BYTES:
            raise _BadRequest("request body too large")
        pos += size + 2


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "Status").encode())


def _json_response(
    status: int, body: bytes, date: bytes, request_id: bytes = b"", close: bool = False
) -> bytes:
    return b"%sContent-Type: application/json\r\nContent-Length: %d\r\nDate: %s\r\n%s%s\r\n%s" % (
        _status_line(status),
        len(body),
        date,
        b"x-request-id: %s\r\n" % request_id if request_id else b"",
        b"Connection: close\r\n" if close else b"",
        body,
    )


def _plain_error(status: int, message: str, date: bytes, close: bool = False) -> bytes:
    body = _dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    )
    return _json_response(status, body.encode(), date, close=close)


def _openai_error(message: str, type_: str, code: str | None) -> bytes:
    return _dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


def _anthropic_error(type_: str, message: str) -> bytes:
    return _dumps({"type": "error", "error": {"type": type_, "message": message}}).encode()


class Upstream:
    """Start with `async with Upstream() as up:` inside a running loop, or `up = Upstream.start_in_thread()`
    (own loop in a daemon thread; `.stop()`)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        reply_text: str = "Hello from upstream.",
        openai_models: tuple[str, ...] = DEFAULT_OPENAI_MODELS,
        anthropic_models: tuple[str, ...] = DEFAULT_ANTHROPIC_MODELS,
        record: bool = True,
        max_recorded: int = 10_000,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.tls = ssl  # serve HTTPS with this context
        self.host = host
        self.port = port
        self.api_key = api_key
        self.reply_text = reply_text
        self.openai_models = openai_models
        self.anthropic_models = anthropic_models
        self.record = record
        self.max_recorded = max_recorded
        self._recorded: deque[Recorded] = deque(maxlen=max_recorded)
        self.gate = threading.Event()
        self.gate.set()
        self._count = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._date = _DateCache()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, reuse_address=True, backlog=1024, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)  # let cancelled response tasks finish

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @classmethod
    def start_in_thread(cls, **kwargs: Any) -> Upstream:
        """Start a server on its own event loop in a daemon thread; stop it with ``stop()``."""
        upstream = cls(**kwargs)
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(upstream.start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(upstream.aclose())
                loop.close()

        thread = threading.Thread(target=run, name=f"upstream-{id(upstream):x}", daemon=True)
        upstream._thread = thread
        thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return upstream

    def stop(self) -> None:
        """Stop a server started with ``start_in_thread``."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    @property
    def requests(self) -> list[Recorded]:
        """The recorded requests, oldest first: a snapshot (use ``clear()`` to forget them)."""
        return list(self._recorded)

    @property
    def received(self) -> int:
        """How many requests the server has received since it started (``clear()`` keeps it)."""
        return self._count

    def clear(self) -> None:
        """Forget the recorded requests (the request counter, and so the ids, keep counting)."""
        self._recorded.clear()

    def close_gate(self) -> None:
        """Calls to ``gate`` models wait from now on until ``open_gate``."""
        self.gate.clear()

    def open_gate(self) -> None:
        self.gate.set()

    @staticmethod
    def gated(request: _Request) -> bool:
        try:
            model = json.loads(request.body).get("model")
        except (ValueError, AttributeError):
            return False
        return isinstance(model, str) and parse_scenario(model).gate

    # dispatch -------------------------------------------------------------------------------
    def _handle(self, request: _Request) -> _Response:
        self._count += 1
        n = self._count
        body_json: Any = None
        json_error = False
        if request.body:
            try:
                body_json = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                json_error = True
        if self.record:
            self._recorded.append(
                Recorded(
                    request.method, request.path, request.query, request.headers, request.body, body_json
                )
            )
        path = request.path
        headers = request.headers
        close = not request.keep_alive
        anthropic = path.startswith("/v1/messages") or "anthropic-version" in headers
        date = self._date.get()
        request_id = b"req_up_%d" % n

        def error(status: int, message: str, type_: str | None = None, code: str | None = None) -> bytes:
            if anthropic:
                payload = _anthropic_error(type_ or _ERRORS.get(status, _ERRORS[500])[2], message)
            else:
                default = _ERRORS.get(status, _ERRORS[500])
                payload = _openai_error(message, type_ or default[0], code)
            return _json_response(status, payload, date, request_id, close)

        if self.api_key is not None:
            if anthropic:
                if headers.get("x-api-key") != self.api_key:
                    return error(401, "invalid x-api-key", "authentication_error")
            elif headers.get("authorization") != f"Bearer {self.api_key}":
                return error(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                )

        if request.method == "GET":
            if path == "/v1/models" or path.startswith("/v1/models/"):
                return self._models(path, anthropic, date, request_id, close, error)
        elif request.method == "POST":
            route: Callable[..., _Response] | None = {
                "/v1/chat/completions": self._chat,
                "/v1/embeddings": self._embeddings,
                "/v1/messages": self._messages,
                "/v1/messages/count_tokens": self._count_tokens,
            }.get(path)
            if route is not None:
                if anthropic and "anthropic-version" not in headers:
                    return error(400, "anthropic-version: header is required", "invalid_request_error")
                if json_error or not isinstance(body_json, dict):
                    message = (
                        "There was an error parsing the body of your request as JSON."
                        if json_error or body_json is None
                        else "The body of your request must be a JSON object."
                    )
                    return error(400, message, "invalid_request_error")
                model = body_json.get("model")
                if not isinstance(model, str) or not model:
                    return error(400, "model: field required", "invalid_request_error")
                scenario = parse_scenario(model)
                if scenario.error is not None:
                    status = scenario.error
                    return self._delayed(scenario, error(status, _ERRORS.get(status, _ERRORS[500])[3]))
                if scenario.redirect:
                    redirect = (
                        b"%sLocation: http://example.invalid/\r\nContent-Length: 0\r\nDate: %s\r\n%s\r\n"
                        % (_status_line(302), date, b"Connection: close\r\n" if close else b"")
                    )
                    return self._delayed(scenario, redirect)
                if scenario.drop:
                    return _Deferred(cut=True)  # read, then closed without a byte of answer
                response = route(body_json, model, scenario, n, date, request_id, close, error)
                if isinstance(response, _Deferred) and body_json.get("stream") is True:
                    if scenario.leak is not None:
                        credential = headers.get("x-api-key" if anthropic else "authorization", "")
                        response.frames = [
                            *response.frames[: scenario.leak],
                            _chunk(_leak_event(anthropic, credential)),
                        ]
                        response.tail = _LAST_CHUNK
                    elif scenario.run_on_kib:
                        endless = b"data: " + b"x" * (scenario.run_on_kib * 1024)
                        response.frames = [
                            _chunk(endless[i : i + 65536]) for i in range(0, len(endless), 65536)
                        ]
                        response.tail = _LAST_CHUNK
                return _shaped(scenario, response)
        return error(
            404,
            f"Unknown request URL: {request.method} {path}. Please check the URL for typos, "
            "or see the docs at https://platform.openai.com/docs/api-reference/.",
            "invalid_request_error",
            "unknown_url",
        )

    @staticmethod
    def _delayed(scenario: Scenario, response: bytes) -> _Response:
        if scenario.hang:
            return _Deferred(hang=True)
        if scenario.slow_ms:
            return _Deferred(delay=scenario.slow_ms / 1000, head=response)
        return response

    def _json(
        self, scenario: Scenario, body: bytes, date: bytes, request_id: bytes, close: bool
    ) -> _Response:
        response = _json_response(200, body, date, request_id, close)
        if scenario.cut is not None:
            cut_at = len(response) - len(body) + len(body) // 2
            return _Deferred(
                delay=scenario.slow_ms / 1000, head=response[:cut_at], cut=True, hang=scenario.hang
            )
        return self._delayed(scenario, response)

    def _stream(
        self,
        scenario: Scenario,
        head_events: list[bytes],
        content_events: list[bytes],
        tail_events: list[bytes],
        date: bytes,
        request_id: bytes,
        close: bool,
    ) -> _Response:
        headers = (
            b"%sContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
            b"Cache-Control: no-cache\r\nDate: %s\r\nx-request-id: %s\r\n%s\r\n"
            % (_status_line(200), date, request_id, b"Connection: close\r\n" if close else b"")
        )
        head = headers + b"".join(_chunk(event) for event in head_events)
        frames = [_chunk(event) for event in content_events]
        tail = b"".join(_chunk(event) for event in tail_events) + _LAST_CHUNK
        if scenario.cut is not None:
            return _Deferred(
                delay=scenario.slow_ms / 1000,
                head=head,
                frames=frames[: scenario.cut],
                gap=scenario.chunk_delay_ms / 1000,
                cut=True,
                hang=scenario.hang,
            )
        if (
            scenario.hang
            or scenario.slow_ms
            or scenario.chunk_delay_ms
            or scenario.leak is not None
            or scenario.run_on_kib
        ):
            return _Deferred(
                delay=scenario.slow_ms / 1000,
                head=head,
                frames=frames,
                gap=scenario.chunk_delay_ms / 1000,
                tail=tail,
                hang=scenario.hang,
            )
        return head + b"".join(frames) + tail

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        value = self._cache.get(key)
        if value is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            value = self._cache[key] = build()
        return value

    # endpoints ------------------------------------------------------------------------------
    def _models(
        self,
        path: str,
        anthropic: bool,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> _Response:
        entries: list[dict[str, Any]]
        if anthropic:
            entries = [
                {
                    "type": "model",
                    "id": model,
                    "display_name": model.replace("-", " ").title(),
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for model in self.anthropic_models
            ]
        else:
            entries = [
                {"id": model, "object": "model", "created": _CREATED, "owned_by": "upstream"}
                for model in self.openai_models
            ]
        if path == "/v1/models":
            if anthropic:
                listing: dict[str, Any] = {
                    "data": entries,
                    "has_more": False,
                    "first_id": entries[0]["id"] if entries else None,
                    "last_id": entries[-1]["id"] if entries else None,
                }
            else:
                listing = {"object": "list", "data": entries}
            return _json_response(200, _dumps(listing).encode(), date, request_id, close)
        wanted = path.removeprefix("/v1/models/")
        for entry in entries:
            if entry["id"] == wanted:
                return _json_response(200, _dumps(entry).encode(), date, request_id, close)
        return error(
            404,
            f"The model '{wanted}' does not exist",
            "not_found_error" if anthropic else None,
            "model_not_found",
        )

    def _chat(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> _Response:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "Missing required parameter: 'messages'.", "invalid_request_error", None)
        prompt_tokens = PROMPT_TOKENS_PER_MESSAGE * len(messages)
        created = b"%d" % int(time.time())
        ident = b"chatcmpl-up-%d" % n
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = (
                isinstance(options, dict) and options.get("include_usage") is True and not scenario.no_usage
            )
            key: tuple[Any, ...] = (
                "chat-stream",
                model,
                scenario.chunks,
                include_usage,
                prompt_tokens,
                scenario.cached,
            )
            head_t, content_t, tail_t = self._cached(
                key, lambda: self._chat_stream_templates(model, scenario, include_usage, prompt_tokens)
            )
            return self._stream(
                scenario,
                [t.replace(b"@ID@", ident).replace(b'"@CREATED@"', created) for t in head_t],
                [t.replace(b"@ID@", ident).replace(b'"@CREATED@"', created) for t in content_t],
                [t.replace(b"@ID@", ident).replace(b'"@CREATED@"', created) for t in tail_t],
                date,
                request_id,
                close,
            )
        if scenario.fill:
            return self._json(scenario, self._filled(body, model, prompt_tokens, ident, created), date,
                              request_id, close)  # fmt: skip
        key = ("chat", model, prompt_tokens, scenario.cached, scenario.no_usage, self.reply_text)
        template: bytes = self._cached(
            key, lambda: self._chat_template(model, prompt_tokens, scenario.cached, scenario.no_usage)
        )
        payload = template.replace(b"@ID@", ident, 1).replace(b'"@CREATED@"', created, 1)
        return self._json(scenario, payload, date, request_id, close)

    @staticmethod
    def _filled(body: dict[str, Any], model: str, prompt_tokens: int, ident: bytes, created: bytes) -> bytes:
        limit = next(
            (v for k in ("max_tokens", "max_completion_tokens") if isinstance(v := body.get(k), int)), 16
        )
        choices = body.get("n") if isinstance(body.get("n"), int) else 1
        completion = {
            "id": ident.decode(),
            "object": "chat.completion",
            "created": int(created),
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": "word " * limit},
                    "finish_reason": "length",
                }
                for i in range(choices)
            ],
            "usage": _openai_usage(prompt_tokens, limit * choices, 0),
        }
        return _dumps(completion).encode()

    def _chat_template(self, model: str, prompt_tokens: int, cached: int, no_usage: bool) -> bytes:
        completion: dict[str, Any] = {
            "id": "@ID@",
            "object": "chat.completion",
            "created": "@CREATED@",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.reply_text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": None if no_usage else _openai_usage(prompt_tokens, COMPLETION_TOKENS, cached),
            "service_tier": "default",
            "system_fingerprint": "fp_upstream",
        }
        if no_usage:
            del completion["usage"]
        return _dumps(completion).encode()

    @staticmethod
    def _chat_stream_templates(
        model: str, scenario: Scenario, include_usage: bool, prompt_tokens: int
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        def event(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            chunk: dict[str, Any] = {
                "id": "@ID@",
                "object": "chat.completion.chunk",
                "created": "@CREATED@",
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_upstream",
                "choices": choices,
            }
            if include_usage:
                chunk["usage"] = usage
            return b"data: %s\n\n" % _dumps(chunk).encode()

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        head = [event(choice({"role": "assistant", "content": "", "refusal": None}))]
        content = [event(choice({"content": f"tok{i} "})) for i in range(scenario.chunks)]
        tail = [event(choice({}, "stop"))]
        if include_usage:
            tail.append(event([], _openai_usage(prompt_tokens, scenario.chunks, scenario.cached)))
        tail.append(b"data: [DONE]\n\n")
        return head, content, tail

    def _embeddings(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> _Response:
        raw = body.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
            count = 1
        elif isinstance(raw, list) and raw:
            count = len(raw)
        else:
            return error(400, "'input' is a required property", "invalid_request_error", None)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index in range(count):
            vector = [(j + 1) / 8 + index for j in range(EMBEDDING_DIM)]
            encoded: Any = (
                base64.b64encode(struct.pack(f"<{EMBEDDING_DIM}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = EMBEDDING_TOKENS_PER_INPUT * count
        result: dict[str, Any] = {"object": "list", "data": data, "model": model}
        if not scenario.no_usage:
            result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return self._json(scenario, _dumps(result).encode(), date, request_id, close)

    def _messages(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> _Response:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return error(400, "max_tokens: Field required", "invalid_request_error")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "messages: Field required", "invalid_request_error")
        input_tokens = PROMPT_TOKENS_PER_MESSAGE * len(messages)
        ident = b"msg_up_%d" % n
        if body.get("stream") is True:
            key: tuple[Any, ...] = (
                "messages-stream",
                model,
                scenario.chunks,
                scenario.no_usage,
                input_tokens,
                scenario.cached,
            )
            head_t, content_t, tail_t = self._cached(
                key, lambda: _messages_stream_templates(model, scenario, input_tokens)
            )
            return self._stream(
                scenario,
                [t.replace(b"@ID@", ident) for t in head_t],
                content_t,
                tail_t,
                date,
                request_id,
                close,
            )
        key = ("messages", model, input_tokens, scenario.cached, scenario.no_usage, self.reply_text)
        template: bytes = self._cached(
            key,
            lambda: _dumps(
                {
                    "id": "@ID@",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": self.reply_text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    **(
                        {}
                        if scenario.no_usage
                        else {"usage": _anthropic_usage(input_tokens, COMPLETION_TOKENS, scenario.cached)}
                    ),
                }
            ).encode(),
        )
        return self._json(scenario, template.replace(b"@ID@", ident, 1), date, request_id, close)

    def _count_tokens(
        self,
        body: dict[str, Any],
        model: str,
        scenario: Scenario,
        n: int,
        date: bytes,
        request_id: bytes,
        close: bool,
        error: Callable[..., bytes],
    ) -> _Response:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "messages: Field required", "invalid_request_error")
        payload = _dumps({"input_tokens": PROMPT_TOKENS_PER_MESSAGE * len(messages)}).encode()
        return self._json(scenario, payload, date, request_id, close)


class ForwardProxy:
    """A small HTTP forward proxy for tests, in the running loop: ``async with ForwardProxy() as p``.

    ``CONNECT host:port`` opens a tunnel (recorded in ``tunnels``); a plain-HTTP request in absolute
    form (``POST http://host:port/path HTTP/1.1``) is forwarded in origin form with
    ``Connection: close`` and its answer passed back, one request per connection (recorded in
    ``forwarded``). With ``credentials`` ("user:password"), requests without that
    ``Proxy-Authorization`` get 407."""

    def __init__(self, *, host: str = "127.0.0.1", credentials: str | None = None) -> None:
        self.host = host
        self.port = 0
        self.credentials = credentials
        self.tunnels: list[str] = []
        self.forwarded: list[str] = []
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        headers = [line.partition(":") for line in lines[1:]]
        if self.credentials is not None:
            wanted = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            given = [v.strip() for n, _, v in headers if n.strip().lower() == "proxy-authorization"]
            if given != [wanted]:
                self.refused += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            self.tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await _pipe_both(reader, writer, up_reader, up_writer)
            return
        if not target.startswith("http://"):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        authority, _, path = target[len("http://") :].partition("/")
        host, _, port = (
            authority.rpartition(":")
            if authority.rfind(":") > authority.rfind("]")
            else (
                authority,
                "",
                "",
            )
        )
        length = 0
        kept = []
        for name, _, value in headers:
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value)
            if lname.startswith("proxy-") or lname == "connection":
                continue
            kept.append(f"{name}:{value}")
        body = await reader.readexactly(length)
        self.forwarded.append(f"{method} {target}")
        try:
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port or 80))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        request = "\r\n".join([f"{method} /{path} {version}", *kept, "Connection: close", "", ""])
        up_writer.write(request.encode("latin-1") + body)
        try:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            up_writer.close()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    finally:
        up_writer.close()


def _shaped(scenario: Scenario, response: _Response) -> _Response:
    """The response with an interim 103 before it, or written in small pieces, as asked."""
    if scenario.early_hints:
        if isinstance(response, bytes):
            response = _EARLY_HINTS + response
        else:
            response.head = _EARLY_HINTS + response.head
    if scenario.trickle_ms:
        if isinstance(response, bytes):
            response = _Deferred(head=response)
        response.trickle = scenario.trickle_ms / 1000
    return response


def _leak_event(anthropic: bool, credential: str) -> bytes:
    """A provider's error event that quotes the credential it was called with."""
    message = f"quota exceeded for key {credential}"
    if anthropic:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return b"event: error\ndata: %s\n\n" % _dumps(error).encode()
    payload = {"error": {"message": message, "type": "insufficient_quota", "param": None, "code": None}}
    return b"data: %s\n\n" % _dumps(payload).encode()


def _openai_usage(prompt_tokens: int, completion_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _anthropic_usage(input_tokens: int, output_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
    }


def _messages_stream_templates(
    model: str, scenario: Scenario, input_tokens: int
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    def event(name: str, data: dict[str, Any]) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (name.encode(), _dumps(data).encode())

    message: dict[str, Any] = {
        "id": "@ID@",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if not scenario.no_usage:
        message["usage"] = _anthropic_usage(input_tokens, 1, scenario.cached)
    head = [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        event("ping", {"type": "ping"}),
    ]
    content = [
        event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}},
        )
        for i in range(scenario.chunks)
    ]
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    }
    if not scenario.no_usage:
        delta["usage"] = {"output_tokens": scenario.chunks}
    tail = [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event("message_delta", delta),
        event("message_stop", {"type": "message_stop"}),
    ]
    return head, content, tail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local OpenAI/Anthropic stand-in upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--no-record", action="store_true", help="do not keep the received requests")
    args = parser.parse_args(argv)

    async def serve() -> None:
        upstream = Upstream(host=args.host, port=args.port, api_key=args.api_key, record=not args.no_record)
        await upstream.start()
        sys.stdout.write(f"READY {upstream.port}\n")
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await upstream.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
