"""The Kantos API in pure ASGI: the spec's paths, dispatch by method, thin handlers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.convertors import Convertor
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.auth import ApiKey, require_admin
from ..domain.backend import Backend, Page
from ..domain.errors import (
    BadRequest,
    KantosError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ..domain.query import compile_query
from ..spec import Operation, Spec
from .gate import is_api_path
from .responses import error_response

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
    return await receive_body(request.headers.get("content-length"), request.receive)


async def receive_body(declared: str | None, receive: Receive) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes 1 MiB (declared or streamed)."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(
            f"The body is {declared} bytes; the limit is {MAX_BODY} (1 MiB)",
            {"limit": MAX_BODY, "size": int(declared)},
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(
                f"The body exceeds the limit of {MAX_BODY} bytes (1 MiB)",
                {"limit": MAX_BODY, "size": size},
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
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


class KantosApi:
    """Every `/api` request, in pure ASGI: the spec's paths (compiled by Starlette's own path
    compiler), dispatch by method, one handler, and the response written directly. Other paths
    go on to `app` (Starlette's router). Running in front of the router, with no Request or
    Response objects, is what keeps the per-request overhead of the mock low."""

    def __init__(self, app: ASGIApp, spec: Spec) -> None:
        missing = {o.operation_id for ops in spec.paths.values() for o in ops.values()} - set(HANDLERS)
        if missing:
            raise ValueError(f"{spec.source} has operations the mock does not implement: {sorted(missing)}")
        self.app = app
        self.routes: list[tuple[re.Pattern[str], dict[str, Convertor[Any]], dict[str, Operation]]] = []
        for path, ops in spec.paths.items():
            regex, _, convertors = compile_path(path)
            self.routes.append((regex, convertors, ops))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            await self._handle(scope, receive, send)
        except KantosError as exc:
            await error_response(exc, scope)(scope, receive, send)

    def _route(self, path: str, method: str) -> tuple[dict[str, Operation], dict[str, Any]]:
        for regex, convertors, ops in self.routes:
            match = regex.match(path)
            if match is not None:
                return ops, {name: convertors[name].convert(v) for name, v in match.groupdict().items()}
        raise NotFound(f"No route for {method} {path}", {"path": path, "id": path})

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        ops, path_params = self._route(scope["path"], method)
        op = ops.get(method)
        if op is None:
            # 405 with exactly the spec's methods (HEAD and OPTIONS included: they are not listed).
            raise MethodNotAllowed(method, sorted(ops))
        state = scope["state"]
        backend: Backend = state["backend"]
        key: ApiKey = state["key"]
        if op.operation_id in ADMIN_OPERATIONS:
            require_admin(key)
        raw = b""
        if op.body is not None:
            headers = Headers(scope=scope)
            check_content_type(headers.get("content-type"))
            raw = await receive_body(headers.get("content-length"), receive)
        items = (
            parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True) if op.has_query else []
        )
        try:
            query = op.parse_query(items)
        except BadRequest as exc:
            raise _explain_filters(backend, items, exc) from None
        body = op.parse_body(raw)
        status, payload = HANDLERS[op.operation_id](backend, key, path_params, query, body)
        rate = state.get("rate")
        headers_out = rate.raw_headers() if rate is not None else []
        if status == 204:
            await send({"type": "http.response.start", "status": 204, "headers": headers_out})
            await send({"type": "http.response.body", "body": b""})
            return
        content = orjson.dumps(payload)
        headers_out = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            *headers_out,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": content})
