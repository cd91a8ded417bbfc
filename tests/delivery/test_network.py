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
