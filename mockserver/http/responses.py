"""JSON responses and the one table that turns domain errors into Kantos error bodies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send

from ..domain.auth import RateStatus
from ..domain.errors import KantosError, MethodNotAllowed, NotFound, RateLimited


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: KantosError) -> Response:
    """A Kantos error as a Starlette Response, for the paths Starlette serves (`/_mock`, 404s
    outside `/api`); `/api` answers with `send_error`."""
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    return json_response(exc.body(), exc.status, headers)


def json_head(content: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:
    """A JSON answer's headers, as ASGI's `http.response.start` has them: its type and length,
    then `headers`."""
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content)), *headers]


async def send_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A JSON answer as two ASGI messages (the `/api` path has no Response objects). `payload`
    is encoded here, unless it is bytes: JSON already (records keep their own encoding).
    Returns the body sent (for the journal)."""
    content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status, "headers": json_head(content, headers)})
    await send({"type": "http.response.body", "body": content})
    return content


def error_headers(exc: KantosError, rate: RateStatus | None) -> list[tuple[bytes, bytes]]:
    """An `/api` error's headers: rate-limit headers when the request was counted, `Allow` on a
    405, `Retry-After` on a 429."""
    headers = rate.raw_headers() if rate is not None else []
    if isinstance(exc, MethodNotAllowed):
        headers.append((b"allow", ", ".join(exc.allowed).encode("latin-1")))
    if isinstance(exc, RateLimited):
        headers.append((b"retry-after", str(exc.retry_after).encode("latin-1")))
    return headers


async def send_error(exc: KantosError, rate: RateStatus | None, send: Send) -> None:
    """`error_response` in raw ASGI."""
    await send_json(send, exc.status, exc.body(), error_headers(exc, rate))


def internal_error_body(exc: Exception) -> dict[str, Any]:
    """The answer to a bug in the mock, in the Kantos shape."""
    return {
        "error": f"Internal error in the mock: {type(exc).__name__}",
        "code": "INTERNAL",
        "status": 500,
        "details": {},
    }


async def kantos_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KantosError)
    return error_response(exc)


async def not_found_handler(request: Request, exc: Exception) -> Response:
    path = request.url.path
    return error_response(NotFound(f"No route for {request.method} {path}", {"path": path, "id": path}))


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    # A bug in the mock: answer in the Kantos shape; Starlette re-raises it so it is logged.
    return json_response(internal_error_body(exc), 500)
