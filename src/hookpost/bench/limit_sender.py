"""The delivery limit: one bare asyncio httpx client, posting signed webhooks as fast as it can.

What the most this machine can deliver with httpx looks like: no database, no broker, no
bookkeeping, only signing a 300-byte body and sending it, ``connections`` requests in flight
on the fastest transport measured (httpx over aiohttp's connection pool, Hookpost's own
client, on uvloop). The
bench runs one of these per core against its receiver and compares Hookpost's backlog drain
(and the CPU it spends per delivery) with it.

Run as ``python -m hookpost.bench.limit_sender SPEC.json``; prints the figures as one JSON line
the bench's ``LoadRun`` reads.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from hookpost.bench.loadgen import latency_figures, run_generator
from hookpost.delivery.sender import create_http_client
from hookpost.delivery.signing import webhook_headers
from hookpost.kit.ids import new_id
from hookpost.settings import IPNetwork

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # any base64 key: the receiver does not verify


LOOPBACK: list[IPNetwork] = [ipaddress.ip_network("127.0.0.0/8")]


async def _send(spec: dict[str, Any]) -> dict[str, Any]:
    url: str = spec["url"]
    body: str = spec["body"]
    connections: int = spec["connections"]
    latencies: list[float] = []
    errors = 0
    # Hookpost's client: httpx over aiohttp's pool, the fastest httpx measured here.
    async with create_http_client(10.0, LOOPBACK) as client:
        deadline = time.monotonic() + spec["duration"]

        async def sender() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                started = time.monotonic()
                headers = webhook_headers(new_id("msg"), datetime.now(UTC), body, [SECRET])
                try:
                    response = await client.post(url, content=body.encode(), headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.is_success:
                    latencies.append(time.monotonic() - started)
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(connections)))
        duration = time.monotonic() - started
    latencies.sort()
    return {
        "generator": "httpx (aiohttp transport)",
        "mode": "closed",
        "connections": connections,
        "duration_s": duration,
        "requests": len(latencies) + errors,
        "ok": len(latencies),
        "errors": errors,
        **latency_figures(latencies),
    }


def main() -> None:
    run_generator(_send)


if __name__ == "__main__":
    main()
