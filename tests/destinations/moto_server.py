"""moto's server mode on loopback: SQS and S3 as real HTTP servers the sinks connect to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

REGION = "us-east-1"
KEYS = {"accessKeyId": "AKIAQUEUESTEST", "secretAccessKey": "queues-aws-secret-7"}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws(service: str, moto_url: str) -> Any:
    """A plain boto3 client for the test's own setup and checks."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id=KEYS["accessKeyId"],
        aws_secret_access_key=KEYS["secretAccessKey"],
    )
