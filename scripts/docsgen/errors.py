"""The error table: every `KantosError` class (status, code), joined with what `openapi.yaml`
says of that code (its shared response: when, headers, an example), and the order of checks."""

from __future__ import annotations

import inspect
import json
import re
from http import HTTPStatus
from typing import Any

from .api import load
from .text import cell, code, table


def error_classes() -> list[type[Any]]:
    """`KantosError` and every subclass of it, by status."""
    from mockserver.domain.errors import KantosError

    found: list[type[Any]] = []
    todo: list[type[Any]] = [KantosError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: (c.status, c.code))


def responses_by_code(spec: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each shared response that pins a `code` (`allOf: [Error, {properties: {code: {const}}}]`)."""
    found = {}
    for name, resp in spec.get("components", {}).get("responses", {}).items():
        for content in (resp.get("content") or {}).values():
            for part in content.get("schema", {}).get("allOf", []):
                const = part.get("properties", {}).get("code", {}).get("const")
                if const:
                    found[const] = (name, resp)
    return found


RATE_HEADERS = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def error_reference() -> str:
    from mockserver.http.responses import internal_error_body

    from .live import error_exchanges

    spec = load("openapi.yaml")
    by_code = responses_by_code(spec)
    exchanges = error_exchanges()
    rows = []
    for cls in error_classes():
        name, resp = by_code.get(cls.code, ("", {}))
        if cls.code == "INTERNAL":  # the base class: what a bug in the mock answers
            when = inspect.getdoc(internal_error_body) or ""
            rows.append([code(cls.status), code(cls.code), "any other exception", cell(when), ""])
            continue
        if not resp:
            raise LookupError(f"{cls.__name__} ({cls.code}): openapi.yaml has no shared response for it")
        if not any(e.body.get("code") == cls.code for e in exchanges):
            raise LookupError(f"{cls.__name__} ({cls.code}): docsgen/live.py makes no example of it")
        when = re.sub(r"^\d{3} [A-Z_]+\s*[-:]\s*", "", " ".join(resp.get("description", "").split()))
        headers = [h for h in resp.get("headers", {}) if h not in RATE_HEADERS]
        when = when[:1].upper() + when[1:]
        rows.append(
            [
                code(cls.status),
                f"[{code(cls.code)}](kantos-api.md#response-{name.lower()})",
                code(f"{cls.__module__}.{cls.__name__}"),
                cell(when),
                ", ".join(code(h) for h in headers),
            ]
        )
    out = [table(["status", "code", "raised as", "when", "extra headers"], rows)]
    out.append("### Examples {#examples}\n")
    out.append(
        "Real answers of the mock on the bundled fixtures, made when this page was built (the "
        "clock frozen at 2024-01-15T10:30:13Z).\n"
    )
    for e in exchanges:
        shown = json.dumps(e.body, indent=2, ensure_ascii=False)
        head = "".join(f"{k.title()}: {v}\n" for k, v in e.headers.items())
        reason = HTTPStatus(e.status).phrase
        title = f"{e.status} {e.body.get('code')}: {e.title}"
        block = (
            f"```http\n{e.method} {e.path} HTTP/1.1\n```\n"
            f"```http\nHTTP/1.1 {e.status} {reason}\nContent-Type: application/json\n{head}\n{shown}\n```"
        )
        out.append(f'??? example "{title}"\n' + _indent(block) + "\n")
    internal = json.dumps(internal_error_body(RuntimeError()), indent=2)
    out.append(
        '??? example "500 INTERNAL: a bug in the mock"\n' + _indent(f"```json\n{internal}\n```") + "\n"
    )
    rules = spec.get("x-kantos", {})
    for key, title in (
        ("check-order", "Order of checks"),
        ("query-check-order", "Order of checks on a query"),
    ):
        if rules.get(key):
            out.append(f"### {title} {{#{key}}}\n")
            out.append(
                "When a request is wrong in several ways, the first of these answers "
                "(`x-kantos` in `openapi.yaml`):\n"
                if key == "check-order"
                else "Within a query, the parameters are checked in this order:\n"
            )
            out.append("\n".join(f"{i}. {cell(step)}" for i, step in enumerate(rules[key], 1)) + "\n")
    return "\n".join(out)


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())
