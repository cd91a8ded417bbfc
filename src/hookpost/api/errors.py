"""Errors in Svix's shape, ``{"code": ..., "detail": ...}``; never a stack trace to the client."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookpost.kit.errors import InvalidInput

logger = logging.getLogger(__name__)


class HookpostError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(HookpostError):
    status_code = 404
    code = "not_found"

    def __init__(self, detail: str = "Entity not found") -> None:
        super().__init__(detail)


class Conflict(HookpostError):
    status_code = 409
    code = "conflict"


class Unauthorized(HookpostError):
    status_code = 401
    code = "authentication_failed"


class PayloadTooLarge(HookpostError):
    status_code = 413
    code = "payload_too_large"


class ErrorOut(BaseModel):
    code: str
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    code: str = "validation"
    detail: list[ValidationErrorItem]


def error_responses(*errors: type[HookpostError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: the errors it documents, plus auth and validation."""
    documented: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
        403: {"model": ErrorOut, "description": "An app portal token outside its application, or read-only"},
        422: {"model": ValidationErrorOut, "description": "Invalid request"},
    }
    for error in errors:
        documented[error.status_code] = {"model": ErrorOut, "description": error.code}
    return documented


def error_response(status_code: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "detail": detail}, status_code=status_code, headers=headers)


async def _hookpost_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HookpostError)
    headers = {"www-authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return error_response(exc.status_code, exc.code, exc.detail, headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [
        {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse({"code": "validation", "detail": items}, status_code=422)


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    """A service's refusal of well-formed input answers as a validation error does."""
    assert isinstance(exc, InvalidInput)
    return await _validation_error(request, RequestValidationError(exc.errors()))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HookpostError, _hookpost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
