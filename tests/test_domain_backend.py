"""Unit tests of mockserver.domain.Backend (no HTTP): its verbs, their errors, and reset's undo log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mockserver.domain.backend import Backend, FixtureSet
from mockserver.domain.clock import Clock, format_timestamp, to_us
from mockserver.domain.errors import BadRequest, Conflict, KantosError, NotFound, ValidationFailed
from mockserver.domain.ids import IdSource

START = datetime(2030, 1, 1, 9, 0, 0, tzinfo=UTC)
ANNA = "rec_64ac00dc1ea9"
ANNA_EMAIL = "annaadams@example.org"
ELTON = "rec_f969cba7dfad"


@pytest.fixture
def backend(fixture_set: FixtureSet) -> Backend:
    return Backend(fixture_set, Clock(start=START, frozen=True), IdSource(11))


def state(backend: Backend) -> dict[str, Any]:
    """Everything the verbs can show: every object with its fields, and every record."""
    out: dict[str, Any] = {"objects": [o.to_json() for o in backend.list_objects()]}
    for obj in backend.list_objects():
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            result = backend.query_records(obj.id, sort="id", page=page, per_page=100)
            records += [r.to_json() for r in result.records]
            if page >= result.total_pages:
                break
            page += 1
        out[obj.id] = records
    return out


def count(backend: Backend, object_id: str = "obj_contacts", filters: dict[str, Any] | None = None) -> int:
    return backend.query_records(object_id, filters, per_page=1).total


# --- reading -----------------------------------------------------------------------------------


def test_backend_holds_every_fixture_record(backend: Backend, fixture_set: FixtureSet) -> None:
    for obj in fixture_set.objects:
        expected = sorted(r.id for r in fixture_set.records if r.object_id == obj.id)
        assert [r["id"] for r in state(backend)[obj.id]] == expected


def test_get_record_and_get_object(backend: Backend) -> None:
    assert backend.get_record(ANNA).values["email"] == ANNA_EMAIL
    assert backend.get_object("obj_contacts").by_slug["email"].unique is True


@pytest.mark.parametrize(
    ("verb", "args"),
    [
        pytest.param("get_record", ("rec_nope",), id="get-record"),
        pytest.param("update_record", ("rec_nope", {"name": "X"}), id="update-record"),
        pytest.param("delete_record", ("rec_nope",), id="delete-record"),
        pytest.param("get_object", ("obj_nope",), id="get-object"),
        pytest.param("query_records", ("obj_nope",), id="query-records"),
        pytest.param("create_record", ("obj_nope", {"name": "X"}, "user_admin"), id="create-record"),
        pytest.param("create_field", ("obj_nope", {"name": "X", "type": "text"}), id="create-field"),
    ],
)
def test_unknown_ids_raise_not_found_naming_them(backend: Backend, verb: str, args: tuple[Any, ...]) -> None:
    with pytest.raises(NotFound) as info:
        getattr(backend, verb)(*args)
    assert args[0] in info.value.details.values()
    assert info.value.status == 404 and info.value.code == "NOT_FOUND"


def test_query_filters_sorts_and_pages(backend: Backend) -> None:
    active = backend.query_records("obj_contacts", {"status": "active"}, "name", "asc", 1, 100)
    assert active.total == len(active.records) > 0
    assert all(r.values["status"] == "active" for r in active.records)
    names = [r.values["name"].lower() for r in active.records]
    assert names == sorted(names)
    page2 = backend.query_records("obj_contacts", None, None, None, 2, 7)
    assert (page2.page, page2.per_page, len(page2.records)) == (2, 7, 7)
    assert page2.total_pages == -(-page2.total // 7)


def test_query_with_a_bad_filter_raises_bad_request(backend: Backend) -> None:
    with pytest.raises(BadRequest):
        backend.query_records("obj_contacts", {"shoe_size": 1})
    with pytest.raises(BadRequest):
        backend.query_records("obj_contacts", sort="shoe_size")
    with pytest.raises(BadRequest):
        backend.query_records("obj_contacts", {"deal_value": {"$gte": "1"}})


# --- writing -----------------------------------------------------------------------------------


def test_create_record_uses_clock_ids_user_and_defaults(backend: Backend) -> None:
    rec = backend.create_record("obj_contacts", {"name": "Unit"}, "user_bob")
    assert rec.id.startswith("rec_")
    assert rec.created_at == rec.updated_at == to_us(START)
    assert rec.created_by == "user_bob"
    assert rec.values == {"name": "Unit", "status": "new"}
    assert backend.get_record(rec.id).to_json() == rec.to_json()
    assert count(backend, filters={"name": "Unit"}) == 1


def test_create_record_reports_every_violation(backend: Backend) -> None:
    before = state(backend)
    with pytest.raises(ValidationFailed) as info:
        backend.create_record("obj_contacts", {"email": "x", "score": "y", "zzz": 1}, "user_bob")
    assert {e["field"] for e in info.value.errors} == {"name", "email", "score", "zzz"}
    assert info.value.details == {"errors": info.value.errors}
    assert state(backend) == before


def test_create_record_with_a_taken_unique_value_raises_conflict(backend: Backend) -> None:
    before = state(backend)
    with pytest.raises(Conflict) as info:
        backend.create_record("obj_contacts", {"name": "X", "email": ANNA_EMAIL.title()}, "user_bob")
    assert info.value.details["field"] == "email"
    assert info.value.details["value"] == ANNA_EMAIL.title()
    assert state(backend) == before


def test_update_record_merges_and_moves_updated_at(backend: Backend) -> None:
    old = backend.get_record(ELTON).to_json()
    new = backend.update_record(ELTON, {"notes": None, "score": 5})
    expected = {k: v for k, v in old["field_values"].items() if k != "notes"} | {"score": 5}
    assert new.values == expected
    assert new.updated_at == to_us(START)
    again = backend.update_record(ELTON, {})
    assert again.updated_at > new.updated_at
    assert format_timestamp(again.updated_at) != format_timestamp(new.updated_at)


def test_update_record_writes_kept_values_first_then_the_set_ones_in_the_write_order(
    backend: Backend,
) -> None:
    old = list(backend.get_record(ELTON).to_json()["field_values"])
    assert {"notes", "name"} <= set(old) and "deal_value" in old
    new = backend.update_record(ELTON, {"deal_value": 7, "notes": None, "name": "Elton B", "source": ""})
    kept = [k for k in old if k not in ("deal_value", "notes", "name", "source")]
    assert list(new.values) == [*kept, "deal_value", "name"]
    assert list(new.to_json()["field_values"]) == [*kept, "deal_value", "name"]


def test_update_record_keeps_created_at_as_written_whatever_the_values_hold(backend: Backend) -> None:
    created = backend.get_record(ELTON).to_json()["created_at"]
    notes = 'pasted: "created_at":"1999-01-01T00:00:00Z", "updated_at":"x"'
    new = backend.update_record(ELTON, {"notes": notes})
    assert new.to_json()["created_at"] == created
    assert new.to_json()["field_values"]["notes"] == notes
    assert backend.update_record(ELTON, {"score": 1}).to_json()["created_at"] == created


def test_update_record_moves_a_unique_value_only_when_it_changes(backend: Backend) -> None:
    backend.update_record(ANNA, {"notes": "email untouched"})
    with pytest.raises(Conflict):
        backend.create_record("obj_contacts", {"name": "Copy", "email": ANNA_EMAIL}, "user_bob")
    backend.update_record(ANNA, {"email": "anna.new@example.org"})
    with pytest.raises(Conflict):
        backend.create_record("obj_contacts", {"name": "Copy", "email": "ANNA.new@example.org"}, "user_bob")
    assert backend.create_record("obj_contacts", {"name": "Copy", "email": ANNA_EMAIL}, "user_bob")


def test_update_record_that_fails_changes_nothing(backend: Backend) -> None:
    before = state(backend)
    with pytest.raises(ValidationFailed):
        backend.update_record(ELTON, {"notes": "fine", "name": None})
    with pytest.raises(Conflict):
        backend.update_record(ELTON, {"notes": "fine", "email": ANNA_EMAIL})
    assert state(backend) == before


def test_delete_record_removes_it_and_frees_its_unique_value(backend: Backend) -> None:
    before = count(backend)
    backend.delete_record(ANNA)
    assert count(backend) == before - 1
    with pytest.raises(NotFound):
        backend.get_record(ANNA)
    with pytest.raises(NotFound):
        backend.delete_record(ANNA)
    successor = backend.create_record("obj_contacts", {"name": "New Anna", "email": ANNA_EMAIL}, "user_bob")
    assert successor.values["email"] == ANNA_EMAIL


def test_create_field_appends_a_usable_field(backend: Backend) -> None:
    obj = backend.get_object("obj_deals")
    n = len(obj.fields)
    f = backend.create_field("obj_deals", {"name": "Risk Level", "type": "number"})
    assert (f.slug, f.position, f.id[:4]) == ("risk_level", n, "fld_")
    assert backend.get_object("obj_deals").summary()["field_count"] == n + 1
    rec = backend.create_record("obj_deals", {"name": "Risky", "risk_level": 9}, "user_bob")
    assert [r.id for r in backend.query_records("obj_deals", {"risk_level": {"$gt": 8}}).records] == [rec.id]


def test_create_field_with_a_reserved_slug_raises_bad_request(backend: Backend) -> None:
    before = state(backend)
    with pytest.raises(BadRequest):
        backend.create_field("obj_deals", {"name": "Updated At", "type": "datetime"})
    assert state(backend) == before


def test_create_field_with_a_taken_slug_raises_conflict(backend: Backend) -> None:
    before = state(backend)
    with pytest.raises(Conflict):
        backend.create_field("obj_deals", {"name": "Value", "type": "number"})
    assert state(backend) == before


def test_create_object_and_its_records(backend: Backend) -> None:
    obj = backend.create_object("Vendors", "truck", [{"name": "Name", "type": "text", "required": True}])
    assert (obj.id, obj.slug, obj.icon) == ("obj_vendors", "vendors", "truck")
    rec = backend.create_record("obj_vendors", {"name": "Acme"}, "user_admin")
    assert backend.get_record(rec.id).object_id == "obj_vendors"
    with pytest.raises(Conflict):
        backend.create_object("vendors", None, [])


def test_backends_share_the_fixture_set_without_sharing_state(fixture_set: FixtureSet) -> None:
    a = Backend(fixture_set, Clock(start=START, frozen=True), IdSource(1))
    b = Backend(fixture_set, Clock(start=START, frozen=True), IdSource(1))
    pristine = state(b)
    a.create_field("obj_contacts", {"name": "Shoe Size", "type": "number"})
    a.create_object("Vendors", None, [])
    a.update_record(ELTON, {"shoe_size": 44})
    a.delete_record(ANNA)
    a.create_record("obj_contacts", {"name": "Only In A"}, "user_bob")
    assert state(b) == pristine
    assert "shoe_size" not in b.get_object("obj_contacts").by_slug
    assert Backend(fixture_set).get_record(ANNA).values["email"] == ANNA_EMAIL


def test_domain_errors_carry_their_kantos_status_and_code() -> None:
    cases = [(NotFound("x"), 404, "NOT_FOUND"), (Conflict("x"), 409, "CONFLICT"),
             (BadRequest.param("page", "bad"), 400, "BAD_REQUEST"),
             (ValidationFailed([{"field": "a", "message": "b"}]), 422, "VALIDATION_ERROR")]  # fmt: skip
    for error, status, code in cases:
        assert isinstance(error, KantosError)
        body = error.body()
        assert set(body) == {"error", "code", "status", "details"}
        assert (body["status"], body["code"]) == (status, code)


# --- reset ---------------------------------------------------------------------------------------


def test_reset_restores_the_exact_fixture_state_after_every_kind_of_change(backend: Backend) -> None:
    pristine = state(backend)
    backend.create_field("obj_contacts", {"name": "Shoe Size", "type": "number"})
    backend.create_field("obj_companies", {"name": "VAT", "type": "text", "unique": True})
    backend.create_object("Vendors", None, [{"name": "Name", "type": "text"}])
    backend.create_record("obj_vendors", {"name": "Acme"}, "user_admin")
    created = backend.create_record("obj_contacts", {"name": "Temp", "email": "temp@example.com"}, "user_bob")
    backend.update_record(created.id, {"shoe_size": 40})
    backend.update_record(ELTON, {"notes": None, "shoe_size": 44, "email": "elton@new.example"})
    backend.update_record(ELTON, {"tags": ["vip"]})
    backend.delete_record(ANNA)
    backend.delete_record(created.id)
    backend.clock.advance(3600)
    assert backend.changes > 0
    assert state(backend) != pristine

    backend.reset()

    assert state(backend) == pristine
    assert backend.changes == 0
    assert "shoe_size" not in backend.get_object("obj_contacts").by_slug
    with pytest.raises(NotFound):
        backend.get_object("obj_vendors")


def test_reset_restores_the_unique_indexes(backend: Backend) -> None:
    elton_email = backend.get_record(ELTON).values["email"]
    backend.delete_record(ANNA)
    backend.update_record(ELTON, {"email": "moved@example.com"})
    backend.create_record("obj_contacts", {"name": "Holder", "email": "held@example.com"}, "user_bob")
    backend.reset()
    with pytest.raises(Conflict):
        backend.create_record("obj_contacts", {"name": "X", "email": ANNA_EMAIL}, "user_bob")
    with pytest.raises(Conflict):
        backend.create_record("obj_contacts", {"name": "X", "email": elton_email}, "user_bob")
    for email in ("moved@example.com", "held@example.com"):
        assert (
            backend.create_record("obj_contacts", {"name": "X", "email": email}, "user_bob").values["email"]
            == email
        )


def test_reset_restarts_seeded_ids(fixture_set: FixtureSet) -> None:
    backend = Backend(fixture_set, Clock(), IdSource(5))
    first = [backend.create_record("obj_contacts", {"name": f"N{i}"}, "user_bob").id for i in range(3)]
    backend.reset()
    assert [
        backend.create_record("obj_contacts", {"name": f"N{i}"}, "user_bob").id for i in range(3)
    ] == first


def test_reset_returns_the_clock_to_real_time(backend: Backend) -> None:
    backend.reset()
    assert not backend.clock.frozen
    assert abs((backend.clock.now() - datetime.now(UTC)).total_seconds()) < 5


def test_failed_verbs_leave_nothing_to_undo(backend: Backend) -> None:
    for attempt in (
        lambda: backend.create_record("obj_contacts", {"email": "x"}, "user_bob"),
        lambda: backend.update_record(ELTON, {"score": "high"}),
        lambda: backend.create_field("obj_contacts", {"name": "ID", "type": "text"}),
        lambda: backend.create_object("Contacts", None, []),
        lambda: backend.delete_record("rec_nope"),
    ):
        with pytest.raises(KantosError):
            attempt()
    assert backend.changes == 0
