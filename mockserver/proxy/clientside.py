"""The client's side of an exchange: the request, validated as the mock validates it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..conformance.answers import Asked
from ..domain import query as engine
from ..domain.errors import KantosError, ValidationFailed
from ..domain.schema import EMPTY, ObjectDef, check_value
from ..http.api import MAX_BODY, check_content_type
from ..openapi import Operation, Spec


@dataclass(slots=True)
class Mistake:
    """A request the contract refuses: the kit's check id for it, and what is wrong."""

    check_id: str
    area: str
    title: str
    status: int  # what the contract answers to it
    message: str


@dataclass(slots=True)
class Request:
    """What the proxy read of one request; `object_id` is the object it is about, when known."""

    operation: Operation | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    object_id: str | None = None
    mistake: Mistake | None = None
    #: The checks left to do once the object's fields are known (queries, record writes).
    needs_fields: bool = False

    def asked(self) -> Asked | None:
        if self.operation is None or self.operation.operation_id != "queryRecords" or self.object_id is None:
            return None
        q = self.query
        return Asked(
            self.object_id,
            q.get("filters"),
            q.get("sort"),
            q.get("order"),
            int(q.get("page", 1)),
            int(q.get("per_page", 25)),
        )


class RequestChecks:
    """Routes requests by the spec and validates them with the spec's and the engine's code."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.routes: list[tuple[re.Pattern[str], str, list[str]]] = []
        for path in spec.paths:
            names = re.findall(r"\{([^}]+)\}", path)
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(path)) + "$"
            self.routes.append((re.compile(regex), path, names))

    def read(
        self,
        method: str,
        path: str,
        items: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Request:
        """Everything that needs no field definitions: route, key, content type, size, form."""
        req = Request()
        if not path.startswith("/api/"):
            return req
        if "x-api-key" not in headers:
            req.mistake = Mistake(
                "errors.missing-key", "errors", "requests carry X-Api-Key", 401, "no X-Api-Key header"
            )
            return req
        for regex, template, names in self.routes:
            m = regex.match(path)
            if m is None:
                continue
            op = self.spec.paths[template].get(method)
            if op is None:
                allowed = ", ".join(sorted(self.spec.paths[template]))
                req.mistake = Mistake(
                    "errors.method",
                    "errors",
                    "only listed methods",
                    405,
                    f"{method} {template} (allowed: {allowed})",
                )
                return req
            req.operation, req.path_params = op, dict(zip(names, m.groups(), strict=True))
            break
        else:
            req.mistake = Mistake("errors.unknown-route", "errors", "known routes", 404, f"no route {path}")
            return req
        op = req.operation
        try:
            if op.body is not None:
                if body or method in ("POST", "PATCH"):
                    try:
                        check_content_type(headers.get("content-type"))
                    except KantosError as exc:
                        req.mistake = Mistake(
                            "errors.media-type", "protocol", "bodies are JSON", 415, exc.message
                        )
                        return req
                if len(body) > MAX_BODY:
                    req.mistake = Mistake(
                        "protocol.body-size.client",
                        "protocol",
                        "bodies up to 1 MiB",
                        413,
                        f"a body of {len(body)} bytes; the limit is {MAX_BODY}",
                    )
                    return req
            if op.has_query:
                req.query = op.parse_query(items)
            if op.body is not None:
                req.body = op.parse_body(body)
        except KantosError as exc:
            req.mistake = _mistake(exc, op)
            return req
        if op.operation_id == "queryRecords":
            req.object_id = str(req.query.get("object_id"))
            req.needs_fields = True
        elif op.operation_id == "createRecord" and isinstance(req.body, dict):
            req.object_id = str(req.body.get("object_id"))
            req.needs_fields = True
        elif op.operation_id == "updateRecord":
            req.needs_fields = True  # the object comes from the answer (or an earlier one)
        return req

    def check_fields(self, req: Request, obj: ObjectDef) -> None:
        """What needs the object's fields: filter and sort fields and operands, field values."""
        op = req.operation
        if op is None or req.mistake is not None:
            return
        try:
            if op.operation_id == "queryRecords":
                q = req.query
                engine.compile_query(obj, q.get("filters"), q.get("sort"), q.get("order"))
            elif op.operation_id in ("createRecord", "updateRecord") and isinstance(req.body, dict):
                values = req.body.get("field_values")
                if isinstance(values, dict):
                    _check_values(obj, values, create=op.operation_id == "createRecord")
        except KantosError as exc:
            req.mistake = _mistake(exc, op)


def _check_values(obj: ObjectDef, values: dict[str, Any], create: bool) -> None:
    """As the mock's backend checks field values, except references and users, whose existence
    only the server knows."""
    errors: list[dict[str, str]] = []
    stored: dict[str, Any] = {}
    for slug, raw in values.items():
        f = obj.by_slug.get(slug)
        if f is None:
            known = ", ".join(x.slug for x in obj.fields)
            errors.append({"field": slug, "message": f"unknown field for {obj.id}; its fields are {known}"})
            continue
        value, message = check_value(f, raw, _exists, _exists)
        if message:
            errors.append({"field": slug, "message": message})
        elif value is not EMPTY:
            stored[slug] = value
    if create:
        for f in obj.fields:
            if f.has_default and f.slug not in values:
                stored[f.slug] = f.default_value
            if f.required and f.slug not in stored and not any(e["field"] == f.slug for e in errors):
                errors.append({"field": f.slug, "message": "is required and cannot be empty"})
    else:  # a PATCH can clear a required field, which the merged record then lacks
        for f in obj.fields:
            if f.required and f.slug in values and f.slug not in stored and not _named(errors, f.slug):
                errors.append({"field": f.slug, "message": "is required and cannot be empty"})
    if errors:
        raise ValidationFailed(errors)


def _named(errors: list[dict[str, str]], slug: str) -> bool:
    return any(e["field"] == slug for e in errors)


def _exists(*_: Any) -> bool:
    return True


def _mistake(exc: KantosError, op: Operation) -> Mistake:
    d = exc.details
    param, fld = d.get("param"), d.get("field")
    if exc.status == 422:
        check_id, area, title = "errors.validation", "formats", "field values fit the object's fields"
        errors = d.get("errors") or []
        text = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        return Mistake(check_id, area, title, 422, text or exc.message)
    if param in ("page", "per_page"):
        check_id, area, title = f"paging.limit.{param}", "paging", "page >= 1, per_page 1..100"
    elif param == "filters" and "operator" in d and "expected" in d:
        check_id, area, title = "filters.refused-operand", "filters", "filter operands of the right type"
    elif param == "filters" and "operator" in d:
        check_id, area, title = "filters.refused-operator", "filters", "operators that apply to the field"
    elif param == "filters" and fld is not None:
        check_id, area, title = "errors.unknown-filter-field", "filters", "filter fields the object has"
    elif param == "filters":
        check_id, area, title = (
            "errors.malformed-filters",
            "filters",
            "filters is a JSON object of conditions",
        )
    elif param == "sort":
        check_id, area, title = "errors.unknown-sort", "sorting", "sort fields the object has"
    elif param == "order":
        check_id, area, title = "errors.bad-order", "sorting", "order is asc or desc"
    elif param == "object_id":
        check_id, area, title = "errors.missing-object-id", "errors", "queries name object_id"
    elif "given more than once" in str(d.get("reason", "")):
        check_id, area, title = "errors.repeated-param", "protocol", "a parameter is given once"
    elif op.operation_id == "updateRecord" and fld is not None:
        check_id, area, title = "records.patch-body", "records", "PATCH takes only field_values"
    elif fld is not None and fld != "(body)" and "unknown" in str(d.get("reason", "")).lower():
        check_id, area, title = "errors.unknown-body-key", "records", "bodies hold known keys only"
    else:
        check_id, area, title = "errors.malformed-body", "protocol", "requests the contract accepts"
    where = f"{param}" if param else f"{fld}" if fld else ""
    reason = d.get("reason") or exc.message
    return Mistake(check_id, area, title, exc.status, f"{where}: {reason}" if where else str(reason))
