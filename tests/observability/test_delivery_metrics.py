"""What the dashboard's failure and saturation panels read: attempts counted by the class of what
they met, and the deliveries a worker holds against its limit, from a real ``hookpost serve``
(API and delivery worker sharing one /metrics) delivering to real receivers on loopback."""

from __future__ import annotations

import errno
import ssl
from pathlib import Path

import httpx
import pytest

from hookpost.delivery.network import DestinationRefused, DnsLookupFailed
from hookpost.delivery.sender import OUTCOME_CLASSES, AttemptResult, describe_failure
from tests.observability.commands import ADMIN_TOKEN, base_env, hookpost_command
from tests.observability.test_metrics import Samples, scrape, total, value
from tests.support.eventually import eventually
from tests.support.processes import free_port
from tests.support.receiver import Receiver

IN_FLIGHT_LIMIT = 7


def attempts(samples: Samples, outcome_class: str) -> float:
    return total(samples, "hookpost_delivery_attempts_total", **{"class": outcome_class})


def test_failed_attempts_are_counted_by_class_and_held_deliveries_against_the_limit(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", HOOKPOST_WORKER_IN_FLIGHT=str(IN_FLIGHT_LIMIT))
    closed_port = free_port()  # nothing listens there: the connection is refused
    # A slow receiver keeps one delivery held while /metrics is read.
    receiver = Receiver(script={"/busy": [(503, {})] * 20}, delays={"/slow": 5.0})
    with (
        receiver,
        hookpost_command(
            "serve", "--workers", "1", "--concurrency", "1", env=env, log_dir=tmp_path, port=free_port()
        ) as serve,
    ):
        serve.wait_http()
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=serve.base_url, headers=auth, timeout=30) as client:
            app = client.post("/api/v1/app", json={"name": "x"}).json()["id"]
            for url in (f"{receiver.url}/busy", f"http://127.0.0.1:{closed_port}/hook"):
                created = client.post(f"/api/v1/app/{app}/endpoint", json={"url": url})
                assert created.status_code == 201, created.text
            assert client.post(f"/api/v1/app/{app}/msg", json={"eventType": "e", "payload": {}}).status_code == 202

            def both_failures_counted() -> bool:
                serve.assert_running()
                samples = scrape(client)
                return attempts(samples, "5xx") >= 1 and attempts(samples, "connect") >= 1

            eventually(both_failures_counted, "a 503 and a refused connection in /metrics", timeout=60)
            failed = scrape(client)

            created = client.post(f"/api/v1/app/{app}/endpoint", json={"url": f"{receiver.url}/slow"})
            assert created.status_code == 201, created.text
            sent = client.post(f"/api/v1/app/{app}/msg", json={"eventType": "e", "payload": {}})
            assert sent.status_code == 202, sent.text
            receiver.wait_for(lambda requests: any(r.path == "/slow" for r in requests), timeout=60)
            # The gauge is written when a delivery is claimed, before it is sent.
            holding = scrape(client)

    assert value(failed, "hookpost_delivery_attempts_total", outcome="failure", **{"class": "5xx"}) >= 1
    assert value(failed, "hookpost_delivery_attempts_total", outcome="failure", **{"class": "connect"}) >= 1
    assert attempts(failed, "2xx") == 0
    assert value(holding, "hookpost_worker_in_flight") >= 1
    assert value(holding, "hookpost_worker_in_flight_limit") == IN_FLIGHT_LIMIT


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (AttemptResult(204, "", 1, None), "2xx"),
        (AttemptResult(302, "", 1, "HTTP 302"), "3xx"),
        (AttemptResult(429, "", 1, "HTTP 429"), "4xx"),
        (AttemptResult(503, "", 1, "HTTP 503"), "5xx"),
        (AttemptResult(0, "", 1, describe_failure(TimeoutError())), "timeout"),
        (AttemptResult(0, "", 1, describe_failure(httpx.ConnectTimeout("slow"))), "timeout"),
        (AttemptResult(0, "", 1, describe_failure(httpx.ReadTimeout("slow"))), "timeout"),
        (AttemptResult(0, "", 1, describe_failure(DnsLookupFailed("no such host"))), "connect"),
        (AttemptResult(0, "", 1, describe_failure(ssl.SSLError(1, "bad certificate"))), "connect"),
        (AttemptResult(0, "", 1, describe_failure(OSError(errno.ECONNREFUSED, "refused"))), "connect"),
        (AttemptResult(0, "", 1, describe_failure(httpx.ConnectError("unreachable"))), "connect"),
        (AttemptResult(0, "", 1, describe_failure(DestinationRefused("10.0.0.1 is not allowed"))), "refused"),
        (AttemptResult(0, "", 1, describe_failure(ConnectionResetError())), "other"),
        (AttemptResult(0, "", 0, "internal error: KeyError: 'x'"), "other"),
        (AttemptResult(101, "", 1, "HTTP 101"), "other"),
    ],
)
def test_each_kind_of_failure_has_its_class(result: AttemptResult, expected: str) -> None:
    assert result.outcome_class == expected
    assert expected in OUTCOME_CLASSES
