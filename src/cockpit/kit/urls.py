"""Validation of upstream URLs: no metadata/link-local targets, private ones only when allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from cockpit.kit.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never reachable from a gateway, whatever the deployment allows (cloud metadata, link-local).
_FORBIDDEN = [
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00::/8", "0.0.0.0/8", "::/128", "224.0.0.0/4", "ff00::/8")
]


def _refuse(message: str) -> InvalidInput:
    return InvalidInput("invalid_base_url", message, details=[{"field": "base_url", "message": message}])


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def check_address(address: IPAddress, *, allow_private: bool) -> None:
    address = _unwrap(address)
    if any(address in network for network in _FORBIDDEN) or address.is_link_local:
        raise _refuse(f"The address {address} is link-local, metadata or unspecified and cannot be used.")
    if not allow_private and not address.is_global:  # loopback, private, reserved, shared (CGNAT)
        raise _refuse(
            f"The address {address} is private or loopback; set COCKPIT_ALLOW_PRIVATE_UPSTREAMS=true "
            "to allow self-hosted upstreams."
        )


def _host_of(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("The base URL is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise _refuse("The base URL must start with http:// or https://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _refuse("The base URL must not contain credentials; use the API key field.")
    if not parts.hostname:
        raise _refuse("The base URL has no host name.")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_upstream_url(url: str, *, allow_private: bool) -> str:
    """The URL without a trailing slash, or InvalidInput (field base_url). Resolves the host (blocking)."""
    host, port = _host_of(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, allow_private=allow_private)
        return url.rstrip("/")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _refuse(f"The host name '{host}' cannot be resolved.") from None
    if not infos:
        raise _refuse(f"The host name '{host}' cannot be resolved.")
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        check_address(ipaddress.ip_address(text), allow_private=allow_private)
    return url.rstrip("/")


async def check_upstream_url_async(url: str, *, allow_private: bool) -> str:
    return await asyncio.to_thread(check_upstream_url, url, allow_private=allow_private)
