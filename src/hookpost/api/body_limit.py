"""Request bodies over the limit: refused with 413 before they are read into memory
(``api.edge`` counts them as they arrive)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse


class BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body parsing passes it through to the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds {limit} bytes")


def too_large_answer(limit: int) -> JSONResponse:
    return JSONResponse({"code": "payload_too_large", "detail": f"Request body exceeds {limit} bytes"}, 413)
