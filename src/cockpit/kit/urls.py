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
# Cloud metadata services, named even where a range above covers them: Alibaba's sits in the shared
# (CGNAT) range and Oracle's legacy one in 192.0.0.0/24, which private upstreams would allow.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
        "fd20:ce::254",
    )
)
# IPv6 forms that carry an IPv4 address the packets end up at; the IPv4 address is what is checked.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use prefix
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (SIIT)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated)
# Not globally reachable, though Python 3.11's ``is_global`` says they are.
_NOT_GLOBAL = [_NAT64_LOCAL, ipaddress.ip_network("fec0::/10")]


def _refuse(message: str) -> InvalidInput:
    return InvalidInput("invalid_base_url", message, details=[{"field": "base_url", "message": message}])


def _embedded(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (mapped, translated, compatible, NAT64, 6to4,
    Teredo server and client), or none."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64 or address in _IPV4_TRANSLATED:
        return [low]
    if address in _NAT64_LOCAL:
        # The local-use prefix is used as a /96 by NAT64 gateways in practice: the IPv4 address
        # is in the last 32 bits.
        return [low]
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: (unspecified) nor ::1 (loopback)
        return [low]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def check_address(address: IPAddress, *, allow_private: bool) -> None:
    """Refuse an address the gateway must never connect to: link-local, metadata, multicast,
    unspecified; loopback, private and other non-global ones unless ``allow_private``. An IPv6
    address that embeds an IPv4 address is judged by the IPv4 address, with the same rules."""
    embedded: list[IPAddress] = [*_embedded(address)] if isinstance(address, ipaddress.IPv6Address) else []
    for target in embedded or [address]:
        shown = f"{address} (which leads to {target})" if target is not address else str(address)
        if target in _METADATA or any(target in network for network in _FORBIDDEN) or target.is_link_local:
            raise _refuse(f"The address {shown} is link-local, metadata or unspecified and cannot be used.")
        if not allow_private and (not target.is_global or any(target in n for n in _NOT_GLOBAL)):
            # loopback, private, reserved, shared (CGNAT), local-use NAT64, site-local
            raise _refuse(
                f"The address {shown} is private or loopback; set COCKPIT_ALLOW_PRIVATE_UPSTREAMS=true "
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
