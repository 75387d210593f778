"""Which addresses an upstream may have: IPv6 forms that lead to an IPv4 address are judged by it."""

from __future__ import annotations

import ipaddress

import pytest

from cockpit.kit.errors import InvalidInput
from cockpit.kit.urls import check_address, check_upstream_url

ALWAYS_REFUSED = [
    "169.254.169.254",  # AWS, GCP, Azure, OCI metadata
    "100.100.100.200",  # Alibaba Cloud metadata (in the shared CGNAT range)
    "192.0.0.192",  # Oracle Cloud's legacy metadata address
    "fd00:ec2::254",  # AWS metadata over IPv6
    "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
    "64:ff9b:1::a9fe:a9fe",  # NAT64, local-use prefix
    "::169.254.169.254",  # IPv4-compatible
    "::ffff:0:a9fe:a9fe",  # IPv4-translated
    "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:a9fe:a9fe::5601:5601",  # Teredo: server 169.254.169.254, client 169.254.169.254 (obfuscated)
    "0.0.0.0",  # noqa: S104
    "::",
    "fe80::1",
    "224.0.0.1",
]
PRIVATE = [
    "127.0.0.1",
    "10.1.2.3",
    "100.64.0.1",
    "::1",
    "::127.0.0.1",
    "::ffff:0:7f00:1",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "2002:a00:1::1",
    "fec0::1",
]
PUBLIC = ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_metadata_link_local_and_unspecified_are_always_refused(address: str, allow_private: bool) -> None:
    with pytest.raises(InvalidInput, match="link-local, metadata or unspecified"):
        check_address(ipaddress.ip_address(address), allow_private=allow_private)


@pytest.mark.parametrize("address", PRIVATE)
def test_private_and_loopback_only_when_allowed(address: str) -> None:
    with pytest.raises(InvalidInput, match="private or loopback"):
        check_address(ipaddress.ip_address(address), allow_private=False)
    check_address(ipaddress.ip_address(address), allow_private=True)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass_in_every_form(address: str) -> None:
    check_address(ipaddress.ip_address(address), allow_private=False)


def test_the_message_names_the_address_reached() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_address(ipaddress.ip_address("64:ff9b::a9fe:a9fe"), allow_private=True)
    assert "64:ff9b::a9fe:a9fe (which leads to 169.254.169.254)" in caught.value.message


@pytest.mark.parametrize(
    "url", ["http://[64:ff9b::a9fe:a9fe]/v1", "http://[::ffff:0:a9fe:a9fe]/v1", "http://100.100.100.200/v1"]
)
def test_base_urls_with_such_literals_are_refused_when_saved(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_upstream_url(url, allow_private=True)
