"""A request id sent to the API follows the message into the Celery worker: real
``hookpost api`` (Gunicorn) and ``hookpost worker`` processes, SQLite and the embedded broker
in a temporary data directory, a real receiver on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.observability.commands import ADMIN_TOKEN, base_env, hookpost_command, hookpost_run
from tests.support.eventually import eventually
from tests.support.processes import free_port
from tests.support.receiver import Receiver

REQUEST_ID = "order-4711.retry:1"


def test_request_id_reaches_the_response_and_the_workers_attempt_line(tmp_path: Path, receiver: Receiver) -> None:
    env = base_env(tmp_path / "data")
    migrated = hookpost_run("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr

    with (
        hookpost_command("worker", "--concurrency", "1", env=env, log_dir=tmp_path) as worker,
        hookpost_command("api", "--workers", "1", env=env, log_dir=tmp_path, port=free_port()) as api,
    ):
        api.wait_http()
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=f"{api.base_url}/api/v1", headers=auth, timeout=30) as client:
            assert client.post("/app", json={"name": "Acme", "uid": "acme"}).status_code == 201
            endpoint = client.post("/app/acme/endpoint", json={"url": f"{receiver.url}/hook"})
            assert endpoint.status_code == 201, endpoint.text
            sent = client.post(
                "/app/acme/msg",
                json={"eventType": "order.paid", "payload": {"order": 4711}},
                headers={"x-request-id": REQUEST_ID},
            )
        assert sent.status_code == 202, sent.text
        assert sent.headers["x-request-id"] == REQUEST_ID

        receiver.wait_for(lambda requests: len(requests) >= 1, timeout=60)

        def attempt_logged() -> bool:
            worker.assert_running()
            return any(line.get("message", "").startswith("attempt ") for line in worker.json_lines())

        eventually(attempt_logged, "the worker's attempt log line", timeout=30)
        attempts = [line for line in worker.json_lines() if line.get("message", "").startswith("attempt ")]
        api_lines = api.json_lines()

    assert len(attempts) == 1, attempts
    assert attempts[0]["request_id"] == REQUEST_ID
    assert attempts[0]["logger"] == "hookpost.delivery.send"
    assert "status=200" in attempts[0]["message"]
    # The API's access line for the request carries it too.
    access = [line for line in api_lines if line.get("path") == "/api/v1/app/acme/msg"]
    assert [line["request_id"] for line in access] == [REQUEST_ID]
    # Both logs are JSON, one object per line (the worker's last line is Celery's own
    # "Warm shutdown" notice, which it prints rather than logs).
    for command in (api, worker):
        for line in command.output().splitlines():
            if line.startswith("{"):
                json.loads(line)
        stray = [line for line in command.non_json_lines() if "Warm shutdown" not in line]
        assert not stray, (command.name, stray)
