"""Creating or updating an endpoint at a literally blocked address is a 422; nothing is sent."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hookpost.app import create_app
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.support.databases import upgrade_to_head

BLOCKED = [
    "http://127.0.0.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 in decimal
    "http://0x7f.0.0.1/hook",  # hex
    "http://0177.0.0.1/hook",  # octal
    "http://127.1/hook",  # short form
    "http://localhost:8080/hook",
    "http://api.localhost/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254, mapped and in hex
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://[fd00:ec2::254]/hook",  # AWS metadata over IPv6 (unique local)
    "http://100.64.0.1/hook",  # CGNAT
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",  # multicast
    "http://240.0.0.1/hook",  # reserved
    "http://[fe80::1]/hook",  # link-local
    "http://[fc00::1]/hook",
    # IPv6 forms carrying a non-public IPv4 address, and special-purpose ranges (issue 17)
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 to 169.254.169.254
    "http://[64:ff9b:1::a9fe:a9fe]/hook",  # local-use NAT64
    "http://[2002:7f00:1::]/hook",  # 6to4 around 127.0.0.1
    "http://[::7f00:1]/hook",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]/hook",  # IPv4-translated
    "http://192.0.0.192/hook",  # IETF protocol assignments
    "http://198.18.0.1/hook",  # benchmarking
    "http://[2001:db8::1]/hook",  # documentation
]


@pytest.fixture
def strict_client(tmp_path: Path) -> Iterator[TestClient]:
    """No allowed networks: Hookpost's default."""
    settings = make_settings(tmp_path, allowed_networks=[])
    upgrade_to_head(settings)
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def _app(client: TestClient) -> str:
    app_id: str = client.post("/api/v1/app", json={"name": "addresses"}).json()["id"]
    return app_id


@pytest.mark.parametrize("url", BLOCKED)
def test_blocked_literal_addresses_are_refused_at_creation(strict_client: TestClient, url: str) -> None:
    response = strict_client.post(f"/api/v1/app/{_app(strict_client)}/endpoint", json={"url": url})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "url"]
    assert "HOOKPOST_ALLOWED_NETWORKS" in error["msg"]


@pytest.mark.parametrize("method", ["put", "patch"])
def test_blocked_literal_addresses_are_refused_on_update(strict_client: TestClient, method: str) -> None:
    app_id = _app(strict_client)
    endpoint = strict_client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "https://hooks.example.com/"}).json()
    response = strict_client.request(
        method, f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}", json={"url": "http://169.254.169.254/"}
    )
    assert response.status_code == 422
    assert strict_client.get(f"/api/v1/app/{app_id}/endpoint/{endpoint['id']}").json()["url"] == endpoint["url"]


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hook", "https://[2606:4700::1111]/hook", "https://hooks.example.com/"]
)
def test_public_addresses_and_hostnames_are_accepted(strict_client: TestClient, url: str) -> None:
    # Hostnames are checked on what they resolve to, at every connect, not here.
    assert strict_client.post(f"/api/v1/app/{_app(strict_client)}/endpoint", json={"url": url}).status_code == 201


def test_allowed_networks_open_their_range_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allowed_networks=[ipaddress.ip_network("10.1.0.0/16")])
    upgrade_to_head(settings)
    with TestClient(create_app(settings), headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        app_id = _app(client)
        assert client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://10.1.2.3/"}).status_code == 201
        assert client.post(f"/api/v1/app/{app_id}/endpoint", json={"url": "http://10.2.0.1/"}).status_code == 422
