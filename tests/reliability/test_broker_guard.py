"""The guard on kombu's Redis transport (delivery/kombu_redis.py): a channel closed after
its connection's details were cleared, with a task unacknowledged, as Celery does after it
lost Redis, fails with a connection error Celery ignores, not an AttributeError that
stops the worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from hookpost.delivery import kombu_redis
from tests.support.own_services import own_redis


def _close_after_losing_redis(url: str) -> None:
    connection = Connection(url)
    channel = connection.default_channel
    channel.queue_declare("guarded")
    channel.basic_publish(channel.prepare_message("nudge"), exchange="", routing_key="guarded")
    assert channel.basic_get("guarded", no_ack=False) is not None  # delivered, not acknowledged
    connection._do_close_transport()  # what Celery's collect() leaves behind when a close was cut short
    with pytest.raises(connection.connection_errors):
        channel.close()


def test_closing_after_the_connection_was_cleared_is_a_connection_error(tmp_path: Path) -> None:
    kombu_redis.install()
    with own_redis(tmp_path) as broker:
        _close_after_losing_redis(broker.url)
