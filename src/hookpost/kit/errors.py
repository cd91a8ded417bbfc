"""Errors of the project's own that services raise, free of any web framework.

The API maps each to its HTTP answer in one place (``api/errors.py``); the console's pages
show them (``console/web.py``).
"""

from __future__ import annotations

from typing import Any


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
