"""Sinks: how each destination type that Hookpost delivers to takes a batch (one module per
type); the FIFO runner (delivery/fifo.py) does the rest the same for all of them."""

from __future__ import annotations

from hookpost.delivery.sinks.batch import Sink
from hookpost.delivery.sinks.http_batch import HttpBatchSink
from hookpost.delivery.sinks.postgres import PostgresSink
from hookpost.delivery.sinks.rabbitmq import RabbitMqSink
from hookpost.delivery.sinks.s3 import S3Sink
from hookpost.delivery.sinks.sqs import SqsSink
from hookpost.destinations.schemas import DestinationType

SINKS: dict[str, Sink] = {
    DestinationType.FIFO_ENDPOINT.value: HttpBatchSink(),
    DestinationType.RABBIT_MQ.value: RabbitMqSink(),
    DestinationType.POSTGRES.value: PostgresSink(),
    DestinationType.SQS.value: SqsSink(),
    DestinationType.AMAZON_S3.value: S3Sink(),
}
DELIVERED_TYPES = tuple(SINKS)


def sink_for(destination_type: str) -> Sink:
    return SINKS[destination_type]
