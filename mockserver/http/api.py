"""The Kantos API in pure ASGI: the spec's paths, dispatch by method, thin handlers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import unquote

import orjson
from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import Message, Receive, Scope, Send

from ..domain.auth import ApiKey, RateStatus, authenticate, require_admin, require_server_key
from ..domain.backend import Backend, Page
from ..domain.errors import (
    BadRequest,
    KantosError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
)
from ..domain.query import compile_query
from ..domain.tenants import DEFAULT
from ..openapi import Operation, Spec
from .faults import FaultRule, act
from .gate import MOCK_ONLY, SAFE_METHODS, HeldAnswer, Tenant, TenantRegistry
from .journal import prefetch_body
from .responses import error_headers, internal_error_body, json_head, send_error, send_json

MAX_BODY = 1024 * 1024
ADMIN_OPERATIONS = frozenset({"createObject", "createField"})

Handler = Callable[[Backend, ApiKey, dict[str, Any], dict[str, Any], Any], tuple[int, Any]]


def _page(page: Page) -> bytes:
    """A page as JSON: each record's own encoding (`Record.json`), joined, and its pagination
    (four integers, written in place)."""
    return b'{"data":[%b],"pagination":{"total":%d,"page":%d,"per_page":%d,"total_pages":%d}}' % (
        b",".join([r.json for r in page.records]),
        page.total,
        page.page,
        page.per_page,
        page.total_pages,
    )


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
    "getRecord": lambda b, k, path, q, body: (200, b.get_record(path["record_id"]).json),
    "createRecord": lambda b, k, path, q, body: (
        201,
        b.create_record(body["object_id"], body["field_values"], k.user.id).json,
    ),
    "updateRecord": lambda b, k, path, q, body: (
        200,
        b.update_record(path["record_id"], body["field_values"]).json,
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


#: A `%` that does not start an escape (`%` and two hex digits): `unquote` keeps it as it is.
_LONE_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")


def unquote_value(value: str) -> str:
    """`urllib.parse.unquote(value)`, with the usual case done in C: an ASCII value whose every
    `%` starts an escape is decoded by `unicode_escape` (each `%XX` becomes `\\xXX`; a backslash
    of its own rules that out), then its bytes as UTF-8, as `unquote` decodes them. About a third
    of `unquote`'s time on a percent-encoded `filters`; anything else goes to `unquote` itself."""
    if "%" not in value:
        return value
    if value.isascii() and "\\" not in value and _LONE_PERCENT.search(value) is None:
        escaped = value.replace("%", "\\x").encode("ascii").decode("unicode_escape")
        return escaped.encode("latin-1").decode("utf-8", "replace")
    return unquote(value)


def query_items(qs: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(qs, keep_blank_values=True)`, item for item, in about a third of
    the time: pairs split on `&`, a missing `=` giving an empty value, `+` a space, `%XX` UTF-8."""
    items: list[tuple[str, str]] = []
    for part in qs.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "+" in value:
            value = value.replace("+", " ")
        items.append(
            (
                name if "%" not in name else unquote_value(name),
                value if "%" not in value else unquote_value(value),
            )
        )
    return items


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


def check_body_size(declared: str | None, size: int) -> None:
    """PayloadTooLarge when the declared Content-Length, or the bytes received, pass 1 MiB."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(
            f"The body is {declared} bytes; the limit is {MAX_BODY} (1 MiB)",
            {"limit": MAX_BODY, "size": int(declared)},
        )
    if size > MAX_BODY:
        raise PayloadTooLarge(
            f"The body exceeds the limit of {MAX_BODY} bytes (1 MiB)",
            {"limit": MAX_BODY, "size": size},
        )


async def receive_body(declared: str | None, receive: Receive) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes 1 MiB (declared or streamed)."""
    check_body_size(declared, 0)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        check_body_size(None, size)
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


#: An answer made without ASGI: status, headers, body, and the exception behind a 500.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes, Exception | None]


class AnswersNow(Protocol):
    """What `wire.FastApiProtocol` calls: `KantosApi`, or the response self-check around it."""

    def answer_now(self, scope: Scope, raw: bytes) -> Answer | None: ...


def request_headers(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[str | None, str | None, str | None, str | None, bool]:
    """The headers the API reads, in one pass: `X-Mock-Tenant`, `X-Api-Key`, `Content-Type`,
    `Content-Length`, and whether there is a `Transfer-Encoding`."""
    tenant_name = api_key = content_type = declared = None
    chunked = False
    for name, value in headers:
        if name == b"x-api-key":
            api_key = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            declared = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"x-mock-tenant":
            tenant_name = value.decode("latin-1")
    return tenant_name, api_key, content_type, declared, chunked


def _journal(
    tenant: Tenant,
    scope: Scope,
    now_us: int,
    raw: bytes,
    status: int | None,
    started: float,
    fault: str | None,
    answer: bytes,
) -> None:
    """The request's journal entry: what came, what was answered, and how long it took."""
    tenant.journal.add(
        now_us,
        scope["method"],
        scope["path"],
        scope["query_string"],
        scope["headers"],
        raw,
        status,
        (time.perf_counter() - started) * 1000,
        fault,
        answer,
    )


class KantosApi:
    """Every `/api` request, start to finish, in one pure-ASGI coroutine: the tenant
    (`X-Mock-Tenant`), the journal entry, fault rules, the API key (401), the rate limit (429),
    intake keys (403), then the spec's route (404/405), validation, one handler, and the response
    written as two ASGI messages. Each of those steps was a middleware of its own; run in line,
    with the headers read in one pass and no Request, Response or wrapped `send`, the per-request
    overhead of the mock is a fraction of what the layers cost (`./dev bench http`).

    Other paths never come here: `http/app.py`'s `MockApp` sends only `/api` this way."""

    def __init__(self, spec: Spec, registry: TenantRegistry) -> None:
        missing = {o.operation_id for ops in spec.paths.values() for o in ops.values()} - set(HANDLERS)
        if missing:
            raise ValueError(f"{spec.source} has operations the mock does not implement: {sorted(missing)}")
        self.registry = registry
        #: Paths without parameters, looked up directly; the others by their compiled pattern.
        self.static: dict[str, dict[str, Operation]] = {}
        self.routes: list[tuple[re.Pattern[str], dict[str, Convertor[Any]], dict[str, Operation]]] = []
        for path, ops in spec.paths.items():
            regex, _, convertors = compile_path(path)
            if convertors:
                self.routes.append((regex, convertors, ops))
            else:
                self.static[path] = ops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant_name, api_key, content_type, declared, chunked = request_headers(scope["headers"])
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        registry = self.registry
        try:
            tenant = registry.get(tenant_name)
        except KantosError as exc:
            state[MOCK_ONLY] = "X-Mock-Tenant"
            await send_error(exc, None, send)
            return
        state["tenant"] = tenant
        state["backend"] = tenant.backend
        if self._held(tenant, scope["method"]):
            send = held = HeldAnswer(registry, send)
        else:
            held = None
        started = time.perf_counter()
        backend = tenant.backend
        now_us = backend.clock.now_us()
        # A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 §6.3).
        if declared is None and not chunked:
            raw = b""
        else:
            raw, receive = await prefetch_body(receive)
        status: int | None = None
        answer = b""
        try:
            rule = tenant.faults.fire(scope["method"], scope["path"]) if len(tenant.faults) else None
            if rule is not None:
                answered, status, answer = await self._faulted(rule, scope, receive, send)
                if answered:
                    return
            try:
                status, head, answer = self._respond(
                    backend, scope, raw, api_key, content_type, declared, now_us
                )
            except Exception as exc:
                # A bug in the mock: answer in the Kantos shape, then re-raise so the server logs
                # it with its traceback (and an in-process test sees it), as Starlette would.
                status = 500
                answer = await send_json(send, 500, internal_error_body(exc), [])
                raise
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": answer})
        finally:
            _journal(tenant, scope, now_us, raw, status, started, state.get("fault"), answer)
            if held is not None:
                await held.release()

    def answer_now(self, scope: Scope, raw: bytes) -> Answer | None:
        """What `__call__` answers, for a server that has read the whole request and calls the API
        without ASGI (`wire.FastApiProtocol`): the status, the headers, the body, and the exception
        behind a 500 (for the server to log, as it logs what an ASGI app raises). None when the
        request needs the ASGI path: a bad `X-Mock-Tenant`, fault rules on its tenant, or an
        answer the state file holds until it is written."""
        tenant_name, api_key, content_type, declared, _ = request_headers(scope["headers"])
        registry = self.registry
        try:
            tenant = registry.get(tenant_name)
        except KantosError:
            return None
        if len(tenant.faults) or self._held(tenant, scope["method"]):
            return None
        backend = tenant.backend
        state = scope["state"]
        state["tenant"] = tenant
        state["backend"] = backend
        started = time.perf_counter()
        now_us = backend.clock.now_us()
        failure: Exception | None = None
        try:
            status, head, answer = self._respond(backend, scope, raw, api_key, content_type, declared, now_us)
        except Exception as exc:
            status, failure = 500, exc
            answer = orjson.dumps(internal_error_body(exc))
            head = json_head(answer)
        _journal(tenant, scope, now_us, raw, status, started, None, answer)
        return status, head, answer, failure

    def _held(self, tenant: Tenant, method: str) -> bool:
        """Whether the answer waits for the state file: a change to the default tenant's state
        when the server keeps one."""
        return self.registry.state_file is not None and tenant.name == DEFAULT and method not in SAFE_METHODS

    def _respond(
        self,
        backend: Backend,
        scope: Scope,
        raw: bytes,
        api_key: str | None,
        content_type: str | None,
        declared: str | None,
        now_us: int,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The answer's status, headers (as ASGI's `http.response.start` has them) and body."""
        status, payload, headers = self._answer(backend, scope, raw, api_key, content_type, declared, now_us)
        if status == 204:
            return 204, headers, b""
        content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return status, json_head(content, headers), content

    async def _faulted(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bool, int | None, bytes]:
        """A fault rule fired: it may delay, answer or drop. Whether it answered (or dropped the
        connection) itself, the status and the body it answered with."""
        state = scope["state"]
        state["fault"] = rule.id
        if rule.status is not None or rule.drop:
            state[MOCK_ONLY] = rule.id
        status: int | None = None
        chunks: list[bytes] = []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        answered = await act(rule, scope, receive, watch)
        return answered, status, b"".join(chunks)

    def _answer(
        self,
        backend: Backend,
        scope: Scope,
        raw: bytes,
        api_key: str | None,
        content_type: str | None,
        declared: str | None,
        now_us: int,
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        """Guard, route, validate and run the handler: status, payload and headers of the answer
        (the Kantos error's, for a KantosError)."""
        rate: RateStatus | None = None
        try:
            key = authenticate(backend.keys, api_key)
            now_s = now_us // 1_000_000
            try:
                rate = backend.limiter.hit(key, now_s)
            except RateLimited:
                rate = backend.limiter.peek(key, now_s)
                raise
            path = scope["path"]
            if path == "/api/crm" or path.startswith("/api/crm/"):
                require_server_key(key)
            status, payload = self._handle(backend, key, scope, raw, content_type, declared)
        except KantosError as exc:
            return exc.status, exc.body(), error_headers(exc, rate)
        return status, payload, rate.raw_headers()

    def _route(self, path: str, method: str) -> tuple[dict[str, Operation], dict[str, Any]]:
        ops = self.static.get(path)
        if ops is not None:
            return ops, {}
        for regex, convertors, ops in self.routes:
            match = regex.match(path)
            if match is not None:
                return ops, {name: convertors[name].convert(v) for name, v in match.groupdict().items()}
        raise NotFound(f"No route for {method} {path}", {"path": path, "id": path})

    def _handle(
        self,
        backend: Backend,
        key: ApiKey,
        scope: Scope,
        raw: bytes,
        content_type: str | None,
        declared: str | None,
    ) -> tuple[int, Any]:
        method = scope["method"]
        ops, path_params = self._route(scope["path"], method)
        op = ops.get(method)
        if op is None:
            # 405 with exactly the spec's methods (HEAD and OPTIONS included: they are not listed).
            raise MethodNotAllowed(method, sorted(ops))
        if op.operation_id in ADMIN_OPERATIONS:
            require_admin(key)
        if op.body is not None:
            check_content_type(content_type)
            check_body_size(declared, len(raw))
        else:
            raw = b""
        items = query_items(scope["query_string"].decode("latin-1")) if op.has_query else []
        try:
            query = op.parse_query(items)
        except BadRequest as exc:
            raise _explain_filters(backend, items, exc) from None
        body = op.parse_body(raw)
        return HANDLERS[op.operation_id](backend, key, path_params, query, body)
