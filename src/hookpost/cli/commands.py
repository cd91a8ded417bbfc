"""The ``hookpost`` command's subcommands: the whole service at once, or any one of its processes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

import hookpost
from hookpost.bench.command import bench
from hookpost.cli.output import console, fail
from hookpost.cli.startup import (
    check_secret_key,
    exec_process,
    find_admin_token,
    load_settings,
    migrate_database,
    operations_env,
    print_banner,
    require_secret_key,
)
from hookpost.kit.secret_box import new_key
from hookpost.kit.self_signed import DEFAULT_HOSTNAMES, ensure_self_signed
from hookpost.kit.urls import redact_url
from hookpost.observability import heartbeat
from hookpost.process.commands import (
    api_argv,
    child_env,
    dev_argv,
    host_port,
    scheduler_argv,
    serve_processes,
    worker_argv,
)
from hookpost.process.serve_main import serve_argv
from hookpost.process.supervisor import ChildSpec
from hookpost.settings import MIN_ADMIN_TOKEN_LENGTH, Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _without_flag_types(params: list[Any]) -> list[Any]:
    """typer's help gives every option a type column, a flag's too (``--help <bool>``) as if it
    took a value; an empty metavar leaves a flag's column blank."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_types(super().get_params(ctx))


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_types(super().get_params(ctx))


app = typer.Typer(
    name="hookpost",
    cls=_Group,
    help="Hookpost: self-hosted webhook delivery, signed, retried and never lost.",
    no_args_is_help=True,
    add_completion=False,
    # Locals in a traceback would include the admin token and database passwords.
    pretty_exceptions_show_locals=False,
)

Host = Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 for every one.")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")]
Workers = Annotated[int, typer.Option(min=1, envvar="WEB_CONCURRENCY", help="API worker processes.")]
Concurrency = Annotated[
    int | None,
    typer.Option(
        min=1,
        show_default="one per CPU",
        help="Worker processes, each keeping up to HOOKPOST_WORKER_IN_FLIGHT deliveries in flight.",
    ),
]


def _version(show: bool) -> None:
    if show:
        console.print(f"hookpost {hookpost.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Hookpost: self-hosted webhook delivery, signed, retried and never lost.

    Configured by HOOKPOST_* environment variables; with none set, everything (SQLite
    database, filesystem broker, admin token) lives in ./hookpost-data.
    """


@app.command(cls=_Command)
def serve(
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default="HOOKPOST_SERVE_API_WORKERS, else 1 on SQLite and 2 on PostgreSQL",
            help="API worker processes.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default="HOOKPOST_SERVE_WORKER_CONCURRENCY, else 1 on SQLite and one per CPU on PostgreSQL",
            help="Worker processes, each keeping up to HOOKPOST_WORKER_IN_FLIGHT deliveries in flight.",
        ),
    ] = None,
) -> None:
    """Run the whole service: migrations, then the API, a worker and the scheduler.

    Ctrl-C stops all of them. Set HOOKPOST_DATABASE_URL (PostgreSQL) and
    HOOKPOST_BROKER_URL (Redis or RabbitMQ) to run the production configuration.
    """
    settings = load_settings()
    require_secret_key(settings)  # before any child starts: they all read the key it makes
    migrate_database(settings)
    check_secret_key(settings)
    token, admin_token_row = find_admin_token(settings)
    env = operations_env(child_env(settings, token), settings, log_format="json", metrics="serve")
    env.pop("HOOKPOST_WORKER_METRICS_BIND", None)  # the API's /metrics already has the worker's numbers
    print_banner(settings, host, port, admin_token_row)
    processes = serve_processes(settings, workers, concurrency)
    children = [
        ChildSpec("api", api_argv([host_port(host, port)], processes.api_workers)),
        ChildSpec("worker", worker_argv(processes.worker_concurrency)),
        ChildSpec("scheduler", scheduler_argv()),
    ]
    # The supervisor carries none of this command's imports (the CLI, Alembic, the models).
    exec_process(serve_argv(children), env)


@app.command(cls=_Command)
def api(
    host: Annotated[
        str | None,
        typer.Option(show_default=DEFAULT_HOST, help="Interface to listen on."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, show_default=str(DEFAULT_PORT), help="TCP port."),
    ] = None,
    bind: Annotated[
        list[str] | None,
        typer.Option(
            show_default="HOOKPOST_BIND, else 127.0.0.1:8000",
            help="Address instead of --host/--port, repeatable: HOST:PORT or unix:/path/to.sock.",
        ),
    ] = None,
    workers: Workers = 2,
) -> None:
    """Run the HTTP API alone: Gunicorn with Uvicorn workers.

    Needs the admin token (HOOKPOST_ADMIN_TOKEN or the one stored in the data
    directory) and a migrated database (hookpost migrate).
    """
    settings = load_settings()
    require_secret_key(settings)
    check_secret_key(settings)
    token = settings.load_admin_token(create=False)
    if token is None:
        fail(
            "no admin token is configured, so the API would let nobody in. Set "
            f"HOOKPOST_ADMIN_TOKEN (at least {MIN_ADMIN_TOKEN_LENGTH} characters) or store one "
            f"in {settings.admin_token_file}; `hookpost serve` creates one there on first start."
        )
    if bind and (host is not None or port is not None):
        fail("give either --bind or --host/--port, not both.", code=2)
    binds = list(bind or [])
    if not binds and (host is not None or port is not None):
        binds = [host_port(host or DEFAULT_HOST, port or DEFAULT_PORT)]
    env = operations_env(child_env(settings, token), settings, log_format="json", metrics="api")
    exec_process(api_argv(binds, workers), env)


@app.command(cls=_Command)
def worker(concurrency: Concurrency = None) -> None:
    """Run a delivery worker (Celery). Run as many as the load needs."""
    settings = load_settings()
    require_secret_key(settings)
    check_secret_key(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Its own /metrics only when asked for; its pid stays the same through the exec.
    metrics = f"worker-{os.getpid()}" if settings.worker_metrics_bind else None
    env = child_env(settings, settings.load_admin_token(create=False))
    exec_process(worker_argv(concurrency), operations_env(env, settings, log_format="json", metrics=metrics))


@app.command(cls=_Command)
def scheduler() -> None:
    """Run the scheduler that queues due retries and runs background work. Replicas are safe."""
    settings = load_settings()
    require_secret_key(settings)
    check_secret_key(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(settings, settings.load_admin_token(create=False))
    exec_process(scheduler_argv(), operations_env(env, settings, log_format="json"))


@app.command(cls=_Command)
def dev(host: Host = DEFAULT_HOST, port: Port = DEFAULT_PORT) -> None:
    """Run migrations, then the API alone under Uvicorn, reloading on code changes."""
    settings = load_settings()
    require_secret_key(settings)
    migrate_database(settings)
    check_secret_key(settings)
    token, admin_token_row = find_admin_token(settings)
    print_banner(settings, host, port, admin_token_row)
    console.print("The API only: deliveries need `hookpost worker` and `hookpost scheduler` too.")
    exec_process(dev_argv(host, port), operations_env(child_env(settings, token), settings, log_format="plain"))


@app.command(cls=_Command)
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = load_settings()
    require_secret_key(settings)
    migrate_database(settings)
    console.print(f"Database is up to date: {redact_url(settings.database_url)}")


app.command(cls=_Command)(bench)


@app.command("rotate-key", cls=_Command)
def rotate_key(
    new: Annotated[bool, typer.Option("--new", help="Only print a new key, for HOOKPOST_SECRET_KEY.")] = False,
) -> None:
    """Re-encrypt every stored secret under the first key of HOOKPOST_SECRET_KEY.

    To rotate: put a new key in front (HOOKPOST_SECRET_KEY=new,old) on every process, run
    this, then drop the old key. On the embedded default (no HOOKPOST_SECRET_KEY) a new key
    goes in front in the data directory's key file; restart `hookpost serve` afterwards.
    """
    if new:
        console.print(new_key())
        return
    settings = load_settings()
    keys = require_secret_key(settings)
    if settings.secret_key is None:  # embedded: the key file is ours to change
        keys = [new_key(), *keys]
        settings.secret_key_file.write_text(",".join(keys) + "\n")
    rewritten = asyncio.run(_reencrypt(settings))
    console.print(f"Re-encrypted the secrets of {rewritten} rows under the first key ({len(keys)} keys configured).")
    if settings.secret_key is None:
        console.print(f"New key in front in {settings.secret_key_file}; restart hookpost serve to use it.")
    elif len(keys) > 1:
        console.print("Once every process runs with this HOOKPOST_SECRET_KEY, the keys after the first can go.")


async def _reencrypt(settings: Settings) -> int:
    # Imported here: SQLAlchemy is only needed by the commands that touch the database.
    from hookpost.storage.database import create_engine  # noqa: PLC0415
    from hookpost.storage.encrypted import reencrypt_all  # noqa: PLC0415

    engine = create_engine(settings)
    try:
        return await reencrypt_all(engine)
    finally:
        await engine.dispose()


@app.command("self-signed-certificate", cls=_Command)
def self_signed_certificate(
    folder: Annotated[Path, typer.Argument(help="Where nginx reads fullchain.pem and privkey.pem.")],
    host: Annotated[
        list[str] | None,
        typer.Option(
            show_default=", ".join(DEFAULT_HOSTNAMES),
            help="A name or address the certificate is for, repeatable.",
        ),
    ] = None,
) -> None:
    """Make a self-signed TLS certificate and key in FOLDER, unless both are there already.

    Compose runs this before nginx starts, so HTTPS works at once (with a browser warning);
    a real certificate put in its place is kept (docs/deploying.md).
    """
    made = ensure_self_signed(folder, tuple(host) if host else DEFAULT_HOSTNAMES)
    if made.made:
        console.print(f"Made a self-signed certificate: {made.certificate} and {made.key}", soft_wrap=True)
    else:
        console.print(f"Kept the certificate already in {folder}", soft_wrap=True)


@app.command("worker-health", cls=_Command)
def worker_health(
    max_age: Annotated[
        float, typer.Option(min=0.1, help="Seconds since the last heartbeat after which the worker counts as dead.")
    ] = 60.0,
    node: Annotated[
        str | None, typer.Option(show_default="celery@<this host>", help="The worker's node name (celery -n).")
    ] = None,
) -> None:
    """Exit 0 if the delivery worker on this host is alive: a liveness probe.

    Alive means its heartbeat file in the data directory, touched every
    HOOKPOST_WORKER_HEARTBEAT_INTERVAL seconds by the worker's own loop, is recent.
    """
    settings = load_settings()
    path = heartbeat.heartbeat_file(settings.data_dir, node or heartbeat.default_node_name())
    verdict = heartbeat.check(path, max_age)
    if not verdict.alive:
        fail(verdict.reason)
    console.print(verdict.reason)
