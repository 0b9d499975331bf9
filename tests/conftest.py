"""Shared fixtures: the app on the bundled fixtures, and an httpx client bound to it in process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from mockserver import create_app
from mockserver.domain.backend import FixtureSet
from mockserver.domain.fixtures import load_fixtures

ADMIN_KEY = "kantos_admin_local_key"
SERVER_KEY = "kantos_server_local_key"
INTAKE_KEY = "kantos_intake_local_key"
FREE_KEY = "kantos_free_local_key"


@pytest.fixture(scope="session")
def fixture_set() -> FixtureSet:
    """The bundled fixture set, loaded once (backends never mutate it)."""
    return load_fixtures()


@pytest.fixture
def app(fixture_set: FixtureSet) -> Starlette:
    """A fresh app per test, so no test sees another's writes."""
    return create_app(fixture_set, seed=1234)


@pytest.fixture
def client(app: Starlette) -> Iterator[httpx.Client]:
    """A synchronous in-process client for the app (no socket), with the admin key set."""
    with httpx.Client(
        transport=SyncASGITransport(app), base_url="http://kantos.test", headers={"X-Api-Key": ADMIN_KEY}
    ) as c:
        yield c


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
