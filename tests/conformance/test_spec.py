"""openapi.yaml is a valid OpenAPI 3.1 document, its examples follow its schemas, and the mock
serves exactly it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator
from kantos_conformance import ROOT, SPEC_FILE
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from mockserver.openapi import SPEC_URI

DOCUMENT: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
REGISTRY: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(DOCUMENT))


def test_openapi_yaml_passes_openapi_spec_validator() -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in OpenAPIV31SpecValidator(DOCUMENT).iter_errors()
    ]
    assert not errors, "openapi.yaml is not a valid OpenAPI 3.1 document:\n" + "\n".join(errors)


def test_the_root_openapi_yaml_is_the_bundled_one() -> None:
    assert (ROOT / "openapi.yaml").resolve() == SPEC_FILE.resolve()


def _node(pointer: str) -> Any:
    node: Any = DOCUMENT
    for part in pointer.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(pointer: str) -> str:
    node = _node(pointer)
    while isinstance(node, dict) and "$ref" in node:
        pointer = str(node["$ref"]).removeprefix("#")
        node = _node(pointer)
    return pointer


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _examples() -> Iterator[tuple[str, str, Any]]:
    """(where, schema pointer, example value) for every example openapi.yaml gives."""
    for name, schema in DOCUMENT["components"]["schemas"].items():
        for i, value in enumerate(schema.get("examples", [])):
            yield f"schemas/{name}/examples/{i}", f"/components/schemas/{name}", value
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            base = f"/paths/{_escape(path)}/{method}"
            bodies = [f"{base}/requestBody"] if "requestBody" in op else []
            bodies += [f"{base}/responses/{status}" for status in op["responses"]]
            for pointer in bodies:
                pointer = _deref(pointer)
                for media, content in (_node(pointer).get("content") or {}).items():
                    media_pointer = f"{pointer}/content/{_escape(media)}"
                    for ex_name in content.get("examples", {}):
                        ex_pointer = _deref(f"{media_pointer}/examples/{ex_name}")
                        where = f"{op['operationId']} {pointer.rsplit('/', 1)[-1]} example {ex_name}"
                        yield where, f"{media_pointer}/schema", _node(ex_pointer)["value"]


EXAMPLES = list(_examples())


@pytest.mark.parametrize(("where", "schema", "value"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_example_follows_its_schema(where: str, schema: str, value: Any) -> None:
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{schema}"},
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
    assert not errors, f"{where} breaks {schema}:\n" + "\n".join(errors)


def test_the_mock_serves_openapi_yaml(client: httpx.Client) -> None:
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    assert orjson.loads(served.content) == DOCUMENT
