"""The reference answers: the mock's own query engine run on the server's schema and records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain import query as engine
from ..domain.errors import BadRequest
from ..domain.index import ObjectStore
from ..domain.records import KeySpec, Record, key_spec
from ..domain.schema import FieldDef, FieldType, ObjectDef, parse_datetime_us

SYSTEM_KEYS = ("id", "created_at", "updated_at", "created_by")


class OracleInputError(ValueError):
    """The server's object or record could not be read into the engine's model."""


def object_def(doc: dict[str, Any]) -> tuple[ObjectDef, list[str]]:
    """The ObjectDef of `GET /api/crm/objects/{id}`, and the slugs of fields of unknown types."""
    try:
        obj = ObjectDef(str(doc["id"]), str(doc.get("name", "")), str(doc.get("slug", "")), doc.get("icon"))
        fields = doc["fields"]
    except (KeyError, TypeError) as exc:
        raise OracleInputError(f"the object has no {exc} member") from exc
    unknown: list[str] = []
    for i, f in enumerate(fields if isinstance(fields, list) else []):
        if not isinstance(f, dict) or not isinstance(f.get("slug"), str):
            raise OracleInputError(f"fields[{i}] has no slug")
        try:
            ftype = FieldType(str(f.get("type")))
        except ValueError:
            unknown.append(f["slug"])
            continue
        options = f.get("options")
        obj.add_field(
            FieldDef(
                id=str(f.get("id", "")),
                name=str(f.get("name", f["slug"])),
                slug=f["slug"],
                type=ftype,
                required=bool(f.get("required", False)),
                unique=bool(f.get("unique", False)),
                position=int(f.get("position", i)) if isinstance(f.get("position", i), int) else i,
                options=options if isinstance(options, dict) else None,
                default_value=f.get("default_value"),
                has_default="default_value" in f and f["default_value"] is not None,
            )
        )
    return obj, unknown


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def record(doc: dict[str, Any]) -> Record:
    """A Record from its JSON; empty values are dropped, as the engine stores them."""
    try:
        created = parse_datetime_us(doc["created_at"])
        updated = parse_datetime_us(doc["updated_at"])
        values = doc["field_values"]
        rid, object_id, created_by = doc["id"], doc["object_id"], doc["created_by"]
    except (KeyError, TypeError) as exc:
        raise OracleInputError(f"a record has no {exc} member") from exc
    if created is None or updated is None:
        raise OracleInputError(f"record {rid}: created_at/updated_at are not UTC timestamps")
    if not isinstance(values, dict):
        raise OracleInputError(f"record {rid}: field_values is not an object")
    kept = {k: v for k, v in values.items() if not is_empty(v)}
    return Record(str(rid), str(object_id), kept, created, updated, str(created_by))


@dataclass(slots=True)
class Expected:
    """What the contract says a query returns: a page, or a 400 naming what is wrong."""

    ids: list[str]
    total: int
    page: int
    per_page: int
    error: dict[str, Any] | None = None

    @property
    def total_pages(self) -> int:
        return -(-self.total // self.per_page)


class Oracle:
    """One object's schema and records, queried through `mockserver.domain.query`."""

    def __init__(self, obj: ObjectDef, records: list[Record]) -> None:
        self.obj = obj
        self.store = ObjectStore()
        for rec in records:
            self.store.insert(rec)

    @property
    def records(self) -> dict[str, Record]:
        return self.store.records

    def spec(self, slug: str) -> KeySpec | None:
        return key_spec(self.obj, slug)

    def query(
        self,
        filters: dict[str, Any] | None = None,
        sort: str | None = None,
        order: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> Expected:
        try:
            compiled = engine.compile_query(self.obj, filters, sort, order)
        except BadRequest as exc:
            return Expected([], 0, page, per_page, error=exc.details)
        ids, total = engine.run(self.store, compiled, page, per_page)
        return Expected(ids, total, page, per_page)

    def value(self, rid: str, slug: str) -> Any:
        """The stored value of a field or system field, None when empty or unknown."""
        rec = self.store.records.get(rid)
        spec = key_spec(self.obj, slug)
        if rec is None or spec is None:
            return None
        if slug in ("created_at", "updated_at"):
            return getattr(rec, slug)
        return spec.get(rec)

    def sort_key(self, rid: str, slug: str) -> Any:
        """The engine's sort key of a record for `slug`, None when the value is empty."""
        rec = self.store.records.get(rid)
        spec = key_spec(self.obj, slug)
        if rec is None or spec is None:
            return None
        value = spec.get(rec)
        return None if value is None else spec.sort_key(value)
