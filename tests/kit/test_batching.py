"""GroupCommit: concurrent items go out together, a lone one at once, a failure to its batch."""

from __future__ import annotations

import asyncio

import pytest

from hookpost.kit.batching import GroupCommit


async def test_a_lone_item_is_written_at_once_and_concurrent_ones_together() -> None:
    batches: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [item * 10 for item in items]

    commit = GroupCommit(write, max_batch=100, max_concurrent=1)
    assert await commit.submit(1) == 10
    assert batches == [[1]]

    results = await asyncio.gather(*(commit.submit(n) for n in range(2, 12)))

    assert results == [n * 10 for n in range(2, 12)]
    # All ten arrived before the writer task first ran: they go out as one batch.
    assert batches[1:] == [list(range(2, 12))]


async def test_batches_are_capped_and_run_side_by_side() -> None:
    running = 0
    most = 0
    sizes: list[int] = []

    async def write(items: list[int]) -> list[int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        running -= 1
        return items

    commit = GroupCommit(write, max_batch=4, max_concurrent=2)
    assert await asyncio.gather(*(commit.submit(n) for n in range(20))) == list(range(20))
    assert max(sizes) == 4
    assert most == 2


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_still_runs() -> None:
    async def write(items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if 0 in items:
            raise ValueError("boom")
        return items

    commit = GroupCommit(write, max_batch=100, max_concurrent=1)
    first = asyncio.gather(commit.submit(0), return_exceptions=True)
    await asyncio.sleep(0)
    second = commit.submit(5)

    [outcome] = await first
    assert isinstance(outcome, ValueError)
    assert await second == 5


async def test_a_caller_that_goes_away_does_not_cancel_the_batch() -> None:
    written: list[int] = []

    async def write(items: list[int]) -> list[int]:
        await asyncio.sleep(0.02)
        written.extend(items)
        return items

    commit = GroupCommit(write, max_batch=100, max_concurrent=1)
    impatient = asyncio.create_task(commit.submit(1))
    patient = asyncio.create_task(commit.submit(2))
    await asyncio.sleep(0.005)
    impatient.cancel()

    assert await patient == 2
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert sorted(written) == [1, 2]
