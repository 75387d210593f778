"""`cockpit serve` keeps idle keep-alive connections open longer than client pools do (the server must
not close a connection at the moment a client reuses it), and the time is a setting."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.gateway.live import LiveServer, fast_passwords  # noqa: F401

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


def _ask(sock: socket.socket) -> bytes:
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece
    return data


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue
    return False


def test_an_idle_connection_outlives_common_client_pools(tmp_path: Path) -> None:
    server = LiveServer(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", tmp_path / "data", flush_seconds=0.1)
    from cockpit.kit.migrate import upgrade

    upgrade(server.database_url)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            assert _ask(sock).startswith(b"HTTP/1.1 200")
            time.sleep(6.5)  # longer than the 5 s after which the server used to close it
            assert _ask(sock).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


def test_the_keep_alive_time_is_a_setting(tmp_path: Path) -> None:
    server = LiveServer(
        f"sqlite+aiosqlite:///{tmp_path / 'k.db'}",
        tmp_path / "data",
        flush_seconds=0.1,
        env={"COCKPIT_KEEPALIVE_SECONDS": "1"},
    )
    from cockpit.kit.migrate import upgrade

    upgrade(server.database_url)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            assert _ask(sock).startswith(b"HTTP/1.1 200")
            # Closed by the server after about a second (the deadline only bounds a hang).
            assert _closed_by_server(sock, time.monotonic() + 30)
    finally:
        server.stop()
