"""Deliveries through the operator's outbound proxy (HOOKPOST_PROXY_URL), the address check kept.

Hookpost resolves and checks the destination itself (``GuardedResolver``, as when connecting
directly), then asks the proxy for a tunnel to the checked address: ``CONNECT 203.0.113.7:443``,
or a SOCKS5 CONNECT to that IP, never to the host name, which the proxy would resolve for
itself. Over the tunnel the connection is what it is directly: TLS with the endpoint's host name
as SNI and as the name its certificate must hold, the Host header from the URL, and aiohttp's
pool keyed by that host. The proxy's own address is the operator's choice and is not checked.

Why not httpx's (httpcore's) proxies: its HTTP proxy forwards an ``http://`` request in
absolute form, where the proxy connects to the URL's host and replaces the Host header with
it (RFC 9112 section 3.2.2), and its CONNECT tunnel names the URL's host and takes SNI from it
(it ignores the ``sni_hostname`` extension). Putting the checked IP into the URL would therefore
send the IP as SNI, check the certificate against the IP, and pool one host's connections with
another's on the same address. So the tunnel is opened here, under aiohttp's connector, where
the connected socket it hands on is the only thing that changes; SOCKS5 is spoken with socksio,
the sans-I/O library httpx[socks] uses.

With no proxy configured this module is not used at all: the transport builds aiohttp's own
``TCPConnector`` (delivery/transport.py).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import AddrInfoType
from socksio import SOCKSError, socks5

from hookpost.kit.proxy_url import NoProxy, ProxyAddress

MAX_CONNECT_ANSWER = 16 * 1024  # a proxy's answer to CONNECT longer than this is not one
# The share of the connect timeout the tunnel may take: a silent proxy runs out this deadline,
# whose error names the proxy, before the whole connection's ("connect timeout").
TUNNEL_SHARE = 0.8


class ProxyFailed(OSError):
    """The proxy could not be reached, or would not open the tunnel; the message names the
    proxy without its credentials."""


def _target(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int, proxy: str) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ProxyFailed(f"the proxy {proxy} closed the connection during the handshake")
        data += chunk
    return data


async def _http_connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: ProxyAddress, target: str) -> None:
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None:
        token = base64.b64encode(f"{proxy.username}:{proxy.password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk or len(answer) > MAX_CONNECT_ANSWER:
            raise ProxyFailed(f"the proxy {proxy.shown} gave no complete answer to CONNECT {target}")
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProxyFailed(f"the proxy {proxy.shown} answered CONNECT {target} with {status_line[:100]!r}")
    if not 200 <= int(parts[1]) < 300:
        reason = " ".join(parts[1:])[:100]
        raise ProxyFailed(f"the proxy {proxy.shown} refused the tunnel to {target}: HTTP {reason}")
    if rest:  # the receiver speaks only when spoken to: bytes here are not the receiver's
        raise ProxyFailed(f"the proxy {proxy.shown} sent data after its answer to CONNECT {target}")


async def _socks5_connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: ProxyAddress, address: str, port: int
) -> None:
    connection = socks5.SOCKS5Connection()
    method = (
        socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED
        if proxy.username is None
        else socks5.SOCKS5AuthMethod.USERNAME_PASSWORD
    )
    connection.send(socks5.SOCKS5AuthMethodsRequest([method]))
    await loop.sock_sendall(sock, connection.data_to_send())
    chosen = connection.receive_data(await _recv_exactly(loop, sock, 2, proxy.shown))
    if not isinstance(chosen, socks5.SOCKS5AuthReply) or chosen.method != method:
        wanted = "without credentials" if proxy.username is None else "with a user name and password"
        raise ProxyFailed(f"the SOCKS5 proxy {proxy.shown} does not accept connections {wanted}")
    if proxy.username is not None:
        connection.send(socks5.SOCKS5UsernamePasswordRequest(proxy.username.encode(), (proxy.password or "").encode()))
        await loop.sock_sendall(sock, connection.data_to_send())
        signed_in = connection.receive_data(await _recv_exactly(loop, sock, 2, proxy.shown))
        if not isinstance(signed_in, socks5.SOCKS5UsernamePasswordReply) or not signed_in.success:
            raise ProxyFailed(f"the SOCKS5 proxy {proxy.shown} refused the user name and password")
    # An IP address, never a name: socksio sends it as an IPv4 or IPv6 address type.
    connection.send(socks5.SOCKS5CommandRequest.from_address(socks5.SOCKS5Command.CONNECT, (address, port)))
    await loop.sock_sendall(sock, connection.data_to_send())
    # VER REP RSV ATYP, then the bound address (its length depends on ATYP) and a port.
    head = await _recv_exactly(loop, sock, 4, proxy.shown)
    address_length = {1: 4, 4: 16}.get(head[3]) or (await _recv_exactly(loop, sock, 1, proxy.shown))[0]
    tail = await _recv_exactly(loop, sock, address_length + 2, proxy.shown)
    if head[3] == 3:
        tail = bytes([address_length]) + tail
    reply = connection.receive_data(head + tail)
    if not isinstance(reply, socks5.SOCKS5Reply) or reply.reply_code != socks5.SOCKS5ReplyCode.SUCCEEDED:
        code = reply.reply_code.name.lower().replace("_", " ") if isinstance(reply, socks5.SOCKS5Reply) else "?"
        raise ProxyFailed(f"the SOCKS5 proxy {proxy.shown} refused the tunnel to {_target(address, port)}: {code}")


async def open_tunnel(proxy: ProxyAddress, address: str, port: int) -> socket.socket:
    """A connected socket to ``address``:``port`` (an already checked IP) through the proxy."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProxyFailed(f"the proxy {proxy.shown} could not be resolved: {exc.strerror}") from exc
    last: OSError | None = None
    for family, kind, protocol, _, proxy_address in infos:
        sock = socket.socket(family, kind, protocol)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, proxy_address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        try:
            if proxy.scheme == "http":
                await _http_connect(loop, sock, proxy, _target(address, port))
            else:
                try:
                    await _socks5_connect(loop, sock, proxy, address, port)
                except SOCKSError as exc:  # an answer that is not SOCKS5: another kind of proxy
                    raise ProxyFailed(f"the proxy {proxy.shown} does not answer as a SOCKS5 proxy: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return sock
    # asyncio's message repeats the address; the errno's own words say what happened.
    reason = os.strerror(last.errno) if last is not None and last.errno else str(last or "no address")
    raise ProxyFailed(f"the proxy {proxy.shown} is unreachable: {reason.lower()}") from last


class ProxyConnector(aiohttp.TCPConnector):
    """aiohttp's connector, connecting through a tunnel to each address its resolver checked."""

    def __init__(self, proxy: ProxyAddress, no_proxy: NoProxy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._proxy = proxy
        self._no_proxy = no_proxy

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[AddrInfoType],
        req: ClientRequest,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature, overridden
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        # The addresses come from GuardedResolver (or are the URL's own, checked by the
        # transport): the first is tried here; on failure aiohttp tries the next.
        address, port = str(addr_infos[0][4][0]), int(addr_infos[0][4][1])
        if self._no_proxy.matches(req.url.raw_host or "", address):
            return await super()._wrap_create_connection(
                *args, addr_infos=addr_infos, req=req, timeout=timeout, client_error=client_error, **kwargs
            )
        limit = timeout.sock_connect
        tunnel_limit = None if limit is None else limit * TUNNEL_SHARE
        try:
            async with asyncio.timeout(tunnel_limit):
                tunnel = await open_tunnel(self._proxy, address, port)
        except TimeoutError:
            failed = ProxyFailed(
                f"the proxy {self._proxy.shown} did not open a tunnel to {_target(address, port)}"
                f" within {tunnel_limit:.1f} s"
            )
            raise client_error(req.connection_key, failed) from failed
        except OSError as exc:
            raise client_error(req.connection_key, exc) from exc
        if kwargs.get("ssl") and self._ssl_shutdown_timeout:
            kwargs["ssl_shutdown_timeout"] = self._ssl_shutdown_timeout
        try:
            async with asyncio.timeout(limit):
                # TLS (when the URL is https) with server_hostname, the URL's host, as aiohttp sets it.
                transport, protocol = await self._loop.create_connection(*args, **kwargs, sock=tunnel)
                return transport, protocol
        except BaseException as exc:
            tunnel.close()
            if isinstance(exc, ssl.CertificateError):
                raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
            if isinstance(exc, ssl.SSLError):
                raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise client_error(req.connection_key, exc) from exc
            raise
