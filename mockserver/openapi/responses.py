"""Validates responses against the OpenAPI document: the mock's check that it never drifts from its spec.

`ResponseValidator` reads the same `Spec` (and its one `referencing.Registry` holding the whole
document) that request validation uses, and compiles, once per (operation, status), what the
document states about that response: its body schema per media type and its headers. Given a
request's method and path and the response's status, headers and body, it lists every way the
response breaks the document:

- the status is not declared on the operation (nor covered by a `4XX`-style range or `default`);
- the `Content-Type` is not one of the declared media types, or a body comes where none is declared;
- a header the response declares `required` is missing, or a declared header's value breaks its schema;
- the body is not JSON, or breaks the declared schema.

Requests that match no operation are judged against what the document states for them: an
unlisted method on a known path against `#/components/responses/MethodNotAllowed` (with `Allow`
listing exactly the path's methods), an unknown path against `#/components/responses/NotFound`,
and the gate's 401, 403 and 429 (which come before routing) against their shared responses.

Nothing here knows HTTP servers: `mockserver.http.selfcheck` feeds it from an ASGI middleware.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from . import SPEC_URI, Spec

#: What a request that reaches no operation can get, by the shared responses the document
#: declares for them. The gate answers 401, 403 (intake keys) and 429 before routing.
_GATE_RESPONSES = {
    "401": "/components/responses/Unauthorized",
    "403": "/components/responses/Forbidden",
    "429": "/components/responses/RateLimited",
}
UNKNOWN_ROUTE_RESPONSES = {**_GATE_RESPONSES, "404": "/components/responses/NotFound"}
UNLISTED_METHOD_RESPONSES = {**_GATE_RESPONSES, "405": "/components/responses/MethodNotAllowed"}


_ANYTHING = Draft202012Validator({})


class ResponseMismatch(AssertionError):
    """A response the mock sent breaks its own OpenAPI document."""

    def __init__(self, label: str, status: int, violations: list[str]) -> None:
        self.label = label
        self.status = status
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(
            f"kantos-mock response self-check failed: {label} answered {status}, "
            f"which breaks openapi.yaml:\n{lines}"
        )


@dataclass(slots=True)
class _Header:
    name: str
    required: bool
    type: str | None
    validator: Draft202012Validator


@dataclass(slots=True)
class _Response:
    """What the document states about one (operation, status)."""

    pointer: str
    media: dict[str, Draft202012Validator | None]  # media type -> body schema (None: no schema)
    headers: list[_Header] = field(default_factory=list)


@dataclass(slots=True)
class _Target:
    """An operation (or a non-operation such as 'unknown route') and its declared responses."""

    label: str
    responses: dict[str, _Response]  # "200", "4XX", "default"
    allow: list[str] | None = None  # for unlisted methods: the methods `Allow` must list


class ResponseValidator:
    """Checks responses against the document, with validators compiled once per (operation, status)."""

    def __init__(self, spec: Spec, prefix: str = "/api") -> None:
        self.spec = spec
        self.prefix = prefix
        self._routes: list[tuple[re.Pattern[str], str]] = []
        self._operations: dict[tuple[str, str], _Target] = {}
        self._unlisted: dict[str, _Target] = {}
        for path, ops in spec.paths.items():
            self._routes.append((_template_regex(path), path))
            item = spec.document["paths"][path]
            for method, op in ops.items():
                pointer = f"/paths/{_escape(path)}/{method.lower()}/responses"
                declared = item[method.lower()].get("responses") or {}
                responses = {
                    str(status): self._response(f"{pointer}/{_escape(str(status))}") for status in declared
                }
                self._operations[(path, method)] = _Target(f"{op.operation_id} ({method} {path})", responses)
            self._unlisted[path] = _Target(
                f"unlisted method on {path}",
                {status: self._response(ptr) for status, ptr in UNLISTED_METHOD_RESPONSES.items()},
                allow=sorted(ops),
            )
        self._unknown = _Target(
            f"unknown route under {prefix}",
            {status: self._response(ptr) for status, ptr in UNKNOWN_ROUTE_RESPONSES.items()},
        )

    # ------------------------------------------------------------------ public

    def applies_to(self, path: str) -> bool:
        """Whether the document speaks about this request path (everything under the API prefix)."""
        return path == self.prefix or path.startswith(self.prefix + "/")

    def check(
        self,
        method: str,
        path: str,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> None:
        """Raise `ResponseMismatch` naming every way this response breaks the document."""
        label, violations = self.violations(method, path, status, headers, body)
        if violations:
            raise ResponseMismatch(label, status, violations)

    def violations(
        self,
        method: str,
        path: str,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> tuple[str, list[str]]:
        """The target's label and the list of violations (empty when the response conforms)."""
        target = self._target(method.upper(), path)
        header_map: dict[str, list[str]] = {}
        for name, value in headers:
            header_map.setdefault(name.lower(), []).append(value)
        response = _declared(target.responses, status)
        if response is None:
            declared = ", ".join(sorted(target.responses))
            return target.label, [f"status {status} is not declared (declared: {declared})"]
        problems: list[str] = []
        problems += self._check_headers(response, header_map)
        if target.allow is not None and status == 405:
            problems += _check_allow(target.allow, header_map)
        problems += self._check_body(response, header_map, body)
        return target.label, problems

    # ------------------------------------------------------------------ building

    def _target(self, method: str, path: str) -> _Target:
        for regex, template in self._routes:
            if regex.fullmatch(path):
                op = self._operations.get((template, method))
                return op if op is not None else self._unlisted[template]
        return self._unknown

    def _resolve(self, pointer: str) -> tuple[str, dict[str, Any]]:
        """Follow `$ref`s from a JSON pointer; returns the final pointer and the node there."""
        seen: set[str] = set()
        node = self._node(pointer)
        while isinstance(node, dict) and "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith("#") or ref in seen:
                raise ValueError(f"{self.spec.source}: cannot follow $ref {ref!r} at {pointer}")
            seen.add(ref)
            pointer = ref[1:]
            node = self._node(pointer)
        if not isinstance(node, dict):
            raise ValueError(f"{self.spec.source}: expected an object at {pointer}")
        return pointer, node

    def _node(self, pointer: str) -> Any:
        node: Any = self.spec.document
        for part in pointer.lstrip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{pointer}"},
            registry=self.spec.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )

    def _response(self, pointer: str) -> _Response:
        pointer, node = self._resolve(pointer)
        media: dict[str, Draft202012Validator | None] = {}
        for media_type, content in (node.get("content") or {}).items():
            has_schema = isinstance(content, dict) and "schema" in content
            media[media_type.lower()] = (
                self._validator(f"{pointer}/content/{_escape(media_type)}/schema") if has_schema else None
            )
        headers: list[_Header] = []
        for name in node.get("headers") or {}:
            if name.lower() == "content-type":  # OAS: a Content-Type header definition is ignored
                continue
            hpointer, header = self._resolve(f"{pointer}/headers/{_escape(name)}")
            schema_pointer, schema = (
                self._resolve(f"{hpointer}/schema") if "schema" in header else (hpointer, {})
            )
            stype = schema.get("type")
            headers.append(
                _Header(
                    name=name,
                    required=bool(header.get("required", False)),
                    type=stype if isinstance(stype, str) else None,
                    validator=self._validator(schema_pointer) if "schema" in header else _ANYTHING,
                )
            )
        return _Response(pointer=pointer, media=media, headers=headers)

    # ------------------------------------------------------------------ checks

    def _check_headers(self, response: _Response, headers: Mapping[str, list[str]]) -> list[str]:
        problems: list[str] = []
        for h in response.headers:
            values = headers.get(h.name.lower())
            if not values:
                if h.required:
                    problems.append(f"required header {h.name} is missing")
                continue
            if len(values) > 1:
                problems.append(f"header {h.name} is sent {len(values)} times")
            value = _coerce_header(values[0], h.type)
            error = _first_error(h.validator, value)
            if error is not None:
                problems.append(f"header {h.name}: {values[0]!r} breaks its schema: {error}")
        return problems

    def _check_body(self, response: _Response, headers: Mapping[str, list[str]], body: bytes) -> list[str]:
        sent = headers.get("content-type")
        content_type = sent[0] if sent else None
        if not response.media:
            if body:
                return [f"a body of {len(body)} bytes is sent where the document declares none"]
            return []
        if content_type is None:
            return ["Content-Type is missing (declared: " + ", ".join(sorted(response.media)) + ")"]
        media_type = content_type.split(";", 1)[0].strip().lower()
        validator = _match_media(response.media, media_type)
        if validator is False:
            declared = ", ".join(sorted(response.media))
            return [f"Content-Type {content_type!r} is not declared (declared: {declared})"]
        if validator is None:
            return []
        if not (media_type == "application/json" or media_type.endswith("+json")):
            return []
        try:
            payload = orjson.loads(body)
        except ValueError as exc:
            return [f"the body is not valid JSON ({exc}): {body[:200]!r}"]
        return [_describe(e) for e in sorted(validator.iter_errors(payload), key=_error_key)[:10]]


def _declared(responses: Mapping[str, _Response], status: int) -> _Response | None:
    code = str(status)
    if code in responses:
        return responses[code]
    for key, response in responses.items():
        if len(key) == 3 and key[0] == code[0] and key[1:].upper() == "XX":
            return response
    return responses.get("default")


def _match_media(media: Mapping[str, Draft202012Validator | None], media_type: str) -> Any:
    """The validator for the declared media type matching `media_type`, or False if none matches."""
    if media_type in media:
        return media[media_type]
    major = media_type.split("/", 1)[0]
    for candidate in (f"{major}/*", "*/*"):
        if candidate in media:
            return media[candidate]
    return False


def _check_allow(allowed: list[str], headers: Mapping[str, list[str]]) -> list[str]:
    values = headers.get("allow")
    if not values:
        return []  # MethodNotAllowed declares Allow required: reported as a missing header
    sent = sorted({m.strip().upper() for v in values for m in v.split(",") if m.strip()})
    if sent != sorted(allowed):
        return [f"Allow lists {', '.join(sent)}; the document lists {', '.join(sorted(allowed))}"]
    return []


def _coerce_header(raw: str, stype: str | None) -> Any:
    text = raw.strip()
    if stype == "integer" and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if stype == "number":
        try:
            return float(text)
        except ValueError:
            return raw
    if stype == "boolean" and text in ("true", "false"):
        return text == "true"
    return raw


def _first_error(validator: Draft202012Validator, value: Any) -> str | None:
    for error in validator.iter_errors(value):
        return str(error.message)
    return None


def _error_key(error: ValidationError) -> tuple[int, str]:
    return (len(error.absolute_path), error.message)


def _describe(error: ValidationError) -> str:
    where = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in error.absolute_path)
    schema_at = "/".join(str(p) for p in error.absolute_schema_path)
    return f"body{where}: {error.message} (schema: {schema_at})"


def _template_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class _Checked:
    """A schema compiled twice, as `openapi.Compiled`: jsonschema-rs says "valid?" quickly, and only a
    response it doubts goes to jsonschema, whose errors (and verdict) stand."""

    def __init__(self, fast: jsonschema_rs.Validator, full: Draft202012Validator) -> None:
        self._fast = fast
        self._full = full

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        if self._fast.is_valid(instance):
            return iter(())
        return iter(self._full.iter_errors(instance))


class FastResponseValidator(ResponseValidator):
    """The same checks, for a caller that checks every response of a busy stream (the validation
    proxy): a valid body costs microseconds, not the tens of milliseconds of a page of 25 in jsonschema."""

    def _validator(self, pointer: str) -> Draft202012Validator:
        ref = {"$ref": f"{SPEC_URI}#{quote(pointer, safe='/~')}"}
        fast = jsonschema_rs.Draft202012Validator(ref, registry=self.spec.rs_registry, validate_formats=True)
        return cast(Draft202012Validator, _Checked(fast, super()._validator(pointer)))
