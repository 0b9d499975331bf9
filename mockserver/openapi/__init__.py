"""Loads an OpenAPI document and builds, per operation, the validators of its requests.

Nothing here knows Starlette: the HTTP layer hands over query items and body bytes, and gets
back typed values or a `domain.errors.BadRequest` naming the parameter or field at fault.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import orjson
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ..domain.errors import BadRequest, ValidationFailed

SPEC_URI = "urn:kantos:openapi"
_INTEGER = re.compile(r"[+-]?[0-9]+")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def bundled_spec_path() -> Path:
    return Path(str(resources.files("mockserver") / "openapi.yaml"))


@dataclass(slots=True)
class Param:
    name: str
    location: str  # "query" | "path" | "header"
    required: bool
    json: bool  # declared with `content: application/json`: the value is JSON text
    type: str | None  # the schema's type, for coercing strings: "integer", "number", "boolean", ...
    validator: Compiled
    default: Any = None


@dataclass(slots=True)
class Operation:
    operation_id: str
    method: str  # upper case
    path: str
    params: list[Param]
    body: Compiled | None
    body_required: bool
    tags: list[str] = field(default_factory=list)
    security: bool = True
    #: Body locations whose violations the spec marks with `x-kantos-invalid-status` (a path of
    #: keys, None standing for any array index) and the status they get instead of 400.
    body_status: list[tuple[tuple[str | None, ...], int]] = field(default_factory=list)

    #: One fast validator of every query parameter at once: an object of their typed values,
    #: each checked against its own schema (see `parse_query`). None: check one by one.
    query_check: jsonschema_rs.Validator | None = None

    #: The declared query parameters (an empty list: the query string is not even parsed).
    query_params: list[Param] = field(init=False, default_factory=list)
    has_query: bool = field(init=False, default=False)
    _param_names: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        self.query_params = [p for p in self.params if p.location == "query"]
        self.has_query = bool(self.query_params)
        self._param_names = frozenset(p.name for p in self.params)

    def parse_query(self, items: list[tuple[str, str]]) -> dict[str, Any]:
        """Typed values of the declared query parameters; unknown ones are ignored."""
        given = dict(items)
        if len(given) < len(items):  # a name given twice: an error when it is one of ours
            seen: set[str] = set()
            for name, _ in items:
                if name in seen and name in self._param_names:
                    raise BadRequest.param(name, "given more than once; send it once")
                seen.add(name)
        if self.query_check is not None:
            typed = self._typed_query(given)
            if typed is not None and self.query_check.is_valid(typed):
                return typed
        # Something is wrong (or unusual): each parameter in turn, for the first one's error.
        return self._checked_query(given)

    def _typed_query(self, given: dict[str, str]) -> dict[str, Any] | None:
        """The typed values (with defaults) as `_checked_query` makes them, not yet validated;
        None where `_checked_query` would raise before validating, or might."""
        out: dict[str, Any] = {}
        for p in self.query_params:
            raw = given.get(p.name)
            if raw is None:
                if p.required:
                    return None
                if p.default is not None:
                    out[p.name] = p.default
            elif p.json:
                try:
                    out[p.name] = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return None
            else:
                try:
                    out[p.name] = _coerce(raw, p)
                except BadRequest:
                    return None
        return out

    def _checked_query(self, given: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.query_params:
            if p.name not in given:
                if p.required:
                    raise BadRequest.param(p.name, "is required")
                if p.default is not None:
                    out[p.name] = p.default
                continue
            raw = given[p.name]
            value = _decode_json(raw, p.name) if p.json else _coerce(raw, p)
            _validate(p.validator, value, param=p.name)
            out[p.name] = value
        return out

    def parse_body(self, raw: bytes) -> Any:
        """The decoded and validated JSON body."""
        if self.body is None:
            return None
        if not raw.strip():
            if self.body_required:
                raise BadRequest(
                    "The request body is empty; send a JSON object",
                    {"field": "(body)", "reason": "a JSON body is required"},
                )
            return None
        value = _decode_json(raw, None)
        if not self.body_status:
            _validate(self.body, value, param=None)
            return value
        errors = list(self.body.iter_errors(value))
        form = [e for e in errors if self._status_of(_marked_location(e)) == 400]
        if form:
            _validate_errors(form, param=None)
        if errors:
            found: dict[str, str] = {}
            for e in errors:
                found.setdefault(json_path(_location(e)), _reason(e))
            raise ValidationFailed([{"field": k, "message": v} for k, v in found.items()])
        return value

    def _status_of(self, location: list[str | int]) -> int:
        for path, status in self.body_status:
            if len(location) >= len(path) and all(
                (want is None and isinstance(got, int)) or want == got
                for want, got in zip(path, location, strict=False)
            ):
                return status
        return 400


class Spec:
    """The operations of an OpenAPI document, by path and by operationId."""

    def __init__(self, document: dict[str, Any], source: str = "openapi.yaml") -> None:
        self.document = document
        self.source = source
        resource = DRAFT202012.create_resource(document)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.rs_registry = jsonschema_rs.Registry([(SPEC_URI, document)])
        self.paths: dict[str, dict[str, Operation]] = {}
        self.operations: dict[str, Operation] = {}
        global_security = bool(document.get("security"))
        for path, item in (document.get("paths") or {}).items():
            shared = item.get("parameters", [])
            ops: dict[str, Operation] = {}
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                pointer = f"/paths/{_escape(path)}/{method}"
                params = [
                    self._param(p, f"/paths/{_escape(path)}/parameters/{i}") for i, p in enumerate(shared)
                ]
                overridden = {(p["name"], p["in"]) for p in op.get("parameters", [])}
                params = [p for p in params if (p.name, p.location) not in overridden]
                params += [
                    self._param(p, f"{pointer}/parameters/{i}")
                    for i, p in enumerate(op.get("parameters", []))
                ]
                body, body_required = None, False
                body_status: list[tuple[tuple[str | None, ...], int]] = []
                request_body = op.get("requestBody")
                if request_body is not None:
                    if "$ref" in request_body:
                        request_body = self._resolve(request_body["$ref"])
                    body = self._validator(f"{pointer}/requestBody/content/application~1json/schema")
                    body_required = bool(request_body.get("required", False))
                    body_schema = request_body.get("content", {}).get("application/json", {}).get("schema")
                    self._collect_status(body_schema, (), body_status, set())
                security = op.get("security")
                query_check = self._query_check([p for p in params if p.location == "query"])
                operation = Operation(
                    operation_id=op["operationId"],
                    method=method.upper(),
                    path=path,
                    params=params,
                    body=body,
                    body_required=body_required,
                    tags=op.get("tags", []),
                    security=bool(security) if security is not None else global_security,
                    body_status=body_status,
                    query_check=query_check,
                )
                ops[operation.method] = operation
                self.operations[operation.operation_id] = operation
            self.paths[path] = ops

    @classmethod
    def load(cls, path: str | Path | None = None) -> Spec:
        path = Path(path) if path is not None else bundled_spec_path()
        with path.open(encoding="utf-8") as fh:
            return cls(yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)), source=str(path))

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    def _collect_status(
        self,
        schema: Any,
        path: tuple[str | None, ...],
        out: list[tuple[tuple[str | None, ...], int]],
        seen: set[tuple[int, tuple[str | None, ...]]],
    ) -> None:
        """Find `x-kantos-invalid-status` marks in a body schema, following `$ref`s."""
        if not isinstance(schema, dict) or (id(schema), path) in seen:
            return
        seen.add((id(schema), path))
        if "x-kantos-invalid-status" in schema:
            out.append((path, int(schema["x-kantos-invalid-status"])))
        if "$ref" in schema:
            self._collect_status(self._resolve(schema["$ref"]), path, out, seen)
        for key, sub in (schema.get("properties") or {}).items():
            self._collect_status(sub, (*path, key), out, seen)
        self._collect_status(schema.get("items"), (*path, None), out, seen)
        for keyword in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(keyword) or ():
                self._collect_status(sub, path, out, seen)
        for keyword in ("if", "then", "else"):
            self._collect_status(schema.get(keyword), path, out, seen)

    def _query_check(self, params: list[Param]) -> jsonschema_rs.Validator | None:
        """One validator for an object of all these parameters' values, each under its own
        schema: valid exactly when each value is. None when a default breaks its own schema (the
        object holds defaults too, which parameter by parameter are never checked)."""
        if not params or any(
            p.default is not None and not p.validator.fast.is_valid(p.default) for p in params
        ):
            return None
        schema = {
            "type": "object",
            "properties": {p.name: {"$ref": p.validator.ref} for p in params},
        }
        return jsonschema_rs.Draft202012Validator(schema, registry=self.rs_registry, validate_formats=False)

    def _validator(self, pointer: str) -> Compiled:
        # A JSON pointer in a URI fragment is percent-encoded (RFC 6901 §6): `{record_id}`.
        uri = f"{SPEC_URI}#{quote(pointer, safe='/~')}"
        ref = {"$ref": uri}
        return Compiled(
            jsonschema_rs.Draft202012Validator(ref, registry=self.rs_registry, validate_formats=False),
            Draft202012Validator(ref, registry=self.registry),
            uri,
        )

    def _param(self, p: dict[str, Any], pointer: str) -> Param:
        if "$ref" in p:
            ref = p["$ref"]
            p = self._resolve(ref)
            pointer = ref.removeprefix("#")
        if "content" in p:
            media = next(iter(p["content"]))
            schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
            schema = p["content"][media].get("schema", {})
            is_json = True
        else:
            schema_pointer = f"{pointer}/schema"
            schema = p.get("schema", {})
            is_json = False
        if "$ref" in schema:
            schema = self._resolve(schema["$ref"])
        stype = schema.get("type")
        return Param(
            name=p["name"],
            location=p["in"],
            required=bool(p.get("required", False)),
            json=is_json,
            type=stype if isinstance(stype, str) else None,
            validator=self._validator(schema_pointer),
            default=schema.get("default"),
        )


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _coerce(raw: str, p: Param) -> Any:
    if p.type == "integer":
        if len(raw) < 19 and raw.isascii() and raw.isdigit():  # the usual case, in range
            return int(raw)
        if _INTEGER.fullmatch(raw):
            integer = int(raw)
            if -(2**63) <= integer < 2**63:
                return integer
            raise BadRequest.param(p.name, f"{raw} is out of range for a 64-bit integer", expected="integer")
        raise BadRequest.param(p.name, f"expected an integer, got {raw!r}", expected="integer")
    if p.type == "number":
        try:
            number = float(raw)
        except ValueError:
            number = float("nan")
        if not math.isfinite(number):
            raise BadRequest.param(p.name, f"expected a number, got {raw!r}", expected="number")
        return number
    if p.type == "boolean":
        if raw in ("true", "false"):
            return raw == "true"
        raise BadRequest.param(p.name, f"expected true or false, got {raw!r}", expected="boolean")
    return raw


def _decode_json(raw: str | bytes, param: str | None) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = f"not valid JSON ({exc})"
        if param is not None:
            raise BadRequest.param(param, reason, expected="JSON") from None
        raise BadRequest(f"Malformed JSON body: {exc}", {"field": "(body)", "reason": reason}) from None


class Compiled:
    """One schema, compiled twice: jsonschema-rs answers "valid?" in about a microsecond on every
    request; only an invalid value goes to jsonschema, whose errors say what is wrong (and whose
    verdict stands, should the two ever disagree)."""

    __slots__ = ("fast", "full", "ref")

    def __init__(self, fast: jsonschema_rs.Validator, full: Draft202012Validator, ref: str) -> None:
        self.fast = fast
        self.full = full
        #: The schema's URI in the spec's registry (`urn:kantos:openapi#/paths/...`).
        self.ref = ref

    def iter_errors(self, value: Any) -> list[ValidationError]:
        if self.fast.is_valid(value):
            return []
        return list(self.full.iter_errors(value))


def _validate(validator: Compiled, value: Any, param: str | None) -> None:
    if not validator.fast.is_valid(value):
        _validate_errors(validator.full.iter_errors(value), param)


def _validate_errors(errors: Iterable[ValidationError], param: str | None) -> None:
    """Raise BadRequest for the most relevant of `errors`, naming the parameter or field."""
    error = best_match(errors)
    if error is None:
        return
    location = _location(error)
    reason = _reason(error)
    if param is not None:
        details: dict[str, Any] = {"param": param, "reason": reason}
        where = param + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in location)
        if location and param == "filters":
            details["field"] = str(location[0])
            ops = [p for p in location[1:] if isinstance(p, str) and p.startswith("$")]
            if ops:
                details["operator"] = ops[0]
        raise BadRequest(f"Invalid query parameter {where}: {reason}", details)
    field_path = json_path(location) or "(body)"
    raise BadRequest(
        f"Invalid request body at {field_path}: {reason}", {"field": field_path, "reason": reason}
    )


def _listed(error: ValidationError) -> list[Any]:
    value: Any = error.validator_value
    return list(value) if isinstance(value, list) else []


def _properties(error: ValidationError) -> dict[str, Any]:
    schema = error.schema
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return props if isinstance(props, dict) else {}


def json_path(location: list[str | int]) -> str:
    """`fields[0].name`: keys joined by dots, array indexes in brackets."""
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _marked_location(error: ValidationError) -> list[str | int]:
    """Where a violation counts for `x-kantos-invalid-status`: a key missing from an object
    counts at the object (a body lacking `type` is malformed), unless a per-type rule
    (`if`/`then`) asks for the key (a status field without `options` is invalid)."""
    if error.validator == "required" and "then" not in error.absolute_schema_path:
        return list(error.absolute_path)
    return _location(error)


def _location(error: ValidationError) -> list[str | int]:
    path: list[str | int] = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(_properties(error))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            path.append(extra[0])
    elif error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in _listed(error) if k not in error.instance]
        if missing:
            path.append(missing[0])
    return path


def _reason(error: ValidationError) -> str:
    v = error.validator
    if v in ("anyOf", "oneOf"):
        if error.instance is None:
            return 'null is not a valid value here (to match empty fields, use {"$empty": true})'
        return "expected " + " or ".join(_describe_schema(s) for s in _listed(error))
    if v == "additionalProperties":
        allowed = sorted(_properties(error))
        return f"unknown key; allowed keys are {', '.join(allowed)}" if allowed else "unknown key"
    if v == "required":
        return "is required"
    if v == "type":
        want = error.validator_value
        want_s = " or ".join(want) if isinstance(want, list) else str(want)
        return f"expected {want_s}, got {_json_type(error.instance)}"
    if v == "enum":
        return f"expected one of {error.validator_value}, got {_short(error.instance)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"must be {_BOUND[v]} {error.validator_value}, got {_short(error.instance)}"
    if v == "const":
        return f"expected {json.dumps(error.validator_value)} here, got {_short(error.instance)}"
    if v == "not":
        sub: Any = error.validator_value
        if isinstance(sub, dict) and isinstance(sub.get("description"), str):
            return str(sub["description"])
        return f"{_short(error.instance)} is not allowed here"
    if v in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
        noun = {"Items": "item", "Length": "character", "Properties": "key"}[v[3:]]
        bound = error.validator_value
        return (
            f"expected {'at least' if v.startswith('min') else 'at most'} {bound} {noun}{'s' * (bound != 1)}"
        )
    return error.message


def _describe_schema(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "a value"
    if "$ref" in schema:
        return "a " + str(schema["$ref"]).rsplit("/", 1)[-1]
    t = schema.get("type")
    if isinstance(t, list):
        return " or ".join(t)
    return str(t) if t else "a value"


_BOUND = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "more than",
    "exclusiveMaximum": "less than",
}


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
