"""What tests share besides fixtures: the bundled keys and an in-process sync transport.

(A module of its own, not conftest.py: tests/conformance has a conftest.py too, so
`from conftest import ...` would be ambiguous.)
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette

ADMIN_KEY = "kantos_admin_local_key"
SERVER_KEY = "kantos_server_local_key"
INTAKE_KEY = "kantos_intake_local_key"
FREE_KEY = "kantos_free_local_key"


class SyncASGITransport(httpx.BaseTransport):
    """httpx.ASGITransport is async-only: drive it from a private event loop."""

    def __init__(self, app: Starlette) -> None:
        self._loop = asyncio.new_event_loop()
        self._transport = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            content = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._loop.run_until_complete(go())

    def close(self) -> None:
        self._loop.close()
