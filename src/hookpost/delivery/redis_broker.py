"""kombu's Redis transport, made to survive losing Redis while a worker waits on it.

When Redis goes away mid-poll, the Celery consumer collects its connection (which releases
the transport) and then closes it. A channel whose first close was cut short by the lost
connection then tries, in the second close, to put its unacknowledged tasks back through a
pool it rebuilds from the released transport, and fails with an AttributeError. Celery takes
that for an unrecoverable error and the whole worker exits. Here that case is a connection
error like any other, which every close path already ignores: the worker reconnects, and
the tasks it held come back by the broker's visibility timeout or the scheduler's requeue
(the database, not the broker, is what says a delivery is due).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection is already closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
