"""Deliberately broken servers, one realistic deviation each: the kit reports every one under the
rule it breaks, with two of three seeds (each seed in two thirds of them, as the names fall), and
its reproducer shows the deviation when replayed."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from kit_support import Headers, call_app, read_body
from starlette.types import ASGIApp, Receive, Scope, Send

from mockserver import create_app
from mockserver.conformance import Options, check
from mockserver.conformance.report import Report, render_check
from mockserver.server import MockServer

ADMIN_KEY = "kantos_admin_local_key"
KEYS = {
    "KANTOS_API_KEY": ADMIN_KEY,
    "KANTOS_INTAKE_KEY": "kantos_intake_local_key",
    "KANTOS_NON_ADMIN_KEY": "kantos_server_local_key",
}
SEEDS = (1, 2, 3)


def seeds_for(name: str) -> tuple[int, int]:
    """Two seeds per broken server, in turn across them, so that every seed meets most deviations:
    three runs each made this file a third of the whole suite's time."""
    i = sorted(DEVIATIONS).index(name) % len(SEEDS)
    return SEEDS[i], SEEDS[(i + 1) % len(SEEDS)]


LIMIT = 1_048_576


@dataclass
class Answer:
    """Answer the request directly, without asking the mock."""

    status: int
    doc: Any = None


Before = Callable[["Deviant", Scope, bytes], Awaitable[Answer | tuple[Scope, bytes]]]
After = Callable[["Deviant", Scope, bytes, int, Headers, bytes], Awaitable[tuple[int, Headers, bytes]]]


@dataclass
class Switch:
    """Which deviation the shared server makes, and what it remembers between requests."""

    before: Before | None = None
    after: After | None = None
    memory: dict[str, Any] = field(default_factory=dict)

    def to(self, name: str) -> None:
        """Deviate as `name` does from now on, remembering nothing yet."""
        _, self.before, self.after = DEVIATIONS[name]
        self.memory = {}


class Deviant:
    """ASGI middleware around the mock: changes requests before it sees them, or its answers, as
    the switch's deviation says."""

    def __init__(self, app: ASGIApp, switch: Switch) -> None:
        self.app = app
        self.switch = switch

    @property
    def memory(self) -> dict[str, Any]:
        return self.switch.memory

    async def call(self, scope: Scope, body: bytes = b"") -> tuple[int, Headers, bytes]:
        return await call_app(self.app, scope, body)

    async def get(self, scope: Scope, path: str, query: str = "") -> Any:
        headers = [(k, v) for k, v in scope["headers"] if k.lower() == b"x-api-key"]
        sub = {**scope, "method": "GET", "path": path, "query_string": query.encode(), "headers": headers}
        status, _, raw = await self.call(sub)
        return json.loads(raw) if status == 200 else None

    async def types(self, scope: Scope, object_id: str) -> dict[str, dict[str, Any]]:
        """The object's fields by slug (from GET /api/crm/objects/{id}, kept until a field is added)."""
        known = self.memory.setdefault("types", {})
        if object_id not in known:
            doc = await self.get(scope, f"/api/crm/objects/{object_id}")
            known[object_id] = {f["slug"]: f for f in doc["fields"]} if isinstance(doc, dict) else {}
        return known[object_id]  # type: ignore[no-any-return]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if scope["method"] == "POST" and scope["path"].endswith("/fields"):
            self.memory.pop("types", None)
        before, after = self.switch.before, self.switch.after
        if before is not None:
            changed = await before(self, scope, body)
            if isinstance(changed, Answer):
                raw = json.dumps(changed.doc).encode() if changed.doc is not None else b""
                await _respond(send, changed.status, [], raw)
                return
            scope, body = changed
        status, headers, raw = await self.call(scope, body)
        if after is not None:
            status, headers, raw = await after(self, scope, body, status, headers, raw)
        await _respond(send, status, headers, raw)


async def _respond(send: Send, status: int, headers: Headers, body: bytes) -> None:
    kept = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
    if body:
        kept.append((b"content-type", b"application/json"))
    kept.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body})


# --- building blocks ---------------------------------------------------------------------------


def query_items(scope: Scope) -> list[tuple[str, str]]:
    return parse_qsl(scope["query_string"].decode(), keep_blank_values=True)


def with_items(scope: Scope, items: list[tuple[str, str]]) -> Scope:
    return {**scope, "query_string": urlencode(items).encode()}


def header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k.lower() == name), None)


def set_header(scope: Scope, name: bytes, value: bytes | None) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != name]
    if value is not None:
        headers.append((name, value))
    return {**scope, "headers": headers}


def is_query(scope: Scope) -> bool:
    return scope["method"] == "GET" and scope["path"] == "/api/crm/records/query"


def filters_rewrite(change: Callable[[str, Any, dict[str, Any]], Any]) -> Before:
    """A deviation in how filters are read: `change(slug, condition, field)` returns the condition
    the mock is asked instead (`...` drops the key)."""

    async def before(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
        if not is_query(scope):
            return scope, body
        items = query_items(scope)
        params = dict(items)
        try:
            filters = json.loads(params.get("filters", ""))
        except ValueError:
            return scope, body
        if not isinstance(filters, dict):
            return scope, body
        fields = await mw.types(scope, params.get("object_id", ""))
        out = {}
        for slug, cond in filters.items():
            kind = fields.get(slug, {"type": slug})  # system fields: their name as their type
            new = change(slug, cond, kind)
            if new is not ...:
                out[slug] = new
        items = [(k, json.dumps(out) if k == "filters" else v) for k, v in items]
        return with_items(scope, items), body

    return before


def op_map(fn: Callable[[str, Any, str], dict[str, Any] | None]) -> Before:
    """Rewrite each operator of each condition: `fn(op, operand, type)` returns the operators
    that replace it (None keeps it)."""

    def change(slug: str, cond: Any, field: dict[str, Any]) -> Any:
        if not isinstance(cond, dict):
            return cond
        out: dict[str, Any] = {}
        for op, operand in cond.items():
            new = fn(op, operand, field["type"])
            out.update({op: operand} if new is None else new)
        return out or ...

    return filters_rewrite(change)


def body_rewrite(
    fn: Callable[[dict[str, Any], dict[str, dict[str, Any]]], dict[str, Any] | Answer],
) -> Before:
    """Rewrite the field_values of POST and PATCH record bodies: `fn(field_values, fields)`."""

    async def before(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
        if scope["method"] not in ("POST", "PATCH") or not scope["path"].startswith("/api/crm/record"):
            return scope, body
        try:
            doc = json.loads(body)
        except ValueError:
            return scope, body
        if not isinstance(doc, dict) or not isinstance(doc.get("field_values"), dict):
            return scope, body
        object_id = doc.get("object_id")
        if scope["method"] == "PATCH":
            record = await mw.get(scope, scope["path"])
            object_id = record.get("object_id") if isinstance(record, dict) else None
        fields = await mw.types(scope, str(object_id))
        changed = fn(doc["field_values"], fields)
        if isinstance(changed, Answer):
            return changed
        doc["field_values"] = changed
        return scope, json.dumps(doc).encode()

    return before


def values_of_type(types: tuple[str, ...], fix: Callable[[Any], Any]) -> Before:
    """A lenient or wrong reading of one value format: `fix` rewrites values of these types."""

    def fn(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            k: fix(v) if fields.get(k, {}).get("type") in types and v is not None else v
            for k, v in values.items()
        }

    return body_rewrite(fn)


def page_rewrite(fn: Callable[[Scope, dict[str, Any]], None]) -> After:
    """Change a query's 200 answer in place: `fn(scope, answer)`."""

    async def after(mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes) -> Any:
        if is_query(scope) and status == 200:
            doc = json.loads(raw)
            fn(scope, doc)
            raw = json.dumps(doc).encode()
        return status, headers, raw

    return after


def param(scope: Scope, name: str) -> str | None:
    return dict(query_items(scope)).get(name)


def resort(key: Callable[[dict[str, Any]], Any]) -> Callable[[Scope, dict[str, Any]], None]:
    def fn(scope: Scope, doc: dict[str, Any]) -> None:
        doc["data"].sort(key=key, reverse=param(scope, "order") == "desc")

    return fn


# --- the deviations -----------------------------------------------------------------------------


async def _stale_reads(
    mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes
) -> Any:
    """Queries answered from a cache of records as first seen: later writes do not show."""
    if is_query(scope) and status == 200:
        doc = json.loads(raw)
        seen = mw.memory.setdefault("seen", {})
        doc["data"] = [seen.setdefault(r["id"], r) for r in doc["data"]]
        raw = json.dumps(doc).encode()
    return status, headers, raw


async def _deleted_unique_kept(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    """Deleting a record does not free its unique values."""
    held = mw.memory.setdefault("held", set())
    if scope["method"] == "DELETE":
        record = await mw.get(scope, scope["path"])
        if isinstance(record, dict):
            fields = await mw.types(scope, record["object_id"])
            held.update(
                json.dumps(v) for k, v in record["field_values"].items() if fields.get(k, {}).get("unique")
            )
    elif scope["method"] == "POST" and scope["path"] == "/api/crm/record":
        values = json.loads(body).get("field_values", {}) if body.startswith(b"{") else {}
        if any(json.dumps(v) in held for v in values.values()):
            return Answer(409, {"error": "taken", "code": "CONFLICT", "status": 409, "details": {}})
    return scope, body


async def _own_value_conflicts(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    """Re-sending a record's own unique value is a 409."""
    if scope["method"] == "PATCH":
        record = await mw.get(scope, scope["path"])
        values = json.loads(body).get("field_values", {}) if body.startswith(b"{") else {}
        if isinstance(record, dict) and isinstance(values, dict):
            fields = await mw.types(scope, record["object_id"])
            for k, v in values.items():
                if fields.get(k, {}).get("unique") and record["field_values"].get(k) == v:
                    return Answer(
                        409, {"error": "taken", "code": "CONFLICT", "status": 409, "details": {"field": k}}
                    )
    return scope, body


async def _patch_empty_keeps_updated_at(
    mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes
) -> Any:
    """PATCH {} changes nothing, updated_at included."""
    if scope["method"] == "PATCH" and status == 200 and json.loads(body).get("field_values") == {}:
        doc = json.loads(raw)
        old = mw.memory.get(doc["id"])
        if old is not None:
            doc["updated_at"] = old
        raw = json.dumps(doc).encode()
    if scope["method"] in ("POST", "PATCH") and status in (200, 201) and raw.startswith(b"{"):
        doc = json.loads(raw)
        if isinstance(doc.get("id"), str):
            mw.memory.setdefault(doc["id"], doc.get("updated_at"))
    return status, headers, raw


async def _chunked_unlimited(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    """The 1 MiB limit is enforced from Content-Length only: a chunked body of any size goes through."""
    if header(scope, b"content-length") is None and len(body) > LIMIT:
        return scope, body.rstrip()
    return scope, body


async def _limit_off_by_one(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    if len(body) >= LIMIT:
        return Answer(413, {"error": "too large", "code": "PAYLOAD_TOO_LARGE", "status": 413, "details": {}})
    return scope, body


async def _charset_ignored(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    ctype = header(scope, b"content-type") or b""
    if ctype.lower().startswith(b"application/json"):
        scope = set_header(scope, b"content-type", b"application/json")
    return scope, body


async def _json_when_untyped(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    if body and header(scope, b"content-type") is None:
        scope = set_header(scope, b"content-type", b"application/json")
    return scope, body


async def _lenient_json(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    """Python's json module: NaN and Infinity read as numbers, and stored as null."""
    if scope["method"] in ("POST", "PATCH") and body:
        try:
            doc = json.loads(body)
        except ValueError:
            return scope, body
        text = json.dumps(doc).replace("NaN", "null").replace("-Infinity", "null").replace("Infinity", "null")
        return scope, text.encode()
    return scope, body


async def _trailing_ignored(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    if scope["method"] in ("POST", "PATCH") and body.startswith(b"{"):
        try:
            doc, _ = json.JSONDecoder().raw_decode(body.decode("utf-8", "replace"))
        except ValueError:
            return scope, body
        return scope, json.dumps(doc).encode()
    return scope, body


async def _head_as_get(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    if scope["method"] == "HEAD":
        return Answer(200)
    return scope, body


async def _repeated_last_wins(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    if is_query(scope):
        return with_items(scope, list(dict(query_items(scope)).items())), body
    return scope, body


async def _unknown_params_rejected(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    known = {"object_id", "filters", "sort", "order", "page", "per_page"}
    unknown = [k for k, _ in query_items(scope) if k not in known]
    if is_query(scope) and unknown:
        return Answer(
            400,
            {
                "error": f"unknown parameter {unknown[0]}",
                "code": "BAD_REQUEST",
                "status": 400,
                "details": {"param": unknown[0]},
            },
        )
    return scope, body


async def _not_found_before_auth(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    known = ("/api/crm/records/query", "/api/crm/record", "/api/crm/objects")
    if not scope["path"].startswith(known):
        return Answer(404, {"error": "no route", "code": "NOT_FOUND", "status": 404, "details": {}})
    return scope, body


async def _validation_before_lookup(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    if scope["method"] == "PATCH" and await mw.get(scope, scope["path"]) is None:
        return Answer(
            422, {"error": "invalid", "code": "VALIDATION_ERROR", "status": 422, "details": {"errors": []}}
        )
    return scope, body


async def _reset_relative(
    mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes
) -> Any:
    """X-RateLimit-Reset as seconds until the reset, not a Unix time."""
    out = [(k, b"37" if k.lower() == b"x-ratelimit-reset" else v) for k, v in headers]
    return status, out, raw


async def _no_limit_headers_on_errors(
    mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes
) -> Any:
    if status >= 400:
        headers = [(k, v) for k, v in headers if not k.lower().startswith(b"x-ratelimit")]
    return status, headers, raw


async def _created_by_per_request(
    mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes
) -> Any:
    if scope["method"] == "POST" and status == 201 and scope["path"] == "/api/crm/record":
        doc = json.loads(raw)
        mw.memory["n"] = mw.memory.get("n", 0) + 1
        doc["created_by"] = f"user_{mw.memory['n']:04d}"
        raw = json.dumps(doc).encode()
    return status, headers, raw


async def _datetime_as_utc(
    mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes
) -> Any:
    """datetime values answered in UTC instead of as sent."""
    doc = json.loads(raw) if status in (200, 201) and raw.startswith(b"{") else None
    if isinstance(doc, dict) and isinstance(doc.get("field_values"), dict):
        fields = await mw.types(scope, doc["object_id"])
        for k, v in doc["field_values"].items():
            if fields.get(k, {}).get("type") == "datetime" and isinstance(v, str) and not v.endswith("Z"):
                utc = datetime.fromisoformat(v).astimezone(UTC)
                doc["field_values"][k] = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        raw = json.dumps(doc).encode()
    return status, headers, raw


def _drop_required_nulls(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Clearing a required field is silently ignored."""
    return {k: v for k, v in values.items() if not (fields.get(k, {}).get("required") and v in (None, ""))}


def _drop_unknown(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in fields}


def _defaults_skipped(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Defaults are not applied: an absent field with a default_value stays empty."""
    out = dict(values)
    for slug, f in fields.items():
        if "default_value" in f and slug not in out and not f.get("required"):
            out[slug] = None
    return out


def _null_takes_default(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not (v is None and "default_value" in fields.get(k, {}))}


def _empty_string_422(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any] | Answer:
    if any(v == "" for v in values.values()):
        return Answer(
            422, {"error": "empty", "code": "VALIDATION_ERROR", "status": 422, "details": {"errors": []}}
        )
    return values


def _text_bytes(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any] | Answer:
    """text length counted in UTF-8 bytes, not characters."""
    for k, v in values.items():
        if fields.get(k, {}).get("type") == "text" and isinstance(v, str) and len(v.encode()) > 255:
            return Answer(
                422,
                {
                    "error": "too long",
                    "code": "VALIDATION_ERROR",
                    "status": 422,
                    "details": {"errors": [{"field": k, "message": "over 255 bytes"}]},
                },
            )
    return values


def _patch_extra_keys_ignored() -> Before:
    async def before(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
        if scope["method"] == "PATCH" and body.startswith(b"{"):
            doc = json.loads(body)
            if isinstance(doc, dict) and "field_values" in doc:
                return scope, json.dumps({"field_values": doc["field_values"]}).encode()
        return scope, body

    return before


def _text_op(fn: Callable[[str], bool], then: Any) -> Callable[[str, Any, str], dict[str, Any] | None]:
    def change(op: str, operand: Any, ftype: str) -> dict[str, Any] | None:
        if op in ("$contains", "$starts_with", "$ends_with") and isinstance(operand, str) and fn(operand):
            return then
        return None

    return change


TEXTUAL = ("text", "long_text", "phone", "url", "image")


def _eq_folds(slug: str, cond: Any, field: dict[str, Any]) -> Any:
    """$eq on text compares case-insensitively (as $starts_with and $ends_with together)."""
    value = cond.get("$eq") if isinstance(cond, dict) and len(cond) == 1 else cond
    if field["type"] in TEXTUAL and isinstance(value, str) and value:
        return {"$starts_with": value, "$ends_with": value}
    return cond


def _choice_case_sensitive(slug: str, cond: Any, field: dict[str, Any]) -> Any:
    value = cond.get("$eq") if isinstance(cond, dict) and len(cond) == 1 else cond
    options = (field.get("options") or {}).get("stages") or (field.get("options") or {}).get("choices") or []
    if field["type"] in ("status", "dropdown") and isinstance(value, str) and value not in options:
        return {"$in": []}
    return cond


def _multi_eq_as_in(slug: str, cond: Any, field: dict[str, Any]) -> Any:
    if field["type"] == "multi_select" and isinstance(cond, dict) and isinstance(cond.get("$eq"), list):
        return {"$in": cond["$eq"]} if cond["$eq"] else cond
    return cond


def _date_local_midnight(op: str, operand: Any, ftype: str) -> dict[str, Any] | None:
    """A date operand on a datetime read as midnight in the server's zone (UTC+3), not UTC."""
    if ftype in ("datetime", "created_at", "updated_at") and isinstance(operand, str) and len(operand) == 10:
        return {op: operand + "T00:00:00+03:00"}
    return None


def _lenient_number_operand(op: str, operand: Any, ftype: str) -> dict[str, Any] | None:
    if ftype in ("number", "currency") and isinstance(operand, str):
        try:
            return {op: float(operand)}
        except ValueError:
            return None
    return None


def _range_on_text_ignored(op: str, operand: Any, ftype: str) -> dict[str, Any] | None:
    if op in ("$gt", "$gte", "$lt", "$lte") and ftype in (*TEXTUAL, "email"):
        return {}
    return None


async def _and_as_first_only(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    """Only the first filter key is applied."""
    if is_query(scope):
        items = []
        for k, v in query_items(scope):
            if k == "filters" and v.startswith("{"):
                doc = json.loads(v)
                v = json.dumps(dict(list(doc.items())[:1]))
            items.append((k, v))
        return with_items(scope, items), body
    return scope, body


async def _page_zero_is_one(mw: Deviant, scope: Scope, body: bytes) -> Answer | tuple[Scope, bytes]:
    if is_query(scope):
        return with_items(
            scope, [(k, "1" if k == "page" and v == "0" else v) for k, v in query_items(scope)]
        ), body
    return scope, body


async def _past_end_is_last_page(
    mw: Deviant, scope: Scope, body: bytes, status: int, headers: Headers, raw: bytes
) -> Any:
    if is_query(scope) and status == 200:
        doc = json.loads(raw)
        pages = doc["pagination"]["total_pages"]
        if not doc["data"] and pages:
            items = [(k, str(pages) if k == "page" else v) for k, v in query_items(scope)]
            status, headers, raw = await mw.call(with_items(scope, items))
    return status, headers, raw


def _sort_value(doc: dict[str, Any], slug: str) -> Any:
    v = doc["field_values"].get(slug) if slug not in doc else doc[slug]
    return (v in (None, "", []), str(v) if v is not None else "", doc["id"])


def _case_sensitive_sort(scope: Scope, doc: dict[str, Any]) -> None:
    slug = param(scope, "sort")
    if slug in ("name", "notes"):
        doc["data"].sort(key=lambda r: _sort_value(r, slug), reverse=param(scope, "order") == "desc")


def _choice_alphabetical(scope: Scope, doc: dict[str, Any]) -> None:
    slug = param(scope, "sort")
    if slug in ("stage", "tier"):
        doc["data"].sort(key=lambda r: _sort_value(r, slug), reverse=param(scope, "order") == "desc")


def _total_is_page_length(scope: Scope, doc: dict[str, Any]) -> None:
    doc["pagination"]["total"] = len(doc["data"])


def _per_page_not_echoed(scope: Scope, doc: dict[str, Any]) -> None:
    doc["pagination"]["per_page"] = 25


def _at_least_one_page(scope: Scope, doc: dict[str, Any]) -> None:
    doc["pagination"]["total_pages"] = max(1, doc["pagination"]["total_pages"])


def _short_digits(v: Any) -> Any:
    digits = sum(c.isdigit() for c in v) if isinstance(v, str) else 7
    return v + "0" * (7 - digits) if isinstance(v, str) and digits < 7 else v


def _impossible_dates_clamped(v: Any) -> Any:
    return "2023-02-28" if v == "2023-02-29" else v


def _naive_as_utc(v: Any) -> Any:
    return v + "Z" if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?", v) else v


def _truthy_strings(v: Any) -> Any:
    return {"true": True, "false": False, "yes": True}.get(v, v) if isinstance(v, str) else v


def _choice_case_on_write(fields_type: str) -> Before:
    def fn(values: dict[str, Any], fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for k, v in values.items():
            f = fields.get(k, {})
            options = (f.get("options") or {}).get("stages") or (f.get("options") or {}).get("choices") or []
            if f.get("type") == fields_type and isinstance(v, str):
                v = next((o for o in options if o.lower() == v.lower()), v)
            out[k] = v
        return out

    return body_rewrite(fn)


def _any_scheme(v: Any) -> Any:
    return re.sub(r"^(ftp|mailto):/*", "https://", v) if isinstance(v, str) else v


def _numeric_strings(v: Any) -> Any:
    try:
        return float(v) if isinstance(v, str) else v
    except ValueError:
        return v


#: name: (the rule it breaks, before, after)
DEVIATIONS: dict[str, tuple[str, Before | None, After | None]] = {
    # filters
    "in-empty-matches-all": (
        "filters.list-edges",
        op_map(lambda op, v, t: {} if op == "$in" and v == [] else None),
        None,
    ),
    "nin-empty-matches-none": (
        "filters.list-edges",
        op_map(lambda op, v, t: {"$in": []} if op == "$nin" and v == [] else None),
        None,
    ),
    "nin-drops-empty": (
        "filters.nin",
        op_map(lambda op, v, t: {op: v, "$empty": False} if op == "$nin" and v else None),
        None,
    ),
    "not-contains-drops-empty": (
        "filters.not-contains",
        op_map(lambda op, v, t: {op: v, "$empty": False} if op == "$not_contains" else None),
        None,
    ),
    "ascii-only-case-folding": (
        "filters.unicode",
        op_map(_text_op(lambda s: not s.isascii() and s != s.lower(), {"$in": []})),
        None,
    ),
    "gte-as-gt": ("filters.range", op_map(lambda op, v, t: {"$gt": v} if op == "$gte" else None), None),
    "lte-as-lt": ("filters.range", op_map(lambda op, v, t: {"$lt": v} if op == "$lte" else None), None),
    "date-operand-local-midnight": ("filters.date-operand", op_map(_date_local_midnight), None),
    "empty-false-ignored": (
        "filters.empty",
        op_map(lambda op, v, t: {} if op == "$empty" and v is False else None),
        None,
    ),
    "eq-folds-case-on-text": ("filters.eq", filters_rewrite(_eq_folds), None),
    "choice-eq-case-sensitive": ("filters.eq", filters_rewrite(_choice_case_sensitive), None),
    "multi-eq-array-as-any": ("filters.multi-select", filters_rewrite(_multi_eq_as_in), None),
    "id-filter-ignored": (
        "filters.system-fields",
        filters_rewrite(lambda s, c, f: ... if s == "id" else c),
        None,
    ),
    "only-first-filter-applied": ("filters.combined", _and_as_first_only, None),
    "numeric-string-operands": ("filters.operand-types", op_map(_lenient_number_operand), None),
    "range-on-text-ignored": ("filters.operator-types", op_map(_range_on_text_ignored), None),
    # sorting
    "text-sort-case-sensitive": ("sorting.text", None, page_rewrite(_case_sensitive_sort)),
    "choices-sorted-alphabetically": ("sorting.choice", None, page_rewrite(_choice_alphabetical)),
    # paging
    "past-the-end-repeats-last-page": ("paging.edges", None, _past_end_is_last_page),
    "total-counts-the-page": ("paging.total", None, page_rewrite(_total_is_page_length)),
    "per-page-not-echoed": ("paging.echo", None, page_rewrite(_per_page_not_echoed)),
    "no-match-has-one-page": ("paging.total-pages", None, page_rewrite(_at_least_one_page)),
    "page-zero-read-as-one": ("paging.limits", _page_zero_is_one, None),
    # protocol
    "head-answered-as-get": ("errors.method", _head_as_get, None),
    "repeated-parameter-last-wins": ("protocol.repeated-params", _repeated_last_wins, None),
    "unknown-parameters-rejected": ("protocol.unknown-params", _unknown_params_rejected, None),
    "chunked-bodies-unlimited": ("protocol.body-size", _chunked_unlimited, None),
    "body-limit-off-by-one": ("protocol.body-size", _limit_off_by_one, None),
    "charset-ignored": ("protocol.content-type", _charset_ignored, None),
    "untyped-body-read-as-json": ("protocol.content-type", _json_when_untyped, None),
    "nan-and-infinity-accepted": ("protocol.json-text", _lenient_json, None),
    "trailing-content-ignored": ("protocol.json-text", _trailing_ignored, None),
    "not-found-before-auth": ("errors.order", _not_found_before_auth, None),
    "validation-before-lookup": ("errors.order", _validation_before_lookup, None),
    "rate-reset-in-seconds": ("rate-limits.headers", None, _reset_relative),
    "no-rate-headers-on-errors": ("rate-limits.headers", None, _no_limit_headers_on_errors),
    # writes
    "defaults-not-applied": ("records.defaults", body_rewrite(_defaults_skipped), None),
    "null-takes-the-default": ("records.defaults", body_rewrite(_null_takes_default), None),
    "empty-string-refused": ("records.empties", body_rewrite(_empty_string_422), None),
    "required-clear-ignored": ("records.required", body_rewrite(_drop_required_nulls), None),
    "patch-extra-keys-ignored": ("records.patch-body", _patch_extra_keys_ignored(), None),
    "unknown-fields-dropped": ("records.unknown-keys", body_rewrite(_drop_unknown), None),
    "own-unique-value-conflicts": ("records.unique", _own_value_conflicts, None),
    "deleted-values-stay-taken": ("records.unique", _deleted_unique_kept, None),
    "empty-patch-keeps-updated-at": ("records.updated-at", None, _patch_empty_keeps_updated_at),
    "created-by-per-request": ("records.system-values", None, _created_by_per_request),
    "queries-from-a-stale-cache": ("records.read-your-writes", None, _stale_reads),
    # formats
    "text-length-in-bytes": ("formats.text", body_rewrite(_text_bytes), None),
    "short-phones-padded": ("formats.phone", values_of_type(("phone",), _short_digits), None),
    "impossible-dates-clamped": ("formats.date", values_of_type(("date",), _impossible_dates_clamped), None),
    "naive-datetimes-as-utc": ("formats.datetime", values_of_type(("datetime",), _naive_as_utc), None),
    "datetimes-returned-in-utc": ("formats.datetime", None, _datetime_as_utc),
    "boolean-strings-accepted": ("formats.boolean", values_of_type(("boolean",), _truthy_strings), None),
    "status-any-case-on-write": ("formats.status", _choice_case_on_write("status"), None),
    "urls-of-any-scheme": ("formats.url", values_of_type(("url",), _any_scheme), None),
    "numbers-as-strings": ("formats.number", values_of_type(("number",), _numeric_strings), None),
}


# --- running the kit and replaying its reproducers ------------------------------------------------


#: The kit's phases that check each area's rules (rate-limit headers are checked on every answer).
PHASES_FOR = {
    "filters": {"filters"},
    "sorting": {"sorting", "paging"},
    "paging": {"paging"},
    "records": {"records", "writes", "formats"},
    "formats": {"formats"},
    "errors": {"errors", "protocol"},
    "protocol": {"protocol", "errors"},
    "rate-limits": {"errors"},
}


def kit(url: str, seed: int, rule: str) -> Report:
    """A quick run of the phases that check `rule`'s area (of the filter queries, `rule`'s own)."""
    options = Options(
        intake_key=KEYS["KANTOS_INTAKE_KEY"],
        non_admin_key=KEYS["KANTOS_NON_ADMIN_KEY"],
        only=frozenset(PHASES_FOR[rule.split(".")[0]]),
        rules=frozenset({rule}),
    )
    return check(
        url, ADMIN_KEY, quick=True, fuzz=False, out=io.StringIO(), seed=seed, keep_data=True, options=options
    )


def replay(lines: list[str]) -> tuple[int | None, str]:
    """Run a finding's reproducer (its `$ ` lines, in order) in bash; the last answer's status and text."""
    script = "set -e\n" + "\n".join(lines) + "\n"
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **KEYS},
        check=False,
    )
    statuses = re.findall(r"^HTTP/\S+ (\d{3})", done.stdout, re.M)
    return (int(statuses[-1]) if statuses else None), done.stdout


@pytest.fixture(scope="module")
def deviant_server() -> Iterator[tuple[MockServer, Switch]]:
    """One server for every deviation (starting one per test cost more than most kit runs)."""
    switch = Switch()
    app = create_app(seed=3)
    app.add_middleware(Deviant, switch=switch)
    with MockServer(app=app) as mock:
        yield mock, switch


@pytest.fixture
def deviant_url(request: pytest.FixtureRequest, deviant_server: tuple[MockServer, Switch]) -> str:
    """The shared server back in its fixture state, deviating as `request.param` does."""
    mock, switch = deviant_server
    mock.reset()
    switch.to(request.param)
    return mock.url


def test_at_least_thirty_deviations_across_the_families() -> None:
    assert len(DEVIATIONS) >= 30
    assert {rule.split(".")[0] for rule, _, _ in DEVIATIONS.values()} >= {
        "filters",
        "sorting",
        "paging",
        "protocol",
        "errors",
        "records",
        "formats",
        "rate-limits",
    }


@pytest.mark.parametrize("deviant_url", sorted(DEVIATIONS), indirect=True)
def test_the_kit_reports_the_deviation_under_its_rule_with_two_seeds(
    deviant_url: str, request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["deviant_url"]
    rule = DEVIATIONS[name][0]
    for seed in seeds_for(name):
        report = kit(deviant_url, seed, rule)
        failing = [c for c in report.failing if any(r.id == rule for r in c.rules)]
        rendered = report.render()
        assert failing, f"seed {seed}: {name} not reported under {rule}\n{rendered}"
        finding = failing[0].findings[0]
        assert finding.expected and finding.received
        text = render_check(failing[0], report.base_url, None, 1)
        lines = [line.strip()[2:] for line in text if line.strip().startswith("$ ")]
        assert lines and deviant_url in "\n".join(lines), text
        status, answer = replay(lines)
        received = finding.received
        if re.match(r"\d{3}\b", received):
            assert status == int(received[:3]), f"replayed {lines}: {status}, the kit saw {received[:80]}"
        elif finding.record_id is not None:
            # A sequence replayed from the record's creation: a new record, with a new id.
            assert finding.request is not None and status == finding.request.status, answer
        else:
            assert status is not None, answer
            for rid in re.findall(r"rec_[0-9a-z]+", received.split(":", 1)[-1])[:3]:
                assert rid in answer, (
                    f"{rid} (received by the kit) not in the replayed answer:\n{answer[:500]}"
                )
