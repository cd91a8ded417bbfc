"""The real services tests use, and the rule for when they are missing.

Off CI a test that needs an unreachable service skips, saying which and where; under
``CI=true`` the same test fails, so a missing service can never pass as a skip.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("HOOKPOST_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


def _own_redis_url(url: str) -> str:
    """The URL's database for a plain run; under pytest-xdist, worker ``gwN`` takes that number
    minus N, so the workers' flushes, Celery queues and locks never meet."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) - worker
    if database < 0:
        raise RuntimeError(f"{url}: too few Redis databases below it for pytest-xdist worker gw{worker}")
    return parts._replace(path=f"/{database}").geturl()


REDIS_URL = _own_redis_url(os.environ.get("HOOKPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
RABBITMQ_URL = os.environ.get("HOOKPOST_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def unavailable(reason: str) -> NoReturn:
    """Skip the test for want of a service or a program, or fail it under CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}, and CI=true requires it")
    pytest.skip(reason)


def require(name: str, url: str) -> str:
    """Return ``url`` if the service answers; otherwise skip (or fail under CI)."""
    if _reachable(url):
        return url
    unavailable(f"{name} is not reachable at {urlsplit(url).netloc}")
