"""Receivers that never answer: ``COUNT`` listening ports on loopback (each its own receiver,
as far as a worker can tell) that accept a connection, read what comes and never reply.

The ``tenants`` scenario's hanging endpoints. Run as ``python -m hookpost.bench.hanging
COUNT PORTS_FILE``: the ports are written to ``PORTS_FILE`` (JSON) once all listen.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Read until the sender gives up (its delivery timeout) and closes; never answer.
    while await reader.read(65536):
        pass
    writer.close()


async def _serve(count: int, ports_file: Path) -> None:
    servers = [await asyncio.start_server(_hold, "127.0.0.1", 0, backlog=1024) for _ in range(count)]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    partial = ports_file.with_suffix(".partial")
    partial.write_text(json.dumps(ports))
    partial.rename(ports_file)  # whole or absent: the bench never reads half a list
    await asyncio.Event().wait()


def main() -> None:
    asyncio.run(_serve(int(sys.argv[1]), Path(sys.argv[2])))


if __name__ == "__main__":
    main()
