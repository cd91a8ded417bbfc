"""The bus on append-only segment files in the data directory: one host, no server."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from hookpost.stream import events
from hookpost.stream.bus.fanout import Fanout, Subscription
from hookpost.stream.events import StreamEvent

logger = logging.getLogger(__name__)

SEGMENT_SECONDS = 10
KEEP_SEGMENTS = 6  # older segment files are removed by publishers
MAX_EVENT_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024
_SEGMENT_PREFIX, _SEGMENT_SUFFIX = "events-", ".jsonl"


def _segment_now() -> int:
    return int(time.time()) // SEGMENT_SECONDS


class FileBus(Fanout):
    """Fan-out through append-only files: every process on this host, no server.

    A publish is one ``write`` of one line to the current segment, opened with
    ``O_APPEND``, so lines from many processes never interleave (on a local filesystem).
    An API process with clients polls the current and the previous segment (a publisher
    may still be finishing the old one) every ``poll_interval`` seconds and hands each new
    complete line to the clients of its application.
    """

    def __init__(self, directory: Path, queue_size: int, poll_interval: float) -> None:
        super().__init__(queue_size)
        self._directory = directory
        self._poll_interval = poll_interval
        self._fd: int | None = None
        self._fd_segment = -1
        self._tail: asyncio.Task[None] | None = None

    def _path(self, segment: int) -> Path:
        return self._directory / f"{_SEGMENT_PREFIX}{segment}{_SEGMENT_SUFFIX}"

    # Publishing.

    def publish(self, event: StreamEvent) -> None:
        line = (event.text + "\n").encode()
        if len(line) > MAX_EVENT_BYTES:
            self._warn("size", "live stream: event of %d bytes not published", len(line))
            return
        try:
            segment = _segment_now()
            if segment != self._fd_segment or self._fd is None:
                self._open(segment)
            assert self._fd is not None
            os.write(self._fd, line)
        except Exception as error:  # never the caller's problem: a delivery or a 202 goes on
            self._warn("write", "live stream: event not written to %s: %r", self._directory, error)

    def _open(self, segment: int) -> None:
        self._close_segment()
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self._path(segment), flags, 0o600)
        self._fd_segment = segment
        self._remove_old(segment)

    def _remove_old(self, segment: int) -> None:
        for entry in os.scandir(self._directory):
            number = entry.name.removeprefix(_SEGMENT_PREFIX).removesuffix(_SEGMENT_SUFFIX)
            if number.isdigit() and int(number) < segment - KEEP_SEGMENTS:
                with suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def _close_segment(self) -> None:
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
            self._fd = None

    async def flush(self) -> None:
        pass  # every publish is already written

    # Subscribing.

    @asynccontextmanager
    async def subscribe(self, app_id: str) -> AsyncIterator[Subscription]:
        subscription = self._add(app_id)
        try:
            if self._tail is None or self._tail.done():
                # Positions are taken now: every line written from here on is read.
                self._tail = asyncio.get_running_loop().create_task(
                    self._follow(self._start_positions()), name="hookpost-stream-tail"
                )
            subscription.live = True
            yield subscription
        finally:
            self._remove(subscription)
            if not self._subscriptions and self._tail is not None:
                self._tail.cancel()
                self._tail = None

    def _size(self, segment: int) -> int:
        try:
            return self._path(segment).stat().st_size
        except FileNotFoundError:
            return 0

    def _start_positions(self) -> dict[int, int]:
        current = _segment_now()
        return {segment: self._size(segment) for segment in (current - 1, current)}

    async def _follow(self, positions: dict[int, int]) -> None:
        files: dict[int, int] = {}  # segment -> open descriptor
        try:
            while True:
                try:
                    lines, more = self._read_new(positions, files)
                except Exception as error:  # keep following: the next poll may do better
                    self._warn("tail", "live stream: reading %s failed: %r", self._directory, error)
                    lines, more = [], False
                for line in lines:
                    self._route(line)
                    await self._pace()
                await asyncio.sleep(0 if more else self._poll_interval)
        finally:
            for fd in files.values():
                os.close(fd)

    def _read_new(self, positions: dict[int, int], files: dict[int, int]) -> tuple[list[bytes], bool]:
        """The complete lines written since the last call, and whether more are waiting."""
        current = _segment_now()
        newest = max(positions, default=current)
        for segment in (current - 1, current):
            if segment not in positions:
                # A later segment starts empty; an earlier one (the clock went back) is old news.
                positions[segment] = 0 if segment > newest else self._size(segment)
        lines: list[bytes] = []
        more = False
        for segment in sorted(positions):
            fd = files.get(segment)
            if fd is None:
                try:
                    fd = files[segment] = os.open(self._path(segment), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    fd = None
            data = b"" if fd is None else os.pread(fd, READ_CHUNK, positions[segment])
            complete = data[: data.rfind(b"\n") + 1]
            positions[segment] += len(complete)
            lines += complete.splitlines()
            if len(data) == READ_CHUNK:
                more = True
            elif segment < current - 1:
                # Past the grace period and read to the end: done with it.
                del positions[segment]
                if fd is not None:
                    os.close(files.pop(segment))
        return lines, more

    def _route(self, line: bytes) -> None:
        try:
            text = line.decode()
        except UnicodeDecodeError:
            return
        app_id = events.app_id_of(text)
        if app_id is not None:
            self._deliver(app_id, text)

    async def aclose(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            await asyncio.gather(self._tail, return_exceptions=True)
            self._tail = None
        await self._cancel_background()
        self._close_segment()
