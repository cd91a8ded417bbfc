"""``POST /api/v1/app/{app_id}/msg``'s common case, answered without FastAPI's request handling.

py-spy put FastAPI's dependency solving (the security scheme, state, path, header and query
parameters, the body) and its response handling at about 30 % of an API worker under
ingest. Here a request the route would accept as it is (the admin token, a JSON body that
``MessageIn`` accepts, no query string, payload checks off) does the route's work
(``messages.ingest.accept``) straight from the ASGI scope, and its answer is serialised
once, as FastAPI's own fast path does (pydantic's ``dump_json`` of the response model).

Everything else goes to FastAPI's route, unchanged, with the body replayed: scoped tokens
(their authorisation reads the database), a body that does not validate (so every 422 is
FastAPI's, word for word), any query parameter. The route stays the one the OpenAPI
document describes; this is a shortcut to it, not another route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookpost.api.errors import HookpostError, invalid_input_answer, refusal_answer
from hookpost.auth.middleware import bearer_token
from hookpost.auth.policy import is_admin_token
from hookpost.kit.errors import DomainError, InvalidInput
from hookpost.messages.ingest import accept
from hookpost.messages.schemas import MessageIn, MessageOut
from hookpost.state import AppState

_JSON = b"application/json"


@dataclass(frozen=True)
class _Matched:
    """The route's template, where ``observability.requests.route_template`` reads it."""

    path_format: str


_serialise = MessageOut.__pydantic_serializer__.to_json


class HotMessageRoute:
    """Pure ASGI, inside ``api.edge`` (request id, metrics, body limit, error boundary,
    token check, idempotency keys all still apply) and in front of FastAPI."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        """``prefix`` is the API's (``/api/v1``)."""
        self.app = app
        self.head = prefix + "/app/"
        # Set on the scope as FastAPI's routing would: the metrics' route label.
        self.route = _Matched(prefix + "/app/{app_id}/msg")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app_id = self._app_id(scope)
        state: AppState | None = scope.get("state", {}).get("hookpost") if app_id is not None else None
        if app_id is None or state is None or not _hot(scope, state):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before sending its body: nobody to answer
        try:
            data = MessageIn.model_validate(json.loads(body))
        except Exception:  # any refusal is for FastAPI to word
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"] = self.route
        scope["path_params"] = {"app_id": app_id}
        try:
            accepted = await accept(state, app_id, data, _header(scope, b"idempotency-key"))
        except (HookpostError, DomainError) as exc:
            await refusal_answer(exc)(scope, receive, send)
            return
        except InvalidInput as exc:  # the path, made the uid of an application created on the way
            await invalid_input_answer(exc)(scope, receive, send)
            return
        content = _serialise(accepted.message, by_alias=True)
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [(b"content-length", str(len(content)).encode()), (b"content-type", _JSON)],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _app_id(self, scope: Scope) -> str | None:
        """The ``{app_id}`` of a POST to this route (matched as Starlette would), else None."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not (path.startswith(self.head) and path.endswith("/msg")):
            return None
        app_id = path[len(self.head) : -len("/msg")]
        return app_id if app_id and "/" not in app_id else None


def _hot(scope: Scope, state: AppState) -> bool:
    """Whether FastAPI's route would take this request as it is, with nothing to check on the
    way but the body: the admin token, a JSON body, no query, no payload checks."""
    if scope.get("query_string") or state.settings.validate_payloads:
        return False
    content_type = _header(scope, b"content-type")
    if content_type is None or content_type.partition(";")[0].strip().lower() != "application/json":
        return False
    token = bearer_token(scope)
    return token is not None and is_admin_token(state.admin_token, token)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first header of this name, as Starlette's ``Headers.get``."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given back first."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
