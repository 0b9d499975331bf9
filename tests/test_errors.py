"""The error table of CONTRACT.md, the order of its checks, and that no error changes state or is a 5xx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from kantos_support import ADMIN_KEY, FREE_KEY, INTAKE_KEY, SERVER_KEY
from starlette.applications import Starlette
from starlette.types import Message, Scope

ERROR_KEYS = {"error", "code", "status", "details"}
MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}

CONTACT = "rec_64ac00dc1ea9"  # a bundled contact with an email, "annaadams@example.org"
CONTACT_EMAIL = "annaadams@example.org"
OTHER_CONTACT = "rec_36b1a8bdcd5c"
QUERY = "/api/crm/records/query"

# The Surface table of CONTRACT.md: each route and exactly its methods.
SURFACE: dict[str, set[str]] = {
    QUERY: {"GET"},
    "/api/crm/record": {"POST"},
    f"/api/crm/record/{CONTACT}": {"GET", "PATCH", "DELETE"},
    "/api/crm/objects": {"GET", "POST"},
    "/api/crm/objects/obj_contacts": {"GET"},
    "/api/crm/objects/obj_contacts/fields": {"POST"},
}
EVERY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


# --- helpers ---------------------------------------------------------------------------------


def send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send a request; an exception escaping the app is a 5xx, reported as such."""
    try:
        return client.request(method, url, **kwargs)
    except Exception as exc:
        pytest.fail(f"{method} {url} made the mock raise {exc!r} (a 500 on a real socket)")


def send_without_key(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    request = client.build_request(method, url, **kwargs)
    del request.headers["X-Api-Key"]
    return client.send(request)


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The Kantos error shape with this status and code; returns `details`."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    if r.request.method == "HEAD":
        return {}
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == code
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"].strip()
    assert isinstance(body["details"], dict)
    details: dict[str, Any] = body["details"]
    return details


def assert_bad_request(
    r: httpx.Response, *, param: str | None = None, field: str | None = None
) -> dict[str, Any]:
    details = assert_error(r, 400, "BAD_REQUEST")
    assert "param" in details or "field" in details, details
    assert isinstance(details.get("reason"), str) and details["reason"], details
    if param is not None:
        assert details.get("param") == param, details
    if field is not None:
        assert details.get("field") == field, details
    return details


def query(client: httpx.Client, **params: Any) -> httpx.Response:
    return send(client, "GET", QUERY, params={"object_id": "obj_contacts", **params})


def total(client: httpx.Client, object_id: str = "obj_contacts") -> int:
    r = client.get(QUERY, params={"object_id": object_id, "per_page": 1})
    assert r.status_code == 200, r.text
    n: int = r.json()["pagination"]["total"]
    return n


def snapshot(app: Starlette) -> dict[str, Any]:
    """The whole state of the default tenant: every object with its fields, and every record."""
    backend = app.state.tenants.default
    state: dict[str, Any] = {"objects": [obj.to_json() for obj in backend.list_objects()]}
    for obj in backend.list_objects():
        page = backend.query_records(obj.id, sort="id", per_page=100)
        records = [r.to_json() for r in page.records]
        for n in range(2, page.total_pages + 1):
            records += [
                r.to_json() for r in backend.query_records(obj.id, sort="id", page=n, per_page=100).records
            ]
        state[obj.id] = records
    return state


def create_body(**values: Any) -> dict[str, Any]:
    return {"object_id": "obj_contacts", "field_values": {"name": "Error Test", **values}}


# --- 401 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        pytest.param("GET", QUERY + "?object_id=obj_contacts", id="query"),
        pytest.param("GET", f"/api/crm/record/{CONTACT}", id="get-record"),
        pytest.param("POST", "/api/crm/record", id="create-record"),
        pytest.param("DELETE", f"/api/crm/record/{CONTACT}", id="delete-record"),
        pytest.param("GET", "/api/crm/objects", id="list-objects"),
        pytest.param("POST", "/api/crm/objects", id="create-object"),
        pytest.param("GET", "/api/crm/no-such-route", id="unknown-api-route"),
        pytest.param("PUT", "/api/crm/record", id="method-not-allowed"),
    ],
)
def test_missing_api_key_is_401_before_anything_else(client: httpx.Client, method: str, url: str) -> None:
    before = total(client)
    r = send_without_key(client, method, url, content=b"{not json", headers={"Content-Type": "text/plain"})
    assert_error(r, 401, "UNAUTHORIZED")
    assert total(client) == before


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("kantos_no_such_key", id="unknown"),
        pytest.param("", id="empty"),
        pytest.param(ADMIN_KEY.upper(), id="wrong-case"),
        pytest.param(ADMIN_KEY + " ", id="trailing-space"),
    ],
)
def test_unknown_api_key_is_401(client: httpx.Client, key: str) -> None:
    r = send(client, "GET", QUERY, params={"object_id": "obj_contacts"}, headers={"X-Api-Key": key})
    assert_error(r, 401, "UNAUTHORIZED")


def test_api_key_in_another_header_or_query_is_not_accepted(client: httpx.Client) -> None:
    r = send_without_key(client, "GET", QUERY, params={"object_id": "obj_contacts", "api_key": ADMIN_KEY})
    assert_error(r, 401, "UNAUTHORIZED")
    r = send_without_key(client, "GET", "/api/crm/objects", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert_error(r, 401, "UNAUTHORIZED")


def test_unknown_route_under_api_without_key_is_401_not_404(client: httpx.Client) -> None:
    assert_error(send_without_key(client, "GET", "/api/crm/nothing-here"), 401, "UNAUTHORIZED")


def test_unknown_path_outside_api_is_404_even_without_key(client: httpx.Client) -> None:
    details = assert_error(send_without_key(client, "GET", "/nothing-here"), 404, "NOT_FOUND")
    assert "/nothing-here" in json.dumps(details)


# --- 403 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        pytest.param("GET", QUERY + "?object_id=obj_contacts", None, id="query"),
        pytest.param("GET", f"/api/crm/record/{CONTACT}", None, id="get-record"),
        pytest.param("POST", "/api/crm/record", create_body(), id="create-record"),
        pytest.param("PATCH", f"/api/crm/record/{CONTACT}", {"field_values": {}}, id="update-record"),
        pytest.param("DELETE", f"/api/crm/record/{CONTACT}", None, id="delete-record"),
        pytest.param("GET", "/api/crm/objects", None, id="list-objects"),
        pytest.param("GET", "/api/crm/objects/obj_contacts", None, id="get-object"),
        pytest.param("GET", "/api/crm/no-such-route", None, id="unknown-crm-route"),
        pytest.param("PUT", "/api/crm/record", None, id="method-not-allowed"),
    ],
)
def test_intake_key_on_crm_routes_is_403(
    app: Starlette, client: httpx.Client, method: str, url: str, body: dict[str, Any] | None
) -> None:
    before = snapshot(app)
    r = send(client, method, url, json=body, headers={"X-Api-Key": INTAKE_KEY})
    assert_error(r, 403, "FORBIDDEN")
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "key", [pytest.param(SERVER_KEY, id="server-key"), pytest.param(FREE_KEY, id="free-key")]
)
@pytest.mark.parametrize(
    ("url", "body"),
    [
        pytest.param("/api/crm/objects", {"name": "Projects"}, id="create-object"),
        pytest.param(
            "/api/crm/objects/obj_contacts/fields", {"name": "Nickname", "type": "text"}, id="create-field"
        ),
    ],
)
def test_schema_writes_without_an_admin_key_are_403(
    app: Starlette, client: httpx.Client, key: str, url: str, body: dict[str, Any]
) -> None:
    before = snapshot(app)
    r = send(client, "POST", url, json=body, headers={"X-Api-Key": key})
    assert_error(r, 403, "FORBIDDEN")
    assert snapshot(app) == before


def test_non_admin_server_key_may_read_the_schema_and_write_records(client: httpx.Client) -> None:
    headers = {"X-Api-Key": SERVER_KEY}
    assert send(client, "GET", "/api/crm/objects", headers=headers).status_code == 200
    assert send(client, "GET", "/api/crm/objects/obj_contacts", headers=headers).status_code == 200
    assert send(client, "POST", "/api/crm/record", json=create_body(), headers=headers).status_code == 201


# --- 404 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        pytest.param("GET", "/api/crm/nothing", id="unknown-crm-route"),
        pytest.param("POST", "/api/crm/records", id="plural-records"),
        pytest.param("GET", "/api/crm/record/a/b", id="too-deep"),
        pytest.param("GET", "/api/nothing", id="unknown-api-route"),
        pytest.param("GET", "/api/crm/objects/", id="trailing-slash"),
        pytest.param("GET", "/api/crm/records/query/", id="trailing-slash-query"),
    ],
)
def test_unknown_route_with_a_key_is_404_naming_the_path(client: httpx.Client, method: str, url: str) -> None:
    details = assert_error(send(client, method, url), 404, "NOT_FOUND")
    assert url in details.values(), details


@pytest.mark.parametrize(
    ("method", "body"),
    [
        pytest.param("GET", None, id="get"),
        pytest.param("PATCH", {"field_values": {"name": "X"}}, id="patch"),
        pytest.param("DELETE", None, id="delete"),
    ],
)
def test_unknown_record_is_404_naming_its_id(
    app: Starlette, client: httpx.Client, method: str, body: Any
) -> None:
    before = snapshot(app)
    details = assert_error(send(client, method, "/api/crm/record/rec_nope", json=body), 404, "NOT_FOUND")
    assert "rec_nope" in details.values(), details
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        pytest.param("GET", "/api/crm/objects/obj_nope", None, id="get-object"),
        pytest.param("GET", QUERY + "?object_id=obj_nope", None, id="query"),
        pytest.param(
            "POST",
            "/api/crm/record",
            {"object_id": "obj_nope", "field_values": {"name": "X"}},
            id="create-record",
        ),
        pytest.param(
            "POST",
            "/api/crm/objects/obj_nope/fields",
            {"name": "Nickname", "type": "text"},
            id="create-field",
        ),
    ],
)
def test_unknown_object_is_404_naming_its_id(
    app: Starlette, client: httpx.Client, method: str, url: str, body: Any
) -> None:
    before = snapshot(app)
    details = assert_error(send(client, method, url, json=body), 404, "NOT_FOUND")
    assert "obj_nope" in details.values(), details
    assert snapshot(app) == before


def test_record_of_another_object_is_found_by_id_alone(client: httpx.Client) -> None:
    company = client.get(QUERY, params={"object_id": "obj_companies", "per_page": 1}).json()["data"][0]
    r = send(client, "GET", f"/api/crm/record/{company['id']}")
    assert r.status_code == 200 and r.json()["object_id"] == "obj_companies"


# --- 405 ----------------------------------------------------------------------------------


NOT_ALLOWED = [
    pytest.param(path, method, id=f"{method}-{path.replace('/api/crm/', '')}")
    for path, allowed in SURFACE.items()
    for method in EVERY_METHOD
    if method not in allowed
]


@pytest.mark.parametrize(("path", "method"), NOT_ALLOWED)
def test_method_not_in_the_surface_is_405_with_allow_listing_exactly_the_spec_methods(
    app: Starlette, client: httpx.Client, path: str, method: str
) -> None:
    before = snapshot(app)
    r = send(client, method, path, json={"field_values": {}})
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allow == SURFACE[path]
    assert snapshot(app) == before


def test_put_on_a_record_is_405_and_leaves_it_unchanged(client: httpx.Client) -> None:
    before = client.get(f"/api/crm/record/{CONTACT}").json()
    r = send(client, "PUT", f"/api/crm/record/{CONTACT}", json={"field_values": {"name": "Replaced"}})
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in r.headers["Allow"].split(",")} == {"GET", "PATCH", "DELETE"}
    assert client.get(f"/api/crm/record/{CONTACT}").json() == before


# --- 409 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        pytest.param(CONTACT_EMAIL, id="same-case"),
        pytest.param(CONTACT_EMAIL.upper(), id="upper-case"),
        pytest.param("AnnaAdams@Example.ORG", id="mixed-case"),
    ],
)
def test_create_with_a_taken_email_is_409_and_adds_nothing(
    app: Starlette, client: httpx.Client, email: str
) -> None:
    before = snapshot(app)
    details = assert_error(
        send(client, "POST", "/api/crm/record", json=create_body(email=email)), 409, "CONFLICT"
    )
    assert details["field"] == "email"
    assert details["value"] == email
    assert snapshot(app) == before


def test_update_to_a_taken_email_is_409_and_changes_nothing(app: Starlette, client: httpx.Client) -> None:
    before = snapshot(app)
    r = send(
        client, "PATCH", f"/api/crm/record/{OTHER_CONTACT}", json={"field_values": {"email": CONTACT_EMAIL}}
    )
    details = assert_error(r, 409, "CONFLICT")
    assert (details["field"], details["value"]) == ("email", CONTACT_EMAIL)
    assert snapshot(app) == before


def test_taken_unique_company_name_is_409(client: httpx.Client) -> None:
    company = client.get(QUERY, params={"object_id": "obj_companies", "per_page": 1}).json()["data"][0]
    name = company["field_values"]["name"]
    before = total(client, "obj_companies")
    r = send(
        client, "POST", "/api/crm/record", json={"object_id": "obj_companies", "field_values": {"name": name}}
    )
    details = assert_error(r, 409, "CONFLICT")
    assert (details["field"], details["value"]) == ("name", name)
    assert total(client, "obj_companies") == before


# --- 413 ----------------------------------------------------------------------------------


def body_of_size(size: int) -> bytes:
    """A valid create body of exactly `size` bytes (a long `notes` value pads it)."""
    head = b'{"object_id":"obj_contacts","field_values":{"name":"Big","notes":"'
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_body_over_one_mib_is_413_and_adds_nothing(client: httpx.Client) -> None:
    before = total(client)
    assert_error(
        send(client, "POST", "/api/crm/record", content=body_of_size(MIB + 1), headers=JSON),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    assert total(client) == before


def asgi_post_in_chunks(app: Starlette, path: str, data: bytes, chunk: int = 64 * 1024) -> tuple[int, bytes]:
    """POST `data` to the app in chunks without a Content-Length (as chunked transfer does)."""
    messages: list[Message] = [
        {"type": "http.request", "body": data[i : i + chunk], "more_body": i + chunk < len(data)}
        for i in range(0, len(data), chunk)
    ]
    sent: list[Message] = []
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"kantos.test"),
            (b"x-api-key", ADMIN_KEY.encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("kantos.test", 80),
    }

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send_(message: Message) -> None:
        sent.append(message)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(app(scope, receive, send_))
    finally:
        loop.close()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body


def test_streamed_body_over_one_mib_without_content_length_is_413(
    app: Starlette, client: httpx.Client
) -> None:
    before = total(client)
    status, body = asgi_post_in_chunks(app, "/api/crm/record", body_of_size(2 * MIB))
    assert status == 413
    error = json.loads(body)
    assert set(error) == ERROR_KEYS and error["code"] == "PAYLOAD_TOO_LARGE"
    assert total(client) == before


def test_streamed_body_under_one_mib_without_content_length_is_accepted(
    app: Starlette, client: httpx.Client
) -> None:
    before = total(client)
    status, body = asgi_post_in_chunks(app, "/api/crm/record", body_of_size(MIB - 100))
    assert status == 201, body[:300]
    assert total(client) == before + 1


def test_patch_body_over_one_mib_is_413(client: httpx.Client) -> None:
    notes = "x" * (MIB + 10)
    before = client.get(f"/api/crm/record/{CONTACT}").json()
    r = send(client, "PATCH", f"/api/crm/record/{CONTACT}", json={"field_values": {"notes": notes}})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert client.get(f"/api/crm/record/{CONTACT}").json() == before


def test_body_of_exactly_one_mib_is_accepted(client: httpx.Client) -> None:
    r = send(client, "POST", "/api/crm/record", content=body_of_size(MIB), headers=JSON)
    assert r.status_code == 201, r.text[:300]


# --- 415 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(None, id="no-content-type"),
        pytest.param("text/plain", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("application/xml", id="xml"),
        pytest.param("application/json-patch+json", id="json-patch"),
        pytest.param("application/json; charset=latin-1", id="charset-latin-1"),
        pytest.param("application/json; charset=utf-16", id="charset-utf-16"),
        pytest.param("application/json; charset=iso-8859-1", id="charset-iso-8859-1"),
    ],
)
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        pytest.param("POST", "/api/crm/record", create_body(), id="create-record"),
        pytest.param(
            "PATCH", f"/api/crm/record/{CONTACT}", {"field_values": {"name": "Changed"}}, id="update"
        ),
        pytest.param("POST", "/api/crm/objects", {"name": "Projects"}, id="create-object"),
        pytest.param(
            "POST",
            "/api/crm/objects/obj_contacts/fields",
            {"name": "Nick", "type": "text"},
            id="create-field",
        ),
    ],
)
def test_body_that_is_not_utf8_json_is_415_and_changes_nothing(
    app: Starlette,
    client: httpx.Client,
    content_type: str | None,
    method: str,
    url: str,
    body: dict[str, Any],
) -> None:
    before = snapshot(app)
    headers = {"Content-Type": content_type} if content_type is not None else {}
    r = send(client, method, url, content=json.dumps(body).encode(), headers=headers)
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json", id="plain"),
        pytest.param("application/json; charset=utf-8", id="charset-utf-8"),
        pytest.param("application/json;charset=UTF-8", id="charset-upper-no-space"),
    ],
)
def test_json_with_utf8_or_no_charset_is_accepted(client: httpx.Client, content_type: str) -> None:
    body = json.dumps(create_body(notes="Grüße, 東京")).encode("utf-8")
    r = send(client, "POST", "/api/crm/record", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 201, r.text
    assert r.json()["field_values"]["notes"] == "Grüße, 東京"


# --- 400: the body's form -----------------------------------------------------------------


MALFORMED_BODIES = [
    pytest.param(b"{", id="unterminated"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b'{"object_id": "obj_contacts", "field_values": {"name": "X"},}', id="trailing-comma"),
    pytest.param(b"{'object_id': 'obj_contacts', 'field_values': {}}", id="single-quotes"),
    pytest.param(
        b'{"object_id": "obj_contacts", "field_values": {"name": "X"}} extra', id="trailing-garbage"
    ),
    pytest.param(b"", id="empty-body"),
    pytest.param(b'{"object_id":"obj_contacts","field_values":{"name":"\\ud800"}}', id="lone-high-surrogate"),
    pytest.param(b'{"object_id":"obj_contacts","field_values":{"name":"\\udc00x"}}', id="lone-low-surrogate"),
    pytest.param(b'{"object_id":"obj_contacts","field_values":{"name":"X","score":NaN}}', id="nan"),
    pytest.param(b'{"object_id":"obj_contacts","field_values":{"name":"X","score":Infinity}}', id="infinity"),
    pytest.param(
        b'{"object_id":"obj_contacts","field_values":{"name":"X","score":-Infinity}}', id="minus-inf"
    ),
    pytest.param(b'{"object_id":"obj_contacts","field_values":{"name":"X","score":1e400}}', id="1e400"),
    pytest.param(
        b'{"object_id":"obj_contacts","field_values":{"name":"X","score":-1e400}}', id="minus-1e400"
    ),
    pytest.param(b'{"object_id":"obj_contacts","field_values":{"name":"\xff\xfe"}}', id="invalid-utf8"),
]


@pytest.mark.parametrize("raw", MALFORMED_BODIES)
def test_malformed_create_body_is_400_and_adds_nothing(client: httpx.Client, raw: bytes) -> None:
    before = total(client)
    assert_bad_request(send(client, "POST", "/api/crm/record", content=raw, headers=JSON))
    assert total(client) == before


@pytest.mark.parametrize("raw", MALFORMED_BODIES)
def test_malformed_update_body_is_400_and_leaves_the_record_identical(
    client: httpx.Client, raw: bytes
) -> None:
    before = client.get(f"/api/crm/record/{CONTACT}").json()
    raw = raw.replace(b'"object_id":"obj_contacts",', b"").replace(b'"object_id": "obj_contacts", ', b"")
    assert_bad_request(send(client, "PATCH", f"/api/crm/record/{CONTACT}", content=raw, headers=JSON))
    assert client.get(f"/api/crm/record/{CONTACT}").json() == before


@pytest.mark.parametrize(
    ("method", "url", "body", "key"),
    [
        pytest.param("POST", "/api/crm/record", {**create_body(), "extra": 1}, "extra", id="create-record"),
        pytest.param(
            "PATCH",
            f"/api/crm/record/{CONTACT}",
            {"field_values": {}, "status": "new"},
            "status",
            id="update",
        ),
        pytest.param(
            "PATCH",
            f"/api/crm/record/{CONTACT}",
            {"field_values": {}, "object_id": "obj_contacts"},
            "object_id",
            id="update-object-id",
        ),
        pytest.param(
            "POST", "/api/crm/objects", {"name": "Projects", "colour": "red"}, "colour", id="object"
        ),
        pytest.param(
            "POST",
            "/api/crm/objects/obj_contacts/fields",
            {"name": "Nick", "type": "text", "slug": "nick"},
            "slug",
            id="field",
        ),
    ],
)
def test_unknown_top_level_body_key_is_400_naming_it(
    app: Starlette, client: httpx.Client, method: str, url: str, body: dict[str, Any], key: str
) -> None:
    before = snapshot(app)
    assert_bad_request(send(client, method, url, json=body), field=key)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"field_values": {"name": "X"}}, "object_id", id="missing-object-id"),
        pytest.param({"object_id": "obj_contacts"}, "field_values", id="missing-field-values"),
        pytest.param({"object_id": 5, "field_values": {"name": "X"}}, "object_id", id="object-id-number"),
        pytest.param(
            {"object_id": "obj_contacts", "field_values": []}, "field_values", id="field-values-array"
        ),
        pytest.param(
            {"object_id": "obj_contacts", "field_values": None}, "field_values", id="field-values-null"
        ),
        pytest.param(
            {"object_id": "obj_contacts", "field_values": "X"}, "field_values", id="field-values-string"
        ),
    ],
)
def test_create_body_of_the_wrong_form_is_400_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    before = total(client)
    assert_bad_request(send(client, "POST", "/api/crm/record", json=body), field=field)
    assert total(client) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="array"),
        pytest.param("text", id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
        pytest.param(True, id="boolean"),
    ],
)
def test_body_that_is_not_an_object_is_400(client: httpx.Client, body: Any) -> None:
    assert_bad_request(send(client, "POST", "/api/crm/record", content=json.dumps(body), headers=JSON))
    assert_bad_request(
        send(client, "PATCH", f"/api/crm/record/{CONTACT}", content=json.dumps(body), headers=JSON)
    )


# --- 400: query parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "param"),
    [
        pytest.param([("page", "0")], "page", id="page-0"),
        pytest.param([("page", "-1")], "page", id="page-negative"),
        pytest.param([("page", "abc")], "page", id="page-abc"),
        pytest.param([("page", "1.5")], "page", id="page-fraction"),
        pytest.param([("page", "")], "page", id="page-empty"),
        pytest.param([("page", "9" * 19)], "page", id="page-past-64-bits"),
        pytest.param([("page", "\u0663")], "page", id="page-non-ascii-digit"),
        pytest.param([("per_page", "\uff15")], "per_page", id="per-page-fullwidth-digit"),
        pytest.param([("per_page", "0")], "per_page", id="per-page-0"),
        pytest.param([("per_page", "101")], "per_page", id="per-page-101"),
        pytest.param([("per_page", "ten")], "per_page", id="per-page-word"),
        pytest.param([("order", "up")], "order", id="order-up"),
        pytest.param([("order", "")], "order", id="order-empty"),
        pytest.param([("filters", "")], "filters", id="filters-empty"),
        pytest.param([("sort", "")], "sort", id="sort-empty"),
        pytest.param([("filters", "{status: active}")], "filters", id="filters-not-json"),
        pytest.param([("filters", "[1, 2]")], "filters", id="filters-array"),
        pytest.param([("filters", '"status"')], "filters", id="filters-string"),
        pytest.param([("page", "1"), ("page", "2")], "page", id="page-twice"),
        pytest.param([("page", "1"), ("page", "1")], "page", id="page-twice-same-value"),
        pytest.param([("filters", "{}"), ("filters", "{}")], "filters", id="filters-twice"),
        pytest.param([("sort", "name"), ("sort", "email")], "sort", id="sort-twice"),
        pytest.param([("object_id", "obj_contacts")], "object_id", id="object-id-twice"),
    ],
)
def test_bad_query_parameter_is_400_naming_it(
    client: httpx.Client, items: list[tuple[str, str]], param: str
) -> None:
    r = send(client, "GET", QUERY, params=[("object_id", "obj_contacts"), *items])
    assert_bad_request(r, param=param)


def test_missing_object_id_is_400_naming_it(client: httpx.Client) -> None:
    assert_bad_request(send(client, "GET", QUERY), param="object_id")


def test_unknown_query_parameters_are_ignored(client: httpx.Client) -> None:
    plain = query(client).json()
    r = send(
        client,
        "GET",
        QUERY,
        params=[("object_id", "obj_contacts"), ("foo", "1"), ("foo", "2"), ("limit", "x")],
    )
    assert r.status_code == 200, r.text
    assert r.json() == plain


def test_unknown_sort_field_is_400_naming_sort(client: httpx.Client) -> None:
    r = query(client, sort="shoe_size")
    assert_bad_request(r, param="sort")
    assert "shoe_size" in r.json()["error"]


def test_unknown_filter_field_is_400_naming_it(client: httpx.Client) -> None:
    assert_bad_request(query(client, filters='{"shoe_size": 42}'), field="shoe_size")


@pytest.mark.parametrize("operator", ["$regex", "$like", "eq", "$EQ", "$exists"])
def test_unknown_filter_operator_is_400_naming_field_and_operator(
    client: httpx.Client, operator: str
) -> None:
    r = query(client, filters=json.dumps({"name": {operator: "John"}}))
    details = assert_bad_request(r, field="name")
    assert operator in r.json()["error"] or details.get("operator") == operator


OPERAND_ERRORS = [
    pytest.param(
        {"deal_value": {"$gte": "10000"}}, "deal_value", "$gte", "number", id="string-for-number-gte"
    ),
    pytest.param({"deal_value": "10000"}, "deal_value", "$eq", "number", id="bare-string-for-number"),
    pytest.param({"score": {"$in": ["1", "2"]}}, "score", "$in", "number", id="strings-in-number-in"),
    pytest.param({"category": {"$in": "SMB"}}, "category", "$in", "array", id="non-array-for-in"),
    pytest.param({"category": {"$nin": "SMB"}}, "category", "$nin", "array", id="non-array-for-nin"),
    pytest.param({"phone": {"$empty": "false"}}, "phone", "$empty", "boolean", id="string-for-empty"),
    pytest.param({"phone": {"$empty": 0}}, "phone", "$empty", "boolean", id="number-for-empty"),
    pytest.param({"do_not_contact": "yes"}, "do_not_contact", "$eq", "boolean", id="string-for-boolean"),
    pytest.param({"name": {"$contains": 5}}, "name", "$contains", "string", id="number-for-contains"),
    pytest.param({"deal_value": {"$gte": None}}, "deal_value", "$gte", "number", id="null-for-gte"),
    pytest.param({"name": {"$contains": None}}, "name", "$contains", "string", id="null-for-contains"),
    pytest.param({"name": {"$in": [None]}}, "name", "$in", "string", id="null-in-in-array"),
    pytest.param({"deal_value": None}, "deal_value", "$eq", "number", id="bare-null"),
    pytest.param({"created_at": {"$lt": "yesterday"}}, "created_at", "$lt", "date", id="not-a-date"),
    pytest.param({"birthday": {"$gte": "15/01/2024"}}, "birthday", "$gte", "date", id="date-wrong-syntax"),
]


@pytest.mark.parametrize(("filters", "field", "operator", "expected"), OPERAND_ERRORS)
def test_operand_of_the_wrong_type_is_400_naming_field_operator_and_expected_type(
    client: httpx.Client, filters: dict[str, Any], field: str, operator: str, expected: str
) -> None:
    r = query(client, filters=json.dumps(filters))
    details = assert_bad_request(r, field=field)
    assert details.get("operator") == operator, details
    said = " ".join([r.json()["error"], str(details.get("reason", "")), str(details.get("expected", ""))])
    assert expected in said.lower(), said


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        pytest.param({"name": {"$gt": "M"}}, "name", id="range-on-text"),
        pytest.param({"status": {"$lt": "active"}}, "status", id="range-on-status"),
        pytest.param({"do_not_contact": {"$gte": True}}, "do_not_contact", id="range-on-boolean"),
        pytest.param({"deal_value": {"$contains": "1"}}, "deal_value", id="text-op-on-currency"),
        pytest.param({"birthday": {"$starts_with": "19"}}, "birthday", id="text-op-on-date"),
        pytest.param({"do_not_contact": {"$ends_with": "e"}}, "do_not_contact", id="text-op-on-boolean"),
        pytest.param({"tags": {"$starts_with": "v"}}, "tags", id="starts-with-on-multi-select"),
        pytest.param({"tags": {"$ends_with": "p"}}, "tags", id="ends-with-on-multi-select"),
        pytest.param({"name": {}}, "name", id="empty-operator-object"),
    ],
)
def test_operator_that_does_not_apply_to_the_field_type_is_400(
    client: httpx.Client, filters: dict[str, Any], field: str
) -> None:
    assert_bad_request(query(client, filters=json.dumps(filters)), field=field)


# --- order of checks ------------------------------------------------------------------------


def test_intake_key_on_an_unknown_crm_route_is_403_before_404(client: httpx.Client) -> None:
    assert_error(send(client, "GET", "/api/crm/nothing", headers={"X-Api-Key": INTAKE_KEY}), 403, "FORBIDDEN")


def test_intake_key_with_a_wrong_method_is_403_before_405(client: httpx.Client) -> None:
    assert_error(send(client, "PUT", "/api/crm/objects", headers={"X-Api-Key": INTAKE_KEY}), 403, "FORBIDDEN")


def test_unknown_route_is_404_before_405(client: httpx.Client) -> None:
    assert_error(send(client, "PUT", "/api/crm/nothing"), 404, "NOT_FOUND")


def test_wrong_method_is_405_before_the_admin_check(client: httpx.Client) -> None:
    r = send(client, "PUT", "/api/crm/objects", json={"name": "X"}, headers={"X-Api-Key": SERVER_KEY})
    assert_error(r, 405, "METHOD_NOT_ALLOWED")


def test_missing_admin_is_403_before_415_and_400(client: httpx.Client) -> None:
    headers = {"X-Api-Key": SERVER_KEY, "Content-Type": "text/plain"}
    assert_error(send(client, "POST", "/api/crm/objects", content=b"{", headers=headers), 403, "FORBIDDEN")
    headers = {"X-Api-Key": SERVER_KEY, "Content-Type": "application/json"}
    assert_error(send(client, "POST", "/api/crm/objects", content=b"{", headers=headers), 403, "FORBIDDEN")


def test_unsupported_media_type_is_415_before_413(client: httpx.Client) -> None:
    r = send(
        client, "POST", "/api/crm/record", content=b"x" * (2 * MIB), headers={"Content-Type": "text/plain"}
    )
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_too_large_is_413_before_malformed_json(client: httpx.Client) -> None:
    r = send(client, "POST", "/api/crm/record", content=b"{" * (2 * MIB), headers=JSON)
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


def test_body_form_is_400_before_unknown_object_404(client: httpx.Client) -> None:
    body = {"object_id": "obj_nope", "field_values": {"name": "X"}, "extra": True}
    assert_bad_request(send(client, "POST", "/api/crm/record", json=body), field="extra")


def test_body_form_is_400_before_unknown_record_404(client: httpx.Client) -> None:
    r = send(client, "PATCH", "/api/crm/record/rec_nope", json={"field_values": {}, "extra": True})
    assert_bad_request(r, field="extra")


def test_unknown_object_is_404_before_422(client: httpx.Client) -> None:
    body = {"object_id": "obj_nope", "field_values": {"shoe_size": "big", "email": "nope"}}
    assert_error(send(client, "POST", "/api/crm/record", json=body), 404, "NOT_FOUND")


def test_unknown_record_is_404_before_422(client: httpx.Client) -> None:
    r = send(client, "PATCH", "/api/crm/record/rec_nope", json={"field_values": {"email": "nope"}})
    assert_error(r, 404, "NOT_FOUND")


def test_validation_is_422_before_unique_conflict_409(client: httpx.Client) -> None:
    r = send(client, "POST", "/api/crm/record", json=create_body(email=CONTACT_EMAIL, phone="12"))
    details = assert_error(r, 422, "VALIDATION_ERROR")
    assert [e["field"] for e in details["errors"]] == ["phone"]


@pytest.mark.parametrize(
    ("items", "status"),
    [
        pytest.param([("page", "0")], 400, id="bad-page-400-before-404"),
        pytest.param([("filters", "{")], 400, id="bad-filters-json-400-before-404"),
        pytest.param([("order", "up")], 400, id="bad-order-400-before-404"),
        pytest.param([("sort", "shoe_size")], 404, id="unknown-sort-field-404-first"),
        pytest.param([("filters", '{"shoe_size": 1}')], 404, id="unknown-filter-field-404-first"),
        pytest.param([("filters", '{"name": {"$gte": 1}}')], 404, id="bad-operand-404-first"),
    ],
)
def test_query_checks_parameter_form_then_object_then_fields(
    client: httpx.Client, items: list[tuple[str, str]], status: int
) -> None:
    r = send(client, "GET", QUERY, params=[("object_id", "obj_nope"), *items])
    assert_error(r, status, "BAD_REQUEST" if status == 400 else "NOT_FOUND")


# --- 422 ----------------------------------------------------------------------------------


def test_create_lists_every_violation_not_just_the_first(client: httpx.Client) -> None:
    before = total(client)
    values = {"email": "nope", "phone": "12", "status": "bogus", "score": "high", "shoe_size": 44}
    r = send(client, "POST", "/api/crm/record", json={"object_id": "obj_contacts", "field_values": values})
    details = assert_error(r, 422, "VALIDATION_ERROR")
    errors = details["errors"]
    assert all(set(e) == {"field", "message"} and e["message"] for e in errors), errors
    assert {e["field"] for e in errors} == {"name", "email", "phone", "status", "score", "shoe_size"}
    assert total(client) == before


def test_update_lists_every_violation_and_changes_nothing(client: httpx.Client) -> None:
    before = client.get(f"/api/crm/record/{CONTACT}").json()
    values = {"name": None, "birthday": "2024-02-30", "tags": ["gold"], "owner": "user_nobody", "notes": "ok"}
    r = send(client, "PATCH", f"/api/crm/record/{CONTACT}", json={"field_values": values})
    details = assert_error(r, 422, "VALIDATION_ERROR")
    assert {e["field"] for e in details["errors"]} == {"name", "birthday", "tags", "owner"}
    assert client.get(f"/api/crm/record/{CONTACT}").json() == before


def test_status_value_outside_the_stages_is_422(client: httpx.Client) -> None:
    r = send(client, "POST", "/api/crm/record", json=create_body(status="archived"))
    details = assert_error(r, 422, "VALIDATION_ERROR")
    assert [e["field"] for e in details["errors"]] == ["status"]


# --- errors never change state -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"field_values": {"email": CONTACT_EMAIL}}, 409, id="conflict"),
        pytest.param({"field_values": {"notes": "kept?", "score": "high"}}, 422, id="validation"),
        pytest.param({"field_values": {"notes": "kept?"}, "extra": 1}, 400, id="bad-form"),
    ],
)
def test_failed_patch_leaves_the_record_identical(
    app: Starlette, client: httpx.Client, body: dict[str, Any], status: int
) -> None:
    before = snapshot(app)
    r = send(client, "PATCH", f"/api/crm/record/{OTHER_CONTACT}", json=body)
    assert r.status_code == status, r.text
    assert snapshot(app) == before


def test_failed_schema_writes_change_nothing(app: Starlette, client: httpx.Client) -> None:
    before = snapshot(app)
    attempts = [
        ("/api/crm/objects", {"name": "Contacts"}),  # 409: duplicate slug
        ("/api/crm/objects", {"name": "Things", "fields": [{"name": "Created At", "type": "text"}]}),
        ("/api/crm/objects", {"name": "Things", "fields": [{"name": "Level", "type": "status"}]}),
        ("/api/crm/objects/obj_contacts/fields", {"name": "Email", "type": "email"}),  # 409
        ("/api/crm/objects/obj_contacts/fields", {"name": "ID", "type": "text"}),  # reserved
        ("/api/crm/objects/obj_contacts/fields", {"name": "Tier", "type": "warp"}),
        ("/api/crm/objects/obj_contacts/fields", {"name": "VIP", "type": "boolean", "unique": True}),
    ]
    for url, body in attempts:
        r = send(client, "POST", url, json=body)
        assert 400 <= r.status_code < 500, (url, body, r.text)
    assert snapshot(app) == before


# --- never a 5xx ----------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"object_id":"obj_contacts","field_values":{"notes":' + b"[" * depth + b"]" * depth + b"}}"


WEIRD_REQUESTS = [
    pytest.param(
        "POST", "/api/crm/record", {"content": bytes(range(256)), "headers": JSON}, id="binary-body"
    ),
    pytest.param("POST", "/api/crm/record", {"content": b"\x00" * 100, "headers": JSON}, id="nul-bytes"),
    pytest.param("POST", "/api/crm/record", {"content": b"\xef\xbb\xbf{}", "headers": JSON}, id="utf8-bom"),
    pytest.param(
        "POST", "/api/crm/record", {"content": "{}".encode("utf-16"), "headers": JSON}, id="utf16-body"
    ),
    pytest.param("POST", "/api/crm/record", {"content": b"[" * 100_000, "headers": JSON}, id="deep-brackets"),
    pytest.param("POST", "/api/crm/record", {"content": _nested(900), "headers": JSON}, id="deep-value"),
    pytest.param(
        "POST", "/api/crm/record", {"content": b"[" * 5000 + b"]" * 5000, "headers": JSON}, id="deep-array"
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {
            "content": b'{"object_id":"obj_contacts","field_values":{"name":"X","score":1'
            + b"0" * 400
            + b"}}",
            "headers": JSON,
        },
        id="huge-integer",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {
            "content": b'{"object_id":"obj_contacts","field_values":{"name":"X","score":1e-400}}',
            "headers": JSON,
        },
        id="tiny-float",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {"json": {"object_id": "obj_contacts", "field_values": {"名前": "X", "😀": 1, "": 2}}},
        id="unicode-and-empty-keys",
    ),
    pytest.param("POST", "/api/crm/record", {"json": [create_body()]}, id="array-of-bodies"),
    pytest.param(
        "POST",
        "/api/crm/record",
        {"json": {"object_id": "obj_contacts", "field_values": {"name": {"first": "X"}}}},
        id="object-value",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {"json": {"object_id": "obj_contacts", "field_values": {"name": ["X"], "tags": [["vip"]]}}},
        id="array-values",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {"json": {"object_id": "obj_contacts", "field_values": {"name": "X", "tags": [None, 1, {}]}}},
        id="junk-in-multi-select",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {"json": {"object_id": "obj_contacts" * 1000, "field_values": {"name": "X"}}},
        id="long-object-id",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {"json": {"object_id": "obj_contacts", "field_values": {"company": 5, "owner": [], "name": "X"}}},
        id="wrong-typed-references",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {
            "json": {
                "object_id": "obj_contacts",
                "field_values": {"name": "X", "birthday": "9999-99-99", "last_contacted_at": "T"},
            }
        },
        id="impossible-dates",
    ),
    pytest.param(
        "POST",
        "/api/crm/record",
        {"json": {"object_id": "obj_contacts", "field_values": {"name": "\u0000\u202e\ufeff"}}},
        id="control-characters",
    ),
    pytest.param(
        "PATCH", f"/api/crm/record/{CONTACT}", {"json": {"field_values": {"__proto__": 1}}}, id="proto-key"
    ),
    pytest.param(
        "PATCH", f"/api/crm/record/{CONTACT}", {"json": {"field_values": {"email": 12}}}, id="email-number"
    ),
    pytest.param(
        "PATCH", "/api/crm/record/" + "x" * 5000, {"json": {"field_values": {}}}, id="long-record-id"
    ),
    pytest.param("GET", "/api/crm/record/%00%ff", {}, id="nul-record-id"),
    pytest.param("GET", "/api/crm/record/..%2F..%2Fetc", {}, id="dotdot-record-id"),
    pytest.param("GET", "/api/crm/objects/%E2%80%AE", {}, id="unicode-object-id"),
    pytest.param("GET", QUERY, {"params": {"object_id": "obj_contacts", "page": "9" * 30}}, id="huge-page"),
    pytest.param(
        "GET", QUERY, {"params": {"object_id": "obj_contacts", "per_page": "9" * 30}}, id="huge-per-page"
    ),
    pytest.param(
        "GET", QUERY, {"params": {"object_id": "obj_contacts", "page": "-" + "9" * 30}}, id="huge-neg-page"
    ),
    pytest.param("GET", QUERY, {"params": {"object_id": "obj_contacts", "page": "1e3"}}, id="exponent-page"),
    pytest.param(
        "GET", QUERY, {"params": {"object_id": "obj_contacts", "page": "٣"}}, id="arabic-digit-page"
    ),
    pytest.param("GET", QUERY, {"params": {"object_id": "\x00"}}, id="nul-object-id"),
    pytest.param("GET", QUERY, {"params": {"object_id": "obj_contacts", "sort": "名前"}}, id="unicode-sort"),
    pytest.param(
        "GET", QUERY, {"params": {"object_id": "obj_contacts", "filters": "{" * 5000}}, id="deep-filters"
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts", "filters": '{"name":' + '{"$eq":' * 400 + "1" + "}" * 401}},
        id="nested-operators",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts", "filters": '{"score":{"$gte":1' + "0" * 400 + "}}"}},
        id="huge-integer-operand",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts", "filters": '{"score":{"$gte":1e400}}'}},
        id="infinite-operand",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts", "filters": '{"name":{"$contains":"\\ud800"}}'}},
        id="lone-surrogate-operand",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts", "filters": '{"tags":{"$eq":[1,null,{}]}}'}},
        id="junk-multi-select-operand",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts", "filters": '{"created_at":{"$lt":"99999-01-01"}}'}},
        id="five-digit-year",
    ),
    pytest.param(
        "GET",
        QUERY,
        {
            "params": {
                "object_id": "obj_contacts",
                "filters": '{"last_contacted_at":{"$gt":"2024-01-01T25:61:00+99:99"}}',
            }
        },
        id="impossible-datetime-operand",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts", "filters": '{"😀":{"$😀":"😀"}}'}},
        id="emoji-filters",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts"}, "headers": {"X-Api-Key": b"k\xe9y"}},
        id="latin1-api-key",
    ),
    pytest.param(
        "GET",
        QUERY,
        {"params": {"object_id": "obj_contacts"}, "headers": {"X-Mock-Tenant": "t" * 5000}},
        id="long-tenant",
    ),
    pytest.param(
        "POST",
        "/api/crm/objects",
        {"json": {"name": "X", "fields": [{"name": "A", "type": "reference", "options": {"object_id": 5}}]}},
        id="bad-reference-option",
    ),
    pytest.param(
        "POST",
        "/api/crm/objects",
        {"json": {"name": "Y", "fields": [{"name": "A", "type": "status", "options": {"stages": []}}]}},
        id="empty-stages",
    ),
    pytest.param(
        "POST",
        "/api/crm/objects/obj_contacts/fields",
        {"json": {"name": "Z", "type": "dropdown", "options": {"choices": ["a"]}, "default_value": {"x": 1}}},
        id="object-default",
    ),
    pytest.param(
        "POST",
        "/api/crm/objects/obj_contacts/fields",
        {"json": {"name": "Self", "type": "reference", "options": {"object_id": "obj_nope"}}},
        id="reference-to-unknown-object",
    ),
    pytest.param("POST", "/api/crm/objects", {"json": {"name": "!!!"}}, id="name-without-alphanumerics"),
    pytest.param("POST", "/api/crm/objects", {"json": {"name": "é" * 300}}, id="long-unicode-name"),
]


@pytest.mark.parametrize(("method", "url", "kwargs"), WEIRD_REQUESTS)
def test_malformed_request_never_gets_a_5xx(
    client: httpx.Client, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    r = send(client, method, url, **kwargs)
    assert r.status_code < 500, r.text[:300]
    if r.status_code >= 400:
        assert_error(r, r.status_code, r.json()["code"])
