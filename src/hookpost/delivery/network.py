"""Which destination addresses Hookpost may deliver to, enforced when connecting.

Public addresses are always allowed; anything else (loopback, private, link-local,
CGNAT, cloud metadata, multicast, reserved ...) only inside ``HOOKPOST_ALLOWED_NETWORKS``.
The check runs on the addresses a host resolves to, inside the connection itself, and the
socket then connects to the very address that was checked: DNS that points at a private
address, or changes between a check and the connect, cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

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
        if not address_allowed(ipaddress.ip_address(address), allowed):
            raise DestinationRefused(
                f"{host} resolves to {address}, outside the allowed networks (HOOKPOST_ALLOWED_NETWORKS)"
            )
    return addresses


class CoalescingStream(httpcore.AsyncNetworkStream):
    """A stream that sends a request's head together with its body.

    httpcore writes the head and the body of a request separately: two system calls and,
    on a connection with Nagle off, two TCP segments for a 300-byte webhook. The head is held
    back until the next write (the body) or read (the answer), whichever comes first.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held = b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's interface
        if not self._held and buffer.endswith(b"\r\n\r\n"):
            self._held = buffer
            return
        held, self._held = self._held, b""
        await self._stream.write(held + buffer, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's interface
        if self._held:
            held, self._held = self._held, b""
            await self._stream.write(held, timeout)
        return await self._stream.read(max_bytes, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        return CoalescingStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's backend, but every TCP connect goes to a checked, resolved address."""

    def __init__(self, allowed: list[IPNetwork]) -> None:
        self._allowed = allowed
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: httpcore.ConnectError | None = None
        for address in await resolve_allowed(host, port, self._allowed):
            try:
                stream = await self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
                return CoalescingStream(stream)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None, "getaddrinfo returns at least one address or raises"
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("unix sockets are not a webhook destination")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)
