"""A lean HTTP/1.1 keep-alive transport for httpx, built for the gateway's hot path.

httpx's default pool (httpcore) spends more time than the whole rest of a gateway call in its
locking and per-request connection health checks (measured: ~0.6 ms per call sequentially and
a throughput ceiling near 700 calls/s at 32 concurrent callers). This transport keeps the httpx
request/response objects and exceptions but manages connections itself:

- one deque of idle connections per (scheme, host, port); a connection goes back only after its
  response body was read to the end, otherwise it is closed;
- a stale keep-alive connection (closed by the server while idle) is retried once on a fresh one,
  only when nothing of the response was received;
- every connection's resolved address is checked against the upstream rules at connect time, so
  a host name that starts resolving to a metadata or private address (DNS rebinding) is refused;
- redirects are never followed (the response is returned as it is);
- response bodies are streamed: each chunk reaches the caller as soon as it is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

from cockpit.kit.errors import InvalidInput
from cockpit.kit.urls import check_address

_READ_SIZE = 65536
_MAX_HEAD = 64 * 1024
IDLE_SECONDS = 30.0

Key = tuple[str, str, int]


class _Connection:
    __slots__ = ("idle_since", "key", "reader", "writer")

    def __init__(self, key: Key, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.key, self.reader, self.writer = key, reader, writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()

    @property
    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()


def _timeouts(request: httpx.Request) -> tuple[float | None, float | None]:
    timeout: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeout.get("connect"), timeout.get("read")


class PooledTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, allow_private: bool, max_idle_per_host: int = 256) -> None:
        self.allow_private = allow_private
        self.max_idle_per_host = max_idle_per_host
        self._idle: dict[Key, deque[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    # ---- connections ----

    def _checkout(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.key, deque())
        if len(idle) >= self.max_idle_per_host or not conn.usable:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(self, key: Key, limit: float | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                address = _allowed_address(infos, allow_private=self.allow_private)
                context = self._ssl_context() if scheme == "https" else None
                reader, writer = await asyncio.open_connection(
                    address,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                    limit=_MAX_HEAD,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"Connecting to {host}:{port} timed out.") from None
        except InvalidInput as exc:
            raise httpx.ConnectError(exc.message) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"Could not connect to {host}:{port} ({type(exc).__name__}).") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(key, reader, writer)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    # ---- requests ----

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Unsupported URL scheme {scheme!r}.")
        port = url.port or (443 if scheme == "https" else 80)
        key: Key = (scheme, url.host, port)
        connect_timeout, read_timeout = _timeouts(request)
        body = await request.aread()
        head = _request_head(request, body)
        for attempt in (0, 1):
            conn = self._checkout(key) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, connect_timeout)
            try:
                conn.writer.write(head + body if len(body) < 16384 else head)
                if len(body) >= 16384:
                    conn.writer.write(body)
                async with asyncio.timeout(read_timeout):
                    raw_head = await conn.reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                conn.close()
                raise httpx.ReadTimeout("The upstream did not answer in time.") from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                conn.close()
                if reused:  # the server closed an idle keep-alive connection: try once on a new one
                    continue
                raise httpx.RemoteProtocolError(
                    f"The upstream closed the connection without answering ({type(exc).__name__})."
                ) from None
            except asyncio.LimitOverrunError:
                conn.close()
                raise httpx.RemoteProtocolError("The upstream sent oversized response headers.") from None
            return self._response(conn, request, raw_head, read_timeout)
        raise httpx.RemoteProtocolError("The upstream closed the connection without answering.")

    def _response(
        self, conn: _Connection, request: httpx.Request, raw_head: bytes, read_timeout: float | None
    ) -> httpx.Response:
        try:
            status, headers = _parse_head(raw_head)
        except ValueError as exc:
            conn.close()
            raise httpx.RemoteProtocolError(str(exc)) from None
        keep_alive = True
        length: int | None = None
        chunked = False
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    conn.close()
                    raise httpx.RemoteProtocolError("Invalid Content-Length from the upstream.") from None
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length, chunked = 0, False
        elif not chunked and length is None:
            keep_alive = False  # the body runs until the server closes the connection
        stream = _ResponseStream(
            self, conn, length=length, chunked=chunked, keep_alive=keep_alive, timeout=read_timeout
        )
        return httpx.Response(
            status, headers=headers, stream=stream, extensions={"http_version": b"HTTP/1.1"}
        )

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def _allowed_address(infos: list[Any], *, allow_private: bool) -> str:
    if not infos:
        raise InvalidInput("invalid_base_url", "The upstream host name did not resolve.")
    for info in infos:
        check_address(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), allow_private=allow_private)
    return str(infos[0][4][0])


def _request_head(request: httpx.Request, body: bytes) -> bytes:
    url = request.url
    target = url.raw_path or b"/"
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    has_length = False
    for name, value in request.headers.raw:
        lname = name.lower()
        if lname == b"content-length":
            has_length = True
        elif lname == b"transfer-encoding":
            continue  # the body was read: it is always sent with a Content-Length
        lines.append(name + b": " + value)
    if not has_length and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError("The upstream did not answer with HTTP/1.1.")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("The upstream sent a malformed header.")
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


class _ResponseStream(httpx.AsyncByteStream):
    """The response body, read from the connection as the caller iterates; the connection is
    returned to the pool when the body was read to its end, closed otherwise."""

    def __init__(
        self,
        transport: PooledTransport,
        conn: _Connection,
        *,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
        timeout: float | None,
    ) -> None:
        self._transport, self._conn = transport, conn
        self._length, self._chunked, self._keep_alive = length, chunked, keep_alive
        self._timeout = timeout
        self._done = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        try:
            async with asyncio.timeout(self._timeout) as scope:
                if self._chunked:
                    async for piece in self._chunks(reader, scope):
                        yield piece
                elif self._length is not None:
                    remaining = self._length
                    while remaining > 0:
                        piece = await reader.read(min(remaining, _READ_SIZE))
                        if not piece:
                            raise httpx.RemoteProtocolError("The upstream closed the connection mid-body.")
                        remaining -= len(piece)
                        _extend(scope, self._timeout)
                        yield piece
                else:
                    while piece := await reader.read(_READ_SIZE):
                        _extend(scope, self._timeout)
                        yield piece
            self._done = True
        except TimeoutError:
            raise httpx.ReadTimeout("The upstream stopped sending in time.") from None
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            raise httpx.RemoteProtocolError(
                f"The upstream connection broke mid-response ({type(exc).__name__})."
            ) from None
        finally:
            if not self._done:
                self._finish()

    async def _chunks(self, reader: asyncio.StreamReader, scope: asyncio.Timeout) -> AsyncIterator[bytes]:
        """Decode ``Transfer-Encoding: chunked``, yielding everything that has arrived at each read.

        Several small chunks that arrived together (an upstream writing SSE events back to back)
        come out as one piece, and a large chunk comes out as it arrives: nothing waits for more
        data than the upstream has sent."""
        buffer = bytearray()
        remaining = -1  # bytes left of the current chunk's data; -1 while reading a size line
        while True:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise asyncio.IncompleteReadError(bytes(buffer), None)
            _extend(scope, self._timeout)
            buffer += data
            out = bytearray()
            while True:
                if remaining < 0:
                    end = buffer.find(b"\r\n")
                    if end < 0:
                        if len(buffer) > _MAX_HEAD:
                            raise ValueError("chunk size line too long")
                        break
                    size = int(bytes(buffer[:end]).split(b";", 1)[0].strip(), 16)
                    del buffer[: end + 2]
                    if size == 0:
                        if out:
                            yield bytes(out)
                        await self._trailers(reader, buffer)
                        return
                    remaining = size
                if remaining > 0:
                    take = min(remaining, len(buffer))
                    if take == 0:
                        break
                    out += buffer[:take]
                    del buffer[:take]
                    remaining -= take
                if remaining == 0:  # the chunk's data is complete: its CRLF follows
                    if len(buffer) < 2:
                        break
                    del buffer[:2]
                    remaining = -1
            if out:
                yield bytes(out)

    @staticmethod
    async def _trailers(reader: asyncio.StreamReader, buffer: bytearray) -> None:
        """Read up to the blank line that ends a chunked body (after optional trailers)."""
        while True:
            end = buffer.find(b"\r\n")
            if end == 0:
                del buffer[:2]
                break
            if end > 0:
                del buffer[: end + 2]
                continue
            data = await reader.read(_READ_SIZE)
            if not data:
                raise asyncio.IncompleteReadError(bytes(buffer), None)
            buffer += data
        if buffer:
            raise ValueError("unexpected data after a chunked body")

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._done and self._keep_alive:
            self._transport._release(self._conn)
        else:
            self._conn.close()

    async def aclose(self) -> None:
        self._finish()


def _extend(scope: asyncio.Timeout, timeout: float | None) -> None:
    """The read timeout applies between pieces of the body, not to the whole body.

    Moving the deadline re-arms a timer, so it is only moved once half of the allowance is used."""
    if timeout is not None:
        when = scope.when()
        now = asyncio.get_running_loop().time()
        if when is not None and when - now < timeout / 2:
            scope.reschedule(now + timeout)
