"""Nothing in the conformance run passes vacuously.

- The key schemathesis sends (from schemathesis.toml, or KANTOS_API_KEY) really creates, reads
  and deletes records, while no key or a wrong key is a 401: the 2xx answers the schemathesis
  tests judge come from an authenticated API, not from 401s that every check would accept.
- The requests hooks.py steers positive cases to are really accepted: records are created and
  queries reach the query engine (200), on every bundled object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from kantos_conformance import BASE_URL, client, load_config, new_app
from kantos_strategies import OBJECTS, field_values_strategy, query_strategy

CONFIGURED_KEY: str = load_config().projects.default.auth.openapi.schemes["ApiKeyAuth"].api_key
STEERING = settings(
    max_examples=15, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def target() -> Any:
    """The in-process mock (one for this module), or None for the server at KANTOS_BASE_URL."""
    return None if BASE_URL else new_app()


@pytest.fixture(scope="module")
def api(target: Any) -> Iterator[httpx.Client]:
    with client(target, api_key=CONFIGURED_KEY) as c:
        yield c


def test_the_configured_key_creates_reads_and_deletes_a_record(api: httpx.Client, target: Any) -> None:
    body = {"object_id": "obj_contacts", "field_values": {"name": "Conformance Probe"}}
    created = api.post("/api/crm/record", json=body)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["field_values"]["name"] == "Conformance Probe"
    assert api.get(f"/api/crm/record/{record['id']}").status_code == 200
    assert api.delete(f"/api/crm/record/{record['id']}").status_code == 204
    assert api.get(f"/api/crm/record/{record['id']}").status_code == 404
    for other in (None, "not-a-kantos-key"):
        with client(target, api_key=other) as anonymous:
            refused = anonymous.post("/api/crm/record", json=body)
        assert refused.status_code == 401, (other, refused.text)


@pytest.mark.parametrize("object_id", sorted(OBJECTS))
def test_steered_records_are_created(api: httpx.Client, object_id: str) -> None:
    unique = {f.slug for f in OBJECTS[object_id].fields if f.unique}

    @STEERING
    @given(field_values=field_values_strategy(OBJECTS[object_id]))
    def create(field_values: dict[str, Any]) -> None:
        response = api.post("/api/crm/record", json={"object_id": object_id, "field_values": field_values})
        if response.status_code == 409:  # a unique value drawn twice
            assert response.json()["details"]["field"] in unique, response.text
            return
        assert response.status_code == 201, response.text

    create()


@pytest.mark.parametrize("object_id", sorted(OBJECTS))
def test_steered_queries_reach_the_query_engine(api: httpx.Client, object_id: str) -> None:
    @STEERING
    @given(query=query_strategy(OBJECTS[object_id]))
    def query(query: dict[str, Any]) -> None:
        params = {k: orjson.dumps(v).decode() if k == "filters" else str(v) for k, v in query.items()}
        response = api.get("/api/crm/records/query", params={"object_id": object_id, **params})
        assert response.status_code == 200, (query, response.text)

    query()
