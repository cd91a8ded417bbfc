"""A guard for kombu's Redis transport, so a Celery worker outlives a Redis outage.

When the connection to Redis is lost while tasks are unacknowledged (always, here: a
delivery task is acknowledged after it ran), Celery closes the broken connection twice.
If the first close was cut short, the second reaches the channel's restore of the
unacknowledged tasks after the connection's details were cleared, and kombu (5.7) fails
with ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which Celery
treats as unrecoverable: the worker exits instead of reconnecting.

With the guard that case raises a Redis connection error instead, which Celery ignores
while closing, and it goes on to reconnect. Nothing is lost by skipping that restore: the
tasks are nudges, and the scheduler queues whatever is due (README: Reliability).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.exceptions
from kombu.transport import redis as kombu_redis

_GUARDED = "_hookpost_guarded"


def install() -> None:
    """Guard ``Channel._connparams`` once per process."""
    original: Callable[..., Any] = kombu_redis.Channel._connparams
    if getattr(original, _GUARDED, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # the connection was closed under us
            raise redis.exceptions.ConnectionError("the connection to the broker is closed")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _GUARDED, True)
    setattr(kombu_redis.Channel, "_connparams", _connparams)  # noqa: B010 - a method replaced on purpose
