"""The Kantos API and control API references, rendered from `openapi.yaml` and `control.yaml`.

Everything is plain Markdown built at build time: no Swagger UI, nothing fetched from a CDN.
Operations come by tag, in the spec's order, each with its parameters, request body, responses
and examples; then the shared responses, headers and schemas, each schema with its properties
and, folded, the schema itself.
"""

from __future__ import annotations

import functools
import json
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .text import cell, code, table

METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")


def spec_path(name: str) -> Path:
    return Path(str(resources.files("mockserver") / name))


@functools.cache
def load(name: str) -> dict[str, Any]:
    """A spec of the package, parsed once per build (libyaml's loader when PyYAML has it: the pure
    Python one took seconds). Callers must not change it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(spec_path(name).read_text(encoding="utf-8"), Loader=loader)
    assert isinstance(data, dict)
    return data


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """`(method, path, operation, path-level parameters)` in the spec's order."""
    found = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                found.append((method, path, item[method], item.get("parameters", [])))
    return found


def schema_anchor(name: str) -> str:
    return f"schema-{name.lower()}"


class Renderer:
    def __init__(self, spec: dict[str, Any], responses_note: str = "") -> None:
        self.spec = spec
        self.components = spec.get("components", {})
        #: A paragraph under the "Shared responses" heading.
        self.responses_note = responses_note

    # --- references ------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        """Follow a local `$ref` (to components); anything else as it is."""
        while isinstance(node, dict) and "$ref" in node:
            parts = node["$ref"].removeprefix("#/").split("/")
            target: Any = self.spec
            for part in parts:
                target = target[part]
            node = target
        return node

    @staticmethod
    def ref_name(node: Any) -> str | None:
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            return str(node["$ref"]).rsplit("/", 1)[-1]
        return None

    # --- schemas in one line ---------------------------------------------------------------
    def describe(self, schema: Any) -> str:
        """A schema in a few words, for a table cell; named schemas are links."""
        if schema is True or schema == {}:
            return "any"
        if not isinstance(schema, dict):
            return code(json.dumps(schema))
        name = self.ref_name(schema)
        if name is not None and "/schemas/" in schema["$ref"]:
            return f"[{name}](#{schema_anchor(name)})"
        if name is not None:
            return self.describe(self.resolve(schema))
        words: list[str] = []
        for key, joiner in (("allOf", " and "), ("anyOf", " or "), ("oneOf", " or (exactly one) ")):
            if key in schema:
                words.append("(" + joiner.join(self.describe(s) for s in schema[key]) + ")")
        if "const" in schema:
            words.append(code(json.dumps(schema["const"], ensure_ascii=False)))
        if "enum" in schema:
            words.append(
                "one of " + ", ".join(code(json.dumps(v, ensure_ascii=False)) for v in schema["enum"])
            )
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = " or ".join(kind)
        if kind == "array" and "items" in schema:
            words.append(f"array of {self.describe(schema['items'])}")
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            words.append(f"object of {self.describe(schema['additionalProperties'])}")
        elif kind:
            words.append(str(kind))
        if "format" in schema:
            words.append(f"({schema['format']})")
        limits = []
        for key, label in (
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("exclusiveMinimum", ">"),
            ("exclusiveMaximum", "<"),
            ("minItems", "items ≥"),
            ("maxItems", "items ≤"),
            ("minProperties", "keys ≥"),
            ("maxProperties", "keys ≤"),
        ):
            if key in schema:
                limits.append(f"{label} {schema[key]}")
        if "pattern" in schema:
            limits.append(f"matches {code(schema['pattern'])}")
        if limits:
            words.append(", ".join(limits))
        if "default" in schema:
            words.append(f"default {code(json.dumps(schema['default'], ensure_ascii=False))}")
        if "not" in schema:
            words.append(f"not ({self.describe(schema['not'])})")
        if "$ref" in schema:  # a reference with siblings (refined in place)
            words.insert(0, self.describe({"$ref": schema["$ref"]}))
        return " ".join(words) or "any"

    @staticmethod
    def main_schema(schema: Any) -> Any:
        """A schema refined with `allOf: [Base, {...}]` as its base, for a short description."""
        if isinstance(schema, dict) and schema.get("allOf") and "$ref" in schema["allOf"][0]:
            return schema["allOf"][0]
        return schema

    # --- operations --------------------------------------------------------------------------
    def parameters(self, params: list[Any]) -> str:
        rows = []
        for raw in params:
            p = self.resolve(raw)
            schema = p.get("schema")
            if schema is None and "content" in p:
                media, body = next(iter(p["content"].items()))
                schema_text = f"{self.describe(body.get('schema', {}))} as {code(media)}"
            else:
                schema_text = self.describe(schema or {})
            rows.append(
                [
                    code(p["name"]),
                    p.get("in", ""),
                    "yes" if p.get("required") else "no",
                    schema_text,
                    cell(p.get("description", "")),
                ]
            )
        return table(["name", "in", "required", "schema", "description"], rows)

    def examples(self, media: dict[str, Any], indent: str = "") -> list[str]:
        out = []
        found = dict(media.get("examples", {}) or {})
        if "example" in media:
            found["example"] = {"value": media["example"]}
        for key, raw in found.items():
            ex = self.resolve(raw)
            title = ex.get("summary") or key
            value = json.dumps(ex.get("value"), indent=2, ensure_ascii=False)
            out.append(f'{indent}??? example "{title}"\n')
            out.append(textwrap.indent(f"```json\n{value}\n```\n", indent + "    "))
        return out

    def operation(self, method: str, path: str, op: dict[str, Any], shared: list[Any]) -> str:
        op_id = op.get("operationId", f"{method}-{path}")
        out = [f"### {op.get('summary') or op_id} {{#{op_id}}}\n"]
        out.append(f"`{method.upper()} {path}` · operationId {code(op_id)}\n")
        if op.get("description"):
            out.append(op["description"].strip() + "\n")
        params = [*shared, *op.get("parameters", [])]
        if params:
            out.append("**Parameters**\n")
            out.append(self.parameters(params))
        if "requestBody" in op:
            body = self.resolve(op["requestBody"])
            required = "required" if body.get("required") else "optional"
            out.append(f"**Request body** ({required})\n")
            for media, content in body.get("content", {}).items():
                out.append(f"- {code(media)}: {self.describe(content.get('schema', {}))}\n")
                out.extend(self.examples(content))
        out.append("**Responses**\n")
        rows = []
        examples: list[str] = []
        for status, raw in op.get("responses", {}).items():
            resp = self.resolve(raw)
            name = self.ref_name(raw)
            contents = list((resp.get("content") or {}).values())
            if name is not None:  # a shared response: its own section says the rest
                desc = f"[{name}](#response-{name.lower()})"
                bodies = [self.describe(self.main_schema(c.get("schema", {}))) for c in contents]
            else:
                desc = cell(resp.get("description", ""))
                bodies = [self.describe(c.get("schema", {})) for c in contents]
                for content in contents:
                    examples.extend(self.examples(content))
            headers = ", ".join(code(h) for h in (resp.get("headers") or {}))
            rows.append([code(status), desc, "; ".join(bodies) or "none", headers or "none"])
        out.append(table(["status", "description", "body", "headers"], rows))
        out.extend(examples)
        return "\n".join(out)

    def operations_section(self) -> str:
        ops = operations(self.spec)
        tags = [t["name"] for t in self.spec.get("tags", [])]
        for _, _, op, _ in ops:
            for tag in op.get("tags", []) or ["Other"]:
                if tag not in tags:
                    tags.append(tag)
        descriptions = {t["name"]: t.get("description", "") for t in self.spec.get("tags", [])}
        out = []
        for tag in tags:
            mine = [o for o in ops if (o[2].get("tags") or ["Other"])[0] == tag]
            if not mine:
                continue
            out.append(f"## {tag}\n")
            if descriptions.get(tag):
                out.append(descriptions[tag].strip() + "\n")
            out.append(
                table(
                    ["operation", "method and path"],
                    [
                        [
                            f"[{code(op.get('operationId'))}](#{op.get('operationId')})",
                            code(f"{m.upper()} {p}"),
                        ]
                        for m, p, op, _ in mine
                    ],
                )
            )
            out.extend(self.operation(*o) for o in mine)
        return "\n".join(out)

    # --- components --------------------------------------------------------------------------
    def responses_section(self) -> str:
        responses = self.components.get("responses", {})
        if not responses:
            return ""
        out = (
            ["## Shared responses\n", self.responses_note]
            if self.responses_note
            else ["## Shared responses\n"]
        )
        for name, resp in responses.items():
            out.append(f"### {name} {{#response-{name.lower()}}}\n")
            out.append(resp.get("description", "").strip() + "\n")
            for media, content in (resp.get("content") or {}).items():
                schema = content.get("schema", {})
                out.append(f"- {code(media)}: {self.describe(self.main_schema(schema))}\n")
            if resp.get("headers"):
                out.append("- headers: " + ", ".join(code(h) for h in resp["headers"]) + "\n")
            for content in (resp.get("content") or {}).values():
                if content.get("schema") and content["schema"] != self.main_schema(content["schema"]):
                    out.append(self.folded_schema(content["schema"]))
                out.extend(self.examples(content))
        return "\n".join(out)

    def headers_section(self) -> str:
        headers = self.components.get("headers", {})
        if not headers:
            return ""
        rows = [
            [code(name), self.describe(h.get("schema", {})), cell(h.get("description", ""))]
            for name, h in headers.items()
        ]
        return "## Headers\n\n" + table(["header", "schema", "description"], rows)

    def schema(self, name: str, schema: dict[str, Any]) -> str:
        out = [f"### {name} {{#{schema_anchor(name)}}}\n"]
        if schema.get("description"):
            out.append(schema["description"].strip() + "\n")
        props = schema.get("properties")
        if isinstance(props, dict) and props:
            required = set(schema.get("required", []))
            rows = [
                [
                    code(key),
                    self.describe(value),
                    "yes" if key in required else "no",
                    cell(value.get("description", "")),
                ]
                for key, value in props.items()
            ]
            out.append(table(["property", "schema", "required", "description"], rows))
            extra = schema.get("additionalProperties")
            if extra is False:
                out.append("No other properties.\n")
            elif isinstance(extra, dict):
                out.append(f"Other properties: {self.describe(extra)}.\n")
        else:
            out.append(f"Schema: {self.describe(schema)}.\n")
        out.append(self.folded_schema(schema))
        return "\n".join(out)

    @staticmethod
    def folded_schema(schema: Any) -> str:
        """The schema as the spec states it, in a block folded away (pymdownx.details)."""
        dumped = yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=100).rstrip()
        return '??? note "Schema"\n' + textwrap.indent(f"```yaml\n{dumped}\n```\n", "    ")

    def schemas_section(self) -> str:
        schemas = self.components.get("schemas", {})
        if not schemas:
            return ""
        return "## Schemas\n\n" + "\n".join(self.schema(n, s) for n, s in schemas.items())

    def security_section(self) -> str:
        schemes = self.components.get("securitySchemes", {})
        if not schemes:
            return ""
        rows = [
            [code(n), s.get("type", ""), code(s.get("name", "")), cell(s.get("description", ""))]
            for n, s in schemes.items()
        ]
        return "## Authentication\n\n" + table(["scheme", "type", "header", "description"], rows)

    def overview(self) -> str:
        info = self.spec.get("info", {})
        out = [f"## Overview\n\n**{info.get('title', '')}**, version {info.get('version', '')}.\n"]
        if info.get("description"):
            out.append(info["description"].strip() + "\n")
        servers = self.spec.get("servers", [])
        if servers:
            out.append("Servers: " + ", ".join(code(s["url"]) for s in servers) + "\n")
        return "\n".join(out)

    def render(self) -> str:
        parts = [
            self.overview(),
            self.security_section(),
            self.operations_section(),
            self.responses_section(),
            self.headers_section(),
            self.schemas_section(),
        ]
        return "\n".join(p for p in parts if p)


def kantos_api_reference() -> str:
    note = (
        "The examples below are the spec's own. The mock's real answer to a request of each kind "
        "is on [Errors](errors.md#examples), made when the site is built.\n"
    )
    return Renderer(load("openapi.yaml"), responses_note=note).render()


def control_api_reference() -> str:
    return Renderer(load("control.yaml")).render()
