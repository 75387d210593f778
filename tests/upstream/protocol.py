"""One client connection of the upstream: HTTP/1.1 request parsing, keep-alive, pipelining and the
writing of deferred answers (delays, gates, streams, cuts, trickles)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.upstream.wire import TRICKLE_BYTES, Deferred, plain_error

if TYPE_CHECKING:
    from tests.upstream.server import Upstream

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024


class BadRequest(Exception):
    pass


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class Connection(asyncio.Protocol):
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
            except BadRequest as exc:
                self._write(plain_error(400, str(exc), self._up._date.get(), close=True))
                self.close()
                return
            if request is None:
                return
            response = self._up._handle(request)
            if b"gate" in request.body and self._up.gated(request):
                if isinstance(response, bytes):
                    response = Deferred(head=response)
                response.gate = self._up.gate
            if isinstance(response, bytes):
                self._write(response)
                if not request.keep_alive:
                    self.close()
            else:
                self._busy = True
                self._task = asyncio.get_running_loop().create_task(self._run(response, request.keep_alive))

    async def _run(self, response: Deferred, keep_alive: bool) -> None:
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
                for start in range(0, len(whole), TRICKLE_BYTES):
                    if start:
                        await asyncio.sleep(response.trickle)
                    if self._closed:
                        return
                    self._write(whole[start : start + TRICKLE_BYTES])
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

    def _parse(self) -> Request | None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise BadRequest("request headers too large")
            return None
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest("malformed header line")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = decode_chunked(buf, start)
            if decoded is None:
                self._maybe_continue(headers)
                return None
            body, consumed = decoded
        else:
            length_text = headers.get("content-length", "0")
            if not length_text.isdigit():
                raise BadRequest("bad content-length")
            length = int(length_text)
            if length > MAX_BODY_BYTES:
                raise BadRequest("request body too large")
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
        return Request(method, path, query, headers, body, keep_alive)

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._sent_continue and headers.get("expect", "").lower() == "100-continue":
            self._sent_continue = True
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")


def decode_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
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
            raise BadRequest("bad chunk size") from None
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
            raise BadRequest("request body too large")
        pos += size + 2
