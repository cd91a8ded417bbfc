"""Cursor pagination over time-ordered ids, in Svix's ``{data, iterator, prevIterator, done}``.

``iterator`` continues after the last item of a page; ``prevIterator`` (``-`` + the first
id) walks back to the page before.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from hookpost.kit.schemas import ListResponse

Row = TypeVar("Row")
Out = TypeVar("Out")

MAX_LIMIT = 250


class Ordering(enum.StrEnum):
    ASCENDING = "ascending"
    DESCENDING = "descending"


@dataclass(frozen=True)
class PageParams:
    limit: int
    iterator: str | None


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: Sequence[Row]
    iterator: str | None
    prev_iterator: str | None
    done: bool

    def response(self, convert: Callable[[Row], Out]) -> ListResponse[Out]:
        """The page as the API answers it, each row converted to its response model."""
        return ListResponse[Out](
            data=[convert(item) for item in self.items],
            iterator=self.iterator,
            prev_iterator=self.prev_iterator,
            done=self.done,
        )


async def paginate(
    session: AsyncSession,
    query: Select[Row],
    id_column: InstrumentedAttribute[str],
    params: PageParams,
    order: Ordering,
) -> Page[Row]:
    backwards = params.iterator is not None and params.iterator.startswith("-")
    cursor = params.iterator[1:] if backwards and params.iterator else params.iterator
    ascending = (order is Ordering.ASCENDING) != backwards
    if cursor:
        query = query.where(id_column > cursor if ascending else id_column < cursor)
    query = query.order_by(id_column.asc() if ascending else id_column.desc()).limit(params.limit + 1)
    rows = list((await session.scalars(query)).all())
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    if backwards:
        rows.reverse()
    ids = [getattr(row, id_column.key) for row in rows]
    return Page(
        items=rows,
        iterator=ids[-1] if ids else None,
        prev_iterator=f"-{ids[0]}" if ids else None,
        # Either way: no page beyond this one in the direction walked.
        done=not more,
    )
