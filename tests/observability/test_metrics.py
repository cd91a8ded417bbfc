"""``/metrics``: route templates as labels, the backlog gauges from the database, and the totals
of several processes adding up (real Gunicorn with two Uvicorn workers; ``hookpost serve``,
whose delivery worker shares the API's metrics folder)."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, update

from hookpost.kit.time import utcnow
from hookpost.settings import Settings
from hookpost.storage.models import Delivery
from tests.observability.commands import (
    ADMIN_TOKEN,
    STARTUP_DEADLINE,
    Command,
    base_env,
    hookpost_command,
    hookpost_run,
)
from tests.support.eventually import eventually
from tests.support.processes import free_port
from tests.support.receiver import Receiver

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that have these labels, whatever their others."""
    wanted = frozenset(labels.items())
    return sum(
        sample for (found, sample_labels), sample in samples.items() if found == name and wanted <= sample_labels
    )


SUCCESS = {"class": "2xx"}  # a successful attempt's class label (its outcome is "success")


def scrape(client: TestClient | httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def test_requests_are_counted_by_route_template_not_by_url(client: TestClient) -> None:
    before = scrape(client)
    for number in range(7):
        client.get(f"/api/v1/app/app_{number}")  # seven different URLs, one route
    client.get("/no/such/path")
    after = scrape(client)

    route = "/api/v1/app/{app_id}"
    counted = value(after, "hookpost_http_requests_total", method="GET", route=route, status="404")
    assert counted - value(before, "hookpost_http_requests_total", method="GET", route=route, status="404") == 7
    timed = value(after, "hookpost_http_request_duration_seconds_count", method="GET", route=route)
    assert timed - value(before, "hookpost_http_request_duration_seconds_count", method="GET", route=route) == 7
    unmatched = ("hookpost_http_requests_total", {"method": "GET", "route": "unmatched", "status": "404"})
    assert value(after, unmatched[0], **unmatched[1]) - value(before, unmatched[0], **unmatched[1]) == 1
    assert not any("app_3" in str(labels) for _, labels in after)


def test_backlog_gauges_come_from_the_database(client: TestClient, settings: Settings) -> None:
    app = client.post("/api/v1/app", json={"name": "x"}).json()["id"]
    client.post(f"/api/v1/app/{app}/endpoint", json={"url": "http://127.0.0.1:9/hook"})
    for _ in range(3):  # no worker runs: the deliveries stay due
        assert client.post(f"/api/v1/app/{app}/msg", json={"eventType": "a", "payload": {}}).status_code == 202
    sync_url = settings.database_url.replace("+aiosqlite", "")
    engine = create_engine(sync_url)
    with engine.begin() as connection:
        connection.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(minutes=5)))
    engine.dispose()

    samples = scrape(client)

    assert value(samples, "hookpost_due_deliveries") == 3
    assert 300 <= value(samples, "hookpost_oldest_due_delivery_age_seconds") < 400
    assert value(samples, "hookpost_messages_accepted_total") >= 3


def test_totals_add_up_across_two_gunicorn_workers(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data")
    assert hookpost_run("migrate", env=env).returncode == 0
    route = "/api/v1/app"
    with hookpost_command("api", "--workers", "2", env=env, log_dir=tmp_path, port=free_port()) as api:
        api.wait_http()
        sent = send_until_both_workers_served(api, route, at_least=40)
        scrapes = scrape_until_counted(api, route, sent)
        pids_serving = workers_that_served(api, route)

    assert len(pids_serving) == 2, pids_serving
    for samples in scrapes:  # whichever worker answered the scrape, the same totals
        assert value(samples, "hookpost_http_requests_total", method="GET", route=route, status="200") == sent
        assert value(samples, "hookpost_http_request_duration_seconds_count", method="GET", route=route) == sent


FOLD = """
import json, multiprocessing, os, sys
from pathlib import Path
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from hookpost.observability.multiprocess import fold_dead_process

COUNTER = Counter("c", "c", ["k"])
HISTOGRAM = Histogram("h", "h", buckets=(1, 10))

def count(n):
    COUNTER.labels(k="a").inc(n)
    HISTOGRAM.observe(n)

def totals():
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return {s.name + str(sorted(s.labels.items())): s.value for m in registry.collect() for s in m.samples}

folder = Path(sys.argv[1])
pids = []
for n in (1, 2, 30):
    process = multiprocessing.get_context("fork").Process(target=count, args=(n,))
    process.start()
    process.join()
    pids.append(process.pid)
before = totals()
for pid in pids:
    fold_dead_process(folder, pid)
left = sorted(p.name for pid in pids for p in folder.glob(f"*_{pid}.db"))
files = sorted(p.name for p in folder.glob("*.db"))
print(json.dumps({"before": before, "after": totals(), "left": left, "files": files}))
"""


def test_folding_a_dead_process_keeps_every_total(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FOLD, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    outcome = json.loads(result.stdout)

    assert outcome["before"] == outcome["after"]
    assert outcome["after"]["c_total[('k', 'a')]"] == 33
    assert outcome["after"]["h_count[]"] == 3
    assert outcome["after"]["h_bucket[('le', '10.0')]"] == 2
    assert outcome["left"] == []  # the dead processes' own files are gone
    assert {"counter_archive.db", "histogram_archive.db"} <= set(outcome["files"])


def test_totals_survive_workers_being_replaced(tmp_path: Path) -> None:
    # Each worker is replaced after about 25 requests, so several processes count a share.
    env = base_env(tmp_path / "data", HOOKPOST_WEB_MAX_REQUESTS="25")
    assert hookpost_run("migrate", env=env).returncode == 0
    route = "/api/v1/app"
    folder = tmp_path / "data" / "metrics" / "api"
    with hookpost_command("api", "--workers", "2", env=env, log_dir=tmp_path, port=free_port()) as api:
        api.wait_http()
        # While both workers restart at once, requests wait in the listen backlog for one to boot.
        sent = send_until_both_workers_served(api, route, at_least=60, timeout=STARTUP_DEADLINE)
        scrapes = scrape_until_counted(api, route, sent)
        pids_serving = workers_that_served(api, route)
        files = sorted(path.name for path in folder.glob("counter_*.db"))

    assert len(pids_serving) >= 3, pids_serving
    for samples in scrapes:
        assert value(samples, "hookpost_http_requests_total", method="GET", route=route, status="200") == sent
    # The replaced workers' counts were folded into one archive file, not left one per pid.
    assert "counter_archive.db" in files
    assert len(files) <= 1 + 3, files  # the archive, the two live workers, maybe one exiting


def scrape_until_counted(api: Command, route: str, sent: int) -> list[Samples]:
    """Scrapes, once the last request is counted (a worker counts it as its answer leaves),
    until six in a row have been taken; whichever worker answers."""

    def counted() -> bool:
        samples = parse(httpx.get(f"{api.base_url}/metrics", timeout=10).text)
        return value(samples, "hookpost_http_requests_total", method="GET", route=route, status="200") >= sent

    eventually(counted, f"{sent} requests on /metrics", timeout=30)
    return [parse(httpx.get(f"{api.base_url}/metrics", timeout=10).text) for _ in range(6)]


def send_until_both_workers_served(
    api: Command, route: str, at_least: int, limit: int = 2000, timeout: float = 30
) -> int:
    """GET ``route`` on fresh connections, 4 at a time, until both workers have answered
    some (their access lines say which); returns exactly how many were sent."""
    sent = 0
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "connection": "close"}

    def get(_: int) -> int:
        return httpx.get(api.base_url + route, headers=headers, timeout=timeout).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        while sent < at_least or len(workers_that_served(api, route)) < 2:
            assert sent < limit, f"{limit} requests and one worker never answered"
            statuses = list(pool.map(get, range(20)))
            assert statuses == [200] * 20, statuses
            sent += 20
            api.assert_running()
    return sent


def workers_that_served(api: Command, route: str) -> set[int]:
    access = [line for line in api.json_lines() if line.get("logger") == "uvicorn.access"]
    return {line["pid"] for line in access if line.get("path") == route}


def test_serve_scrape_includes_the_delivery_workers_numbers(tmp_path: Path, receiver: Receiver) -> None:
    env = base_env(tmp_path / "data")
    messages = 5
    args = ("serve", "--workers", "2", "--concurrency", "1")
    with hookpost_command(*args, env=env, log_dir=tmp_path, port=free_port()) as serve:
        serve.wait_http()
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=serve.base_url, headers=auth, timeout=30) as client:
            app = client.post("/api/v1/app", json={"name": "x"}).json()["id"]
            created = client.post(f"/api/v1/app/{app}/endpoint", json={"url": f"{receiver.url}/hook"})
            assert created.status_code == 201, created.text
            for number in range(messages):
                sent = client.post(f"/api/v1/app/{app}/msg", json={"eventType": "e", "payload": {"n": number}})
                assert sent.status_code == 202, sent.text
            receiver.wait_for(lambda requests: len(requests) >= messages, timeout=60)

            def all_counted() -> bool:
                serve.assert_running()
                samples = scrape(client)
                return value(samples, "hookpost_delivery_attempts_total", outcome="success", **SUCCESS) >= messages

            eventually(all_counted, "the worker's attempts in the API's /metrics", timeout=30)
            samples = scrape(client)

    assert value(samples, "hookpost_messages_accepted_total") == messages
    assert value(samples, "hookpost_delivery_attempts_total", outcome="success", **SUCCESS) == messages
    assert total(samples, "hookpost_delivery_attempts_total", outcome="failure") == 0
    assert value(samples, "hookpost_delivery_latency_seconds_count") == messages
    assert value(samples, "hookpost_delivery_latency_seconds_bucket", le="+Inf") == messages
    assert value(samples, "hookpost_due_deliveries") == 0
    assert value(samples, "hookpost_oldest_due_delivery_age_seconds") == 0
