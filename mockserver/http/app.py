"""The app factory: wires spec, tenants, routes, gate and error handlers together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.backend import FixtureSet
from ..domain.clock import Clock
from ..domain.errors import KantosError
from ..domain.fixtures import load_fixtures
from ..domain.tenants import Tenants
from ..spec import Spec
from .api import api_routes
from .gate import Gate
from .responses import internal_error_handler, kantos_error_handler, not_found_handler


def create_app(
    fixtures: str | Path | FixtureSet | None = None,
    *,
    spec: str | Path | Spec | None = None,
    seed: int | None = None,
    clock: Clock | None = None,
) -> Starlette:
    """The mock as an ASGI app, on the bundled fixtures and spec unless told otherwise."""
    fixture_set = fixtures if isinstance(fixtures, FixtureSet) else load_fixtures(fixtures)
    the_spec = spec if isinstance(spec, Spec) else Spec.load(spec)
    tenants = Tenants(fixture_set, seed=seed, clock=clock)
    spec_json = orjson.dumps(the_spec.document)

    async def openapi_json(request: Request) -> Response:
        return Response(spec_json, media_type="application/json")

    routes: list[Any] = [Route("/openapi.json", openapi_json, methods=["GET"])]
    routes += api_routes(the_spec)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Gate, tenants=tenants)],
        exception_handlers={
            KantosError: kantos_error_handler,
            HTTPException: not_found_handler,
            Exception: internal_error_handler,
        },
    )
    app.state.tenants = tenants
    app.state.spec = the_spec
    return app
