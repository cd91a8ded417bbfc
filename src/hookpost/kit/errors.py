"""Errors of the project's own that services raise, free of any web framework.

The API maps each to its HTTP answer in one place (``api/errors.py``); the console's pages
show them (``console/web.py``).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A service's refusal, said for a person in ``detail``; what it answers is the front's to say."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """What the request names does not exist (or is not the caller's to see)."""

    def __init__(self, detail: str = "Entity not found") -> None:
        super().__init__(detail)


class Conflict(DomainError):
    """The request clashes with what is stored: a uid taken, a name in use, nothing left to send."""


class InvalidInput(Exception):
    """Input that is well formed but refused, e.g. a URL whose host we may not deliver to.

    ``loc`` names the field as the API's validation errors do (``("body", "url")``).
    """

    def __init__(self, loc: tuple[str | int, ...], msg: str, type_: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.type = type_

    def errors(self) -> list[dict[str, Any]]:
        """In the shape of pydantic's and FastAPI's ``errors()``."""
        return [{"loc": self.loc, "msg": self.msg, "type": self.type}]
