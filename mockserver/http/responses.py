"""JSON responses and the one table that turns domain errors into Kantos error bodies."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from ..domain.errors import KantosError, MethodNotAllowed, NotFound, RateLimited


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def rate_headers(scope: Scope) -> dict[str, str]:
    state = scope.get("state") or {}
    rate = state.get("rate")
    return rate.headers() if rate is not None else {}


def error_response(exc: KantosError, scope: Scope) -> Response:
    headers = rate_headers(scope)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return json_response(exc.body(), exc.status, headers)


async def kantos_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KantosError)
    return error_response(exc, request.scope)


async def not_found_handler(request: Request, exc: Exception) -> Response:
    path = request.url.path
    return error_response(
        NotFound(f"No route for {request.method} {path}", {"path": path, "id": path}), request.scope
    )


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    # A bug in the mock: answer in the Kantos shape; Starlette re-raises it so it is logged.
    body = {
        "error": f"Internal error in the mock: {type(exc).__name__}",
        "code": "INTERNAL",
        "status": 500,
        "details": {},
    }
    return json_response(body, 500)
