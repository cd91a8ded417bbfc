"""One HTTP attempt: POST the signed body, read at most the stored limit of the answer.

Every way an attempt can fail ends in a short, precise error for the attempt record, and
none of them can hold a worker longer than the delivery timeout.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import CookieJar
from typing import Any

import httpx

from hookpost.delivery.network import DestinationRefused, DnsLookupFailed
from hookpost.delivery.proxy import ProxyFailed
from hookpost.delivery.transport import GuardedAiohttpTransport
from hookpost.kit.proxy_url import NoProxy, ProxyAddress
from hookpost.settings import IPNetwork

MAX_CONNECTIONS = 200  # per worker process, all receivers together (HOOKPOST_WORKER_IN_FLIGHT's default)
# Seconds an idle connection to a receiver is kept: under the 5 s many servers keep one (Uvicorn,
# Node), so we never send on a connection the receiver is closing at that moment.
KEEPALIVE_EXPIRY = 4.0


@dataclass(frozen=True)
class AttemptResult:
    status_code: int  # 0 when no HTTP answer came back
    response: str
    duration_ms: int
    error: str | None
    retry_after: str | None = None  # the answer's Retry-After header, as sent

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def outcome_class(self) -> str:
        """One of ``OUTCOME_CLASSES``: what kind of answer, or of failure, the attempt met."""
        if self.status_code:
            return _STATUS_CLASSES.get(self.status_code // 100, "other")
        error = self.error or ""
        return next((kind for kind, openings in _ERROR_CLASSES if error.startswith(openings)), "other")


# The label values of the attempts counter, few and fixed (never a URL or an id).
OUTCOME_CLASSES = ("2xx", "3xx", "4xx", "5xx", "timeout", "connect", "refused", "other")
_STATUS_CLASSES = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
# The openings of describe_failure's words, by class; anything else (a reset mid-response, an
# invalid request, an internal error) is "other".
_ERROR_CLASSES = (
    ("refused", ("destination refused",)),  # the address check (HOOKPOST_ALLOWED_NETWORKS)
    ("timeout", ("connect timeout", "read timeout", "timeout")),
    ("connect", ("DNS failure", "proxy failure", "TLS failure", "connection refused", "connect failed")),
)


class _NoCookies(CookieJar):
    """Keeps nothing: one client serves every endpoint, so a cookie one receiver sets would
    otherwise go back with later deliveries to that host, perhaps another customer's endpoint."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def add_cookie_header(self, request: Any) -> None:
        pass


def create_http_client(
    timeout: float, allowed: list[IPNetwork], proxy: ProxyAddress | None = None, no_proxy: NoProxy | None = None
) -> httpx.AsyncClient:
    """The client every delivery is sent with; through ``proxy`` (delivery/proxy.py) when one is set."""
    transport = GuardedAiohttpTransport(
        allowed, max_connections=MAX_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY, proxy=proxy, no_proxy=no_proxy
    )
    # Redirects are a failure, never followed: a receiver must not bounce us elsewhere.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        cookies=_NoCookies(),
        transport=transport,
        headers={"user-agent": "Hookpost"},
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, down to the OS error httpx and httpcore wrap."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def describe_failure(exc: BaseException) -> str:  # noqa: PLR0911 - one answer per kind of failure
    """What went wrong, in words an operator can act on."""
    chain = _chain(exc)

    def caused_by(*kinds: type[BaseException]) -> BaseException | None:
        return next((error for error in chain if isinstance(error, kinds)), None)

    if refused := caused_by(DestinationRefused):
        return f"destination refused: {refused}"
    if dns := caused_by(DnsLookupFailed):
        return f"DNS failure: {dns}"
    if proxy := caused_by(ProxyFailed):
        return f"proxy failure: {proxy}"
    if caused_by(httpx.ConnectTimeout):
        return "connect timeout"
    if caused_by(httpx.ReadTimeout):
        return "read timeout: no data from the receiver in time"
    if caused_by(TimeoutError, httpx.TimeoutException):
        return "timeout: the attempt took longer than the delivery timeout"
    if tls := caused_by(ssl.SSLError):
        return f"TLS failure: {getattr(tls, 'reason', None) or tls}"
    if caused_by(ConnectionRefusedError) or any(getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return "connection refused"
    if caused_by(httpx.ConnectError):
        return f"connect failed: {exc}"
    if caused_by(ConnectionResetError, httpx.ReadError):
        return "connection reset mid-response"
    if caused_by(httpx.LocalProtocolError):
        return f"invalid request: {exc}"
    if caused_by(httpx.RemoteProtocolError):
        return f"connection closed mid-response: {exc}"
    return f"{type(exc).__name__}: {exc}"


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            break  # the rest is never read: a 10 MB answer costs no more than 4 KiB
    return bytes(body[:limit])


def describe_unsendable(url: str, headers: dict[str, str], exc: Exception) -> str:
    """Why httpx refused to build the request: a stored URL or header value HTTP cannot carry."""
    for name, value in headers.items():
        bad = next((char for char in value if not " " <= char <= "~" and char != "\t"), None)
        if bad is not None:
            return f"invalid request: the value of header {name!r} holds {bad!r}, which HTTP does not allow"
    return f"invalid request: {type(exc).__name__}: {exc}"


@lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """An endpoint's URL parsed once, not for every request to it (httpx parses a string
    URL anew each time: 5 % of a worker's engine thread). An invalid one raises each time. Its user part
    is only shown (``user:***``): the credentials go in the Authorization header
    (endpoints/credentials.py)."""
    parsed = httpx.URL(url)
    return parsed.copy_with(userinfo=b"") if parsed.userinfo else parsed


async def post_webhook(
    client: httpx.AsyncClient, url: str, body: str, headers: dict[str, str], body_limit: int, time_limit: float
) -> AttemptResult:
    started = time.perf_counter()

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    try:
        # httpx's timeouts are per operation; a body that drips a byte at a time never
        # trips them, so the attempt as a whole has a deadline too.
        async with asyncio.timeout(time_limit):
            async with client.stream("POST", _parsed(url), content=body.encode(), headers=headers) as response:
                raw = await _read_limited(response, body_limit)
    except (httpx.HTTPError, DestinationRefused, DnsLookupFailed, TimeoutError) as exc:
        return AttemptResult(0, "", elapsed(), describe_failure(exc))
    except (httpx.InvalidURL, UnicodeError) as exc:
        # Raised while building the request, before anything was sent.
        return AttemptResult(0, "", elapsed(), describe_unsendable(url, headers, exc))
    text = raw.decode("utf-8", errors="replace")
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return AttemptResult(response.status_code, text, elapsed(), error, response.headers.get("retry-after"))
