"""The upstream HTTP client (aiohttp, ``kit/upstream_http.py``) against small raw servers that control
every byte, a TLS upstream and a forward proxy. Each defect of the hand-written transport it replaced
has a test here that the old transport failed: an interim 1xx taken as the answer, a read timeout
that fired after a shorter silence or counted a slow reader's time, a POST sent twice, only the first
resolved address tried, no proxy, CA bundle or client certificate."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import ResolveResult

from cockpit.config import Settings
from cockpit.kit.upstream_http import UpstreamClient, UpstreamRefused
from tests.tls import Pki, make_pki
from tests.upstream import ForwardProxy, Upstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}'


class Server:
    """A raw server: ``connections`` opened so far, ``requests`` received (heads and bodies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0
        self.requests: list[bytes] = []

    def url(self, path: str = "/v1/chat/completions", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[Server]:
    server: Server

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    server = Server(listener.sockets[0].getsockname()[1])
    try:
        yield server
    finally:
        listener.close()


async def read_request(reader: asyncio.StreamReader, server: Server | None = None) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    request = head + await reader.readexactly(length)
    if server is not None:
        server.requests.append(request)
    return request


@asynccontextmanager
async def upstream_client(**options: Any) -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient(**{"allow_private": True, **options})
    try:
        yield client
    finally:
        await client.aclose()


async def post(
    client: UpstreamClient, url: str, *, body: bytes = CHAT, read: float = 5.0
) -> aiohttp.ClientResponse:
    return await client.send(
        "POST",
        client.target(url),
        headers={"content-type": "application/json", "authorization": "Bearer sk-test"},
        data=body,
        timing=client.timeout(5.0, read),
    )


async def body_of(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.read()
    finally:
        response.release()


async def wait_for(condition: Callable[[], bool], what: str, patience: float = 10.0) -> None:
    """Poll until ``condition`` holds; the deadline only bounds a hang."""
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


# ---- the basics ----


async def test_content_length_body_and_keep_alive_reuse() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Up: yes\r\n\r\nhello world")

    async with raw_server(handler) as server, upstream_client() as client:
        for _ in range(3):
            response = await post(client, server.url(), body=b'{"a":1}')
            assert response.status == 200
            assert response.headers["x-up"] == "yes"
            assert await body_of(response) == b"hello world"
        assert server.connections == 1  # one connection, reused
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\ncontent-length: 7\r\n" in first.lower()
    assert b"accept-encoding" not in first.lower()  # bodies are passed through as sent: none compressed
    assert first.endswith(b'{"a":1}')


async def test_chunked_body_split_anywhere_is_decoded_exactly() -> None:
    events = [b"data: one\n\n", b"data: two\n\n", b"x" * 70_000, b"data: [DONE]\n\n"]
    wire = b"".join(chunk(e) for e in events) + b"0\r\n\r\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(wire), 7):  # the worst case: every framing element cut in pieces
            writer.write(wire[i : i + 7])
            if i % 700 == 0:
                await writer.drain()
                await asyncio.sleep(0)
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as server, upstream_client() as client:
        response = await post(client, server.url())
        assert await body_of(response) == b"".join(events)


async def test_each_chunk_is_delivered_before_the_next_is_sent() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"first"))
        await writer.drain()
        await release.wait()
        writer.write(chunk(b"second") + b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as server, upstream_client() as client:
        response = await post(client, server.url())
        pieces = response.content.iter_any().__aiter__()
        assert await asyncio.wait_for(anext(pieces), 10) == b"first"  # the server still holds "second"
        release.set()
        assert await asyncio.wait_for(anext(pieces), 10) == b"second"
        response.release()


async def test_redirects_are_returned_not_followed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n")
        await reader.read()

    async with raw_server(handler) as server, upstream_client() as client:
        response = await post(client, server.url())
        assert response.status == 302
        assert await body_of(response) == b""
    assert len(server.requests) == 1


async def test_a_refused_connection_is_a_client_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with upstream_client() as client:
        with pytest.raises(aiohttp.ClientConnectorError):
            await post(client, f"http://127.0.0.1:{closed_port}/x")


# ---- defects of the old transport ----


async def test_an_interim_1xx_is_skipped_and_the_next_request_gets_its_own_answer() -> None:
    """The old transport took ``103 Early Hints`` as the answer and left the real one on the pooled
    connection, where the next request (maybe another account's) read it."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = 0
        while True:
            await read_request(reader, server)
            number += 1
            answer = b'{"answer":%d}' % number
            if number == 1:
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    async with raw_server(handler) as server, upstream_client() as client:
        first = await post(client, server.url())
        assert (first.status, await body_of(first)) == (200, b'{"answer":1}')
        second = await post(client, server.url())
        assert (second.status, await body_of(second)) == (200, b'{"answer":2}')
        assert server.connections == 1  # the same pooled connection


async def test_a_post_on_a_reused_connection_that_breaks_is_not_sent_again() -> None:
    """The upstream received the POST and closed the connection without answering: it may be
    running (and billing) the completion, so it must not receive it twice."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await read_request(reader, server)  # the second request on this kept-alive connection...
        # ...is read, then the connection is closed without an answer.

    async with raw_server(handler) as server, upstream_client() as client:
        assert await body_of(await post(client, server.url())) == b"ok"
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(client, server.url())
        await asyncio.sleep(0.05)  # a retry would have been sent at once
    assert len(server.requests) == 2
    assert server.connections == 1


async def test_the_read_timeout_is_the_longest_silence_not_a_deadline() -> None:
    """A 1.4 s silence with a 2 s read timeout (after a piece that came 0.8 s in) is not a timeout;
    the old transport moved its deadline only after half of it had passed, and raised one."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED_HEAD)
        await writer.drain()
        for gap, piece in ((0.8, b"a"), (1.4, b"b"), (0.0, b"c")):
            await asyncio.sleep(gap)
            writer.write(chunk(piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await reader.read()

    async with raw_server(handler) as server, upstream_client() as client:
        response = await post(client, server.url(), read=2.0)
        assert await body_of(response) == b"abc"


async def test_a_silence_longer_than_the_read_timeout_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers; returns when the client gives up and closes

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"first"))
        await reader.read()

    async with raw_server(silent) as server, upstream_client() as client:
        with pytest.raises(TimeoutError):
            await post(client, server.url(), read=0.3)
    async with raw_server(stalls) as server, upstream_client() as client:
        response = await post(client, server.url(), read=0.3)
        with pytest.raises(TimeoutError):
            await body_of(response)


async def test_a_slow_reader_does_not_count_against_the_upstream() -> None:
    """The caller takes longer than the read timeout to take a piece while the upstream keeps
    sending: the upstream was never silent, so nothing times out (the old transport counted the
    caller's time)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"a"))
        await writer.drain()
        for piece in (b"b", b"c", b"d"):
            await asyncio.sleep(0.3)
            writer.write(chunk(piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await reader.read()

    async with raw_server(handler) as server, upstream_client() as client:
        response = await post(client, server.url(), read=1.0)
        pieces = response.content.iter_any().__aiter__()
        received = [await anext(pieces)]
        await asyncio.sleep(1.6)  # a slow caller
        received += [piece async for piece in pieces]
        response.release()
    assert b"".join(received) == b"abcd"


async def test_every_allowed_address_is_tried_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name with several addresses: the refused ones are dropped, the others are tried in
    turn (the old transport tried only the first)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await reader.read()

    def answer(*addresses: str) -> Callable[..., Awaitable[list[ResolveResult]]]:
        async def resolve(host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
            return [
                {"hostname": host, "host": a, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
                for a in addresses
            ]

        return resolve

    async with raw_server(handler) as server, upstream_client() as client:
        client.session()
        assert client.resolver is not None
        # 169.254.169.254 is refused; nothing listens on 127.0.0.2; the server is on 127.0.0.1.
        monkeypatch.setattr(
            client.resolver._inner, "resolve", answer("169.254.169.254", "127.0.0.2", "127.0.0.1")
        )
        response = await post(client, server.url(host="upstream.example"))
        assert await body_of(response) == b"ok"
        assert len(server.requests) == 1

        monkeypatch.setattr(client.resolver._inner, "resolve", answer("169.254.169.254", "100.100.100.200"))
        with pytest.raises(aiohttp.ClientConnectorError, match="metadata"):
            await post(client, server.url(host="metadata.example"))


# ---- the pool ----


async def test_open_connections_per_host_are_bounded() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            await release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with raw_server(handler) as server, upstream_client(limit_per_host=2) as client:
        calls = [asyncio.ensure_future(post(client, server.url())) for _ in range(5)]
        await wait_for(lambda: len(server.requests) == 2, "two requests")
        await asyncio.sleep(0.2)  # room for a third connection, were the pool unbounded
        assert server.connections == 2
        release.set()
        bodies = [await body_of(await call) for call in calls]
    assert bodies == [b"ok"] * 5
    assert server.connections == 2


async def test_idle_connections_are_closed_before_the_upstream_closes_them() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, server)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with raw_server(handler) as server, upstream_client(keepalive_seconds=0.2) as client:
        assert await body_of(await post(client, server.url())) == b"ok"
        await asyncio.sleep(0.5)  # idle longer than the keep-alive: the connection is not reused
        assert await body_of(await post(client, server.url())) == b"ok"
    assert server.connections == 2
    # By default idle connections go before uvicorn's and node's 5 s.
    assert Settings.model_fields["upstream_keepalive_seconds"].default < 5


# ---- addresses ----


async def test_host_names_are_checked_when_connecting() -> None:
    """The address a name resolves to is checked when connecting, so DNS rebinding cannot reach a
    loopback or private service through a provider URL that was public when it was saved."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    async with raw_server(handler) as server, upstream_client(allow_private=False) as strict:
        with pytest.raises(aiohttp.ClientConnectorError, match="private or loopback"):
            await post(strict, server.url(host="localhost"))
        with pytest.raises(UpstreamRefused, match="private or loopback"):
            await post(strict, server.url(host="127.0.0.1"))
    assert server.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/x",
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://[64:ff9b:1::a9fe:a9fe]/x",
        "http://[::169.254.169.254]/x",
        "http://[::ffff:0:a9fe:a9fe]/x",
        "http://[2002:a9fe:a9fe::1]/x",
        "http://100.100.100.200/latest/meta-data",
        "http://[fd00:ec2::254]/x",
    ],
)
async def test_metadata_literals_are_refused_even_when_private_upstreams_are_allowed(url: str) -> None:
    async with upstream_client(allow_private=True) as client:
        with pytest.raises(UpstreamRefused, match="metadata"):
            await post(client, url)


# ---- proxy, CA bundle, client certificate ----


async def test_plain_http_goes_through_the_configured_proxy() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()

    async with (
        raw_server(handler) as server,
        ForwardProxy(credentials="cockpit:proxy-secret") as proxy,
        upstream_client(proxy=f"http://cockpit:proxy-secret@127.0.0.1:{proxy.port}") as client,
    ):
        assert await body_of(await post(client, server.url())) == b"ok"
    assert proxy.forwarded == [f"POST {server.url()}"]
    assert proxy.refused == 0
    assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")  # origin form upstream


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def openai_call(client: UpstreamClient, url: str) -> Awaitable[aiohttp.ClientResponse]:
    return client.send(
        "POST",
        client.target(url + "/v1/chat/completions"),
        headers={"content-type": "application/json"},
        data=CHAT,
        timing=client.timeout(5.0, 5.0),
    )


async def test_https_through_https_proxy_with_a_ca_bundle(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with Upstream(ssl=pki.server_context()) as up, ForwardProxy() as proxy:
        url = f"https://localhost:{up.port}"
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with upstream_client(ca_bundle=pki.ca) as client:
            response = await openai_call(client, url)
            assert response.status == 200
            assert b"Hello from upstream." in await body_of(response)
        assert proxy.tunnels == [f"localhost:{up.port}"]  # CONNECT: the proxy never sees the request

        monkeypatch.setenv("NO_PROXY", "localhost")
        async with upstream_client(ca_bundle=pki.ca) as client:
            assert (await openai_call(client, url)).status == 200
        assert len(proxy.tunnels) == 1  # NO_PROXY: straight to the upstream

        # Without the CA bundle the test CA is not trusted.
        async with upstream_client() as client:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await openai_call(client, url)
    assert up.received == 2


async def test_a_client_certificate_is_presented_when_configured(pki: Pki) -> None:
    async with Upstream(ssl=pki.server_context(require_client_cert=True)) as up:
        url = f"https://127.0.0.1:{up.port}"
        async with upstream_client(
            ca_bundle=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key
        ) as c:
            response = await openai_call(c, url)
            assert response.status == 200
            await body_of(response)
        async with upstream_client(ca_bundle=pki.ca) as without:
            with pytest.raises(aiohttp.ClientError):
                await body_of(await openai_call(without, url))
    assert up.received == 1


async def test_through_a_proxy_the_target_host_is_checked_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The proxy resolves the target, so Cockpit resolves and checks the target's name first; the
    proxy's own (here loopback) address is the deployment's choice and is not checked."""
    async with ForwardProxy() as proxy, upstream_client(allow_private=False, proxy=proxy.url) as strict:
        with pytest.raises(UpstreamRefused, match="private or loopback"):
            await post(strict, "http://localhost:9/v1/chat/completions")
        with pytest.raises(UpstreamRefused, match="private or loopback"):
            await post(strict, "http://127.0.0.1:9/v1/chat/completions")
        assert proxy.forwarded == []

        # A name that resolves to a public address goes to the (loopback) proxy, which cannot
        # reach it here and answers 502.
        strict.session()
        assert strict.resolver is not None

        async def public(host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> Any:
            return [{"hostname": host, "host": "8.8.8.8", "port": port, "family": socket.AF_INET,
                     "proto": 0, "flags": 0}]  # fmt: skip

        monkeypatch.setattr(strict.resolver._inner, "resolve", public)
        response = await post(strict, "http://api.provider.invalid/v1/chat/completions")
        assert response.status == 502
        response.release()
        assert proxy.forwarded == ["POST http://api.provider.invalid/v1/chat/completions"]


def test_settings_name_the_client_options(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings(
        upstream_proxy="http://proxy.internal:3128",
        upstream_ca_bundle=bundle,
        upstream_pool_limit=64,
        upstream_pool_limit_per_host=8,
        upstream_keepalive_seconds=2.5,
    )
    client = UpstreamClient.from_settings(settings)
    assert (client.limit, client.limit_per_host, client.keepalive_seconds) == (64, 8, 2.5)
    assert str(client.proxy) == "http://proxy.internal:3128"
    assert client.ca_bundle == bundle
    with pytest.raises(ValueError, match="COCKPIT_UPSTREAM_PROXY"):
        Settings(upstream_proxy="socks5://proxy.internal:1080")
    with pytest.raises(ValueError, match="COCKPIT_UPSTREAM_CLIENT_CERT"):
        Settings(upstream_client_key=bundle)


def test_ssl_module_is_the_system_default_without_a_bundle() -> None:
    client = UpstreamClient(allow_private=False)
    context = client._ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
