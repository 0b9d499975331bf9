"""The control API under `/_mock`: routes and request validation from control.yaml, thin handlers."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.clock import Clock, format_timestamp, from_us
from ..domain.errors import BadRequest, MethodNotAllowed, NotFound
from ..domain.fixtures import records_csv
from ..domain.schema import parse_instant_operand
from ..domain.state import MAX_US, MIN_US, export_state, import_state
from ..domain.tenants import DEFAULT
from ..openapi import Operation, Spec
from .api import check_content_type, read_body
from .gate import Tenant, TenantRegistry
from .responses import json_response

#: Handlers get the registry, the requesting tenant, path parameters, query and body.
Handler = Callable[[TenantRegistry, Tenant, dict[str, Any], dict[str, Any], Any], tuple[int, Any]]


def control_spec_path() -> Path:
    return Path(str(resources.files("mockserver") / "control.yaml"))


@cache
def control_spec() -> Spec:
    """control.yaml, loaded once per process (it never changes at run time)."""
    return Spec.load(control_spec_path())


def clock_json(clock: Clock) -> dict[str, Any]:
    return {"now": format_timestamp(clock.now_us()), "frozen": clock.frozen}


def set_clock(clock: Clock, body: dict[str, Any]) -> None:
    """Apply `freeze`, then `set`, then `advance`; everything is checked before anything moves."""
    target: int | None = None
    if "set" in body:
        target = parse_instant_operand(body["set"])
        if target is None or not MIN_US <= target <= MAX_US:
            raise BadRequest.field(
                "set",
                f"expected an ISO 8601 datetime with Z or an offset (2024-01-15T10:30:00Z) or a date, "
                f"got {body['set']!r}",
            )
    advance_us = round(body.get("advance", 0) * 1_000_000)
    final = (target if target is not None else clock.now_us()) + advance_us
    if not MIN_US <= final <= MAX_US:
        raise BadRequest.field("advance", "would move the clock outside the years 1 to 9999")
    if "freeze" in body:
        clock.freeze(body["freeze"])
    if target is not None:
        clock.set(from_us(target))
    if advance_us:
        clock.advance(advance_us / 1_000_000)


def _delete_fault(tenant: Tenant, fault_id: str) -> tuple[int, None]:
    if not tenant.faults.remove(fault_id):
        raise NotFound(f"Fault rule {fault_id!r} not found", {"fault_id": fault_id, "id": fault_id})
    return 204, None


def _set_clock(tenant: Tenant, body: dict[str, Any]) -> tuple[int, Any]:
    set_clock(tenant.backend.clock, body)
    return 200, clock_json(tenant.backend.clock)


def _import(tenant: Tenant, body: Any) -> tuple[int, Any]:
    objects, records = import_state(tenant.backend, body)
    return 200, {"objects": objects, "records": records}


class CsvText(str):
    """A handler's payload that is sent as `text/csv`, not encoded as JSON."""


def _export(tenant: Tenant, query: dict[str, Any]) -> tuple[int, Any]:
    object_id = query.get("object_id")
    if query.get("format", "json") == "json":
        if object_id is not None:
            raise BadRequest.param("object_id", "goes with format=csv (the JSON export holds every object)")
        return 200, export_state(tenant.backend)
    if object_id is None:
        raise BadRequest.param("object_id", "format=csv exports one object's records: add object_id")
    backend = tenant.backend
    obj = backend.get_object(object_id)
    records = sorted(backend.stores[obj.id].records.values(), key=lambda r: (r.created_at, r.id))
    return 200, CsvText(records_csv(obj, (r.to_json() for r in records)))


def _cleared(clear: Callable[[], None]) -> tuple[int, None]:
    clear()
    return 204, None


def _subscribe(registry: TenantRegistry, tenant: Tenant, body: dict[str, Any]) -> tuple[int, Any]:
    webhooks = tenant.backend.webhooks
    sub = webhooks.subscribe(body["url"], body.get("events"), body["secret"], registry.webhook_allow)
    if registry.webhook_sender is not None:
        registry.webhook_sender.attach(webhooks)
    return 201, sub.to_json()


def _unsubscribe(tenant: Tenant, webhook_id: str) -> tuple[int, None]:
    if not tenant.backend.webhooks.unsubscribe(webhook_id):
        raise NotFound(f"Webhook subscription {webhook_id!r} not found", {"id": webhook_id})
    return 204, None


def _deliveries(tenant: Tenant, query: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        d
        for d in tenant.backend.webhooks.log()
        if query.get("subscription_id") in (None, d["subscription_id"])
        and query.get("event") in (None, d["event"])
    ]


def _requests(tenant: Tenant, query: dict[str, Any]) -> dict[str, Any]:
    journal = tenant.journal
    # Read before the entries: a request journaled in between is then seen by the next poll.
    last_id, generation = journal.last_id, journal.generation
    data = journal.entries(
        query.get("method"),
        query.get("path"),
        query.get("status"),
        query.get("since", 0),
        query.get("limit"),
        query.get("bodies", True),
    )
    return {"data": data, "last_id": last_id, "generation": generation}


def _request(tenant: Tenant, request_id: str) -> dict[str, Any]:
    entry = tenant.journal.entry(int(request_id)) if request_id.isdigit() and len(request_id) < 19 else None
    if entry is None:
        raise NotFound(
            f"Request {request_id!r} is not in the journal (ids count from 1; the oldest go first)",
            {"request_id": request_id, "id": request_id},
        )
    return entry


def _tenants(registry: TenantRegistry) -> list[dict[str, Any]]:
    return [{"name": name, "default": name == DEFAULT} for name in registry.names()]


def _keys(tenant: Tenant) -> list[dict[str, Any]]:
    backend = tenant.backend
    now_s = backend.clock.now_us() // 1_000_000
    return [{**k.to_json(), "windows": backend.limiter.usage(k, now_s)} for k in backend.keys.values()]


HANDLERS: dict[str, Handler] = {
    "resetMock": lambda reg, t, path, q, body: (
        200,
        {"tenant": t.name, "changes_undone": reg.reset(t.name)},
    ),
    "listRequests": lambda reg, t, path, q, body: (200, _requests(t, q)),
    "getRequest": lambda reg, t, path, q, body: (200, _request(t, path["request_id"])),
    "listTenants": lambda reg, t, path, q, body: (200, {"data": _tenants(reg)}),
    "clearRequests": lambda reg, t, path, q, body: _cleared(t.journal.clear),
    "exportState": lambda reg, t, path, q, body: _export(t, q),
    "importState": lambda reg, t, path, q, body: _import(t, body),
    "listFaults": lambda reg, t, path, q, body: (200, {"data": [r.to_json() for r in t.faults.rules()]}),
    "addFault": lambda reg, t, path, q, body: (201, t.faults.add(body).to_json()),
    "clearFaults": lambda reg, t, path, q, body: _cleared(t.faults.clear),
    "deleteFault": lambda reg, t, path, q, body: _delete_fault(t, path["fault_id"]),
    "getClock": lambda reg, t, path, q, body: (200, clock_json(t.backend.clock)),
    "setClock": lambda reg, t, path, q, body: _set_clock(t, body),
    "listKeys": lambda reg, t, path, q, body: (200, {"data": _keys(t)}),
    "listWebhooks": lambda reg, t, path, q, body: (
        200,
        {"data": [s.to_json() for s in t.backend.webhooks.subscriptions.values()]},
    ),
    "addWebhook": lambda reg, t, path, q, body: _subscribe(reg, t, body),
    "deleteWebhook": lambda reg, t, path, q, body: _unsubscribe(t, path["webhook_id"]),
    "listDeliveries": lambda reg, t, path, q, body: (200, {"data": _deliveries(t, q)}),
    "patchKey": lambda reg, t, path, q, body: (
        200,
        t.backend.set_key_limits(
            path["key"], body.get("plan"), body.get("per_minute"), body.get("per_day")
        ).to_json(),
    ),
}


def invoke(
    registry: TenantRegistry,
    tenant: str | None,
    operation_id: str,
    path: dict[str, str] | None = None,
    query: dict[str, str | None] | None = None,
    body: Any = None,
) -> Any:
    """Run one control operation in process (the Python API): validated by control.yaml exactly as
    over HTTP, raising the same `KantosError`s. Returns the response payload (None for 204)."""
    op = control_spec().operations[operation_id]
    the_tenant = registry.get(tenant)
    params = op.parse_query([(k, v) for k, v in (query or {}).items() if v is not None])
    parsed = None
    if op.body is not None:
        try:
            raw = orjson.dumps(body)
        except TypeError as exc:
            raise BadRequest(
                f"The body cannot be sent as JSON: {exc}", {"field": "(body)", "reason": str(exc)}
            ) from None
        parsed = op.parse_body(raw)
    _, payload = HANDLERS[operation_id](registry, the_tenant, path or {}, params, parsed)
    if op.method != "GET":
        registry.changed(the_tenant)
    return payload


def control_routes(registry: TenantRegistry, spec: Spec | None = None) -> list[Route]:
    """One route per control.yaml path; every method reaches the dispatcher (405 names the rest)."""
    spec = spec or control_spec()
    missing = {op.operation_id for ops in spec.paths.values() for op in ops.values()} - set(HANDLERS)
    if missing:
        raise ValueError(f"{spec.source} has operations the mock does not implement: {sorted(missing)}")
    routes = []
    for path, ops in spec.paths.items():
        route = Route(path, _endpoint(registry, ops))
        route.methods = None  # let every method reach the dispatcher, as in api.py
        routes.append(route)
    return routes


def _endpoint(registry: TenantRegistry, ops: dict[str, Operation]) -> Callable[[Request], Any]:
    allowed = sorted(ops)

    async def endpoint(request: Request) -> Response:
        op = ops.get(request.method)
        if op is None:
            raise MethodNotAllowed(request.method, allowed)
        tenant: Tenant = request.scope["state"]["tenant"]
        raw = b""
        if op.body is not None:
            check_content_type(request.headers.get("content-type"))
            raw = await read_body(request)
        query = op.parse_query(request.query_params.multi_items())
        body = op.parse_body(raw)
        status, payload = HANDLERS[op.operation_id](registry, tenant, request.path_params, query, body)
        if status == 204:
            return Response(status_code=204)
        if isinstance(payload, CsvText):
            return Response(payload, media_type="text/csv; charset=utf-8")
        return json_response(payload, status)

    return endpoint
