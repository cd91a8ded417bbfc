"""A Celery worker's broker connection when Redis goes away mid-poll.

On a lost broker the Celery consumer collects its connection, which releases the transport,
and then closes it. If Redis died while the channel waited on BRPOP with a task taken but not
yet acknowledged, and the channel's first close was cut short, the second close tried to put
that task back through the released transport; the AttributeError it raised stopped the
whole worker ("Unrecoverable error", exit 1), which then delivered nothing more.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Exchange, Queue
from redis.exceptions import ConnectionError as RedisConnectionError

from hookpost.delivery.celery_app import create_celery
from tests.conftest import make_settings
from tests.support.own_services import own_redis


def test_a_connection_closes_cleanly_after_redis_died_mid_poll_with_a_task_held(tmp_path: Path) -> None:
    with own_redis(tmp_path) as server:
        app = create_celery(make_settings(tmp_path, broker_url=server.url))
        name = "redis-broker-test"
        queue = Queue(name, Exchange(name), routing_key=name)
        with app.connection_for_write() as producer:
            producer.SimpleQueue(queue).put({"n": 1})

        connection = app.connection_for_read()
        channel = connection.default_channel
        taken: list[object] = []
        connection.Consumer(queue, channel=channel, callbacks=[lambda body, _: taken.append(body)]).consume()
        connection.drain_events(timeout=5)
        assert taken == [{"n": 1}]  # taken, not acknowledged
        # Where the worker's event loop leaves a channel between tasks: BRPOP sent, its
        # answer not yet read.
        channel._brpop_start()

        server.stop()
        with pytest.raises(RedisConnectionError):
            channel.close()  # cut short by the lost connection
        connection._do_close_transport()  # what Connection.collect() does next (forced here)
        connection.close()  # raised AttributeError before
        assert channel.closed
