"""Every example of reference/records-api.txt, sent as written against the bundled fixtures."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import mockserver

RECORDS_DIR = Path(mockserver.__file__).parent / "fixtures" / "records"
RECORD_KEYS = {"id", "object_id", "field_values", "created_at", "updated_at", "created_by"}
PAGINATION_KEYS = {"total", "page", "per_page", "total_pages"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

# The three query URLs of "Query Records", character for character.
URL_PAGED = "/api/crm/records/query?object_id=obj_contacts&page=1&per_page=25"
URL_FILTERED = '/api/crm/records/query?object_id=obj_contacts&filters={"status":"active"}'
URL_SORTED = "/api/crm/records/query?object_id=obj_contacts&sort=created_at&order=desc"

# The "Filter Syntax" block with its `//` comments taken out (JSON has none); it keeps the
# duplicate "status" key of the original.
FILTER_SYNTAX_BLOCK = """{
"status": "active",
"deal_value": { "$gte": 10000 },
"created_at": { "$lt": "2024-01-01" },
"status": "active",
"source": "website",
"name": { "$contains": "John" },
"category": { "$in": ["Enterprise", "SMB"] },
"phone": { "$empty": false }
}"""

CREATE_BODY = """{
"object_id": "obj_contacts",
"field_values": {
"name": "Jane Smith",
"email": "jane@example.com",
"phone": "+1 (555) 987-6543",
"status": "new",
"source": "api"
}
}"""

UPDATE_BODY = """{
"field_values": {
"status": "qualified",
"notes": "Spoke on phone, interested in enterprise plan"
}
}"""

JSON_HEADERS = {"Content-Type": "application/json"}


# --- the fixture files, read independently of the mock ---------------------------------------


@functools.cache
def _load_records(slug: str) -> str:
    with (RECORDS_DIR / f"{slug}.yaml").open(encoding="utf-8") as fh:
        return json.dumps(yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["records"])


def fixture_records(slug: str = "contacts") -> list[dict[str, Any]]:
    """The records of a bundled fixture file (a fresh copy each call: tests may not share one)."""
    records: list[dict[str, Any]] = json.loads(_load_records(slug))
    return records


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def fv(record: dict[str, Any], slug: str) -> Any:
    return record["field_values"].get(slug)


Predicate = Callable[[dict[str, Any]], bool]

MIDNIGHT_2024 = datetime(2024, 1, 1, tzinfo=UTC)


def status_active(r: dict[str, Any]) -> bool:
    return isinstance(fv(r, "status"), str) and fv(r, "status").lower() == "active"


def deal_value_at_least_10000(r: dict[str, Any]) -> bool:
    v = fv(r, "deal_value")
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 10000


def created_before_2024(r: dict[str, Any]) -> bool:
    return instant(r["created_at"]) < MIDNIGHT_2024


def source_website(r: dict[str, Any]) -> bool:
    return isinstance(fv(r, "source"), str) and fv(r, "source").lower() == "website"


def name_contains_john(r: dict[str, Any]) -> bool:
    return isinstance(fv(r, "name"), str) and "john" in fv(r, "name").lower()


def category_enterprise_or_smb(r: dict[str, Any]) -> bool:
    return isinstance(fv(r, "category"), str) and fv(r, "category").lower() in ("enterprise", "smb")


def phone_not_empty(r: dict[str, Any]) -> bool:
    return not is_empty(fv(r, "phone"))


def all_of(*predicates: Predicate) -> Predicate:
    return lambda r: all(p(r) for p in predicates)


EVERY_CONDITION = all_of(
    status_active,
    deal_value_at_least_10000,
    created_before_2024,
    source_website,
    name_contains_john,
    category_enterprise_or_smb,
    phone_not_empty,
)
COMBINED_FILTERS: dict[str, Any] = {
    "status": "active",
    "deal_value": {"$gte": 10000},
    "created_at": {"$lt": "2024-01-01"},
    "source": "website",
    "name": {"$contains": "John"},
    "category": {"$in": ["Enterprise", "SMB"]},
    "phone": {"$empty": False},
}

FILTER_EXAMPLES = [
    pytest.param({"status": "active"}, status_active, id="exact-match-status-active"),
    pytest.param({"deal_value": {"$gte": 10000}}, deal_value_at_least_10000, id="gte-deal-value-10000"),
    pytest.param({"created_at": {"$lt": "2024-01-01"}}, created_before_2024, id="lt-created-at-2024-01-01"),
    pytest.param({"source": "website"}, source_website, id="exact-match-source-website"),
    pytest.param(
        {"status": "active", "source": "website"},
        all_of(status_active, source_website),
        id="multiple-conditions-and",
    ),
    pytest.param({"name": {"$contains": "John"}}, name_contains_john, id="contains-name-john"),
    pytest.param(
        {"category": {"$in": ["Enterprise", "SMB"]}}, category_enterprise_or_smb, id="in-category-array"
    ),
    pytest.param({"phone": {"$empty": False}}, phone_not_empty, id="empty-false-phone"),
    pytest.param(COMBINED_FILTERS, EVERY_CONDITION, id="all-conditions-combined"),
]


# --- helpers ---------------------------------------------------------------------------------


def assert_record_shape(record: dict[str, Any]) -> None:
    assert set(record) == RECORD_KEYS
    assert isinstance(record["id"], str) and record["id"].startswith("rec_")
    assert isinstance(record["field_values"], dict)
    assert all(not is_empty(v) for v in record["field_values"].values()), "empty fields are left out"
    assert TIMESTAMP.match(record["created_at"]), record["created_at"]
    assert TIMESTAMP.match(record["updated_at"]), record["updated_at"]
    assert instant(record["updated_at"]) >= instant(record["created_at"])
    assert isinstance(record["created_by"], str) and record["created_by"].startswith("user_")


def assert_query_shape(body: dict[str, Any], page: int, per_page: int) -> None:
    assert set(body) == {"data", "pagination"}
    pagination = body["pagination"]
    assert set(pagination) == PAGINATION_KEYS
    assert pagination["page"] == page
    assert pagination["per_page"] == per_page
    assert pagination["total_pages"] == math.ceil(pagination["total"] / per_page)
    for record in body["data"]:
        assert_record_shape(record)
        assert record["object_id"] == "obj_contacts"


def query_every_page(client: httpx.Client, filters: dict[str, Any] | str) -> tuple[list[dict[str, Any]], int]:
    text = filters if isinstance(filters, str) else json.dumps(filters)
    records: list[dict[str, Any]] = []
    page, total = 1, -1
    while True:
        r = client.get(
            "/api/crm/records/query",
            params={"object_id": "obj_contacts", "filters": text, "page": page, "per_page": 100},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert_query_shape(body, page, 100)
        total = body["pagination"]["total"]
        records += body["data"]
        if page >= body["pagination"]["total_pages"]:
            return records, total
        page += 1


def expected_order(records: list[dict[str, Any]], desc: bool) -> list[str]:
    """created_at in the given order; `id` ascending breaks ties in both orders."""
    by_id = sorted(records, key=lambda r: r["id"])
    return [r["id"] for r in sorted(by_id, key=lambda r: instant(r["created_at"]), reverse=desc)]


# --- Query Records -----------------------------------------------------------------------------


def test_paged_query_url_returns_first_25_of_all_contacts_oldest_first(client: httpx.Client) -> None:
    fixtures = fixture_records()
    r = client.get(URL_PAGED)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_query_shape(body, page=1, per_page=25)
    assert body["pagination"]["total"] == len(fixtures)
    assert body["pagination"]["total_pages"] == math.ceil(len(fixtures) / 25)
    assert [rec["id"] for rec in body["data"]] == expected_order(fixtures, desc=False)[:25]


def test_filtered_query_url_returns_only_active_contacts(client: httpx.Client) -> None:
    r = client.get(URL_FILTERED)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_query_shape(body, page=1, per_page=25)
    assert body["data"], "the bundled fixtures have active contacts"
    assert all(rec["field_values"]["status"] == "active" for rec in body["data"])
    assert body["pagination"]["total"] == sum(status_active(r) for r in fixture_records())


def test_sorted_query_url_returns_newest_first_with_id_breaking_ties(client: httpx.Client) -> None:
    fixtures = fixture_records()
    r = client.get(URL_SORTED)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_query_shape(body, page=1, per_page=25)
    stamps = [instant(rec["created_at"]) for rec in body["data"]]
    assert stamps == sorted(stamps, reverse=True)
    assert [rec["id"] for rec in body["data"]] == expected_order(fixtures, desc=True)[:25]


def test_sorted_query_is_descending_across_every_page_without_overlap(client: httpx.Client) -> None:
    seen: list[str] = []
    stamps: list[datetime] = []
    for page in range(1, 4):
        r = client.get(URL_SORTED + f"&page={page}&per_page=100")
        assert r.status_code == 200, r.text
        seen += [rec["id"] for rec in r.json()["data"]]
        stamps += [instant(rec["created_at"]) for rec in r.json()["data"]]
    assert stamps == sorted(stamps, reverse=True)
    assert seen == expected_order(fixture_records(), desc=True)


@pytest.mark.parametrize(("filters", "predicate"), FILTER_EXAMPLES)
def test_filter_syntax_example_returns_exactly_the_matching_fixture_records(
    client: httpx.Client, filters: dict[str, Any], predicate: Predicate
) -> None:
    fixtures = fixture_records()
    expected = {r["id"] for r in fixtures if predicate(r)}
    assert expected, "the bundled fixtures make every example match something"
    records, total = query_every_page(client, filters)
    assert total == len(expected)
    assert {r["id"] for r in records} == expected
    assert len(records) == len(expected), "no record twice across pages"
    for record in records:
        assert predicate(record), record


def test_combined_filter_example_matches_at_least_one_contact(client: httpx.Client) -> None:
    records, total = query_every_page(client, COMBINED_FILTERS)
    assert total >= 1
    for record in records:
        values = record["field_values"]
        assert values["status"] == "active"
        assert values["deal_value"] >= 10000
        assert instant(record["created_at"]) < MIDNIGHT_2024
        assert values["source"] == "website"
        assert "john" in values["name"].lower()
        assert values["category"] in ("Enterprise", "SMB")
        assert values["phone"]


def test_filter_syntax_block_sent_verbatim_matches_the_combined_filter(client: httpx.Client) -> None:
    verbatim, verbatim_total = query_every_page(client, FILTER_SYNTAX_BLOCK)
    combined, combined_total = query_every_page(client, COMBINED_FILTERS)
    assert verbatim_total == combined_total >= 1
    assert [r["id"] for r in verbatim] == [r["id"] for r in combined]


def test_filter_url_with_raw_json_and_pagination_params_combined(client: httpx.Client) -> None:
    r = client.get(URL_FILTERED + "&page=2&per_page=5&sort=created_at&order=desc")
    assert r.status_code == 200, r.text
    body = r.json()
    assert_query_shape(body, page=2, per_page=5)
    active = [r for r in fixture_records() if status_active(r)]
    assert [rec["id"] for rec in body["data"]] == expected_order(active, desc=True)[5:10]


# --- Get, Create, Update, Delete -------------------------------------------------------------


def test_get_single_record_returns_the_fixture_record_unwrapped(client: httpx.Client) -> None:
    fixture = fixture_records()[3]
    r = client.get(f"/api/crm/record/{fixture['id']}")
    assert r.status_code == 200, r.text
    record = r.json()
    assert_record_shape(record)
    assert record["id"] == fixture["id"]
    assert record["object_id"] == "obj_contacts"
    assert record["field_values"] == {k: v for k, v in fixture["field_values"].items() if not is_empty(v)}
    assert instant(record["created_at"]) == instant(fixture["created_at"])
    assert instant(record["updated_at"]) == instant(fixture.get("updated_at", fixture["created_at"]))
    assert record["created_by"] == fixture["created_by"]


def test_create_record_example_answers_201_with_the_record(client: httpx.Client) -> None:
    r = client.post("/api/crm/record", content=CREATE_BODY, headers=JSON_HEADERS)
    assert r.status_code == 201, r.text
    record = r.json()
    assert_record_shape(record)
    assert record["object_id"] == "obj_contacts"
    assert record["field_values"] == json.loads(CREATE_BODY)["field_values"]
    assert record["created_at"] == record["updated_at"]
    fetched = client.get(f"/api/crm/record/{record['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == record


def test_created_record_is_counted_and_found_by_queries(client: httpx.Client) -> None:
    before = client.get(URL_PAGED).json()["pagination"]["total"]
    created = client.post("/api/crm/record", content=CREATE_BODY, headers=JSON_HEADERS).json()
    after = client.get(URL_PAGED).json()
    assert after["pagination"]["total"] == before + 1
    found, total = query_every_page(client, {"email": "jane@example.com"})
    assert total == 1 and found[0]["id"] == created["id"]


def test_update_record_example_merges_the_two_fields(client: httpx.Client) -> None:
    fixture = fixture_records()[0]
    r = client.patch(f"/api/crm/record/{fixture['id']}", content=UPDATE_BODY, headers=JSON_HEADERS)
    assert r.status_code == 200, r.text
    record = r.json()
    assert_record_shape(record)
    expected = {k: v for k, v in fixture["field_values"].items() if not is_empty(v)}
    expected |= json.loads(UPDATE_BODY)["field_values"]
    assert record["field_values"] == expected
    assert instant(record["updated_at"]) > instant(fixture.get("updated_at", fixture["created_at"]))
    assert instant(record["created_at"]) == instant(fixture["created_at"])
    assert client.get(f"/api/crm/record/{fixture['id']}").json() == record


def test_update_record_example_on_a_created_record(client: httpx.Client) -> None:
    created = client.post("/api/crm/record", content=CREATE_BODY, headers=JSON_HEADERS).json()
    r = client.patch(f"/api/crm/record/{created['id']}", content=UPDATE_BODY, headers=JSON_HEADERS)
    assert r.status_code == 200, r.text
    values = r.json()["field_values"]
    assert values["status"] == "qualified"
    assert values["notes"] == "Spoke on phone, interested in enterprise plan"
    assert values["name"] == "Jane Smith" and values["source"] == "api"
    assert r.json()["created_at"] == created["created_at"]


def test_delete_record_example_answers_204_and_the_record_is_gone(client: httpx.Client) -> None:
    fixture = fixture_records()[5]
    before = client.get(URL_PAGED).json()["pagination"]["total"]
    r = client.delete(f"/api/crm/record/{fixture['id']}")
    assert r.status_code == 204
    assert r.content == b""
    assert client.get(f"/api/crm/record/{fixture['id']}").status_code == 404
    assert client.get(URL_PAGED).json()["pagination"]["total"] == before - 1
