"""Which destination addresses Hookpost may deliver to, enforced when connecting.

Public addresses are always allowed; anything else (loopback, private, link-local,
CGNAT, cloud metadata, multicast, reserved ...) only inside ``HOOKPOST_ALLOWED_NETWORKS``.
The check runs on the addresses a host resolves to, inside the connection itself, and the
socket then connects to the very address that was checked (``delivery.transport``): DNS that
points at a private address, or changes between a check and the connect, cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from hookpost.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(Exception):
    pass


class DnsLookupFailed(Exception):
    pass


def address_allowed(address: IPAddress, allowed: list[IPNetwork]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return True
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host spells directly, in any spelling a resolver accepts.

    Besides the usual forms, C's inet_aton reads ``2130706433``, ``0x7f.1`` and
    ``0177.0.0.1`` as 127.0.0.1, so those are addresses too; ``localhost`` names loopback.
    """
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


async def resolve_allowed(host: str, port: int, allowed: list[IPNetwork]) -> list[str]:
    """The addresses ``host`` resolves to, refusing it if any of them is not allowed."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DnsLookupFailed(f"{host}: {exc.strerror}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        refuse_unless_allowed(host, address, allowed)
    return addresses


def refuse_unless_allowed(host: str, address: str, allowed: list[IPNetwork]) -> None:
    """Raise ``DestinationRefused`` unless ``address`` (what ``host`` stands for) is allowed."""
    if not address_allowed(ipaddress.ip_address(address), allowed):
        raise DestinationRefused(
            f"{host} resolves to {address}, outside the allowed networks (HOOKPOST_ALLOWED_NETWORKS)"
        )
