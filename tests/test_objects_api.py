"""The schema over HTTP: listing and reading objects, and the admin's object and field creation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import mockserver

OBJECTS_YAML = Path(mockserver.__file__).parent / "fixtures" / "objects.yaml"
QUERY = "/api/crm/records/query"
SUMMARY_KEYS = {"id", "name", "slug", "icon", "field_count"}
FIELD_KEYS = {"id", "name", "slug", "type", "required", "unique", "position"}
OPTIONAL_FIELD_KEYS = {"options", "default_value"}
TYPES_WITH_OPTIONS = {"status", "dropdown", "multi_select", "reference"}


@pytest.fixture(scope="module")
def yaml_objects() -> list[dict[str, Any]]:
    """objects.yaml of the bundled set, read independently of the mock."""
    with OBJECTS_YAML.open(encoding="utf-8") as fh:
        objects: list[dict[str, Any]] = yaml.safe_load(fh)["objects"]
    return objects


def get_object(client: httpx.Client, object_id: str) -> dict[str, Any]:
    r = client.get(f"/api/crm/objects/{object_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def field_count(client: httpx.Client, object_id: str) -> int:
    data = client.get("/api/crm/objects").json()["data"]
    n: int = next(o["field_count"] for o in data if o["id"] == object_id)
    return n


def add_field(client: httpx.Client, object_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/api/crm/objects/{object_id}/fields", json=body)


def query(client: httpx.Client, object_id: str, **params: Any) -> dict[str, Any]:
    if "filters" in params:
        params["filters"] = json.dumps(params["filters"])
    r = client.get(QUERY, params={"object_id": object_id, "per_page": 100, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- reading -----------------------------------------------------------------------------------


def test_list_objects_has_every_bundled_object_with_its_field_count(
    client: httpx.Client, yaml_objects: list[dict[str, Any]]
) -> None:
    r = client.get("/api/crm/objects")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"data"}
    for summary in body["data"]:
        assert set(summary) == SUMMARY_KEYS
    by_id = {o["id"]: o for o in body["data"]}
    assert set(by_id) == {o["id"] for o in yaml_objects}
    for obj in yaml_objects:
        summary = by_id[obj["id"]]
        assert summary["name"] == obj["name"]
        assert summary["slug"] == obj["slug"]
        assert summary["icon"] == obj.get("icon")
        assert summary["field_count"] == len(obj["fields"])


@pytest.mark.parametrize("object_id", ["obj_contacts", "obj_companies", "obj_deals"])
def test_get_object_lists_its_fields_in_position_order(
    client: httpx.Client, yaml_objects: list[dict[str, Any]], object_id: str
) -> None:
    expected = next(o for o in yaml_objects if o["id"] == object_id)
    body = get_object(client, object_id)
    assert set(body) == SUMMARY_KEYS | {"fields"}
    assert body["field_count"] == len(body["fields"]) == len(expected["fields"])
    for field, want in zip(body["fields"], expected["fields"], strict=True):
        assert FIELD_KEYS <= set(field) <= FIELD_KEYS | OPTIONAL_FIELD_KEYS, field
        assert (field["id"], field["name"], field["slug"], field["type"]) == (
            want["id"],
            want["name"],
            want["slug"],
            want["type"],
        )
        assert field["required"] is bool(want.get("required", False))
        assert field["unique"] is bool(want.get("unique", False))
        assert isinstance(field["position"], int)
        if want["type"] in TYPES_WITH_OPTIONS:
            assert field["options"] == want["options"]
        if "default_value" in want:
            assert field["default_value"] == want["default_value"]
    positions = [f["position"] for f in body["fields"]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_status_field_shows_its_stages_and_default(client: httpx.Client) -> None:
    status = next(f for f in get_object(client, "obj_contacts")["fields"] if f["slug"] == "status")
    assert status["options"]["stages"][:2] == ["new", "contacted"]
    assert status["default_value"] == "new"


# --- creating objects --------------------------------------------------------------------------


TICKETS = {
    "name": "Support Tickets",
    "icon": "ticket",
    "fields": [
        {"name": "Subject", "type": "text", "required": True},
        {
            "name": "Priority",
            "type": "dropdown",
            "options": {"choices": ["low", "high"]},
            "default_value": "low",
        },
        {"name": "Ticket Ref", "type": "text", "unique": True},
        {"name": "Requester", "type": "reference", "options": {"object_id": "obj_contacts"}},
    ],
}


def test_admin_creates_an_object_with_id_from_its_slug(client: httpx.Client) -> None:
    r = client.post("/api/crm/objects", json=TICKETS)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "obj_support_tickets"
    assert body["slug"] == "support_tickets"
    assert body["name"] == "Support Tickets"
    assert body["icon"] == "ticket"
    assert [f["slug"] for f in body["fields"]] == ["subject", "priority", "ticket_ref", "requester"]
    assert body["field_count"] == 4
    assert [f["position"] for f in body["fields"]] == sorted(f["position"] for f in body["fields"])
    assert all(f["id"].startswith("fld_") for f in body["fields"])
    assert get_object(client, "obj_support_tickets") == body
    listed = client.get("/api/crm/objects").json()["data"]
    assert {"id": "obj_support_tickets", "name": "Support Tickets", "slug": "support_tickets",
            "icon": "ticket", "field_count": 4} in listed  # fmt: skip


def test_object_without_fields_or_icon_is_created_empty(client: httpx.Client) -> None:
    r = client.post("/api/crm/objects", json={"name": "Projects"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["id"], body["fields"], body["field_count"], body["icon"]) == ("obj_projects", [], 0, None)
    assert query(client, "obj_projects")["pagination"]["total"] == 0


def test_records_of_a_created_object_follow_its_fields(client: httpx.Client) -> None:
    assert client.post("/api/crm/objects", json=TICKETS).status_code == 201
    anna = "rec_64ac00dc1ea9"
    body = {"object_id": "obj_support_tickets", "field_values": {"subject": "Login fails", "requester": anna}}
    r = client.post("/api/crm/record", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["field_values"] == {"subject": "Login fails", "requester": anna, "priority": "low"}
    bad = {"object_id": "obj_support_tickets", "field_values": {"priority": "urgent"}}
    errors = client.post("/api/crm/record", json=bad).json()["details"]["errors"]
    assert {e["field"] for e in errors} == {"subject", "priority"}
    found = query(client, "obj_support_tickets", filters={"subject": {"$contains": "login"}})
    assert [rec["id"] for rec in found["data"]] == [r.json()["id"]]


def test_unique_field_of_a_created_object_is_enforced(client: httpx.Client) -> None:
    assert client.post("/api/crm/objects", json=TICKETS).status_code == 201
    body = {"object_id": "obj_support_tickets", "field_values": {"subject": "A", "ticket_ref": "T-1"}}
    assert client.post("/api/crm/record", json=body).status_code == 201
    again = client.post("/api/crm/record", json=body)
    assert again.status_code == 409
    assert (again.json()["details"]["field"], again.json()["details"]["value"]) == ("ticket_ref", "T-1")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Support Tickets", id="same-name"),
        pytest.param("support tickets", id="other-case"),
        pytest.param("Support -- Tickets!", id="same-slug-other-punctuation"),
    ],
)
def test_object_with_a_taken_slug_is_409(client: httpx.Client, name: str) -> None:
    assert client.post("/api/crm/objects", json=TICKETS).status_code == 201
    before = client.get("/api/crm/objects").json()
    r = client.post("/api/crm/objects", json={"name": name})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "CONFLICT"
    assert client.get("/api/crm/objects").json() == before


def test_object_named_like_a_bundled_one_is_409(client: httpx.Client) -> None:
    r = client.post("/api/crm/objects", json={"name": "Contacts", "fields": [{"name": "X", "type": "text"}]})
    assert r.status_code == 409, r.text
    assert field_count(client, "obj_contacts") == len(get_object(client, "obj_contacts")["fields"])


def test_object_may_reference_itself(client: httpx.Client) -> None:
    body = {
        "name": "Teams",
        "fields": [
            {"name": "Name", "type": "text"},
            {"name": "Parent", "type": "reference", "options": {"object_id": "obj_teams"}},
        ],
    }
    assert client.post("/api/crm/objects", json=body).status_code == 201
    parent = client.post("/api/crm/record", json={"object_id": "obj_teams", "field_values": {"name": "Root"}})
    child = {"object_id": "obj_teams", "field_values": {"name": "Leaf", "parent": parent.json()["id"]}}
    assert client.post("/api/crm/record", json=child).status_code == 201


@pytest.mark.parametrize(
    "field",
    [
        pytest.param({"name": "Created At", "type": "text"}, id="created-at"),
        pytest.param({"name": "ID", "type": "text"}, id="id"),
        pytest.param({"name": "Object ID", "type": "text"}, id="object-id"),
    ],
)
def test_object_with_a_reserved_field_slug_is_400_and_not_created(
    client: httpx.Client, field: dict[str, Any]
) -> None:
    r = client.post("/api/crm/objects", json={"name": "Things", "fields": [field]})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "BAD_REQUEST"
    assert client.get("/api/crm/objects/obj_things").status_code == 404


def test_object_with_two_fields_of_one_slug_is_409_and_not_created(client: httpx.Client) -> None:
    fields = [{"name": "Full Name", "type": "text"}, {"name": "full-name", "type": "text"}]
    r = client.post("/api/crm/objects", json={"name": "Things", "fields": fields})
    assert r.status_code == 409, r.text
    assert client.get("/api/crm/objects/obj_things").status_code == 404


# --- creating fields -------------------------------------------------------------------------


def test_admin_adds_a_field_at_the_end(client: httpx.Client) -> None:
    before = get_object(client, "obj_contacts")
    r = add_field(client, "obj_contacts", {"name": "Lead Score", "type": "number"})
    assert r.status_code == 201, r.text
    field = r.json()
    assert FIELD_KEYS <= set(field) <= FIELD_KEYS | OPTIONAL_FIELD_KEYS
    assert (field["name"], field["slug"], field["type"]) == ("Lead Score", "lead_score", "number")
    assert (field["required"], field["unique"]) == (False, False)
    assert field["id"].startswith("fld_")
    assert field["position"] > max(f["position"] for f in before["fields"])
    after = get_object(client, "obj_contacts")
    assert after["fields"] == [*before["fields"], field]
    assert after["field_count"] == before["field_count"] + 1
    assert field_count(client, "obj_contacts") == before["field_count"] + 1


def test_added_field_is_at_once_usable_in_writes_filters_and_sorts(client: httpx.Client) -> None:
    assert add_field(client, "obj_contacts", {"name": "Lead Score", "type": "number"}).status_code == 201
    ids = []
    for score in (5, 30, 12):
        body = {"object_id": "obj_contacts", "field_values": {"name": f"Scored {score}", "lead_score": score}}
        r = client.post("/api/crm/record", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["field_values"]["lead_score"] == score
        ids.append(r.json()["id"])
    bad = {"object_id": "obj_contacts", "field_values": {"name": "Bad", "lead_score": "high"}}
    assert client.post("/api/crm/record", json=bad).status_code == 422
    found = query(client, "obj_contacts", filters={"lead_score": {"$gte": 10}})
    assert {rec["id"] for rec in found["data"]} == {ids[1], ids[2]}
    ordered = query(client, "obj_contacts", sort="lead_score", order="desc")
    assert [rec["id"] for rec in ordered["data"][:3]] == [ids[1], ids[2], ids[0]]
    patched = client.patch(f"/api/crm/record/{ids[0]}", json={"field_values": {"lead_score": 99}})
    assert patched.status_code == 200 and patched.json()["field_values"]["lead_score"] == 99


def test_added_field_with_a_default_fills_new_records_only(client: httpx.Client) -> None:
    body = {
        "name": "Tier",
        "type": "dropdown",
        "options": {"choices": ["gold", "silver"]},
        "default_value": "silver",
    }
    r = add_field(client, "obj_contacts", body)
    assert r.status_code == 201, r.text
    assert r.json()["default_value"] == "silver"
    record = client.post(
        "/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": "New"}}
    )
    assert record.json()["field_values"]["tier"] == "silver"
    old = client.get("/api/crm/record/rec_64ac00dc1ea9").json()
    assert "tier" not in old["field_values"]


def test_added_unique_field_is_enforced(client: httpx.Client) -> None:
    assert (
        add_field(client, "obj_companies", {"name": "VAT Number", "type": "text", "unique": True}).status_code
        == 201
    )
    body = {"object_id": "obj_companies", "field_values": {"name": "Vat One", "vat_number": "DE123"}}
    assert client.post("/api/crm/record", json=body).status_code == 201
    body = {"object_id": "obj_companies", "field_values": {"name": "Vat Two", "vat_number": "DE123"}}
    assert client.post("/api/crm/record", json=body).status_code == 409


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        pytest.param("Created At", "created_at", id="created-at"),
        pytest.param("created-at", "created_at", id="created-at-dashed"),
        pytest.param("Updated At", "updated_at", id="updated-at"),
        pytest.param("Created By", "created_by", id="created-by"),
        pytest.param("ID", "id", id="id"),
        pytest.param("Object ID", "object_id", id="object-id"),
    ],
)
def test_field_with_a_reserved_slug_is_400_and_not_added(client: httpx.Client, name: str, slug: str) -> None:
    before = get_object(client, "obj_contacts")
    r = add_field(client, "obj_contacts", {"name": name, "type": "text"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "BAD_REQUEST"
    assert slug in r.text
    assert get_object(client, "obj_contacts") == before


@pytest.mark.parametrize("name", ["Email", "email", "EMAIL"])
def test_field_with_a_slug_already_on_the_object_is_409(client: httpx.Client, name: str) -> None:
    before = get_object(client, "obj_contacts")
    r = add_field(client, "obj_contacts", {"name": name, "type": "text"})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "CONFLICT"
    assert get_object(client, "obj_contacts") == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "VIP", "type": "boolean", "unique": True}, id="boolean"),
        pytest.param({"name": "Bio", "type": "long_text", "unique": True}, id="long-text"),
        pytest.param(
            {"name": "Labels", "type": "multi_select", "unique": True, "options": {"choices": ["a"]}},
            id="multi-select",
        ),
    ],
)
def test_unique_is_refused_on_boolean_long_text_and_multi_select(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    before = get_object(client, "obj_contacts")
    r = add_field(client, "obj_contacts", body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["details"]["errors"]] == ["unique"]
    assert get_object(client, "obj_contacts") == before


# Issue "Schema management": an unknown type or bad options is a 422 (openapi.yaml marks those
# parts of FieldInput with x-kantos-invalid-status), naming the field definition's key at fault.
@pytest.mark.parametrize(
    ("body", "at_fault"),
    [
        pytest.param({"name": "Level", "type": "status"}, "options", id="status-without-stages"),
        pytest.param(
            {"name": "Level", "type": "dropdown", "options": {"choices": []}},
            "options.choices",
            id="dropdown-no-choices",
        ),
        pytest.param({"name": "Link", "type": "reference"}, "options", id="reference-without-object"),
        pytest.param(
            {"name": "Link", "type": "reference", "options": {"object_id": "obj_nope"}},
            "options.object_id",
            id="unknown-target",
        ),
        pytest.param({"name": "Warp", "type": "warp_drive"}, "type", id="unknown-type"),
    ],
)
def test_field_definition_of_an_unknown_type_or_bad_options_is_422_and_not_added(
    client: httpx.Client, body: dict[str, Any], at_fault: str
) -> None:
    before = get_object(client, "obj_contacts")
    r = add_field(client, "obj_contacts", body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["details"]["errors"]] == [at_fault]
    assert get_object(client, "obj_contacts") == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"type": "text"}, id="no-name"),
        pytest.param({"name": "Nameless"}, id="no-type"),
        pytest.param({"name": "Odd", "type": "text", "colour": "red"}, id="unknown-key"),
    ],
)
def test_field_definition_of_the_wrong_form_is_400_and_not_added(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    before = get_object(client, "obj_contacts")
    r = add_field(client, "obj_contacts", body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "BAD_REQUEST"
    assert get_object(client, "obj_contacts") == before


def test_field_with_an_invalid_default_is_422_and_not_added(client: httpx.Client) -> None:
    before = get_object(client, "obj_contacts")
    r = add_field(client, "obj_contacts", {"name": "Rank", "type": "number", "default_value": "first"})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["details"]["errors"]] == ["default_value"]
    assert get_object(client, "obj_contacts") == before


def test_a_field_of_the_wrong_form_is_400_even_when_the_object_slug_is_taken(client: httpx.Client) -> None:
    # Order of checks: 400 for the body's form before 409 (found by the conformance kit's fuzzing).
    body = {"name": "Contacts", "fields": [{"name": "ID", "type": "text"}]}
    response = client.post("/api/crm/objects", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["details"]["field"] == "fields[0].name"
