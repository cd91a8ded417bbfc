"""The Kubernetes process model, run for real on loopback: the API as the single Uvicorn
process the api Deployment starts (its command read from deploy/k8s/api.yaml), and
``hookpost worker`` serving its own /metrics as the worker Deployment asks it to."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from tests.observability.commands import ADMIN_TOKEN, Command, base_env, hookpost_command, hookpost_run
from tests.observability.test_metrics import SUCCESS, parse, value
from tests.support.eventually import eventually
from tests.support.processes import free_port
from tests.support.receiver import Receiver

API_MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "api.yaml"


def api_command(port: int) -> list[str]:
    """The api container's command, listening on a loopback port instead of 0.0.0.0:8000."""
    manifest = yaml.safe_load(API_MANIFEST.read_text())
    command: list[str] = list(manifest["spec"]["template"]["spec"]["containers"][0]["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


@contextmanager
def uvicorn_api(env: dict[str, str], log_dir: Path) -> Iterator[Command]:
    port = free_port()
    log = log_dir / "uvicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            api_command(port), env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    command = Command("uvicorn", process, log, f"http://127.0.0.1:{port}")
    try:
        yield command
    finally:
        command.stop()


def test_one_uvicorn_api_and_a_worker_with_its_own_metrics(tmp_path: Path, receiver: Receiver) -> None:
    metrics_port = free_port()
    env = base_env(
        tmp_path / "data",
        HOOKPOST_LOG_FORMAT="json",
        HOOKPOST_WORKER_METRICS_BIND=f"127.0.0.1:{metrics_port}",
    )
    assert hookpost_run("migrate", env=env).returncode == 0
    messages = 3
    with (
        hookpost_command("worker", "--concurrency", "1", env=env, log_dir=tmp_path) as worker,
        uvicorn_api(env, tmp_path) as api,
    ):
        api.wait_http("/readyz")
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=api.base_url, headers=auth, timeout=30) as client:
            app = client.post("/api/v1/app", json={"name": "x"}).json()["id"]
            created = client.post(f"/api/v1/app/{app}/endpoint", json={"url": f"{receiver.url}/hook"})
            assert created.status_code == 201, created.text
            for number in range(messages):
                sent = client.post(f"/api/v1/app/{app}/msg", json={"eventType": "e", "payload": {"n": number}})
                assert sent.status_code == 202, sent.text
            receiver.wait_for(lambda requests: len(requests) >= messages, timeout=60)
            api_samples = parse(client.get("/metrics").text)

        worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"

        def worker_counted_all() -> bool:
            worker.assert_running()
            try:
                samples = parse(httpx.get(worker_metrics, timeout=5).text)
            except httpx.TransportError:
                return False
            return value(samples, "hookpost_delivery_attempts_total", outcome="success", **SUCCESS) >= messages

        eventually(worker_counted_all, f"the worker's own {worker_metrics}", timeout=60)
        worker_samples = parse(httpx.get(worker_metrics, timeout=5).text)
        metrics_dir = tmp_path / "data" / "metrics"
        worker_dirs = [path.name for path in metrics_dir.iterdir()]
        api_lines, api_other = api.json_lines(), api.non_json_lines()

    # The API process alone: its own registry, no folder shared with anything.
    assert value(api_samples, "hookpost_messages_accepted_total") == messages
    route = "/api/v1/app/{app_id}/msg"
    assert value(api_samples, "hookpost_http_requests_total", method="POST", route=route, status="202") == messages
    # The worker's pool processes add up in its own folder, served on its own port.
    assert value(worker_samples, "hookpost_delivery_attempts_total", outcome="success", **SUCCESS) == messages
    assert value(worker_samples, "hookpost_delivery_latency_seconds_count") == messages
    assert worker_dirs == [f"worker-{worker.process.pid}"]
    assert not (metrics_dir / f"worker-{worker.process.pid}").exists(), "a clean stop removes the worker's folder"
    # Uvicorn's own lines are JSON as well once the app has set logging up.
    assert not api_other, api_other
    assert any(line["logger"] == "uvicorn.error" for line in api_lines)
