"""What the ``hookpost`` commands do before they start a process: read the settings, check the
secret key against what is stored, migrate, find the admin token, print the banner."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from typing import NoReturn

from pydantic import ValidationError

import hookpost
from hookpost.cli.output import console, errors, fail
from hookpost.kit.urls import redact_url
from hookpost.observability import multiprocess
from hookpost.observability.logging import FORMAT_VARIABLE
from hookpost.process.commands import host_port
from hookpost.settings import MissingSecretKey, Settings, get_settings


def operations_env(
    env: dict[str, str], settings: Settings, *, log_format: str, metrics: str | None = None
) -> dict[str, str]:
    """``env`` with the command's log format (unless HOOKPOST_LOG_FORMAT says otherwise) and,
    for ``metrics``, an emptied ``<data dir>/metrics/<metrics>`` its processes share (docs/operations.md)."""
    env.setdefault(FORMAT_VARIABLE, log_format)
    if metrics is not None:
        multiprocess.remove_stale_worker_dirs(settings.data_dir)
        env[multiprocess.VARIABLE] = str(multiprocess.prepare(multiprocess.metrics_dir(settings.data_dir, metrics)))
    return env


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        fail(f"invalid configuration (HOOKPOST_* environment variables):\n{exc}", code=2)


def require_secret_key(settings: Settings) -> list[str]:
    """The key ring, made on the embedded default; with PostgreSQL a refusal to start without one."""
    try:
        return settings.secret_keys()
    except MissingSecretKey as exc:
        fail(str(exc))


def check_secret_key(settings: Settings) -> None:
    """Refuse to start with a key that opens none of the stored secrets (every delivery to
    them would fail); warn when it opens only some. A database not reachable or not migrated
    yet is not a reason to refuse: the process starts and waits for it, as always."""
    # Imported here: the models and the engine are only needed by the commands that check.
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from hookpost.storage.database import create_engine  # noqa: PLC0415
    from hookpost.storage.encrypted import KeyCheck, check_keys  # noqa: PLC0415

    async def check() -> KeyCheck:
        engine = create_engine(settings, statement_timeout=settings.database_timeout)
        try:
            return await check_keys(engine)
        finally:
            await engine.dispose()

    try:
        found = asyncio.run(check())
    except (SQLAlchemyError, OSError) as exc:
        errors.print(
            f"hookpost: warning: could not try the secret key on the stored secrets ({type(exc).__name__})",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return
    if found.opened == found.sampled:
        return
    keys = settings.secret_keys()
    fingerprint = hashlib.sha256(keys[0].encode()).hexdigest()[:12]
    where = "HOOKPOST_SECRET_KEY" if settings.secret_key is not None else f"the key in {settings.secret_key_file}"
    key = f"{where} ({len(keys)} key{'s' if len(keys) > 1 else ''}, the first's fingerprint {fingerprint})"
    if found.opened == 0:
        fail(
            f"{key} opens none of the {found.sampled} newest endpoint secrets stored: they were encrypted with "
            "another key. Start with the key the other processes use (old keys after it, comma-separated: "
            "HOOKPOST_SECRET_KEY=new,old), then `hookpost rotate-key` re-encrypts under the first."
        )
    errors.print(
        f"hookpost: warning: {key} opens {found.opened} of the {found.sampled} newest endpoint secrets stored; "
        "deliveries to the others fail until their key is added to HOOKPOST_SECRET_KEY "
        "(comma-separated, after the first).",
        style="yellow",
        markup=False,
        soft_wrap=True,
    )


def migrate_database(settings: Settings) -> None:
    # Imported here: Alembic and the models are only needed by the commands that migrate.
    from hookpost.storage.migrate import upgrade_to_head  # noqa: PLC0415

    upgrade_to_head(settings)


def exec_process(argv: list[str], env: dict[str, str]) -> NoReturn:
    """Become the process: signals from a terminal or a container runtime reach it directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # noqa: S606 - our interpreter, our argv, no shell


def find_admin_token(settings: Settings) -> tuple[str, str]:
    """The admin token (made on a first start), and what the banner says of it: the token
    itself only when it was made just now, else where it is, so that it is not printed to
    container logs or the journal at every start."""
    made_now = settings.admin_token is None and not settings.admin_token_file.exists()
    token = settings.load_admin_token(create=True)
    assert token is not None  # create=True always yields one
    if made_now:
        return token, f"{token}  (new: stored in {settings.admin_token_file}, shown this once)"
    if settings.admin_token is not None:
        return token, "from HOOKPOST_ADMIN_TOKEN"
    return token, f"in {settings.admin_token_file}"


def print_banner(settings: Settings, host: str, port: int, admin_token: str) -> None:
    base_url = f"http://{host_port(reachable_host(host), port)}"
    rows = {
        "API": base_url,
        "API docs": f"{base_url}/docs",
        **({"Console": f"{base_url}/console/"} if settings.console_enabled else {}),
        "Admin token": admin_token,
        "Data": str(settings.data_dir),
        "Database": redact_url(settings.database_url),
        "Broker": redact_url(settings.broker_url),
    }
    width = max(map(len, rows))
    console.print(f"[bold]Hookpost {hookpost.__version__}[/]")
    for label, value in rows.items():
        # soft_wrap: never cut or wrap a path or the token, even in a narrow log.
        console.print(f"  {label:<{width}}  {value}", markup=False, soft_wrap=True)
    console.print("Ctrl-C to stop.")


def reachable_host(host: str) -> str:
    """Where a local browser finds a server listening on ``host``."""
    wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - not a bind
    return wildcards.get(host, host)
