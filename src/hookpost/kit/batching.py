"""Group commit: concurrent callers' items written together, in one transaction per batch.

A caller submits one item and waits for its own result. Whenever fewer than
``max_concurrent`` batches are being written, a submit starts one right away with
everything waiting, so a lone request waits for nobody; under load, items pile up while the
batches in flight are written and the next batch takes them all. Batches grow with the
load, and the cost of a transaction (its round trips, its fsync) is shared by its items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
        *,
        max_batch: int,
        max_concurrent: int,
    ) -> None:
        """``write(items)`` returns one result per item, in order, or raises for them all.

        A result that is an exception is raised to that item's caller alone.
        """
        self._write = write
        self._max_batch = max_batch
        self._max_concurrent = max_concurrent
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._writers) < self._max_concurrent:
            writer = asyncio.create_task(self._drain(), name="hookpost-group-commit")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        # Shielded: a caller that goes away must not cancel a batch other callers wait on.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._write([item for item, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
