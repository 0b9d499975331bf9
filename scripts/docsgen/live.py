"""Real answers of the mock, made at build time in process (no socket), for the error reference."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ADMIN = "kantos_admin_local_key"
SERVER = "kantos_server_local_key"
INTAKE = "kantos_intake_local_key"


@dataclass(frozen=True)
class Exchange:
    title: str
    method: str
    path: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def error_exchanges() -> list[Exchange]:
    """One request per kind of error, sent to a fresh mock on the bundled fixtures."""
    import asyncio

    return asyncio.run(_exchanges())


async def _exchanges() -> list[Exchange]:
    import httpx

    from mockserver import create_app

    contact = "rec_64ac00dc1ea9"  # Anna Adams, a contact of the bundled set
    steps: list[tuple[str, str, str, dict[str, Any]]] = [
        ("per_page out of range", "GET", "/api/crm/records/query?object_id=obj_contacts&per_page=500", {}),
        (
            "a filter operand of the wrong type",
            "GET",
            '/api/crm/records/query?object_id=obj_contacts&filters={"deal_value":{"$gte":"lots"}}',
            {},
        ),
        (
            "an unknown top-level body key",
            "POST",
            "/api/crm/record",
            {"json": {"object_id": "obj_contacts", "field_values": {}, "extra": 1}},
        ),
        ("no X-Api-Key", "GET", "/api/crm/objects", {"headers": {"X-Api-Key": ""}}),
        ("an intake key on /api/crm/*", "GET", "/api/crm/objects", {"headers": {"X-Api-Key": INTAKE}}),
        (
            "a schema write without an admin key",
            "POST",
            "/api/crm/objects",
            {"headers": {"X-Api-Key": SERVER}, "json": {"name": "Tickets"}},
        ),
        ("an unknown record", "GET", "/api/crm/record/rec_missing", {}),
        ("PUT on a record", "PUT", f"/api/crm/record/{contact}", {"json": {}}),
        (
            "a unique email already taken",
            "POST",
            "/api/crm/record",
            {
                "json": {
                    "object_id": "obj_contacts",
                    "field_values": {"name": "Anna", "email": "annaadams@example.org"},
                }
            },
        ),
        (
            "a body over 1 MiB",
            "POST",
            "/api/crm/record",
            {"content": b"{" + b" " * 1_048_576 + b"}", "headers": {"Content-Type": "application/json"}},
        ),
        ("a form-encoded body", "POST", "/api/crm/record", {"data": {"object_id": "obj_contacts"}}),
        (
            "two bad values, both reported",
            "POST",
            "/api/crm/record",
            {
                "json": {
                    "object_id": "obj_contacts",
                    "field_values": {"name": "Jo", "email": "jo@", "status": "gone"},
                }
            },
        ),
    ]
    found = []
    transport = httpx.ASGITransport(app=create_app(seed=1))
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        # A frozen clock, so the page is the same at every build (rate-limit windows, times).
        frozen = await client.post("/_mock/clock", json={"freeze": True, "set": "2024-01-15T10:30:13Z"})
        frozen.raise_for_status()
        for title, method, path, options in steps:
            headers = {"X-Api-Key": ADMIN, **options.pop("headers", {})}
            headers = {k: v for k, v in headers.items() if v}
            answer = await client.request(method, path, headers=headers, **options)
            found.append(_exchange(answer, title, method, path))
        # 429: the server key's minute limit set to one request, then two requests.
        (await client.patch(f"/_mock/keys/{SERVER}", json={"per_minute": 1})).raise_for_status()
        await client.get("/api/crm/objects", headers={"X-Api-Key": SERVER})
        answer = await client.get("/api/crm/objects", headers={"X-Api-Key": SERVER})
        found.append(_exchange(answer, "a key's minute limit spent", "GET", "/api/crm/objects"))
    return found


def _exchange(response: Any, title: str, method: str, path: str) -> Exchange:
    keep = ("allow", "retry-after")
    headers = {k: v for k, v in response.headers.items() if k.lower() in keep}
    return Exchange(title, method, path, response.status_code, json.loads(response.content), headers)


def csv_export(object_id: str = "obj_companies", rows: int = 3) -> str:
    """The first `rows` records of `object_id` as the control API exports them (and as the loader
    reads them back): `GET /_mock/state?format=csv&object_id=...` on the bundled fixtures."""
    import asyncio

    import httpx

    from mockserver import create_app

    async def get() -> str:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            answer = await client.get("/_mock/state", params={"format": "csv", "object_id": object_id})
            answer.raise_for_status()
            return answer.text

    lines = asyncio.run(get()).splitlines()
    return "```csv\n" + "\n".join(lines[: rows + 1]) + "\n```\n"
