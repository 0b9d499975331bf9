"""Tenants and the state file, and the pure-ASGI gate in front of every path but `/api`."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.backend import Backend
from ..domain.errors import KantosError
from ..domain.state import export_state, import_state, write_atomic
from ..domain.tenants import DEFAULT, Tenants
from .access import LOGIN_PATH, ControlAccess, unauthorized
from .faults import Faults, act
from .journal import Journal, journaled
from .responses import error_response
from .webhooks import WebhookSender

CONTROL_PREFIX = "/_mock"
#: Set in `scope["state"]` when the answer is the mock's own doing (a fault rule, a bad
#: X-Mock-Tenant), not Kantos behaviour: checks against openapi.yaml should let it pass.
MOCK_ONLY = "mock_only"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger("mockserver")


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def is_control_path(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


@dataclass(slots=True, eq=False)
class Tenant:
    """One tenant: its domain state, and what the HTTP layer keeps beside it."""

    name: str
    backend: Backend
    journal: Journal
    faults: Faults


class TenantRegistry:
    """Every tenant's Backend (from `domain.Tenants`) with its journal and fault rules."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self._lock = threading.Lock()
        self._by_name: dict[str, Tenant] = {}
        self.state_file: Path | None = None
        #: Sends webhook deliveries (started on the first subscription) and the hosts, besides
        #: loopback, that subscriptions may target.
        self.webhook_sender: WebhookSender | None = None
        self.webhook_allow: frozenset[str] = frozenset()
        #: Who may use the control API and the dashboard (everyone, unless a token is set).
        self.access = ControlAccess()

    @property
    def default(self) -> Tenant:
        return self.get(DEFAULT)

    def get(self, name: str | None) -> Tenant:
        """The tenant of that `X-Mock-Tenant` value, made on first use; BadRequest for a bad name."""
        name = name or DEFAULT
        tenant = self._by_name.get(name)
        if tenant is not None:
            return tenant
        backend = self.tenants.get(name)
        with self._lock:
            tenant = self._by_name.get(name)
            if tenant is None:
                tenant = self._by_name[name] = Tenant(name, backend, Journal(), Faults(self.tenants.seed))
            return tenant

    def names(self) -> list[str]:
        return self.tenants.names()

    def reset(self, name: str | None) -> int:
        """Back to the fixture set: records, schema, keys, limits, clock, journal, faults, webhooks.
        Returns the number of changes undone."""
        tenant = self.get(name)
        undone = tenant.backend.changes
        tenant.backend.reset()
        tenant.journal.clear()
        tenant.faults.reset()
        return undone

    def reset_all(self) -> None:
        for name in self.names():
            self.reset(name)

    # --- the state file (default tenant only) ----------------------------------------------

    def use_state_file(self, path: str | Path) -> None:
        """Load the default tenant's state from `path` when it exists; write it after each change.

        Raises ValueError when the file exists but cannot be read or imported.
        """
        self.state_file = Path(path)
        if self.state_file.exists():
            try:
                data = orjson.loads(self.state_file.read_bytes())
                import_state(self.default.backend, data)
            except (OSError, orjson.JSONDecodeError) as exc:
                raise ValueError(f"cannot read the state file {path}: {exc}") from exc
            except KantosError as exc:
                raise ValueError(f"the state file {path} is not a valid state: {exc.message}") from exc
        else:
            self.save()

    def save(self) -> None:
        """Write the default tenant's state to the state file, atomically (no-op without one)."""
        if self.state_file is not None:
            write_atomic(
                self.state_file, orjson.dumps(export_state(self.default.backend), option=orjson.OPT_INDENT_2)
            )

    def changed(self, tenant: Tenant) -> None:
        """Called after a change made outside HTTP (the Python API): keep the state file current."""
        if tenant.name == DEFAULT and self.state_file is not None:
            self.save()


class HeldAnswer:
    """A `send` that holds the answer to a change until the state file is written, so a client
    that got its answer can rely on the change surviving a restart. `release()` writes the file
    (when the answer is a success) and then sends what was held."""

    def __init__(self, registry: TenantRegistry, send: Send) -> None:
        self.registry = registry
        self.send = send
        self.held: list[Message] = []
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        self.held.append(message)

    async def release(self) -> None:
        if 200 <= self.status < 400:
            try:
                self.registry.save()
            except OSError as exc:
                log.error("kantos-mock: could not write the state file %s: %s", self.registry.state_file, exc)
        for message in self.held:
            await self.send(message)
        self.held = []


class Gate:
    """Every path but `/api` (which `http/api.py` serves start to finish): picks the tenant;
    journals and faults requests outside the control API; holds the answers to changes until
    the state file is written."""

    def __init__(self, app: ASGIApp, registry: TenantRegistry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        headers = Headers(scope=scope)
        access = self.registry.access
        path = scope["path"]
        if access.required and is_control_path(path) and path != LOGIN_PATH and not access.allows(headers):
            state[MOCK_ONLY] = "control token"
            await error_response(unauthorized())(scope, receive, send)
            return
        try:
            tenant = self.registry.get(headers.get("x-mock-tenant"))
        except KantosError as exc:
            state[MOCK_ONLY] = "X-Mock-Tenant"
            await error_response(exc)(scope, receive, send)
            return
        state["tenant"] = tenant
        state["backend"] = tenant.backend
        if (
            self.registry.state_file is not None
            and tenant.name == DEFAULT
            and scope["method"] not in SAFE_METHODS
        ):
            held = HeldAnswer(self.registry, send)
            await self._route(scope, receive, held)
            await held.release()
        else:
            await self._route(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_control_path(scope["path"]):
            await self.app(scope, receive, send)  # not journaled, not faulted, no key needed
            return
        tenant: Tenant = scope["state"]["tenant"]
        await journaled(tenant.journal, tenant.backend.clock, self._faulted, scope, receive, send)

    async def _faulted(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant: Tenant = scope["state"]["tenant"]
        rule = tenant.faults.fire(scope["method"], scope["path"])
        if rule is not None:
            scope["state"]["fault"] = rule.id
            if rule.status is not None or rule.drop:
                scope["state"][MOCK_ONLY] = rule.id
            if await act(rule, scope, receive, send):
                return
        await self.app(scope, receive, send)
