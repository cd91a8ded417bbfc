"""Errors in Svix's shape, ``{"code": ..., "detail": ...}``; never a stack trace to the client."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from hookpost.kit.errors import Conflict, DomainError, InvalidInput, NotFound
from hookpost.kit.throttled_log import ThrottledWarnings
from hookpost.observability.request_id import current_request_id
from hookpost.storage.database import database_refused_value, database_unavailable

logger = logging.getLogger(__name__)
_database_warnings = ThrottledWarnings(logger, every=10.0)


class HookpostError(Exception):
    """An error of the HTTP front itself (authentication, size limits); services raise
    ``kit.errors``' domain errors, answered through ``DOMAIN_ANSWERS``."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str] | None:
        """Headers the answer carries besides the error."""
        return None


class Unauthorized(HookpostError):
    status_code = 401
    code = "authentication_failed"

    def headers(self) -> dict[str, str] | None:
        return {"www-authenticate": "Bearer"}


class TooManyRequests(HookpostError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str] | None:
        return {"retry-after": str(self.retry_after_seconds)}


class PayloadTooLarge(HookpostError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(HookpostError):
    status_code = 503
    code = "service_unavailable"


# The one place a service's refusal becomes an HTTP answer: its status and error code.
DOMAIN_ANSWERS: dict[type[DomainError], tuple[int, str]] = {
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
}


def status_and_code(error: type[HookpostError] | type[DomainError]) -> tuple[int, str]:
    """The HTTP status and error code an error answers with."""
    if issubclass(error, HookpostError):
        return error.status_code, error.code
    for kind in error.__mro__:
        if kind in DOMAIN_ANSWERS:
            return DOMAIN_ANSWERS[kind]
    return HookpostError.status_code, HookpostError.code


# Seconds a client is asked to wait while the database is unreachable.
RETRY_AFTER_SECONDS = 5


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


def error_responses(*errors: type[HookpostError] | type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: the errors it documents, plus auth and validation."""
    documented: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
        403: {"model": ErrorOut, "description": "An app portal token outside its application, or read-only"},
        422: {"model": ValidationErrorOut, "description": "Invalid request: malformed JSON or a field out of bounds"},
        503: {
            "model": ErrorOut,
            "description": "The database is unreachable for now; try again after Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
        },
    }
    for error in errors:
        status_code, code = status_and_code(error)
        documented[status_code] = {"model": ErrorOut, "description": code}
    return documented


def error_response(status_code: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "detail": detail}, status_code=status_code, headers=headers)


def refusal_answer(exc: HookpostError | DomainError) -> JSONResponse:
    """The answer to a refusal raised by the front or a service."""
    headers = exc.headers() if isinstance(exc, HookpostError) else None
    return error_response(*status_and_code(type(exc)), exc.detail, headers)


async def _hookpost_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HookpostError | DomainError)
    return refusal_answer(exc)


def _validation_response(items: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"code": "validation", "detail": items}, status_code=422)


def invalid_input_answer(exc: InvalidInput) -> JSONResponse:
    """A service's refusal of well-formed input answers as a validation error does."""
    return _validation_items(exc.errors())


async def _invalid_input(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return invalid_input_answer(exc)


async def _model_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A model a service built from the request's values refused them (request validation
    missed a rule the model has): the request's fault, a 422 in the same shape, not a 500.
    Logged with its trace, as the check belongs in request validation."""
    assert isinstance(exc, ValidationError)
    logger.warning("model validation after request validation on %s %s", request.method, request.url.path, exc_info=exc)
    return _validation_items(exc.errors(include_url=False, include_input=False))


NOT_JSON = {
    "loc": ["body"],
    "msg": "the body must be JSON, sent with the header Content-Type: application/json",
    "type": "json_content_type",
}


def _is_json(content_type: str) -> bool:
    """As FastAPI decides whether to parse a body as JSON: application/json or application/*+json."""
    main, _, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    return main == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [
        {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    # A body sent without a JSON Content-Type reaches the model as bytes, and pydantic's "Input
    # should be a valid dictionary" does not say what is wrong.
    if any(item["loc"] == ["body"] for item in items) and not _is_json(request.headers.get("content-type", "")):
        items = [NOT_JSON, *(item for item in items if item["loc"] != ["body"])]
    return _validation_response(items)


def _validation_items(errors: Sequence[Any]) -> JSONResponse:
    """pydantic's (or FastAPI's) ``errors()``, each as loc, msg and type."""
    return _validation_response(
        [{"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]} for error in errors]
    )


def _allowed_methods(request: Request) -> str:
    """Every method the OpenAPI document lists for this path: FastAPI has a route per method,
    and its own 405 names only the first one's. Where templates of several specificities
    match (``/msg/bulk-expunge`` and ``/msg/{msg_id}``), the path is the most literal one's."""
    matches: list[tuple[int, set[str]]] = []
    for template, operations in request.app.openapi()["paths"].items():
        parts = re.split(r"\{[^}]+\}", template)
        if re.fullmatch("[^/]+".join(re.escape(part) for part in parts), request.url.path):
            matches.append((len(parts), {method.upper() for method in operations}))
    fewest_parameters = min((count for count, _ in matches), default=0)
    methods = {method for count, found in matches if count == fewest_parameters for method in found}
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever GET is
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer to a body json.loads raised on other than a JSONDecodeError:
        # invalid UTF-8, nesting past the parser's recursion limit, an integer too long to
        # convert. Malformed JSON all the same: the same 422 as any other.
        return _validation_response(
            [{"loc": ["body"], "msg": f"Invalid JSON: {exc.__cause__}", "type": "json_invalid"}]
        )
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "http_error")
    headers = {name: value for name, value in (exc.headers or {}).items() if name.lower() != "allow"}
    if exc.status_code == 405:
        headers["allow"] = _allowed_methods(request)
    return error_response(exc.status_code, code, str(exc.detail), headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HookpostError, _hookpost_error)
    app.add_exception_handler(DomainError, _hookpost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.add_exception_handler(ValidationError, _model_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def _unavailable() -> JSONResponse:
    return error_response(
        503,
        ServiceUnavailable.code,
        "The database is unreachable for now; try again shortly",
        {"retry-after": str(RETRY_AFTER_SECONDS)},
    )


def unhandled_answer(scope: Scope, exc: Exception) -> JSONResponse:
    """The answer to whatever escaped the routes and their handlers, in the error shape.

    An unreachable database is a 503 with Retry-After; a value the database refused a 422;
    anything else a 500 naming the request id (the log line has the details).
    """
    path = scope.get("path", "")
    if database_unavailable(exc):
        # One line per 10 s however many requests fail: the 503s are in the access log.
        _database_warnings("unreachable", "database unreachable on %s %s: %r", scope.get("method"), path, exc)
        return _unavailable()
    if database_refused_value(exc):
        # The request checks missed a value the database cannot hold (most often a NUL
        # in a path or query parameter): the request's fault, said as a 422.
        logger.info("database refused a value on %s %s: %s", scope.get("method"), path, exc.orig)  # type: ignore[attr-defined]
        return _validation_response(
            [
                {
                    "loc": ["request"],
                    "msg": "A value the database cannot store (e.g. a NUL character)",
                    "type": "value_error",
                }
            ]
        )
    logger.exception("unhandled error on %s %s", scope.get("method"), path, exc_info=exc)
    return error_response(500, "internal_error", f"Internal server error (request id {current_request_id()})")
