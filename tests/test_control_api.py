"""The control API under /_mock, in process: reset, journal, state, faults, clock, keys, tenants."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from mockserver import create_app
from mockserver.domain.backend import FixtureSet

ADMIN = {"X-Api-Key": "kantos_admin_local_key"}
CONTACT = {
    "object_id": "obj_contacts",
    "field_values": {"name": "Grace Hopper", "email": "grace@example.com"},
}
ROOT = Path(__file__).resolve().parent.parent


def tenant(name: str) -> dict[str, str]:
    return {"X-Mock-Tenant": name}


def total(client: httpx.Client, headers: dict[str, str] | None = None) -> int:
    r = client.get("/api/crm/records/query", params={"object_id": "obj_contacts"}, headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["pagination"]["total"])


def create(client: httpx.Client, headers: dict[str, str] | None = None, **values: Any) -> dict[str, Any]:
    body = {"object_id": "obj_contacts", "field_values": {"name": "Grace Hopper", **values}}
    r = client.post("/api/crm/record", json=body, headers=headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


# --- the spec --------------------------------------------------------------------------------


def test_control_paths_live_in_their_own_spec_not_in_openapi_yaml() -> None:
    control = yaml.safe_load((ROOT / "mockserver" / "control.yaml").read_text())
    kantos = yaml.safe_load((ROOT / "mockserver" / "openapi.yaml").read_text())
    assert not [p for p in kantos["paths"] if p.startswith("/_mock")]
    methods = {(m.upper(), p) for p, item in control["paths"].items() for m in item if m != "parameters"}
    assert {
        ("POST", "/_mock/reset"),
        ("GET", "/_mock/requests"),
        ("DELETE", "/_mock/requests"),
        ("GET", "/_mock/state"),
        ("PUT", "/_mock/state"),
        ("GET", "/_mock/faults"),
        ("POST", "/_mock/faults"),
        ("DELETE", "/_mock/faults"),
        ("GET", "/_mock/clock"),
        ("POST", "/_mock/clock"),
        ("GET", "/_mock/keys"),
        ("PATCH", "/_mock/keys/{key}"),
    } <= methods


def test_control_requests_need_no_key_and_are_not_journaled(client: httpx.Client) -> None:
    r = client.get("/_mock/clock", headers={"X-Api-Key": ""})
    assert r.status_code == 200, r.text
    client.post("/_mock/reset")
    assert client.get("/_mock/requests").json()["data"] == []


def test_an_unlisted_method_is_405_with_allow(client: httpx.Client) -> None:
    r = client.delete("/_mock/clock")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"


def test_a_body_that_is_not_json_is_415(client: httpx.Client) -> None:
    r = client.post("/_mock/clock", content=b"freeze", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_malformed_json_is_400(client: httpx.Client) -> None:
    r = client.post("/_mock/faults", content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["details"]["field"] == "(body)"


def test_an_unknown_control_path_is_404(client: httpx.Client) -> None:
    r = client.get("/_mock/nothing-here")
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"


class TestWithoutControl:
    @pytest.fixture
    def app(self, fixture_set: FixtureSet) -> Starlette:
        return create_app(fixture_set, control=False)

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/_mock/reset"),
            ("GET", "/_mock/requests"),
            ("GET", "/_mock/state"),
            ("GET", "/_mock/clock"),
        ],
        ids=["reset", "journal", "state", "clock"],
    )
    def test_every_mock_path_is_404(self, client: httpx.Client, method: str, path: str) -> None:
        r = client.request(method, path)
        assert r.status_code == 404
        assert r.json()["code"] == "NOT_FOUND"

    def test_the_kantos_api_still_works(self, client: httpx.Client) -> None:
        assert client.get("/api/crm/objects").status_code == 200


# --- reset -----------------------------------------------------------------------------------


def test_reset_goes_back_to_the_fixture_records_and_counts_what_it_undid(client: httpx.Client) -> None:
    before = total(client)
    rec = create(client)
    client.patch(f"/api/crm/record/{rec['id']}", json={"field_values": {"name": "Grace B. Hopper"}})
    first = client.get("/api/crm/records/query", params={"object_id": "obj_contacts", "per_page": 1})
    client.delete(f"/api/crm/record/{first.json()['data'][0]['id']}")
    r = client.post("/_mock/reset")
    assert r.status_code == 200
    assert r.json() == {"tenant": "", "changes_undone": 3}
    assert total(client) == before
    assert client.get(f"/api/crm/record/{rec['id']}").status_code == 404
    assert client.get(f"/api/crm/record/{first.json()['data'][0]['id']}").status_code == 200


def test_reset_undoes_schema_changes(client: httpx.Client) -> None:
    r = client.post(
        "/api/crm/objects", json={"name": "Projects", "fields": [{"name": "Title", "type": "text"}]}
    )
    assert r.status_code == 201, r.text
    client.post("/api/crm/objects/obj_contacts/fields", json={"name": "Nickname", "type": "text"})
    client.post("/_mock/reset")
    assert client.get("/api/crm/objects/obj_projects").status_code == 404
    slugs = [f["slug"] for f in client.get("/api/crm/objects/obj_contacts").json()["fields"]]
    assert "nickname" not in slugs


def test_reset_clears_journal_faults_clock_and_key_limits(client: httpx.Client) -> None:
    client.get("/api/crm/objects")
    client.post("/_mock/faults", json={"path": "/nowhere", "status": 500})
    client.post("/_mock/clock", json={"freeze": True, "set": "2020-01-01T00:00:00Z"})
    client.patch("/_mock/keys/kantos_free_local_key", json={"per_minute": 1})
    client.post("/_mock/reset")
    assert client.get("/_mock/requests").json()["data"] == []
    assert client.get("/_mock/faults").json()["data"] == []
    clock = client.get("/_mock/clock").json()
    assert clock["frozen"] is False
    assert clock["now"] > "2025"
    keys = {k["key"]: k for k in client.get("/_mock/keys").json()["data"]}
    assert keys["kantos_free_local_key"]["per_minute"] == 100


def test_reset_resets_only_the_requesting_tenant(client: httpx.Client) -> None:
    before = total(client)
    create(client, tenant("a"))
    create(client, tenant("b"))
    r = client.post("/_mock/reset", headers=tenant("a"))
    assert r.json() == {"tenant": "a", "changes_undone": 1}
    assert total(client, tenant("a")) == before
    assert total(client, tenant("b")) == before + 1
    assert total(client) == before


# --- tenants ---------------------------------------------------------------------------------


def test_tenants_are_isolated_copies_made_from_the_fixture_set(client: httpx.Client) -> None:
    before = total(client)
    create(client, tenant("w1"), email="same@example.com")
    # The same unique email is free in another tenant: no write crosses over.
    create(client, tenant("w2"), email="same@example.com")
    assert total(client, tenant("w1")) == before + 1
    assert total(client, tenant("w3")) == before
    assert total(client) == before


def test_a_tenant_name_that_is_too_long_is_400(client: httpx.Client) -> None:
    r = client.get("/_mock/clock", headers=tenant("x" * 201))
    assert r.status_code == 400
    assert r.json()["details"]["header"] == "X-Mock-Tenant"


# --- journal ---------------------------------------------------------------------------------


def test_journal_records_each_request_with_its_key_redacted(client: httpx.Client) -> None:
    client.post("/api/crm/record?dry=1", json=CONTACT)
    [entry] = client.get("/_mock/requests").json()["data"]
    assert entry["method"] == "POST"
    assert entry["path"] == "/api/crm/record"
    assert entry["query"] == {"dry": "1"}
    assert entry["body"] == CONTACT
    assert entry["status"] == 201
    assert entry["headers"]["x-api-key"] == "kantos…"
    assert "kantos_admin_local_key" not in str(entry)
    assert entry["time"].endswith("Z")
    assert entry["fault"] is None


def test_journal_keeps_failed_requests_and_bodies_that_are_not_json(client: httpx.Client) -> None:
    client.get("/api/crm/objects", headers={"X-Api-Key": "nope"})
    client.post("/api/crm/record", content=b"not json", headers={"Content-Type": "application/json"})
    client.get("/somewhere/else")
    entries = client.get("/_mock/requests").json()["data"]
    assert [(e["path"], e["status"]) for e in entries] == [
        ("/api/crm/objects", 401),
        ("/api/crm/record", 400),
        ("/somewhere/else", 404),
    ]
    assert entries[1]["body"] == "not json"


def test_journal_filters_by_method_and_path_pattern(client: httpx.Client) -> None:
    rec = create(client)
    client.get(f"/api/crm/record/{rec['id']}")
    client.get("/api/crm/objects")
    client.delete(f"/api/crm/record/{rec['id']}")

    def paths(**params: str) -> list[str]:
        return [e["path"] for e in client.get("/_mock/requests", params=params).json()["data"]]

    assert paths(method="get") == [f"/api/crm/record/{rec['id']}", "/api/crm/objects"]
    assert paths(path="/api/crm/record/*") == [f"/api/crm/record/{rec['id']}"] * 2
    assert paths(method="DELETE", path="/api/crm/record/*") == [f"/api/crm/record/{rec['id']}"]
    assert paths(path="/api/crm/objects") == ["/api/crm/objects"]


def test_repeated_query_parameters_are_journaled_as_a_list(client: httpx.Client) -> None:
    client.get("/api/crm/records/query?object_id=obj_contacts&page=1&page=2")
    [entry] = client.get("/_mock/requests").json()["data"]
    assert entry["query"] == {"object_id": "obj_contacts", "page": ["1", "2"]}


def test_delete_requests_empties_the_journal(client: httpx.Client) -> None:
    client.get("/api/crm/objects")
    assert client.delete("/_mock/requests").status_code == 204
    assert client.get("/_mock/requests").json()["data"] == []
    client.get("/api/crm/objects")
    assert [e["id"] for e in client.get("/_mock/requests").json()["data"]] == [1]


def test_each_tenant_has_its_own_journal(client: httpx.Client) -> None:
    client.get("/api/crm/objects", headers=tenant("a"))
    assert len(client.get("/_mock/requests", headers=tenant("a")).json()["data"]) == 1
    assert client.get("/_mock/requests").json()["data"] == []


# --- state -----------------------------------------------------------------------------------


def test_state_export_then_import_restores_records_schema_and_clock(client: httpx.Client) -> None:
    client.post("/_mock/clock", json={"freeze": True, "set": "2024-03-01T12:00:00Z"})
    client.post("/api/crm/objects", json={"name": "Projects", "fields": [{"name": "Title", "type": "text"}]})
    rec = create(client, email="export@example.com")
    exported = client.get("/_mock/state").json()
    assert exported["version"] == 1
    assert exported["clock"] == {"now": "2024-03-01T12:00:00Z", "frozen": True}

    client.post("/_mock/reset")
    assert client.get(f"/api/crm/record/{rec['id']}").status_code == 404
    r = client.put("/_mock/state", json=exported)
    assert r.status_code == 200, r.text
    assert r.json() == {"objects": 4, "records": len(exported["records"])}
    assert client.get(f"/api/crm/record/{rec['id']}").json() == rec
    assert client.get("/api/crm/objects/obj_projects").status_code == 200
    assert client.get("/_mock/clock").json() == {"now": "2024-03-01T12:00:00Z", "frozen": True}
    assert client.get("/_mock/state").json() == exported


def test_an_import_keeps_unique_values_and_references_working(client: httpx.Client) -> None:
    state = client.get("/_mock/state").json()
    client.put("/_mock/state", json=state)
    taken = next(
        r for r in state["records"] if r["object_id"] == "obj_contacts" and "email" in r["field_values"]
    )
    body = {
        "object_id": "obj_contacts",
        "field_values": {"name": "Dup", "email": taken["field_values"]["email"]},
    }
    assert client.post("/api/crm/record", json=body).status_code == 409


def test_reset_after_an_import_goes_back_to_the_fixture_set(client: httpx.Client) -> None:
    before = total(client)
    state = client.get("/_mock/state").json()
    state["records"] = []
    assert client.put("/_mock/state", json=state).status_code == 200
    assert total(client) == 0
    client.post("/_mock/reset")
    assert total(client) == before


def test_a_bad_import_is_422_listing_every_problem_and_changes_nothing(client: httpx.Client) -> None:
    client.post("/_mock/clock", json={"freeze": True})
    before = client.get("/_mock/state").json()
    bad = client.get("/_mock/state").json()
    contacts = [i for i, r in enumerate(bad["records"]) if r["object_id"] == "obj_contacts"]
    bad["records"][contacts[0]]["field_values"]["email"] = "not an email"
    bad["records"][contacts[1]]["created_by"] = "user_nobody"
    bad["records"][contacts[2]]["object_id"] = "obj_nothing"
    bad["objects"][0]["fields"][0]["type"] = "colour"
    r = client.put("/_mock/state", json=bad)
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["details"]["errors"]]
    assert f"records[{contacts[0]}].field_values.email" in fields
    assert f"records[{contacts[1]}].created_by" in fields
    assert f"records[{contacts[2]}].object_id" in fields
    assert "objects[0].fields[0].type" in fields
    assert client.get("/_mock/state").json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "(body)"),
        ({"objects": []}, "records"),
        ({"objects": [], "records": [], "extra": 1}, "extra"),
        ({"objects": [], "records": [{"id": "rec_1"}]}, "records[0].object_id"),
        ({"version": 2, "objects": [], "records": []}, "version"),
    ],
    ids=["not-an-object", "no-records", "unknown-key", "record-missing-keys", "wrong-version"],
)
def test_an_import_of_the_wrong_form_is_400(client: httpx.Client, body: Any, field: str) -> None:
    r = client.put("/_mock/state", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["details"]["field"] == field
    assert total(client) > 0


def test_a_bad_clock_in_an_import_is_422(client: httpx.Client) -> None:
    state = client.get("/_mock/state").json()
    state["clock"] = {"now": "yesterday", "frozen": True}
    r = client.put("/_mock/state", json=state)
    assert r.status_code == 422
    assert r.json()["details"]["errors"][0]["field"] == "clock.now"


# --- clock -----------------------------------------------------------------------------------


def test_clock_freeze_set_and_advance_drive_record_timestamps(client: httpx.Client) -> None:
    r = client.post("/_mock/clock", json={"freeze": True, "set": "2024-01-15T10:30:00Z"})
    assert r.json() == {"now": "2024-01-15T10:30:00Z", "frozen": True}
    rec = create(client)
    assert rec["created_at"] == "2024-01-15T10:30:00Z"
    assert client.post("/_mock/clock", json={"advance": 90}).json()["now"] == "2024-01-15T10:31:30Z"
    updated = client.patch(f"/api/crm/record/{rec['id']}", json={"field_values": {"name": "Later"}}).json()
    assert updated["updated_at"] == "2024-01-15T10:31:30Z"
    assert client.get("/_mock/clock").json() == {"now": "2024-01-15T10:31:30Z", "frozen": True}


def test_a_date_sets_the_clock_to_its_midnight_utc(client: httpx.Client) -> None:
    r = client.post("/_mock/clock", json={"freeze": True, "set": "2024-02-29"})
    assert r.json()["now"] == "2024-02-29T00:00:00Z"


def test_unfreezing_lets_time_run_on_from_where_it_stood(client: httpx.Client) -> None:
    client.post("/_mock/clock", json={"freeze": True, "set": "2030-06-01T00:00:00+02:00"})
    r = client.post("/_mock/clock", json={"freeze": False})
    assert r.json()["frozen"] is False
    assert r.json()["now"].startswith("2030-05-31T22:00:0")


def test_advancing_the_clock_opens_the_next_rate_limit_window(client: httpx.Client) -> None:
    free = {"X-Api-Key": "kantos_free_local_key"}
    client.post("/_mock/clock", json={"freeze": True, "set": "2024-01-15T10:30:00Z"})
    client.patch("/_mock/keys/kantos_free_local_key", json={"per_minute": 2})
    assert [client.get("/api/crm/objects", headers=free).status_code for _ in range(3)] == [200, 200, 429]
    client.post("/_mock/clock", json={"advance": 60})
    assert client.get("/api/crm/objects", headers=free).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"set": "2024-01-15T10:30:00"}, "set"),
        ({"set": "soon"}, "set"),
        ({"advance": "60"}, "advance"),
        ({"advance": 1e12}, "advance"),
        ({"freeze": "yes"}, "freeze"),
        ({"frozen": True}, "frozen"),
    ],
    ids=[
        "naive-datetime",
        "not-a-datetime",
        "advance-string",
        "advance-past-year-9999",
        "freeze-string",
        "typo",
    ],
)
def test_bad_clock_input_is_400_and_moves_nothing(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    client.post("/_mock/clock", json={"freeze": True, "set": "2024-01-15T10:30:00Z"})
    r = client.post("/_mock/clock", json={"freeze": False, **body} if field == "advance" else body)
    assert r.status_code == 400, r.text
    assert r.json()["details"]["field"] == field
    assert client.get("/_mock/clock").json() == {"now": "2024-01-15T10:30:00Z", "frozen": True}


def test_each_tenant_has_its_own_clock(client: httpx.Client) -> None:
    client.post("/_mock/clock", json={"freeze": True, "set": "2001-01-01T00:00:00Z"}, headers=tenant("a"))
    assert create(client, tenant("a"))["created_at"] == "2001-01-01T00:00:00Z"
    assert client.get("/_mock/clock").json()["frozen"] is False


# --- keys ------------------------------------------------------------------------------------


def test_keys_are_listed_with_type_user_and_plan(client: httpx.Client) -> None:
    keys = {k["key"]: k for k in client.get("/_mock/keys").json()["data"]}
    assert keys["kantos_intake_local_key"]["type"] == "intake"
    assert keys["kantos_admin_local_key"]["admin"] is True
    assert keys["kantos_free_local_key"]["plan"] == "free"


def test_patching_a_plan_sets_its_limits_until_reset(client: httpx.Client) -> None:
    r = client.patch("/_mock/keys/kantos_free_local_key", json={"plan": "starter"})
    assert r.status_code == 200
    assert (r.json()["plan"], r.json()["per_minute"], r.json()["per_day"]) == ("starter", 500, 50_000)
    client.post("/_mock/reset")
    keys = {k["key"]: k for k in client.get("/_mock/keys").json()["data"]}
    assert keys["kantos_free_local_key"]["plan"] == "free"


@pytest.mark.parametrize(
    ("key", "body", "status"),
    [
        ("kantos_nobody", {"plan": "free"}, 404),
        ("kantos_free_local_key", {"plan": "platinum"}, 400),
        ("kantos_free_local_key", {"per_minute": 0}, 400),
        ("kantos_free_local_key", {}, 400),
    ],
    ids=["unknown-key", "unknown-plan", "zero-limit", "empty"],
)
def test_bad_key_patches_are_4xx(client: httpx.Client, key: str, body: dict[str, Any], status: int) -> None:
    assert client.patch(f"/_mock/keys/{key}", json=body).status_code == status


# --- faults ----------------------------------------------------------------------------------


class TestFaults:
    @pytest.fixture
    def app(self, fixture_set: FixtureSet) -> Starlette:
        # An injected 503 is not in openapi.yaml, so the response self-check stays off here.
        return create_app(fixture_set, seed=1234, validate_responses=False)

    def test_a_status_fault_answers_n_times_then_stops(self, client: httpx.Client) -> None:
        r = client.post(
            "/_mock/faults", json={"method": "GET", "path": "/api/crm/objects", "status": 503, "times": 2}
        )
        assert r.status_code == 201
        rule = r.json()
        assert [client.get("/api/crm/objects").status_code for _ in range(3)] == [503, 503, 200]
        assert client.post("/api/crm/record", json=CONTACT).status_code == 201
        [listed] = client.get("/_mock/faults").json()["data"]
        assert (listed["id"], listed["hits"], listed["remaining"]) == (rule["id"], 2, 0)

    def test_the_default_fault_body_is_a_kantos_error(self, client: httpx.Client) -> None:
        rule = client.post("/_mock/faults", json={"status": 500}).json()
        r = client.get("/api/crm/objects")
        assert r.json() == {
            "error": f"Fault injected by the mock's control API (rule {rule['id']})",
            "code": "FAULT_INJECTED",
            "status": 500,
            "details": {"fault_id": rule["id"]},
        }

    def test_a_fault_answers_with_the_body_and_headers_given(self, client: httpx.Client) -> None:
        body = {"error": "Slow down", "code": "RATE_LIMITED", "status": 429, "details": {}}
        client.post(
            "/_mock/faults",
            json={"path": "/api/crm/record/*", "status": 429, "body": body, "headers": {"Retry-After": "7"}},
        )
        r = client.get("/api/crm/record/rec_anything")
        assert (r.status_code, r.json(), r.headers["retry-after"]) == (429, body, "7")
        assert client.get("/api/crm/objects").status_code == 200

    def test_a_fault_can_answer_with_raw_text(self, client: httpx.Client) -> None:
        client.post("/_mock/faults", json={"status": 502, "text": "<html>Bad Gateway</html>"})
        r = client.get("/api/crm/objects")
        assert (r.status_code, r.text) == (502, "<html>Bad Gateway</html>")
        assert r.headers["content-type"].startswith("text/plain")

    def test_faults_fire_before_authentication(self, client: httpx.Client) -> None:
        client.post("/_mock/faults", json={"status": 503})
        assert client.get("/api/crm/objects", headers={"X-Api-Key": ""}).status_code == 503

    def test_latency_delays_the_answer_and_is_journaled(self, client: httpx.Client) -> None:
        rule = client.post("/_mock/faults", json={"path": "/api/crm/objects", "latency_ms": 150}).json()
        started = time.perf_counter()
        assert client.get("/api/crm/objects").status_code == 200
        assert time.perf_counter() - started >= 0.15
        [entry] = client.get("/_mock/requests").json()["data"]
        assert entry["fault"] == rule["id"]
        assert entry["duration_ms"] >= 150

    def test_a_drop_in_process_raises_connection_reset(self, client: httpx.Client) -> None:
        client.post("/_mock/faults", json={"drop": True, "times": 1})
        with pytest.raises(ConnectionResetError):
            client.get("/api/crm/objects")
        assert client.get("/api/crm/objects").status_code == 200
        statuses = [e["status"] for e in client.get("/_mock/requests").json()["data"]]
        assert statuses == [None, 200]

    def test_rules_are_tried_in_order_and_the_first_that_fires_decides(self, client: httpx.Client) -> None:
        client.post("/_mock/faults", json={"method": "POST", "status": 500})
        client.post("/_mock/faults", json={"status": 503, "times": 1})
        assert client.post("/api/crm/record", json=CONTACT).status_code == 500
        assert client.get("/api/crm/objects").status_code == 503
        assert client.get("/api/crm/objects").status_code == 200

    def test_probability_fires_on_about_that_share_reproducibly(self, fixture_set: FixtureSet) -> None:
        def run() -> list[int]:
            app = create_app(fixture_set, seed=99, validate_responses=False)
            transport = httpx.ASGITransport(app=app)

            async def go() -> list[int]:
                async with httpx.AsyncClient(transport=transport, base_url="http://mock", headers=ADMIN) as c:
                    await c.post("/_mock/faults", json={"status": 503, "probability": 0.3})
                    return [(await c.get("/api/crm/objects")).status_code for _ in range(200)]

            return asyncio.run(go())

        first, second = run(), run()
        assert first == second
        assert 30 <= first.count(503) <= 90

    def test_faults_are_deleted_one_by_one_or_all_at_once(self, client: httpx.Client) -> None:
        a = client.post("/_mock/faults", json={"status": 500, "path": "/a"}).json()
        client.post("/_mock/faults", json={"status": 500, "path": "/b"})
        assert client.delete(f"/_mock/faults/{a['id']}").status_code == 204
        assert [f["path"] for f in client.get("/_mock/faults").json()["data"]] == ["/b"]
        assert client.delete(f"/_mock/faults/{a['id']}").status_code == 404
        assert client.delete("/_mock/faults").status_code == 204
        assert client.get("/_mock/faults").json()["data"] == []

    def test_faults_belong_to_one_tenant(self, client: httpx.Client) -> None:
        client.post("/_mock/faults", json={"status": 503}, headers=tenant("a"))
        assert client.get("/api/crm/objects", headers=tenant("a")).status_code == 503
        assert client.get("/api/crm/objects").status_code == 200

    def test_faults_never_touch_the_control_api(self, client: httpx.Client) -> None:
        client.post("/_mock/faults", json={"status": 503})
        assert client.get("/_mock/faults").status_code == 200

    @pytest.mark.parametrize(
        ("rule", "field"),
        [
            ({}, "(body)"),
            ({"path": "/api/crm/objects"}, "(body)"),
            ({"status": 503, "drop": True}, "drop"),
            ({"body": {"a": 1}}, "body"),
            ({"status": 503, "body": {}, "text": "x"}, "text"),
            ({"method": "FETCH", "status": 503}, "method"),
            ({"path": "api/crm", "status": 503}, "path"),
            ({"status": 99}, "status"),
            ({"status": 503, "times": 0}, "times"),
            ({"status": 503, "probability": 0}, "probability"),
            ({"status": 503, "probability": 1.5}, "probability"),
            ({"latency_ms": -1}, "latency_ms"),
            ({"status": 503, "delay": 5}, "delay"),
        ],
        ids=[
            "empty",
            "no-action",
            "status-and-drop",
            "body-without-status",
            "body-and-text",
            "unknown-method",
            "relative-path",
            "status-out-of-range",
            "zero-times",
            "zero-probability",
            "probability-above-1",
            "negative-latency",
            "unknown-key",
        ],
    )
    def test_bad_rules_are_400_naming_the_field(
        self, client: httpx.Client, rule: dict[str, Any], field: str
    ) -> None:
        r = client.post("/_mock/faults", json=rule)
        assert r.status_code == 400, r.text
        assert r.json()["details"]["field"] == field
        assert client.get("/_mock/faults").json()["data"] == []
