"""The response self-check: on in the whole suite, and loud when a response drifts from openapi.yaml.

Each test gives the mock a doctored copy of its spec that disagrees with what the mock really
sends, and shows the disagreement is caught: in process the request raises `ResponseMismatch`
naming operation, status and violation; over a socket the client gets a 500 that says the same.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import yaml
from kantos_strategies import FIXTURES
from kantos_support import SyncASGITransport
from starlette.applications import Starlette

from mockserver import create_app
from mockserver.openapi import Spec, bundled_spec_path
from mockserver.openapi.responses import ResponseMismatch, ResponseValidator
from mockserver.server import MockServer

ADMIN = {"X-Api-Key": "kantos_admin_local_key"}
DOCUMENT: dict[str, Any] = yaml.safe_load(bundled_spec_path().read_text(encoding="utf-8"))


def doctored(change: Callable[[dict[str, Any]], None]) -> Spec:
    document = copy.deepcopy(DOCUMENT)
    change(document)
    return Spec(document, source="doctored openapi.yaml")


def require_bogus_summary_property(doc: dict[str, Any]) -> None:
    doc["components"]["schemas"]["ObjectSummary"]["required"].append("bogus")


@pytest.fixture
def call() -> Iterator[Callable[..., httpx.Response]]:
    """Send one request to an app in process (no socket), exceptions and all."""
    clients: list[httpx.Client] = []

    def send(app: Starlette, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = httpx.Client(transport=SyncASGITransport(app), base_url="http://kantos.test", headers=ADMIN)
        clients.append(client)
        return client.request(method, url, **kwargs)

    yield send
    for client in clients:
        client.close()


def test_the_suite_runs_with_the_self_check_on() -> None:
    assert os.environ.get("KANTOS_MOCK_VALIDATE_RESPONSES") == "1"
    app = create_app(FIXTURES, spec=doctored(require_bogus_summary_property))  # no keyword: the environment
    assert any(m.cls.__name__ == "ResponseSelfCheck" for m in app.user_middleware)


def test_a_body_that_breaks_its_schema_fails_loudly(call: Callable[..., httpx.Response]) -> None:
    app = create_app(FIXTURES, spec=doctored(require_bogus_summary_property), validate_responses=True)
    with pytest.raises(ResponseMismatch) as caught:
        call(app, "GET", "/api/crm/objects")
    message = str(caught.value)
    assert "listObjects (GET /api/crm/objects) answered 200" in message
    assert "body['data'][0]: 'bogus' is a required property" in message


def test_an_undeclared_status_fails_loudly(call: Callable[..., httpx.Response]) -> None:
    def drop_404(doc: dict[str, Any]) -> None:
        del doc["paths"]["/api/crm/record/{record_id}"]["get"]["responses"]["404"]

    app = create_app(FIXTURES, spec=doctored(drop_404), validate_responses=True)
    with pytest.raises(ResponseMismatch, match=r"getRecord .* answered 404[\s\S]*status 404 is not declared"):
        call(app, "GET", "/api/crm/record/rec_missing")


def test_a_missing_required_header_fails_loudly(call: Callable[..., httpx.Response]) -> None:
    def require_request_id(doc: dict[str, Any]) -> None:
        headers = doc["paths"]["/api/crm/objects"]["get"]["responses"]["200"]["headers"]
        headers["X-Request-Id"] = {"required": True, "schema": {"type": "string"}}

    app = create_app(FIXTURES, spec=doctored(require_request_id), validate_responses=True)
    with pytest.raises(ResponseMismatch, match="required header X-Request-Id is missing"):
        call(app, "GET", "/api/crm/objects")


def test_an_undeclared_content_type_fails_loudly(call: Callable[..., httpx.Response]) -> None:
    def vendor_media_type(doc: dict[str, Any]) -> None:
        content = doc["paths"]["/api/crm/objects"]["get"]["responses"]["200"]["content"]
        content["application/vnd.kantos+json"] = content.pop("application/json")

    app = create_app(FIXTURES, spec=doctored(vendor_media_type), validate_responses=True)
    with pytest.raises(ResponseMismatch, match="Content-Type 'application/json' is not declared"):
        call(app, "GET", "/api/crm/objects")


def test_the_gate_and_router_answers_are_checked_too(call: Callable[..., httpx.Response]) -> None:
    def pin_unauthorized_code(doc: dict[str, Any]) -> None:
        schema = doc["components"]["responses"]["Unauthorized"]["content"]["application/json"]["schema"]
        schema["allOf"][1]["properties"]["code"] = {"const": "NOT_LOGGED_IN"}

    app = create_app(FIXTURES, spec=doctored(pin_unauthorized_code), validate_responses=True)
    with pytest.raises(ResponseMismatch, match=r"unknown route under /api answered 401"):
        call(app, "GET", "/api/nowhere", headers={"X-Api-Key": "wrong"})


def test_without_the_self_check_the_drift_goes_unnoticed(call: Callable[..., httpx.Response]) -> None:
    app = create_app(FIXTURES, spec=doctored(require_bogus_summary_property), validate_responses=False)
    assert call(app, "GET", "/api/crm/objects").status_code == 200


def test_over_a_socket_the_client_gets_a_500_naming_the_violation() -> None:
    app = create_app(FIXTURES, spec=doctored(require_bogus_summary_property), validate_responses=True)
    with MockServer(app=app) as mock:
        response = httpx.get(mock.url + "/api/crm/objects", headers=ADMIN)
        fine = httpx.get(mock.url + "/api/crm/objects/obj_contacts", headers=ADMIN)
    assert response.status_code == 500
    body = orjson.loads(response.content)
    assert body["details"]["operation"] == "listObjects (GET /api/crm/objects)"
    assert body["details"]["response_status"] == 200
    assert any("'bogus' is a required property" in v for v in body["details"]["violations"])
    assert fine.status_code == 200


def test_every_kind_of_answer_the_real_spec_describes_passes(call: Callable[..., httpx.Response]) -> None:
    app = create_app(FIXTURES, validate_responses=True)
    answers = {
        ("GET", "/api/crm/objects"): 200,
        ("GET", "/api/crm/records/query?object_id=obj_contacts&per_page=3"): 200,
        ("GET", "/api/crm/records/query?object_id=obj_contacts&per_page=0"): 400,
        ("GET", "/api/crm/records/query?object_id=obj_nope"): 404,
        ("PUT", "/api/crm/objects"): 405,
        ("HEAD", "/api/crm/record/rec_64ac00dc1ea9"): 405,
        ("OPTIONS", "/api/crm/records/query"): 405,
        ("GET", "/api/crm/nowhere"): 404,
        ("DELETE", "/api/crm/record/rec_64ac00dc1ea9"): 204,
        ("GET", "/api/crm/record/rec_64ac00dc1ea9"): 404,
    }
    for (method, url), status in answers.items():
        assert call(app, method, url).status_code == status, (method, url)
    assert call(app, "GET", "/api/crm/objects", headers={"X-Api-Key": "wrong"}).status_code == 401
    assert call(app, "GET", "/api/crm/objects", headers={"X-Api-Key": ""}).status_code == 401
    intake = {"X-Api-Key": "kantos_intake_local_key"}
    assert call(app, "GET", "/api/crm/objects", headers=intake).status_code == 403
    bad_body = call(app, "POST", "/api/crm/record", content=b"x", headers={"Content-Type": "text/plain"})
    assert bad_body.status_code == 415


def test_the_mocks_own_answers_are_not_judged_by_the_contract(call: Callable[..., httpx.Response]) -> None:
    """Fault rules and a bad X-Mock-Tenant are test scaffolding: the gate marks them MOCK_ONLY."""
    app = create_app(FIXTURES, validate_responses=True)
    fault = {"method": "GET", "path": "/api/crm/objects", "status": 503, "times": 1}
    assert call(app, "POST", "/_mock/faults", json=fault).status_code == 201
    assert call(app, "GET", "/api/crm/objects").status_code == 503  # undeclared, but injected
    assert call(app, "GET", "/api/crm/objects").status_code == 200  # judged again
    long_tenant = {"X-Mock-Tenant": "t" * 201}
    assert call(app, "GET", "/api/crm/objects", headers=long_tenant).status_code == 400


# ---------------------------------------------------------------------------- the validator itself

VALIDATOR = ResponseValidator(Spec(DOCUMENT))
RATE = [("X-RateLimit-Limit", "100"), ("X-RateLimit-Remaining", "99"), ("X-RateLimit-Reset", "1700000000")]
JSON = [("Content-Type", "application/json")]


def error(code: str, status: int) -> bytes:
    return orjson.dumps({"error": "x", "code": code, "status": status, "details": {}})


def test_a_405_must_list_exactly_the_paths_methods_in_allow() -> None:
    body = error("METHOD_NOT_ALLOWED", 405)
    ok = VALIDATOR.violations(
        "PUT", "/api/crm/record/r1", 405, [*JSON, *RATE, ("Allow", "DELETE, GET, PATCH")], body
    )
    assert ok[1] == []
    wrong = VALIDATOR.violations(
        "PUT", "/api/crm/record/r1", 405, [*JSON, *RATE, ("Allow", "GET, PUT")], body
    )
    assert wrong[1] == ["Allow lists GET, PUT; the document lists DELETE, GET, PATCH"]
    missing = VALIDATOR.violations("PUT", "/api/crm/record/r1", 405, [*JSON, *RATE], body)
    assert missing[1] == ["required header Allow is missing"]


def test_a_401_needs_no_rate_limit_headers_but_others_do() -> None:
    assert VALIDATOR.violations("GET", "/api/crm/objects", 401, JSON, error("UNAUTHORIZED", 401))[1] == []
    label, problems = VALIDATOR.violations("GET", "/api/crm/objects", 404, JSON, error("NOT_FOUND", 404))
    assert label == "listObjects (GET /api/crm/objects)"
    assert "status 404 is not declared" in problems[0]
    label, problems = VALIDATOR.violations("GET", "/api/crm/objects/x", 404, JSON, error("NOT_FOUND", 404))
    assert label == "getObject (GET /api/crm/objects/{object_id})"
    assert sorted(problems) == [
        "required header X-RateLimit-Limit is missing",
        "required header X-RateLimit-Remaining is missing",
        "required header X-RateLimit-Reset is missing",
    ]


def test_header_values_and_empty_bodies_are_checked() -> None:
    headers = [*RATE[:2], ("X-RateLimit-Reset", "soon")]
    problems = VALIDATOR.violations("DELETE", "/api/crm/record/r1", 204, headers, b"")[1]
    assert problems == ["header X-RateLimit-Reset: 'soon' breaks its schema: 'soon' is not of type 'integer'"]
    problems = VALIDATOR.violations("DELETE", "/api/crm/record/r1", 204, RATE, b"{}")[1]
    assert problems == ["a body of 2 bytes is sent where the document declares none"]


def test_paths_outside_the_api_are_not_judged() -> None:
    assert not VALIDATOR.applies_to("/openapi.json")
    assert not VALIDATOR.applies_to("/_mock/reset")
    assert VALIDATOR.applies_to("/api")
    assert VALIDATOR.applies_to("/api/crm/objects")
