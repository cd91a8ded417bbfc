"""amazonS3 destinations delivered to moto's S3 on loopback: each batch one object, a JSON array
of its messages (id, event type, payload) in order, keyed so that keys sort as the batches were
accepted; a missing bucket fails the batch with a clear reason, and it is retried until it exists."""

from __future__ import annotations

import json
import secrets
import socket
from typing import Any

from fastapi.testclient import TestClient

from hookpost.delivery.context import DeliveryContext
from tests.api.helpers import expect
from tests.destinations.delivered import attempts, create, delivered_count, run_until, send, without_loopback
from tests.destinations.moto_server import KEYS, REGION, aws, moto_url
from tests.destinations.test_fifo import context, settings

__all__ = ["context", "moto_url", "settings"]


def stored(moto_url: str, bucket: str) -> list[tuple[str, list[dict[str, Any]]]]:
    s3 = aws("s3", moto_url)
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    return [(key, json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) for key in keys]


def config(bucket: str, moto_url: str) -> dict[str, Any]:
    return {"bucket": bucket, "region": REGION, "endpointUrl": moto_url, **KEYS}


async def test_each_batch_is_stored_as_one_object_in_order(
    client: TestClient, app_id: str, context: DeliveryContext, moto_url: str
) -> None:
    bucket = f"queues-{secrets.token_hex(6)}"
    aws("s3", moto_url).create_bucket(Bucket=bucket)
    other_app = expect(client.post("/api/v1/app", json={"name": "other"}), 201)["id"]
    destination = create(client, app_id, "amazonS3", config(bucket, moto_url))
    send(client, other_app, 2)
    sent = send(client, app_id, 7)

    await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 7)

    objects = stored(moto_url, bucket)
    assert [key for key, _ in objects] == [
        f"{app_id}/{sent[0]}.{sent[2]}.json",
        f"{app_id}/{sent[3]}.{sent[5]}.json",
        f"{app_id}/{sent[6]}.{sent[6]}.json",
    ]
    items = [item for _, batch in objects for item in batch]
    assert [item["id"] for item in items] == sent
    assert [item["payload"] for item in items] == [{"n": n} for n in range(7)]
    assert {item["eventType"] for item in items} == {"order.paid"}
    made = attempts(client, app_id, destination["id"])
    assert {(a["status"], a["url"]) for a in made} == {(0, f"s3://{bucket}")}
    assert KEYS["secretAccessKey"] not in json.dumps(made)


async def test_a_missing_bucket_fails_and_the_batch_is_retried_once_it_exists(
    client: TestClient, app_id: str, context: DeliveryContext, moto_url: str
) -> None:
    bucket = f"queues-{secrets.token_hex(6)}"
    destination = create(client, app_id, "amazonS3", config(bucket, moto_url))
    path = f"/api/v1/app/{app_id}/destination/{destination['id']}"
    sent = send(client, app_id, 2)

    await run_until(context, lambda: len(attempts(client, app_id, destination["id"])) >= 1)
    failure = attempts(client, app_id, destination["id"])[0]
    assert failure["status"] == 2
    assert failure["error"].startswith("AWS refused: NoSuchBucket")

    aws("s3", moto_url).create_bucket(Bucket=bucket)
    if expect(client.get(path), 200)["status"] == "disabled":  # the short test schedule may be spent already
        expect(client.patch(path, json={"type": "amazonS3", "status": "enabled"}), 200)
    await run_until(context, lambda: delivered_count(client, app_id, destination["id"]) >= 2)

    assert [item["id"] for _, batch in stored(moto_url, bucket) for item in batch] == sent


async def test_the_address_check_applies_to_the_endpoint(
    client: TestClient, app_id: str, context: DeliveryContext, moto_url: str
) -> None:
    """A worker that does not allow loopback refuses the endpoint (the API allowed it when the
    destination was made), by address, and by a name that resolves to loopback (checked by the
    client's resolver at connect time) where this machine has one."""
    bucket = f"queues-{secrets.token_hex(6)}"
    aws("s3", moto_url).create_bucket(Bucket=bucket)
    urls = [moto_url]
    name = socket.gethostname()
    if {info[4][0] for info in socket.getaddrinfo(name, None)} <= {"127.0.0.1", "127.0.1.1", "::1"}:
        urls.append(moto_url.replace("127.0.0.1", name))
    made = [create(client, app_id, "amazonS3", config(bucket, url)) for url in urls]
    send(client, app_id, 1)
    await run_until(without_loopback(context), lambda: all(attempts(client, app_id, one["id"]) for one in made))

    for one in made:
        error = attempts(client, app_id, one["id"])[0]["error"]
        assert error.startswith("destination refused: "), error
    assert stored(moto_url, bucket) == []
