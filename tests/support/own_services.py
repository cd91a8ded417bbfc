"""A PostgreSQL and a Redis of the test's own, to stop and start mid-run.

The shared servers of tests/support/services.py serve other tests at the same time; an
outage test needs servers nobody else uses.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.processes import free_port
from tests.support.services import unavailable


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        unavailable(f"no {name} under /usr/lib/postgresql")
    return found[-1]


class OwnPostgres:
    """initdb into a temporary directory; pg_ctl to start it and crash-stop it."""

    def __init__(
        self,
        directory: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        options: Sequence[str] = (),
        clients: str | None = None,
    ) -> None:
        """``options``: more ``name=value`` settings for the server (``-c``); ``clients``: a
        network whose hosts may connect too, with a password (loopback needs none)."""
        self.directory = directory
        self.data = directory / "data"
        self.host = host
        self.port = port or free_port()
        self.options = options
        self.clients = clients
        self.password = secrets.token_urlsafe(16) if clients else None
        user = f"postgres:{self.password}" if self.password else "postgres"
        self.url = f"postgresql+asyncpg://{user}@{host}:{self.port}/postgres"
        # initdb refuses to run as root: the server runs as the postgres user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        initdb = [_postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        if self.password:
            password_file = self.directory / "password"
            password_file.write_text(self.password)
            if os.geteuid() == 0:
                shutil.chown(password_file, "postgres", "postgres")
            initdb += ["--pwfile", str(password_file)]
        self._run(*initdb)
        if self.clients:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.clients} scram-sha-256\n")

    def start(self) -> None:
        more = "".join(f" -c {option}" for option in self.options)
        options = f"-p {self.port} -c listen_addresses={self.host} -k {self.directory} -c fsync=off{more}"
        self._run(
            _postgres_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def crash(self) -> None:
        """Stop at once, as a crash would: no checkpoint, connections cut."""
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _processes(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False)
        return [postmaster, *(int(pid) for pid in children.stdout.split())]

    def freeze(self) -> None:
        """Stop answering without closing anything, as a hung server or a lost network does."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            self.thaw()  # a frozen server would not stop
        subprocess.run(
            [*self._as, _postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )


@contextmanager
def own_postgres(
    host: str = "127.0.0.1", port: int | None = None, options: Sequence[str] = (), clients: str | None = None
) -> Iterator[OwnPostgres]:
    """Started from the calling thread: in a network namespace when the test entered one."""
    directory = Path(tempfile.mkdtemp(prefix="hookpost-pg-"))
    directory.chmod(0o755)
    server = OwnPostgres(directory, host, port, options, clients)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


class OwnRedis:
    def __init__(
        self, directory: Path, host: str = "127.0.0.1", port: int | None = None, password: str | None = None
    ) -> None:
        """With ``password``, other hosts may connect (without one Redis admits loopback only)."""
        self.directory = directory
        self.host = host
        self.port = port or free_port()
        self.password = password
        self.url = f"redis://:{password}@{host}:{self.port}/0" if password else f"redis://{host}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("no redis-server")
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no"),
                *(("--requirepass", self.password) if self.password else ()),
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)  # polling interval, bounded by the deadline
        raise AssertionError("own redis-server did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def own_redis(
    directory: Path, host: str = "127.0.0.1", port: int | None = None, password: str | None = None
) -> Iterator[OwnRedis]:
    """Started (and pinged) from the calling thread, like own_postgres."""
    server = OwnRedis(directory, host, port, password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class OwnRabbitMQ:
    """A RabbitMQ node of the test's own, as a process of its own: its node name, Erlang
    cookie (in its own HOME), epmd port, distribution port, data and log folders and config,
    all by RABBITMQ_* variables and files under ``directory``, so it shares nothing with the
    machine's RabbitMQ (rabbit@localhost on 127.0.0.1:5672, which other tests use), not even
    /etc/rabbitmq/rabbitmq-env.conf. It listens for AMQP on ``host`` only; a user of its own
    with a password lets other hosts in (guest is loopback-only)."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.directory = directory
        self.host = host
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(16)
        self.url = f"amqp://hookpost:{self.password}@{host}:{self.port}//"
        self.process: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None

    def _environment(self) -> dict[str, str]:
        home = self.directory / "home"
        home.mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {self.host}:{self.port}\n"
            "default_user = hookpost\n"
            f"default_pass = {self.password}\n"
            "loopback_users = none\n"
            "management_agent.disable_metrics_collector = true\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        epmd_port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(home),
            RABBITMQ_CONF_ENV_FILE=str(self.directory / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=f"hookpost-{secrets.token_hex(3)}@localhost",
            RABBITMQ_CONFIG_FILE=str(self.directory / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.directory / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.directory / "log"),
            RABBITMQ_PID_FILE=str(self.directory / "rabbitmq.pid"),
            RABBITMQ_DIST_PORT=str(free_port()),
            ERL_EPMD_PORT=str(epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_LOGS="-",
            # The epmd this class starts, in the node's process group: one the node started
            # itself (-daemon) would leave its group and outlive it.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false",
        )
        return env

    def start(self) -> None:
        self.launch()
        self.wait()

    def launch(self) -> None:
        """Start the node without waiting for it (it boots for seconds: do something else meanwhile)."""
        binary = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the wrapper in /usr/sbin would switch user
        if not os.path.exists(binary):
            unavailable("no rabbitmq-server under /usr/lib/rabbitmq/bin")
        env = self._environment()
        with (self.directory / "epmd.log").open("wb") as out:
            self.epmd = subprocess.Popen(
                ["epmd", "-port", env["ERL_EPMD_PORT"], "-address", "127.0.0.1"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        with (self.directory / "server.log").open("wb") as out:
            self.process = subprocess.Popen(
                [binary], env=env, cwd=self.directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait(self, timeout: float = 90.0) -> None:
        """Until the node accepts an AMQP connection (from the calling thread's network)."""
        assert self.process is not None, "launch() first"
        from amqp.exceptions import AMQPError  # noqa: PLC0415 - only a RabbitMQ test needs these
        from kombu import Connection  # noqa: PLC0415
        from kombu.exceptions import OperationalError  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "server.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"own rabbitmq-server exited with {self.process.returncode}:\n{log}")
            try:
                with Connection(self.url, connect_timeout=1) as connection:
                    connection.connect()
                    return
            except (OSError, OperationalError, AMQPError):  # not listening yet, or still booting
                time.sleep(0.1)  # polling interval, bounded by the deadline
        raise AssertionError(f"own rabbitmq-server did not accept an AMQP connection within {timeout:.0f} s")

    def stop(self) -> None:
        """Kill the node and everything it started (beam, epmd, erl_child_setup): its group."""
        for process in (self.process, self.epmd):
            if process is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        self.process = self.epmd = None


@contextmanager
def own_rabbitmq(
    directory: Path, host: str = "127.0.0.1", port: int | None = None, *, wait: bool = True
) -> Iterator[OwnRabbitMQ]:
    """Started (and, unless not ``wait``, connected to) from the calling thread, like own_postgres."""
    directory.mkdir(parents=True, exist_ok=True)
    server = OwnRabbitMQ(directory, host, port)
    try:
        server.launch()
        if wait:
            server.wait()
        yield server
    finally:
        server.stop()
