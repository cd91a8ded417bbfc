"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's own version writes a message file in place, so a consumer polling at that moment
can take a half-written (empty) file and drop the message; and it keeps every consumed
file. Here a message appears in the queue folder only once complete (written aside, then
renamed in), and a consumer claims it by an atomic rename, reads it and deletes it.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import filesystem, virtual
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        staging = Path(self.data_folder_out) / ".staging"
        staging.mkdir(exist_ok=True)
        draft = staging / name
        draft.write_bytes(dumps(payload).encode())  # type: ignore[no-untyped-call]
        os.replace(draft, Path(self.data_folder_out) / name)

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        suffix = f".{queue}.msg"
        claimed_dir = Path(self.processed_folder)
        for name in sorted(os.listdir(self.data_folder_in)):
            if not name.endswith(suffix):
                continue
            claimed = claimed_dir / name
            try:
                os.rename(Path(self.data_folder_in) / name, claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            payload = claimed.read_bytes()
            claimed.unlink()
            try:
                return loads(payload.decode())  # type: ignore[no-untyped-call]
            except ValueError:
                # Never written by us (we rename complete files in); a worker must not die of it.
                logger.error("embedded broker: dropped unreadable message file %s", name)
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)  # type: ignore[no-untyped-call]
        # kombu shares queue bindings across every filesystem connection in a process; a
        # process that talks to two data directories (tests do) would skip writing the
        # binding into the second and route its messages nowhere. Bindings per connection.
        self.state = virtual.BrokerState()  # type: ignore[no-untyped-call]

    @property
    def default_connection_params(self) -> dict[str, Any]:
        # Folders, not a server: no default host, so kombu has none to announce it falls back
        # to ("No hostname was supplied. Reverting to default 'localhost'", once per process).
        return {"port": self.default_port}
