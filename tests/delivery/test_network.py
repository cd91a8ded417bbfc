"""The address check. No test sends traffic anywhere: refusals happen before any connect."""

from __future__ import annotations

import ipaddress

import pytest

from hookpost.delivery.network import DestinationRefused, address_allowed, resolve_allowed

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), [])


# Each IPv6 form that carries an IPv4 address, around a loopback, link-local (cloud metadata)
# and private one; and the IETF special-purpose ranges the stdlib's is_global misses.
EMBEDDED = [
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::10.0.0.1",  # NAT64, well-known prefix
    "64:ff9b:1::a9fe:a9fe",
    "64:ff9b:1:fffe:a9fe:a9fe::",  # NAT64, local-use prefix (/96 and /48 layouts)
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
    "2002:a00:1:1::1",  # 6to4
    "::7f00:1",
    "::a9fe:a9fe",
    "::10.0.0.1",  # IPv4-compatible
    "::ffff:0:7f00:1",
    "::ffff:0:a9fe:a9fe",  # IPv4-translated
    "::ffff:169.254.169.254",  # IPv4-mapped
]
SPECIAL_PURPOSE = [
    "192.0.0.192", "192.0.0.1", "192.0.0.170", "192.0.2.1", "192.88.99.1", "198.18.0.1", "198.19.255.255",
    "198.51.100.1", "203.0.113.1", "100.64.0.1", "100.127.255.254", "240.0.0.1", "255.255.255.255",
    "100::1", "100:0:0:1::1", "2001::1", "2001:2::1", "2001:10::1", "2001:db8::1", "3fff::1", "5f00::1",
    "fec0::1", "ff02::1",
]  # fmt: skip


@pytest.mark.parametrize("address", EMBEDDED + SPECIAL_PURPOSE)
def test_embedded_ipv4_and_special_purpose_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), [])


@pytest.mark.parametrize("address", ["64:ff9b::5db8:d70e", "2002:5db8:d70e::1", "::ffff:93.184.215.14"])
def test_embedded_public_ipv4_is_allowed(address: str) -> None:
    """A NAT64 gateway or 6to4 relay in front of a public IPv4 address delivers to that address."""
    assert address_allowed(ipaddress.ip_address(address), [])


def test_embedded_ipv4_is_allowed_inside_the_allowed_networks() -> None:
    assert address_allowed(ipaddress.ip_address("64:ff9b::7f00:1"), LOOPBACK)
    assert not address_allowed(ipaddress.ip_address("64:ff9b::a00:1"), LOOPBACK)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), [])


def test_allowed_networks_open_exactly_their_range() -> None:
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), LOOPBACK)
    assert address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"), LOOPBACK)
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), LOOPBACK)


async def test_hostnames_are_checked_on_what_they_resolve_to() -> None:
    with pytest.raises(DestinationRefused, match=r"localhost resolves to (127\.0\.0\.1|::1)"):
        await resolve_allowed("localhost", 9, [ipaddress.ip_network("10.0.0.0/8")])
    assert await resolve_allowed("localhost", 9, [*LOOPBACK, ipaddress.ip_network("::1/128")])
