"""httpx's API over aiohttp's connection pool, with the destination check at connect time.

httpx's own pool (httpcore) costs more CPU per request than the rest of a delivery, and
slows down past a few connections to one host; aiohttp's pool does the same work for a
fraction of it. Callers keep httpx (``AsyncClient``, its requests, responses and errors);
only the transport underneath changes.

The address check (``delivery.network``) holds on this transport as it did on httpcore's:
a host name is resolved by ``GuardedResolver``, which refuses the host if any of its
addresses is not allowed, and the connector then connects to exactly the addresses it
returned; a URL whose host is an address is checked before the request, and aiohttp
connects to that very address (it refuses the legacy numeric forms such as ``2130706433``).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from hookpost.delivery.network import literal_address, refuse_unless_allowed, resolve_allowed
from hookpost.delivery.proxy import ProxyConnector
from hookpost.kit.proxy_url import NoProxy, ProxyAddress
from hookpost.settings import IPNetwork

CHUNK_BYTES = 16 * 1024


class GuardedResolver(AbstractResolver):
    """Resolves a host to its addresses, refusing it if any of them is not allowed."""

    def __init__(self, allowed: list[IPNetwork]) -> None:
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in await resolve_allowed(host, port, self._allowed)
        ]

    async def close(self) -> None:
        return None


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """aiohttp's errors as the httpx errors callers know, each caused by the original."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc)) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc)) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx.TimeoutException(str(exc)) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, TLS (the OS or TLS error is its cause)
        raise httpx.ConnectError(str(exc)) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError("the receiver closed the connection without a complete answer") from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
        raise httpx.ReadError(str(exc)) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.InvalidURL(str(exc)) from exc
    except aiohttp.ClientResponseError as exc:  # an answer that is not HTTP
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc)) from exc
    except ValueError as exc:  # a request aiohttp will not write, such as a header holding NUL
        raise httpx.LocalProtocolError(str(exc)) from exc


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._response.content.iter_chunked(CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        # Read to its end, the connection goes back to the pool; otherwise it is closed, so a
        # receiver's 10 MB answer is never read past what we keep.
        self._response.release()


class GuardedAiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on an aiohttp session made on first use, on the loop that uses it."""

    def __init__(
        self,
        allowed: list[IPNetwork],
        max_connections: int,
        keepalive_expiry: float,
        proxy: ProxyAddress | None = None,
        no_proxy: NoProxy | None = None,
    ) -> None:
        self._allowed = allowed
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._proxy = proxy
        self._no_proxy = no_proxy or NoProxy()
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            options: dict[str, Any] = {
                "limit": self._max_connections,
                "keepalive_timeout": self._keepalive_expiry,
                "resolver": GuardedResolver(self._allowed),
                "ssl": httpx.create_ssl_context(),
            }
            # Without a proxy, aiohttp's own connector: the send path is the one it always was.
            connector = (
                aiohttp.TCPConnector(**options)
                if self._proxy is None
                else ProxyConnector(self._proxy, self._no_proxy, **options)
            )
            # No cookie jar here either (httpx's client keeps none: sender.py).
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        address = literal_address(host)
        if address is not None:
            refuse_unless_allowed(host, str(address), self._allowed)
        timeout = request.extensions.get("timeout", {})
        with _as_httpx_errors():
            response = await self._get_session().request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=request.content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"), sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            )
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseBody(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
