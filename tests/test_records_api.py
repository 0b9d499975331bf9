"""Record writes over HTTP: create, read, merge-update, delete, and what each field type accepts."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kantos_support import ADMIN_KEY, FREE_KEY, SERVER_KEY, SyncASGITransport
from starlette.applications import Starlette

from mockserver import create_app
from mockserver.domain.backend import FixtureSet
from mockserver.openapi import Spec

QUERY = "/api/crm/records/query"
WHOLE_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

# Bundled records used below (see mockserver/fixtures/records/*.yaml).
ANNA = "rec_64ac00dc1ea9"  # contact with email annaadams@example.org, phone, status new, no notes
ANNA_EMAIL = "annaadams@example.org"
ELTON = "rec_f969cba7dfad"  # contact with notes, tags, company, linkedin, avatar, birthday
A_COMPANY = "rec_d16c9aaa89b1"  # a company (Elton's)


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def create(client: httpx.Client, key: str | None = None, **values: Any) -> httpx.Response:
    headers = {"X-Api-Key": key} if key else {}
    return client.post(
        "/api/crm/record", json={"object_id": "obj_contacts", "field_values": values}, headers=headers
    )


def patch(client: httpx.Client, record_id: str, **values: Any) -> httpx.Response:
    return client.patch(f"/api/crm/record/{record_id}", json={"field_values": values})


def get(client: httpx.Client, record_id: str) -> dict[str, Any]:
    r = client.get(f"/api/crm/record/{record_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def total(client: httpx.Client) -> int:
    n: int = client.get(QUERY, params={"object_id": "obj_contacts", "per_page": 1}).json()["pagination"][
        "total"
    ]
    return n


def violations(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "VALIDATION_ERROR"
    return [e["field"] for e in body["details"]["errors"]]


def freeze(app: Starlette, when: datetime) -> None:
    clock = app.state.tenants.default.clock
    clock.freeze(True)
    clock.set(when)


# --- create ----------------------------------------------------------------------------------


def test_create_sets_created_at_equal_to_updated_at_from_the_clock(
    app: Starlette, client: httpx.Client
) -> None:
    freeze(app, datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))
    r = create(client, name="Clocked")
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["created_at"] == record["updated_at"] == "2031-05-06T07:08:09Z"


def test_create_timestamps_are_whole_utc_seconds(client: httpx.Client) -> None:
    record = create(client, name="Now").json()
    assert WHOLE_SECONDS.match(record["created_at"]), record["created_at"]
    assert abs((instant(record["created_at"]) - datetime.now(UTC)).total_seconds()) < 60


@pytest.mark.parametrize(
    ("key", "user"),
    [
        pytest.param(ADMIN_KEY, "user_admin", id="admin-key"),
        pytest.param(SERVER_KEY, "user_alice", id="server-key"),
        pytest.param(FREE_KEY, "user_bob", id="free-key"),
    ],
)
def test_created_by_is_the_user_owning_the_key(client: httpx.Client, key: str, user: str) -> None:
    r = create(client, key=key, name="Owned")
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == user
    assert get(client, r.json()["id"])["created_by"] == user


def test_create_returns_a_new_rec_id_each_time(client: httpx.Client) -> None:
    ids = {create(client, name=f"Person {i}").json()["id"] for i in range(5)}
    assert len(ids) == 5
    assert all(i.startswith("rec_") for i in ids)


def test_default_value_fills_an_absent_key(client: httpx.Client) -> None:
    record = create(client, name="Defaulted").json()
    assert record["field_values"] == {"name": "Defaulted", "status": "new"}


@pytest.mark.parametrize("empty", [pytest.param(None, id="null"), pytest.param("", id="empty-string")])
def test_explicitly_empty_key_is_not_filled_by_its_default(client: httpx.Client, empty: Any) -> None:
    record = create(client, name="No Status", status=empty).json()
    assert record["field_values"] == {"name": "No Status"}
    assert "status" not in get(client, record["id"])["field_values"]


def test_create_without_a_required_field_is_422(client: httpx.Client) -> None:
    before = total(client)
    assert violations(create(client, email="nobody@example.com")) == ["name"]
    assert total(client) == before


@pytest.mark.parametrize("empty", [pytest.param(None, id="null"), pytest.param("", id="empty-string")])
def test_create_with_an_empty_required_field_is_422(client: httpx.Client, empty: Any) -> None:
    assert violations(create(client, name=empty)) == ["name"]


def test_create_with_an_unknown_field_is_422_naming_it(client: httpx.Client) -> None:
    assert violations(create(client, name="X", shoe_size=44)) == ["shoe_size"]


def test_empty_values_are_left_out_of_the_created_record(client: httpx.Client) -> None:
    record = create(client, name="Sparse", notes="", tags=[], phone=None, email="").json()
    assert record["field_values"] == {"name": "Sparse", "status": "new"}


# --- read ------------------------------------------------------------------------------------


def test_get_returns_what_create_returned(client: httpx.Client) -> None:
    created = create(client, name="Round Trip", tags=["vip", "beta"], score=7.5, do_not_contact=False).json()
    assert get(client, created["id"]) == created


# --- update ----------------------------------------------------------------------------------


def test_patch_merges_keys_sent_and_keeps_the_rest(client: httpx.Client) -> None:
    before = get(client, ELTON)
    r = patch(client, ELTON, notes="New notes", score=1)
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["field_values"] == {**before["field_values"], "notes": "New notes", "score": 1}
    assert after["created_at"] == before["created_at"]
    assert after["created_by"] == before["created_by"]
    assert get(client, ELTON) == after


def test_patch_null_clears_a_field(client: httpx.Client) -> None:
    before = get(client, ELTON)
    assert "notes" in before["field_values"]
    after = patch(client, ELTON, notes=None).json()
    assert "notes" not in after["field_values"]
    assert after["field_values"] == {k: v for k, v in before["field_values"].items() if k != "notes"}


@pytest.mark.parametrize(
    "slug",
    ["notes", "phone", "linkedin", "avatar", "company", "owner", "status", "source", "email"],
)
def test_patch_empty_string_empties_string_valued_fields(client: httpx.Client, slug: str) -> None:
    before = get(client, ELTON)["field_values"]
    assert slug in before
    r = patch(client, ELTON, **{slug: ""})
    assert r.status_code == 200, r.text
    assert slug not in r.json()["field_values"]


def test_patch_empty_array_empties_a_multi_select(client: httpx.Client) -> None:
    assert "tags" in get(client, ELTON)["field_values"]
    assert "tags" not in patch(client, ELTON, tags=[]).json()["field_values"]


@pytest.mark.parametrize("slug", ["score", "deal_value", "do_not_contact", "birthday"])
def test_patch_empty_string_on_number_currency_boolean_or_date_is_422(
    client: httpx.Client, slug: str
) -> None:
    before = get(client, ELTON)
    assert violations(patch(client, ELTON, **{slug: ""})) == [slug]
    assert get(client, ELTON) == before


@pytest.mark.parametrize("empty", [pytest.param(None, id="null"), pytest.param("", id="empty-string")])
def test_patch_clearing_a_required_field_is_422(client: httpx.Client, empty: Any) -> None:
    before = get(client, ANNA)
    assert violations(patch(client, ANNA, name=empty)) == ["name"]
    assert get(client, ANNA) == before


def test_patch_without_the_required_field_keeps_it_and_passes(client: httpx.Client) -> None:
    r = patch(client, ANNA, notes="Only notes")
    assert r.status_code == 200, r.text
    assert r.json()["field_values"]["name"] == get(client, ANNA)["field_values"]["name"]


def test_patch_does_not_apply_defaults(client: httpx.Client) -> None:
    created = create(client, name="Statusless", status=None).json()
    after = patch(client, created["id"], notes="still no status").json()
    assert "status" not in after["field_values"]


def test_patch_moves_updated_at_to_the_clock(app: Starlette, client: httpx.Client) -> None:
    freeze(app, datetime(2032, 1, 2, 3, 4, 5, tzinfo=UTC))
    after = patch(client, ANNA, notes="later").json()
    assert after["updated_at"] == "2032-01-02T03:04:05Z"


def test_empty_patch_still_moves_updated_at_strictly_forward_on_a_frozen_clock(
    app: Starlette, client: httpx.Client
) -> None:
    app.state.tenants.default.clock.freeze(True)
    stamps = [get(client, ANNA)["updated_at"]]
    for _ in range(3):
        r = client.patch(f"/api/crm/record/{ANNA}", json={"field_values": {}})
        assert r.status_code == 200, r.text
        stamps.append(r.json()["updated_at"])
    assert all(TIMESTAMP.match(s) for s in stamps), stamps
    times = [instant(s) for s in stamps]
    assert all(a < b for a, b in itertools.pairwise(times)), stamps
    assert get(client, ANNA)["updated_at"] == stamps[-1]


def test_create_then_patch_in_the_same_frozen_second_moves_updated_at(
    app: Starlette, client: httpx.Client
) -> None:
    freeze(app, datetime(2033, 3, 3, 3, 3, 3, tzinfo=UTC))
    created = create(client, name="Fast").json()
    updated = client.patch(f"/api/crm/record/{created['id']}", json={"field_values": {}}).json()
    assert instant(updated["updated_at"]) > instant(created["updated_at"])
    assert updated["created_at"] == created["created_at"]
    assert updated["field_values"] == created["field_values"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"field_values": {}, "object_id": "obj_contacts"}, id="object_id"),
        pytest.param({"field_values": {}, "id": ANNA}, id="id"),
        pytest.param({"field_values": {}, "created_by": "user_bob"}, id="created_by"),
        pytest.param({"field_values": {}, "updated_at": "2030-01-01T00:00:00Z"}, id="updated_at"),
        pytest.param({"fields": {"name": "X"}}, id="misnamed-field-values"),
        pytest.param({"name": "X"}, id="bare-values"),
    ],
)
def test_patch_with_a_key_other_than_field_values_is_400(client: httpx.Client, body: dict[str, Any]) -> None:
    before = get(client, ANNA)
    r = client.patch(f"/api/crm/record/{ANNA}", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "BAD_REQUEST"
    assert get(client, ANNA) == before


# --- unique values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", [pytest.param(ANNA_EMAIL, id="same-case"), pytest.param(ANNA_EMAIL.upper(), id="other-case")]
)
def test_a_record_may_keep_its_own_unique_value(client: httpx.Client, email: str) -> None:
    r = patch(client, ANNA, email=email, notes="kept my email")
    assert r.status_code == 200, r.text
    assert r.json()["field_values"]["email"] == email


def test_deleting_a_record_frees_its_unique_value(client: httpx.Client) -> None:
    assert create(client, name="Copycat", email=ANNA_EMAIL).status_code == 409
    assert client.delete(f"/api/crm/record/{ANNA}").status_code == 204
    r = create(client, name="Successor", email=ANNA_EMAIL)
    assert r.status_code == 201, r.text


def test_changing_a_unique_value_frees_the_old_one(client: httpx.Client) -> None:
    assert patch(client, ANNA, email="anna.new@example.org").status_code == 200
    assert create(client, name="Successor", email=ANNA_EMAIL.upper()).status_code == 201
    assert create(client, name="Copycat", email="Anna.New@example.org").status_code == 409


def test_clearing_a_unique_value_frees_it(client: httpx.Client) -> None:
    assert patch(client, ANNA, email=None).status_code == 200
    assert create(client, name="Successor", email=ANNA_EMAIL).status_code == 201


def test_empty_values_never_conflict_on_a_unique_field(client: httpx.Client) -> None:
    for empty in ("", None, "", None):
        r = create(client, name="No Email", email=empty)
        assert r.status_code == 201, r.text


def test_unique_value_taken_by_a_created_record_is_409(client: httpx.Client) -> None:
    assert create(client, name="First", email="first@example.com").status_code == 201
    r = create(client, name="Second", email="FIRST@example.com")
    assert r.status_code == 409
    assert r.json()["details"]["field"] == "email"


# --- delete ----------------------------------------------------------------------------------


def test_delete_answers_204_then_get_patch_and_delete_are_404(client: httpx.Client) -> None:
    before = total(client)
    r = client.delete(f"/api/crm/record/{ELTON}")
    assert r.status_code == 204 and r.content == b""
    assert total(client) == before - 1
    assert client.get(f"/api/crm/record/{ELTON}").status_code == 404
    assert patch(client, ELTON, notes="ghost").status_code == 404
    second = client.delete(f"/api/crm/record/{ELTON}")
    assert second.status_code == 404
    assert ELTON in second.json()["details"].values()
    assert total(client) == before - 1


def test_deleted_record_is_no_longer_a_valid_reference(client: httpx.Client) -> None:
    contact = create(client, name="Referenced").json()
    deal = {"object_id": "obj_deals", "field_values": {"name": "Deal", "contact": contact["id"]}}
    assert client.post("/api/crm/record", json=deal).status_code == 201
    assert client.delete(f"/api/crm/record/{contact['id']}").status_code == 204
    assert violations(client.post("/api/crm/record", json=deal)) == ["contact"]


# --- field types: what a value must be -------------------------------------------------------


VALID_VALUES = [
    pytest.param("name", "a" * 255, id="text-255-chars"),
    pytest.param("name", "é" * 255, id="text-255-two-byte-chars"),
    pytest.param("name", "漢" * 255, id="text-255-three-byte-chars"),
    pytest.param("notes", "long " * 2000, id="long-text-10000-chars"),
    pytest.param("score", 42, id="number-integer"),
    pytest.param("score", -3.25, id="number-negative-float"),
    pytest.param("score", 0, id="number-zero"),
    pytest.param("deal_value", 1234.56, id="currency-float"),
    pytest.param("email", "jane@example.com", id="email-plain"),
    pytest.param("email", "user@localhost", id="email-no-dot-in-domain"),
    pytest.param("email", "first.last+tag@sub.example.co", id="email-plus-and-subdomain"),
    pytest.param("phone", "+1 (555) 987-6543", id="phone-formatted"),
    pytest.param("phone", "5550100", id="phone-7-digits"),
    pytest.param("phone", "123456789012345", id="phone-15-digits"),
    pytest.param("phone", "555.010.3071", id="phone-dots"),
    pytest.param("linkedin", "https://www.linkedin.com/in/jane", id="url-https"),
    pytest.param("linkedin", "http://example.com/a?b=c#d", id="url-http-with-query"),
    pytest.param("avatar", "https://img.example/a.png", id="image-https"),
    pytest.param("birthday", "2024-02-29", id="date-leap-day"),
    pytest.param("birthday", "1970-01-01", id="date-epoch"),
    pytest.param("last_contacted_at", "2024-01-15T10:30:00Z", id="datetime-z"),
    pytest.param("last_contacted_at", "2024-01-15T10:30:00+02:00", id="datetime-offset"),
    pytest.param("last_contacted_at", "2024-01-15T10:30:00-05:30", id="datetime-negative-offset"),
    pytest.param("last_contacted_at", "2024-01-15T10:30Z", id="datetime-no-seconds"),
    pytest.param("last_contacted_at", "2024-01-15T10:30:00.123Z", id="datetime-milliseconds"),
    pytest.param("do_not_contact", True, id="boolean-true"),
    pytest.param("do_not_contact", False, id="boolean-false"),
    pytest.param("status", "qualified", id="status-stage"),
    pytest.param("source", "website", id="dropdown-choice"),
    pytest.param("category", "SMB", id="dropdown-upper-case-choice"),
    pytest.param("tags", ["vip"], id="multi-select-one"),
    pytest.param("tags", ["beta", "vip"], id="multi-select-two"),
    pytest.param("company", A_COMPANY, id="reference-existing-company"),
    pytest.param("owner", "user_bob", id="user-existing"),
    pytest.param("owner", "user_admin", id="user-admin"),
]


@pytest.mark.parametrize(("slug", "value"), VALID_VALUES)
def test_valid_value_is_stored_as_sent(client: httpx.Client, slug: str, value: Any) -> None:
    values = {"name": "Typed", slug: value}
    r = create(client, **values)
    assert r.status_code == 201, r.text
    assert r.json()["field_values"][slug] == value
    assert get(client, r.json()["id"])["field_values"][slug] == value
    # A unique value now belongs to the created record, which may keep it; others get ELTON's.
    target = r.json()["id"] if slug == "email" else ELTON
    u = patch(client, target, **{slug: value})
    assert u.status_code == 200, u.text
    assert u.json()["field_values"][slug] == value


INVALID_VALUES = [
    pytest.param("name", "a" * 256, id="text-256-chars"),
    pytest.param("name", "é" * 256, id="text-256-two-byte-chars"),
    pytest.param("name", 123, id="text-number"),
    pytest.param("name", ["a"], id="text-array"),
    pytest.param("notes", 5, id="long-text-number"),
    pytest.param("notes", {"text": "x"}, id="long-text-object"),
    pytest.param("score", "42", id="number-as-string"),
    pytest.param("score", True, id="number-boolean"),
    pytest.param("deal_value", "1,234", id="currency-string"),
    pytest.param("deal_value", [1], id="currency-array"),
    pytest.param("email", "not-an-email", id="email-no-at"),
    pytest.param("email", "a@b@c.example", id="email-two-ats"),
    pytest.param("email", "@example.com", id="email-no-local-part"),
    pytest.param("email", "jane@", id="email-no-domain"),
    pytest.param("email", "jane doe@example.com", id="email-space"),
    pytest.param("email", 5, id="email-number"),
    pytest.param("phone", "123456", id="phone-6-digits"),
    pytest.param("phone", "1234567890123456", id="phone-16-digits"),
    pytest.param("phone", "555-CALL-NOW", id="phone-letters"),
    pytest.param("phone", "+1 555 0100 ext 4", id="phone-extension-text"),
    pytest.param("phone", 5551234567, id="phone-number-type"),
    pytest.param("linkedin", "ftp://example.com/file", id="url-ftp"),
    pytest.param("linkedin", "example.com", id="url-no-scheme"),
    pytest.param("linkedin", "javascript:alert(1)", id="url-javascript"),
    pytest.param("linkedin", "https://", id="url-no-host"),
    pytest.param("avatar", "data:image/png;base64,AAAA", id="image-data-url"),
    pytest.param("avatar", "file:///tmp/a.png", id="image-file-url"),
    pytest.param("birthday", "2024-02-30", id="date-february-30"),
    pytest.param("birthday", "2023-02-29", id="date-not-a-leap-year"),
    pytest.param("birthday", "2024-13-01", id="date-month-13"),
    pytest.param("birthday", "2024/01/15", id="date-slashes"),
    pytest.param("birthday", "2024-1-5", id="date-unpadded"),
    pytest.param("birthday", "2024-01-15T00:00:00Z", id="date-with-time"),
    pytest.param("birthday", 20240115, id="date-number"),
    pytest.param("last_contacted_at", "2024-01-15T10:30:00", id="datetime-naive"),
    pytest.param("last_contacted_at", "2024-01-15", id="datetime-date-only"),
    pytest.param("last_contacted_at", "2024-02-30T10:00:00Z", id="datetime-impossible-date"),
    pytest.param("last_contacted_at", "2024-01-15T25:00:00Z", id="datetime-hour-25"),
    pytest.param("last_contacted_at", "2024-01-15 10:30:00Z", id="datetime-space-separator"),
    pytest.param("last_contacted_at", "yesterday", id="datetime-word"),
    pytest.param("do_not_contact", "true", id="boolean-string"),
    pytest.param("do_not_contact", 1, id="boolean-one"),
    pytest.param("do_not_contact", 0, id="boolean-zero"),
    pytest.param("status", "Active", id="status-wrong-case"),
    pytest.param("status", "archived", id="status-not-a-stage"),
    pytest.param("source", "Website", id="dropdown-wrong-case"),
    pytest.param("category", "smb", id="dropdown-lower-case-of-choice"),
    pytest.param("source", "billboard", id="dropdown-not-a-choice"),
    pytest.param("tags", "vip", id="multi-select-string"),
    pytest.param("tags", ["VIP"], id="multi-select-wrong-case"),
    pytest.param("tags", ["vip", "gold"], id="multi-select-unknown-choice"),
    pytest.param("tags", [1], id="multi-select-number"),
    pytest.param("company", "rec_nope", id="reference-missing-record"),
    pytest.param("company", ANNA, id="reference-record-of-another-object"),
    pytest.param("company", 5, id="reference-number"),
    pytest.param("owner", "user_nobody", id="user-unknown"),
    pytest.param("owner", "bob", id="user-no-prefix"),
]


@pytest.mark.parametrize(("slug", "value"), INVALID_VALUES)
def test_invalid_value_is_422_naming_the_field_on_create_and_update(
    client: httpx.Client, slug: str, value: Any
) -> None:
    before_total = total(client)
    assert violations(create(client, **{"name": "Typed", slug: value})) == [slug]
    assert total(client) == before_total
    before = get(client, ELTON)
    assert violations(patch(client, ELTON, **{slug: value})) == [slug]
    assert get(client, ELTON) == before


def test_datetime_is_stored_exactly_as_sent_not_normalised(client: httpx.Client) -> None:
    sent = "2024-06-01T23:15:00.500+05:45"
    record = create(client, name="Offset", last_contacted_at=sent).json()
    assert record["field_values"]["last_contacted_at"] == sent


def test_text_length_counts_characters_not_bytes(client: httpx.Client) -> None:
    name = "ü" * 200 + "日" * 55  # 255 characters, 565 bytes in UTF-8
    assert len(name) == 255 and len(name.encode()) > 255
    assert create(client, name=name).status_code == 201
    assert violations(create(client, name=name + "x")) == ["name"]


def test_reference_to_a_record_created_in_this_session_is_valid(client: httpx.Client) -> None:
    company = client.post(
        "/api/crm/record", json={"object_id": "obj_companies", "field_values": {"name": "Fresh Co"}}
    ).json()
    r = create(client, name="Employee", company=company["id"])
    assert r.status_code == 201, r.text


# --- seeded ids ------------------------------------------------------------------------------


def created_ids(fixture_set: FixtureSet, spec: Spec, seed: int, n: int = 4) -> list[str]:
    app = create_app(fixture_set, spec=spec, seed=seed)
    with httpx.Client(
        transport=SyncASGITransport(app), base_url="http://kantos.test", headers={"X-Api-Key": ADMIN_KEY}
    ) as c:
        ids = []
        for i in range(n):
            r = c.post(
                "/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": f"S{i}"}}
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        return ids


def test_same_seed_gives_the_same_record_ids(fixture_set: FixtureSet, spec: Spec) -> None:
    first = created_ids(fixture_set, spec, seed=7)
    assert created_ids(fixture_set, spec, seed=7) == first
    assert len(set(first)) == len(first)


def test_different_seeds_give_different_record_ids(fixture_set: FixtureSet, spec: Spec) -> None:
    assert set(created_ids(fixture_set, spec, seed=7)).isdisjoint(created_ids(fixture_set, spec, seed=8))
