import re
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every datetime Hookpost stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def iso_only(value: object) -> object:
    """Refuse what pydantic would otherwise read as a Unix timestamp (a number, a numeric
    string, a boolean): a time in a request is an ISO 8601 date-time, as documented."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time such as 2026-01-31T12:00:00Z")
    return value
