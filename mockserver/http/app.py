"""The app factory: wires spec, tenants, routes, gate and error handlers together."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.backend import FixtureSet
from ..domain.clock import Clock
from ..domain.errors import KantosError
from ..domain.fixtures import load_fixtures
from ..domain.tenants import Tenants
from ..openapi import Spec
from .access import ControlAccess
from .api import AnswersNow, KantosApi
from .control import control_routes
from .dashboard import dashboard_routes
from .gate import Gate, TenantRegistry, is_api_path
from .responses import internal_error_handler, kantos_error_handler, not_found_handler
from .selfcheck import ResponseSelfCheck, self_check_enabled
from .webhooks import WebhookSender


class MockApp(Starlette):
    """Starlette, with `/api` taken straight to `KantosApi` (behind the response self-check
    when it is on): the Kantos API runs no Starlette middleware, router or exception handler,
    only its own code. Everything else (`/_mock`, `/openapi.json`, 404s) is Starlette's.
    Middleware a user adds with `add_middleware` still wraps both, `/api` included."""

    def __init__(self, api: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api = api
        #: The mock's own middleware; `add_middleware` puts the user's in front of these.
        self._own_middleware = len(self.user_middleware)

    @property
    def fast_api(self) -> AnswersNow | None:
        """What a server may call without ASGI (`wire.FastApiProtocol`): the API, or the response
        self-check around it; None when middleware a user added must see `/api` requests."""
        if len(self.user_middleware) != self._own_middleware:
            return None
        if isinstance(self.api, KantosApi) or (
            isinstance(self.api, ResponseSelfCheck) and self.api.api is not None
        ):
            return self.api
        return None

    def build_middleware_stack(self) -> ASGIApp:
        mine = self.user_middleware
        added = mine[: len(mine) - self._own_middleware]
        self.user_middleware = mine[len(added) :]
        try:
            rest = super().build_middleware_stack()
        finally:
            self.user_middleware = mine
        app: ASGIApp = _ApiFirst(self.api, rest)
        for cls, args, kwargs in reversed(added):
            app = cls(app, *args, **kwargs)
        return app


class _ApiFirst:
    def __init__(self, api: ASGIApp, rest: ASGIApp) -> None:
        self.api = api
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_api_path(scope["path"]):
            await self.api(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


def create_app(
    fixtures: str | Path | FixtureSet | None = None,
    *,
    spec: str | Path | Spec | None = None,
    seed: int | None = None,
    clock: Clock | None = None,
    validate_responses: bool | None = None,
    control: bool = True,
    state_file: str | Path | None = None,
    webhook_timeout: float = 30.0,
    webhook_allow: Iterable[str] = (),
    control_token: str | None = None,
) -> MockApp:
    """The mock as an ASGI app, on the bundled fixtures and spec unless told otherwise.

    `validate_responses`: validate every `/api` response against the spec and fail loudly on a
    mismatch (`http/selfcheck.py`); None means on when KANTOS_MOCK_VALIDATE_RESPONSES=1.
    `control`: serve the control API under `/_mock` (control.yaml). `state_file`: load the default
    tenant's state from that file when it exists, and write it there after each change.
    `webhook_timeout`: seconds a webhook receiver has to answer; `webhook_allow`: hosts besides
    loopback that webhook subscriptions may target. `control_token`: the control API and the
    dashboard answer 401 to requests without it (the `X-Mock-Token` header, or the cookie a
    one-time link sets); `/api` is unchanged.
    """
    fixture_set = fixtures if isinstance(fixtures, FixtureSet) else load_fixtures(fixtures)
    the_spec = spec if isinstance(spec, Spec) else Spec.load(spec)
    tenants = Tenants(fixture_set, seed=seed, clock=clock)
    registry = TenantRegistry(tenants)
    registry.webhook_sender = WebhookSender(tenants, timeout=webhook_timeout)
    registry.webhook_allow = frozenset(webhook_allow)
    registry.access = ControlAccess(control_token)
    if state_file is not None:
        registry.use_state_file(state_file)
    spec_json = orjson.dumps(the_spec.document)

    async def openapi_json(request: Request) -> Response:
        return Response(spec_json, media_type="application/json")

    routes: list[Any] = [Route("/openapi.json", openapi_json, methods=["GET"])]
    if control:
        routes += control_routes(registry) + dashboard_routes(registry)
    check = self_check_enabled(validate_responses)
    api = KantosApi(the_spec, registry)
    app = MockApp(
        ResponseSelfCheck(api, the_spec) if check else api,
        routes=routes,
        middleware=[
            *([Middleware(ResponseSelfCheck, spec=the_spec)] if check else []),
            Middleware(Gate, registry=registry),
        ],
        exception_handlers={
            KantosError: kantos_error_handler,
            HTTPException: not_found_handler,
            Exception: internal_error_handler,
        },
    )
    # `/api/crm/objects/` is not a route: a 404 in the Kantos shape, not a redirect.
    app.router.redirect_slashes = False
    app.state.tenants = tenants
    app.state.registry = registry
    app.state.spec = the_spec
    return app
