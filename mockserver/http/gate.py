"""Pure-ASGI gate in front of `/api`: tenant, API key (401), rate limit (429), intake keys (403)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.auth import authenticate, require_server_key
from ..domain.errors import KantosError, RateLimited
from ..domain.tenants import Tenants
from .responses import error_response


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class Gate:
    def __init__(self, app: ASGIApp, tenants: Tenants) -> None:
        self.app = app
        self.tenants = tenants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        state = scope.setdefault("state", {})
        try:
            backend = state["backend"] = self.tenants.get(headers.get("x-mock-tenant"))
            path = scope["path"]
            if is_api_path(path):
                key = state["key"] = authenticate(backend.keys, headers.get("x-api-key"))
                now_s = backend.clock.now_us() // 1_000_000
                try:
                    state["rate"] = backend.limiter.hit(key, now_s)
                except RateLimited:
                    state["rate"] = backend.limiter.peek(key, now_s)
                    raise
                if path == "/api/crm" or path.startswith("/api/crm/"):
                    require_server_key(key)
        except KantosError as exc:
            await error_response(exc, scope)(scope, receive, send)
            return
        await self.app(scope, receive, send)
