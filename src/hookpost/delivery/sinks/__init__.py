"""Sinks: how each destination type that Hookpost delivers to takes a batch (one module per
type); the FIFO runner (delivery/fifo.py) does the rest the same for all of them.

Each sink's module is imported when a batch first goes to its type: the AWS and AMQP clients
cost a worker seconds of start-up that one delivering only to HTTP never needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from hookpost.destinations.kinds import DestinationType

if TYPE_CHECKING:  # the batch module loads the sender: the scheduler reads DELIVERED_TYPES alone
    from hookpost.delivery.sinks.batch import Sink

# Each type's sink: its module in this package and its class.
_SINK_CLASSES: dict[str, tuple[str, str]] = {
    DestinationType.FIFO_ENDPOINT.value: ("http_batch", "HttpBatchSink"),
    DestinationType.RABBIT_MQ.value: ("rabbitmq", "RabbitMqSink"),
    DestinationType.POSTGRES.value: ("postgres", "PostgresSink"),
    DestinationType.SQS.value: ("sqs", "SqsSink"),
    DestinationType.AMAZON_S3.value: ("s3", "S3Sink"),
}
DELIVERED_TYPES = tuple(_SINK_CLASSES)
_sinks: dict[str, Sink] = {}


def sink_for(destination_type: str) -> Sink:
    sink = _sinks.get(destination_type)
    if sink is None:
        module, name = _SINK_CLASSES[destination_type]
        sink = _sinks[destination_type] = getattr(import_module(f"{__name__}.{module}"), name)()
    return sink
