"""Parameters the API's routes share: paging, filters on time, channel and tag, an upsert's path."""

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Query
from pydantic import AfterValidator, BeforeValidator

from hookpost.kit.pagination import MAX_LIMIT, PageParams
from hookpost.kit.time import as_utc, iso_only
from hookpost.kit.validation import NAME_MAX_LENGTH, NAME_PATTERN


async def page_params(  # async: a plain def would run in the thread pool
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = 50,
    iterator: Annotated[
        # An id, or an event type's name (lists by name); "-" first for the page before.
        str | None, Query(max_length=257, pattern=r"^-?[A-Za-z0-9_.\-]*$", description="From a previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, iterator=iterator)


PageDep = Annotated[PageParams, Depends(page_params)]

# Stored times are UTC; a filter in another zone (or none, taken as UTC) is converted first.
_Utc = Annotated[datetime, BeforeValidator(iso_only), AfterValidator(as_utc)]

Before = Annotated[_Utc | None, Query(description="Only items created before this time (ISO 8601)")]
After = Annotated[_Utc | None, Query(description="Only items created after this time (ISO 8601)")]

Channel = Annotated[str | None, Query(max_length=256, description="Only items whose message has this channel")]
Tag = Annotated[str | None, Query(max_length=256, description="Only items whose message has this tag")]


def comma_separated(values: list[str] | None) -> list[str]:
    """A list query parameter: the Svix clients send it as one comma-separated value."""
    return [name for value in values or [] for name in value.split(",") if name]


# A PUT's path: an id, or the uid (or event type name) of what it creates, so within their rule.
UpsertPath = Annotated[
    str,
    Path(
        pattern=NAME_PATTERN,
        max_length=NAME_MAX_LENGTH,
        description="An id, or the uid of what this creates when there is none",
    ),
]
