"""What the pages read from forms and query strings, and how they answer a form: the message
log's filters, the endpoint form, notices after an action, redirects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Form, Query
from fastapi.responses import RedirectResponse
from pydantic import TypeAdapter

from hookpost.kit.time import as_utc

_TIME = TypeAdapter(datetime)
TimeFilter = Annotated[str, Query(max_length=64)]
Iterator = Annotated[str | None, Query(max_length=64)]  # a page of a list


@dataclass(frozen=True)
class MessageLogQuery:
    """What an application's page asks of its message log: filters (each may be empty) and a page."""

    event_type: str
    after: str
    before: str
    iterator: str | None


async def message_log_query(
    event_type: Annotated[str, Query(max_length=256)] = "",
    after: TimeFilter = "",
    before: TimeFilter = "",
    iterator: Iterator = None,
) -> MessageLogQuery:
    return MessageLogQuery(event_type, after, before, iterator)


MessageLogDep = Annotated[MessageLogQuery, Depends(message_log_query)]


def filter_time(value: str) -> datetime | None:
    """A time from a filter form's field: empty is no filter (a form sends every field)."""
    return as_utc(_TIME.validate_python(value)) if value.strip() else None


def form_names(text: str) -> list[str]:
    """Names from a form field, one a line or comma-separated."""
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def picked_names(values: list[str] | None) -> list[str]:
    """The names an event type picker sent (a box per name, or one field of comma-separated names)."""
    return [name for value in values or [] for name in form_names(value)]


@dataclass(frozen=True)
class EndpointForm:
    """The fields every endpoint form (new, and edit) has: an empty event type list is every type."""

    url: str
    description: str
    event_types: list[str]


async def endpoint_form(
    url: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    event_types: Annotated[list[str] | None, Form()] = None,
) -> EndpointForm:
    return EndpointForm(url.strip(), description, picked_names(event_types))


EndpointFormDep = Annotated[EndpointForm, Depends(endpoint_form)]

# Fixed notices for ?done=...: a redirect after a form says what happened, never echoing input.
NOTICES = {
    "created": "Created.",
    "saved": "Saved.",
    "disabled": "Endpoint disabled.",
    "enabled": "Endpoint enabled.",
    "deleted": "Endpoint deleted.",
    "app-deleted": "Application deleted.",
    "rotated": "Secret rotated. The previous secret keeps signing during the grace period.",
    "resent": "Resend queued.",
    "recovering": "Recovery started.",
    "example": "Example sent.",
    "destination-enabled": "Destination enabled.",
    "destination-disabled": "Destination disabled.",
    "destination-deleted": "Destination deleted.",
    "archived": "Event type archived: endpoint forms no longer offer it.",
    "unarchived": "Event type brought back.",
    "event-type-deleted": "Event type deleted.",
}


def notice(done: str | None) -> str | None:
    return NOTICES.get(done or "")


def see_other(url: str) -> RedirectResponse:
    """Where a form's POST leads (303: the browser GETs it)."""
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None, default: str) -> str:
    """Where to go after signing in: only a path of ours, never another site."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
