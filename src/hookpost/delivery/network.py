"""Which destination addresses Hookpost may deliver to, enforced when connecting.

Public addresses are always allowed; anything else (loopback, private, link-local,
CGNAT, cloud metadata, multicast, reserved, the IETF special-purpose ranges ...) only inside
``HOOKPOST_ALLOWED_NETWORKS``. An IPv6 address that carries an IPv4 address (mapped,
translated, IPv4-compatible, NAT64, 6to4) is judged as that IPv4 address: a NAT64 gateway
or a 6to4 relay delivers to it.
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


# The IANA special-purpose registries' ranges that are not globally reachable and that the
# stdlib's ``is_global`` misses on Python 3.11 (later versions know some of them too).
_SPECIAL_PURPOSE = tuple(
    ipaddress.ip_network(network)
    for network in (
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890): only .9 and .10 are global anycast
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526): a relay onward to anywhere
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): where the IPv4 sits depends on the operator's prefix length
        "100:0:0:1::/64",  # dummy prefix (RFC 9780)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 is the last 32 bits
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291); also holds :: and ::1
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: IPAddress, allowed: list[IPNetwork]) -> bool:
    if any(address in network for network in allowed):
        return True
    if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)) is not None:
        return address_allowed(inner, allowed)
    if not address.is_global or address.is_multicast or any(address in network for network in _SPECIAL_PURPOSE):
        return False
    return not (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)


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
