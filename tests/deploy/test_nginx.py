"""deploy/nginx/hookpost.conf with a real nginx in front of a real Gunicorn, over HTTPS.

The file is used as shipped except for what any installation changes: the upstream's
address (a Gunicorn the test starts on a free loopback port), the listening ports, the
certificate paths (the self-signed certificate compose.yaml's certificate step makes), and the
files nginx writes (all in the test's folder, with nginx run as the current user).

The client talks to nginx from 127.0.0.2, nginx to Gunicorn from 127.0.0.1: Gunicorn's
access log must show 127.0.0.2, the address nginx passed on and Gunicorn trusts nginx for.

nginx comes from .ci/run (Debian's package). Without it these tests skip, saying so; under
CI=true they fail instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from hookpost.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.console.support import csrf_token_of
from tests.deploy.test_deploy_files import make_certificate_as_compose_does
from tests.support.databases import upgrade_to_head
from tests.support.eventually import eventually
from tests.support.nginx import nginx_conf, tool
from tests.support.processes import celery_worker, free_port, settings_env
from tests.support.receiver import Receiver
from tests.support.tutorial import run_tutorial

STARTUP_DEADLINE = 120.0  # generous: two loaded cores; every wait is a poll that ends at once
CLIENT_ADDRESS = "127.0.0.2"  # the client's source address: not nginx's, which is 127.0.0.1
DIRECT_ADDRESS = "127.0.0.3"  # a client of Gunicorn itself, which it does not trust as a proxy
STREAM_ROUTE = "/api/v1/app/{app_id}/stream"
ONE_MIB = 1024 * 1024


@dataclass
class Stack:
    folder: Path
    settings: Settings
    receiver: Receiver
    https_url: str
    http_url: str
    gunicorn_url: str
    gunicorn_log: Path
    certificate: Path

    def client(self) -> httpx.Client:
        """An HTTPS client of nginx that trusts the test's certificate, from CLIENT_ADDRESS."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        transport = httpx.HTTPTransport(verify=context, local_address=CLIENT_ADDRESS)
        return httpx.Client(
            base_url=self.https_url,
            transport=transport,
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )

    def access_log(self) -> list[dict[str, object]]:
        """Gunicorn's access log lines (JSON, one per request its workers answered)."""
        entries = []
        for line in self.gunicorn_log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("logger") == "uvicorn.access":
                    entries.append(entry)
        return entries

    def logged(self, path: str) -> dict[str, object]:
        """The access log line of the one request for ``path`` (with its query), once written."""
        found: list[dict[str, object]] = []

        def written() -> bool:
            found[:] = [entry for entry in self.access_log() if entry.get("path") == path]
            return bool(found)

        eventually(written, f"Gunicorn's access log line for {path}", timeout=STARTUP_DEADLINE)
        assert len(found) == 1, found
        return found[0]


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _certificate_as_compose_makes_it(folder: Path) -> tuple[Path, Path]:
    made = make_certificate_as_compose_does(folder / "tls")
    assert made.returncode == 0, made.stderr
    return folder / "tls" / "fullchain.pem", folder / "tls" / "privkey.pem"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """nginx (HTTPS and HTTP) -> Gunicorn with two workers -> the app on SQLite, plus a Celery
    worker and a receiver: the embedded configuration of the README's tutorial."""
    nginx = tool("nginx", "/usr/sbin/nginx")
    folder = tmp_path_factory.mktemp("nginx")
    settings = make_settings(folder / "data", log_format="json")
    settings.data_dir.mkdir()
    upgrade_to_head(settings)
    certificate, key = _certificate_as_compose_makes_it(folder)

    gunicorn_port, https_port, http_port = free_port(), free_port(), free_port()
    # Gunicorn trusts X-Forwarded-* from nginx's address only.
    # (A long worker timeout: it also bounds a worker's boot, slow on a loaded CI machine.)
    env = {**settings_env(settings), "FORWARDED_ALLOW_IPS": "127.0.0.1", "HOOKPOST_WEB_TIMEOUT": "120"}
    gunicorn_log = folder / "gunicorn.log"
    api = [sys.executable, "-m", "hookpost", "api", "--workers", "2", "--bind", f"127.0.0.1:{gunicorn_port}"]
    conf = nginx_conf(
        folder,
        upstreams=[f"127.0.0.1:{gunicorn_port}"],
        https_port=https_port,
        http_port=http_port,
        cert=certificate,
        key=key,
    )
    nginx_argv = [nginx, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
    checked = subprocess.run([*nginx_argv, "-t"], capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr

    with Receiver() as receiver, celery_worker(settings):
        gunicorn = _start(api, env, gunicorn_log)
        server = _start([*nginx_argv, "-g", "daemon off;"], dict(os.environ), folder / "nginx.out")
        stack = Stack(
            folder=folder,
            settings=settings,
            receiver=receiver,
            https_url=f"https://127.0.0.1:{https_port}",
            http_url=f"http://127.0.0.1:{http_port}",
            gunicorn_url=f"http://127.0.0.1:{gunicorn_port}",
            gunicorn_log=gunicorn_log,
            certificate=certificate,
        )
        try:
            with stack.client() as client:

                def healthy() -> bool:
                    assert gunicorn.poll() is None, gunicorn_log.read_text()
                    assert server.poll() is None, (folder / "error.log").read_text()
                    try:
                        return client.get("/api/v1/health").status_code == 204
                    except httpx.TransportError:
                        return False

                eventually(healthy, "the API through nginx", timeout=STARTUP_DEADLINE)
            yield stack
        finally:
            _stop(server, signal.SIGQUIT)  # nginx's graceful stop
            _stop(gunicorn)


def test_the_tutorial_runs_over_https_through_nginx(stack: Stack) -> None:
    with stack.client() as client:
        run = run_tutorial(client, stack.receiver)

        listed = client.get(f"/api/v1/app/{run.app_id}/attempt/msg/{run.message_id}")
        assert listed.status_code == 200, listed.text
        assert listed.headers["strict-transport-security"].startswith("max-age=")
        assert listed.headers["server"] == "nginx"  # server_tokens off: no version
    assert listed.http_version == "HTTP/1.1"


def test_the_app_sees_the_real_client_address_and_scheme(stack: Stack) -> None:
    probe = f"/api/v1/health?probe={secrets.token_hex(6)}"
    with stack.client() as client:
        # What a client claims is replaced by what nginx saw.
        answer = client.get(probe, headers={"x-forwarded-for": "203.0.113.7"})
        assert answer.status_code == 204
        # The app builds its absolute URLs from X-Forwarded-Proto and the Host nginx passed.
        redirect = client.get("/api/v1/app/")
    port = stack.https_url.rsplit(":", 1)[1]
    assert redirect.status_code == 307, redirect.text
    assert redirect.headers["location"] == f"https://127.0.0.1:{port}/api/v1/app"

    assert str(stack.logged(probe)["client"]).startswith(f"{CLIENT_ADDRESS}:")

    # Straight to Gunicorn, from an address it does not trust: the header is ignored.
    direct = f"/api/v1/health?probe={secrets.token_hex(6)}"
    transport = httpx.HTTPTransport(local_address=DIRECT_ADDRESS)
    with httpx.Client(base_url=stack.gunicorn_url, transport=transport, timeout=30) as client:
        assert client.get(direct, headers={"x-forwarded-for": "203.0.113.7"}).status_code == 204
    assert str(stack.logged(direct)["client"]).startswith(f"{DIRECT_ADDRESS}:")


def test_a_body_over_the_apps_1_mib_limit_gets_413_from_nginx(stack: Stack) -> None:
    with stack.client() as client:
        app = client.post("/api/v1/app", json={"name": "big bodies"}).json()["id"]
        url = f"/api/v1/app/{app}/msg"
        empty = json.dumps({"eventType": "big", "payload": {"pad": ""}}).encode()
        exactly = json.dumps({"eventType": "big", "payload": {"pad": "x" * (ONE_MIB - len(empty))}}).encode()
        assert len(exactly) == ONE_MIB
        json_body = {"content-type": "application/json"}

        at_limit = client.post(url, content=exactly, headers=json_body)
        over = client.post(url, content=exactly + b" ", headers=json_body)

    assert at_limit.status_code == 202, at_limit.text  # nginx is not stricter than the app
    assert over.status_code == 413
    assert over.headers["content-type"] == "text/html"  # nginx's page, not the app's JSON
    assert not [entry for entry in stack.access_log() if entry.get("status") == 413], "reached Gunicorn"


def test_json_is_gzipped_by_nginx(stack: Stack) -> None:
    with stack.client() as client:
        through_nginx = client.get("/openapi.json", headers={"accept-encoding": "gzip"})
    direct = httpx.get(f"{stack.gunicorn_url}/openapi.json", headers={"accept-encoding": "gzip"}, timeout=30)

    assert through_nginx.status_code == 200
    assert through_nginx.headers["content-encoding"] == "gzip"
    assert through_nginx.json()["info"]["title"] == "Hookpost"
    assert "content-encoding" not in direct.headers  # the app itself does not compress


def test_plain_http_is_redirected_to_https(stack: Stack) -> None:
    answer = httpx.get(f"{stack.http_url}/api/v1/health", timeout=30)

    assert answer.status_code == 301
    assert answer.headers["location"] == "https://127.0.0.1/api/v1/health"


def test_metrics_are_not_published(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get("/metrics").status_code == 404
    assert httpx.get(f"{stack.gunicorn_url}/metrics", timeout=30).status_code == 200


async def stream_route_exists(stack: Stack, app: str) -> bool:
    """Asked of Gunicorn directly: a handshake for a WebSocket route the app lacks gets 403."""
    url = stack.gunicorn_url.replace("http://", "ws://", 1) + STREAM_ROUTE.format(app_id=app)
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with connect(url, additional_headers=auth, local_addr=(DIRECT_ADDRESS, 0), open_timeout=STARTUP_DEADLINE):
            return True
    except InvalidStatus as refused:
        if refused.response.status_code in (403, 404):
            return False
        raise


async def test_the_event_stream_over_wss_through_nginx(stack: Stack) -> None:
    with stack.client() as client:
        app = client.post("/api/v1/app", json={"name": "streamed"}).json()["id"]
        created = client.post(f"/api/v1/app/{app}/endpoint", json={"url": f"{stack.receiver.url}/streamed"})
        assert created.status_code == 201, created.text
        if not await stream_route_exists(stack, app):
            pytest.skip(f"the app has no WebSocket route {STREAM_ROUTE} yet (the live event stream of issue 3)")

        wss_url = stack.https_url.replace("https://", "wss://", 1) + STREAM_ROUTE.format(app_id=app)
        async with connect(
            wss_url,
            ssl=ssl.create_default_context(cafile=str(stack.certificate)),
            additional_headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            local_addr=(CLIENT_ADDRESS, 0),
            open_timeout=STARTUP_DEADLINE,
        ) as stream:
            hello = json.loads(await asyncio.wait_for(stream.recv(), STARTUP_DEADLINE))
            assert (hello["type"], hello["appId"]) == ("stream.hello", app)

            sent = client.post(f"/api/v1/app/{app}/msg", json={"eventType": "e", "payload": {"live": True}})
            assert sent.status_code == 202, sent.text
            message_id = sent.json()["id"]
            seen: dict[str, dict[str, object]] = {}
            async with asyncio.timeout(STARTUP_DEADLINE):
                while "attempt.succeeded" not in seen:
                    event = json.loads(await stream.recv())
                    if event.get("msgId") == message_id:
                        seen[event["type"]] = event

    assert seen["message.created"]["appId"] == app
    assert seen["attempt.succeeded"]["statusCode"] == 200
    # Through the stream's own location too, Gunicorn learnt the client's address from nginx.
    handshakes = sorted(
        entry["message"].split(":", 1)[0]
        for entry in (json.loads(line) for line in stack.gunicorn_log.read_text().splitlines() if line.startswith("{"))
        if f'"WebSocket /api/v1/app/{app}/stream" [accepted]' in entry["message"]
    )
    assert handshakes == [CLIENT_ADDRESS, DIRECT_ADDRESS]  # through nginx, and the direct probe


async def test_the_console_and_its_live_stream_through_nginx(stack: Stack) -> None:
    """The pages, a sign-in whose cookie is Secure behind HTTPS, and the stream on that cookie."""
    with stack.client() as client:
        app = client.post("/api/v1/app", json={"name": "console"}).json()["id"]
        del client.headers["authorization"]  # from here on, a browser: cookies only
        page = client.get("/console/sign-in")
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        form = {"token": ADMIN_TOKEN, "csrf_token": csrf_token_of(page.text), "next": f"/console/app/{app}"}
        signed_in = client.post("/console/sign-in", data=form, follow_redirects=True)
        assert signed_in.status_code == 200
        assert signed_in.url.path == f"/console/app/{app}"
        assert "Secure" in signed_in.history[0].headers["set-cookie"]
        assert client.get("/console/static/console.js").status_code == 200
        session = client.cookies["hookpost_session"]

    wss_url = stack.https_url.replace("https://", "wss://", 1) + STREAM_ROUTE.format(app_id=app)
    async with connect(
        wss_url,
        ssl=ssl.create_default_context(cafile=str(stack.certificate)),
        additional_headers={"cookie": f"hookpost_session={session}"},
        origin=stack.https_url,  # the page it came from: the same origin
        local_addr=(CLIENT_ADDRESS, 0),
        open_timeout=STARTUP_DEADLINE,
    ) as stream:
        hello = json.loads(await asyncio.wait_for(stream.recv(), STARTUP_DEADLINE))
    assert (hello["type"], hello["appId"]) == ("stream.hello", app)
