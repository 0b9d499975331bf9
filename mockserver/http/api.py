"""The Kantos routes: one Starlette Route per spec path, a dispatcher, and thin handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.auth import ApiKey, require_admin
from ..domain.backend import Backend, Page
from ..domain.errors import BadRequest, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType
from ..domain.query import compile_query
from ..spec import Operation, Spec
from .responses import json_response, rate_headers

MAX_BODY = 1024 * 1024
ADMIN_OPERATIONS = frozenset({"createObject", "createField"})

Handler = Callable[[Backend, ApiKey, dict[str, Any], dict[str, Any], Any], tuple[int, Any]]


def _page(page: Page) -> dict[str, Any]:
    return {
        "data": [r.to_json() for r in page.records],
        "pagination": {
            "total": page.total,
            "page": page.page,
            "per_page": page.per_page,
            "total_pages": page.total_pages,
        },
    }


def _deleted(backend: Backend, record_id: str) -> tuple[int, None]:
    backend.delete_record(record_id)
    return 204, None


HANDLERS: dict[str, Handler] = {
    "queryRecords": lambda b, k, path, q, body: (
        200,
        _page(
            b.query_records(
                q["object_id"],
                q.get("filters"),
                q.get("sort"),
                q.get("order"),
                q.get("page", 1),
                q.get("per_page", 25),
            )
        ),
    ),
    "getRecord": lambda b, k, path, q, body: (200, b.get_record(path["record_id"]).to_json()),
    "createRecord": lambda b, k, path, q, body: (
        201,
        b.create_record(body["object_id"], body["field_values"], k.user.id).to_json(),
    ),
    "updateRecord": lambda b, k, path, q, body: (
        200,
        b.update_record(path["record_id"], body["field_values"]).to_json(),
    ),
    "deleteRecord": lambda b, k, path, q, body: _deleted(b, path["record_id"]),
    "listObjects": lambda b, k, path, q, body: (
        200,
        {"data": [o.summary() for o in b.list_objects()]},
    ),
    "getObject": lambda b, k, path, q, body: (200, b.get_object(path["object_id"]).to_json()),
    "createObject": lambda b, k, path, q, body: (
        201,
        b.create_object(body["name"], body.get("icon"), body.get("fields", [])).to_json(),
    ),
    "createField": lambda b, k, path, q, body: (
        201,
        b.create_field(path["object_id"], body).to_json(),
    ),
}


def check_content_type(value: str | None) -> None:
    """JSON, with `charset=utf-8` or none; anything else is a 415."""
    media, _, params = (value or "").partition(";")
    ok = media.strip().lower() == "application/json"
    for param in params.split(";") if ok else ():
        name, _, arg = param.partition("=")
        if name.strip().lower() == "charset" and arg.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            ok = False
    if not ok:
        raise UnsupportedMediaType(
            f"Send the body as application/json (UTF-8), not {value or 'no Content-Type'}",
            {"content_type": value, "expected": "application/json"},
        )


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(
            f"The body is {declared} bytes; the limit is {MAX_BODY} (1 MiB)",
            {"limit": MAX_BODY, "size": int(declared)},
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(
                f"The body exceeds the limit of {MAX_BODY} bytes (1 MiB)",
                {"limit": MAX_BODY, "size": size},
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _explain_filters(backend: Backend, items: list[tuple[str, str]], exc: BadRequest) -> BadRequest:
    """The spec decides that `filters` is malformed; when the object is known, the query engine
    says so in the field's own terms (operator and expected type), e.g. for a bare `null`."""
    if exc.details.get("param") != "filters":
        return exc
    given = dict(items)
    obj = backend.objects.get(given.get("object_id", ""))
    try:
        filters = orjson.loads(given.get("filters", ""))
    except orjson.JSONDecodeError:
        return exc
    if obj is None or not isinstance(filters, dict):
        return exc
    try:
        compile_query(obj, filters, None, None)
    except BadRequest as better:
        return better
    return exc


def _endpoint(ops: dict[str, Operation]) -> Callable[[Request], Any]:
    allowed = sorted(ops)

    async def endpoint(request: Request) -> Response:
        op = ops.get(request.method)
        if op is None:
            raise MethodNotAllowed(request.method, allowed)
        state = request.scope["state"]
        backend: Backend = state["backend"]
        key: ApiKey = state["key"]
        if op.operation_id in ADMIN_OPERATIONS:
            require_admin(key)
        raw = b""
        if op.body is not None:
            check_content_type(request.headers.get("content-type"))
            raw = await read_body(request)
        items = request.query_params.multi_items()
        try:
            query = op.parse_query(items)
        except BadRequest as exc:
            raise _explain_filters(backend, items, exc) from None
        body = op.parse_body(raw)
        status, payload = HANDLERS[op.operation_id](backend, key, request.path_params, query, body)
        if status == 204:
            return Response(status_code=204, headers=rate_headers(request.scope))
        return json_response(payload, status, rate_headers(request.scope))

    return endpoint


def api_routes(spec: Spec) -> list[Route]:
    missing = {op for ops in spec.paths.values() for op in (o.operation_id for o in ops.values())} - set(
        HANDLERS
    )
    if missing:
        raise ValueError(f"{spec.source} has operations the mock does not implement: {sorted(missing)}")
    return [_any_method_route(path, _endpoint(ops)) for path, ops in spec.paths.items()]


def _any_method_route(path: str, endpoint: Callable[[Request], Any]) -> Route:
    # A function endpoint defaults to GET and HEAD; clearing `methods` lets every method
    # reach the dispatcher, which answers 405 with exactly the spec's methods in `Allow`.
    route = Route(path, endpoint)
    route.methods = None
    return route
