from __future__ import annotations

import httpx


def test_admin_key_creates_a_record(client: httpx.Client) -> None:
    body = {"object_id": "obj_contacts", "field_values": {"name": "Smoke Test"}}
    created = client.post("/api/crm/record", json=body)
    assert created.status_code == 201, created.text
    fetched = client.get(f"/api/crm/record/{created.json()['id']}")
    assert fetched.json()["field_values"]["name"] == "Smoke Test"
