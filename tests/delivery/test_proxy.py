"""Attempts through a real outbound proxy on loopback (HOOKPOST_PROXY_URL): tinyproxy for HTTP
CONNECT, pproxy for SOCKS5, both with credentials.

What each test relies on: the proxy is asked for the address Hookpost resolved and checked
(its own log shows the IP, never the name), the receiver still sees the endpoint's host name
(Host header, TLS SNI, a certificate that names only the host), a refused destination never
reaches the proxy, HOOKPOST_NO_PROXY destinations go direct, and a proxy that fails gives a
failed attempt that says so, its password nowhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from hookpost.delivery.sender import AttemptResult, create_http_client, post_webhook
from hookpost.delivery.transport import GuardedAiohttpTransport
from hookpost.kit.proxy_url import NoProxy, parse_proxy_url
from hookpost.settings import IPNetwork
from tests.conftest import make_settings
from tests.support.proxies import RunningProxy, self_signed_certificate, socks5_proxy, tinyproxy
from tests.support.receiver import Receiver

LOOPBACK: list[IPNetwork] = [ipaddress.ip_network("127.0.0.0/8")]
PASSWORD = "pw-" + secrets.token_hex(8)
CREDENTIALS = ("hookpost", PASSWORD)


@pytest.fixture(params=["http", "socks5"])
def proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningProxy]:
    start = tinyproxy if request.param == "http" else socks5_proxy
    with start(tmp_path, credentials=CREDENTIALS) as running:
        yield running


@pytest.fixture
def http_proxy(tmp_path: Path) -> Iterator[RunningProxy]:
    with tinyproxy(tmp_path, credentials=CREDENTIALS) as running:
        yield running


def attempt(
    url: str, proxy_url: str, *, allowed: list[IPNetwork] = LOOPBACK, no_proxy: tuple[str, ...] = ()
) -> AttemptResult:
    async def send() -> AttemptResult:
        proxy = parse_proxy_url(proxy_url)
        async with create_http_client(2.0, allowed, proxy=proxy, no_proxy=NoProxy.parse(list(no_proxy))) as client:
            return await post_webhook(client, url, '{"ok":true}', {"webhook-id": "msg_1"}, 4096, 5.0)

    return asyncio.run(send())


def port_of(receiver: Receiver) -> int:
    return int(receiver.url.rsplit(":", 1)[1])


def test_plain_http_goes_through_the_proxy_to_the_checked_address(
    proxy: RunningProxy, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = port_of(receiver)
    result = attempt(f"http://localhost:{port}/hook", proxy.url)
    assert (result.status_code, result.error) == (200, None)
    [request] = receiver.received("/hook")
    assert request.headers["host"] == f"localhost:{port}"
    assert request.body == b'{"ok":true}'
    assert proxy.targets() == [f"127.0.0.1:{port}"]  # the address Hookpost checked, not "localhost"
    assert PASSWORD not in caplog.text


def test_https_through_the_proxy_keeps_the_host_name_for_sni_and_the_certificate(
    proxy: RunningProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate, key = self_signed_certificate(tmp_path, "localhost")  # names localhost, not 127.0.0.1
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: server_names.append(name)  # type: ignore[assignment,func-returns-value]
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # the test trusts its own certificate
    with Receiver(tls=context) as receiver:
        port = port_of(receiver)
        result = attempt(f"https://localhost:{port}/hook", proxy.url)
        assert (result.status_code, result.error) == (200, None)
        [request] = receiver.received("/hook")
    assert request.headers["host"] == f"localhost:{port}"
    assert server_names == ["localhost"]
    assert proxy.targets() == [f"127.0.0.1:{port}"]


def test_an_untrusted_certificate_through_the_proxy_is_a_tls_failure(http_proxy: RunningProxy, tmp_path: Path) -> None:
    certificate, key = self_signed_certificate(tmp_path, "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    with Receiver(tls=context) as receiver:
        result = attempt(f"https://localhost:{port_of(receiver)}/hook", http_proxy.url)
        assert receiver.received() == []
    assert result.status_code == 0
    assert (result.error or "").startswith("TLS failure"), result.error


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_refused_destination_never_reaches_the_proxy(proxy: RunningProxy, receiver: Receiver, host: str) -> None:
    result = attempt(f"http://{host}:{port_of(receiver)}/hook", proxy.url, allowed=[])
    assert result.status_code == 0
    assert (result.error or "").startswith(f"destination refused: {host} resolves to 127.0.0.1"), result.error
    # The attempt is over: had the proxy been asked, its answer would have come first.
    assert proxy.targets() == []
    assert receiver.received() == []


@pytest.mark.parametrize("entry", ["localhost", ".localhost", "127.0.0.0/8", "127.0.0.1", "*"])
def test_no_proxy_destinations_go_direct(http_proxy: RunningProxy, receiver: Receiver, entry: str) -> None:
    result = attempt(f"http://localhost:{port_of(receiver)}/hook", http_proxy.url, no_proxy=("example.com", entry))
    assert (result.status_code, result.error) == (200, None)
    assert len(receiver.received("/hook")) == 1
    assert http_proxy.targets() == []


def test_destinations_not_in_no_proxy_still_go_through_the_proxy(http_proxy: RunningProxy, receiver: Receiver) -> None:
    port = port_of(receiver)
    result = attempt(f"http://localhost:{port}/hook", http_proxy.url, no_proxy=("example.com", "10.0.0.0/8", "host"))
    assert (result.status_code, result.error) == (200, None)
    assert http_proxy.targets() == [f"127.0.0.1:{port}"]


def test_no_proxy_matches_names_and_their_subdomains_only() -> None:
    rules = NoProxy.parse(["example.com", "*.internal", "10.0.0.0/8"])
    assert rules.matches("example.com", "203.0.113.1")
    assert rules.matches("API.Example.com.", "203.0.113.1")
    assert rules.matches("hooks.internal", "203.0.113.1")
    assert rules.matches("anything", "10.2.3.4")
    assert not rules.matches("badexample.com", "203.0.113.1")
    assert not rules.matches("example.com.evil.test", "203.0.113.1")
    assert not NoProxy.parse([]).matches("example.com", "10.2.3.4")


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_a_dead_proxy_is_a_failed_attempt_that_says_so(scheme: str, receiver: Receiver) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))  # bound, never listening: the kernel refuses
        dead = placeholder.getsockname()[1]
        result = attempt(
            f"http://localhost:{port_of(receiver)}/hook", f"{scheme}://hookpost:{PASSWORD}@127.0.0.1:{dead}"
        )
    assert (result.status_code, result.error) == (
        0,
        f"proxy failure: the proxy {scheme}://127.0.0.1:{dead} is unreachable: connection refused",
    )
    assert receiver.received() == []


def test_wrong_proxy_credentials_are_a_proxy_failure(proxy: RunningProxy, receiver: Receiver) -> None:
    wrong = proxy.url.replace(PASSWORD, "not-the-password")
    result = attempt(f"http://localhost:{port_of(receiver)}/hook", wrong)
    assert result.status_code == 0
    assert (result.error or "").startswith("proxy failure: the proxy"), result.error
    assert "not-the-password" not in (result.error or "")
    assert receiver.received() == []


def test_the_wrong_kind_of_proxy_is_a_proxy_failure(tmp_path: Path, receiver: Receiver) -> None:
    with tinyproxy(tmp_path) as http, socks5_proxy(tmp_path) as socks:
        for mistaken in (http.url.replace("http://", "socks5://"), socks.url.replace("socks5://", "http://")):
            result = attempt(f"http://localhost:{port_of(receiver)}/hook", mistaken)
            assert result.status_code == 0
            assert (result.error or "").startswith("proxy failure: the proxy"), result.error
    assert receiver.received() == []


def test_without_a_proxy_the_send_path_is_aiohttps_own_connector() -> None:
    """HOOKPOST_PROXY_URL unset costs nothing: the connector is aiohttp's, not a subclass that
    would look at a proxy setting per connection."""

    async def connector_type() -> type:
        transport = GuardedAiohttpTransport(LOOPBACK, max_connections=1, keepalive_expiry=1.0)
        try:
            return type(transport._get_session().connector)
        finally:
            await transport.aclose()

    assert asyncio.run(connector_type()) is aiohttp.TCPConnector


def test_the_settings_never_show_the_proxy_password(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, proxy_url=f"http://hookpost:{PASSWORD}@proxy.internal:3128")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in settings.model_dump_json()
    assert PASSWORD not in repr(parse_proxy_url(settings.proxy_url.get_secret_value()))  # type: ignore[union-attr]
    for bad in (f"http://hookpost:{PASSWORD}@proxy.internal", f"socks5h://hookpost:{PASSWORD}@proxy.internal:1080"):
        with pytest.raises(ValidationError) as refused:
            make_settings(tmp_path, proxy_url=bad)
        assert PASSWORD not in str(refused.value)
        assert "proxy_url" in str(refused.value)
