"""The gateway's pooled HTTP/1.1 transport, against small raw servers that control every byte."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from cockpit.gateway.transport import PooledTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[int, list[int]]]:
    """A server running ``handler`` per connection; yields (port, connection count)."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, connections
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def request(port: int, *, read: float = 5.0, body: bytes = b"{}") -> httpx.Request:
    return httpx.Request(
        "POST",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        extensions={"timeout": {"connect": 5.0, "read": read}},
    )


async def body_of(response: httpx.Response) -> list[bytes]:
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    pieces = [piece async for piece in stream]
    await stream.aclose()
    return pieces


async def test_content_length_body_and_keep_alive_reuse() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Up: yes\r\n\r\nhello world")

    transport = PooledTransport(allow_private=True)
    async with raw_server(handler) as (port, connections):
        for _ in range(3):
            response = await transport.handle_async_request(request(port, body=b'{"a":1}'))
            assert response.status_code == 200
            assert response.headers["x-up"] == "yes"
            assert b"".join(await body_of(response)) == b"hello world"
        assert len(connections) == 1  # one connection, reused
    await transport.aclose()
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"Content-Length: 7" in seen[0] or b"content-length: 7" in seen[0].lower()
    assert seen[0].endswith(b'{"a":1}')


async def test_chunked_body_split_anywhere_is_decoded_exactly() -> None:
    events = [b"data: one\n\n", b"data: two\n\n", b"x" * 70_000, b"data: [DONE]\n\n"]
    wire = b"".join(b"%x\r\n" % len(e) + e + b"\r\n" for e in events) + b"0\r\n\r\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(wire), 7):  # the worst case: every framing element cut in pieces
            writer.write(wire[i : i + 7])
            if i % 700 == 0:
                await writer.drain()
                await asyncio.sleep(0)
        await writer.drain()
        await asyncio.sleep(0.2)

    transport = PooledTransport(allow_private=True)
    async with raw_server(handler) as (port, _):
        response = await transport.handle_async_request(request(port))
        assert b"".join(await body_of(response)) == b"".join(events)
    await transport.aclose()


async def test_each_chunk_is_delivered_before_the_next_is_sent() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    transport = PooledTransport(allow_private=True)
    async with raw_server(handler) as (port, _):
        response = await transport.handle_async_request(request(port))
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        pieces = stream.__aiter__()
        assert await asyncio.wait_for(anext(pieces), 2) == b"first"  # while the server still holds "second"
        release.set()
        assert await asyncio.wait_for(anext(pieces), 2) == b"second"
        await stream.aclose()
    await transport.aclose()


async def test_stale_keep_alive_connection_is_retried_on_a_fresh_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # then close the idle connection, as servers do after their keep-alive timeout

    transport = PooledTransport(allow_private=True)
    async with raw_server(handler) as (port, connections):
        first = await transport.handle_async_request(request(port))
        assert b"".join(await body_of(first)) == b"ok"
        await asyncio.sleep(0.1)
        second = await transport.handle_async_request(request(port))
        assert b"".join(await body_of(second)) == b"ok"
        assert len(connections) == 2
    await transport.aclose()


async def test_read_timeout_and_connection_refused_map_to_httpx_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers; returns when the client gives up and closes

    transport = PooledTransport(allow_private=True)
    async with raw_server(silent) as (port, _):
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request(port, read=0.3))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(request(closed_port))
    await transport.aclose()


async def test_broken_body_raises_and_the_connection_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
        await writer.drain()

    transport = PooledTransport(allow_private=True)
    async with raw_server(handler) as (port, _):
        response = await transport.handle_async_request(request(port))
        with pytest.raises(httpx.RemoteProtocolError):
            await body_of(response)
    assert not any(transport._idle.values())
    await transport.aclose()


async def test_redirects_are_returned_not_followed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n")

    transport = PooledTransport(allow_private=True)
    async with raw_server(handler) as (port, connections):
        response = await transport.handle_async_request(request(port))
        assert response.status_code == 302
        assert await body_of(response) == []
        assert len(connections) == 1
    await transport.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_refused_at_connect_time_unless_allowed(host: str) -> None:
    """The address a name resolves to is checked when connecting, so DNS rebinding cannot reach
    a loopback/private service through a provider URL that was public when it was saved."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    strict = PooledTransport(allow_private=False)
    async with raw_server(handler) as (port, connections):
        req = httpx.Request("POST", f"http://{host}:{port}/x", content=b"{}")
        with pytest.raises(httpx.ConnectError, match="private or loopback"):
            await strict.handle_async_request(req)
        assert connections == []
    await strict.aclose()


async def test_metadata_address_is_refused_even_when_private_upstreams_are_allowed() -> None:
    transport = PooledTransport(allow_private=True)
    req = httpx.Request(
        "POST",
        "http://169.254.169.254/latest/meta-data",
        content=b"{}",
        extensions={"timeout": {"connect": 1.0, "read": 1.0}},
    )
    with pytest.raises(httpx.ConnectError, match="link-local"):
        await transport.handle_async_request(req)
    req6 = httpx.Request(
        "POST",
        "http://[::ffff:169.254.169.254]/x",
        content=b"{}",
        extensions={"timeout": {"connect": 1.0, "read": 1.0}},
    )
    with pytest.raises(httpx.ConnectError, match="link-local"):
        await transport.handle_async_request(req6)
    await transport.aclose()
