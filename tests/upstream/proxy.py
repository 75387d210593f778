"""A small HTTP forward proxy for tests: ``CONNECT`` tunnels and absolute-form plain HTTP."""

from __future__ import annotations

import asyncio
import base64
from typing import Self


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
            if host.endswith(".invalid"):
                # A name that never resolves (RFC 2606): answered at once, without a DNS query
                # that could take seconds on a machine without a reachable name server.
                raise OSError(f"{host} does not resolve")
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
