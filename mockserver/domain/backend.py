"""The whole mock state and its verbs: objects, fields and records, with an undo log for reset."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from . import query as q
from .auth import PLANS, ApiKey, RateLimiter, User
from .clock import Clock, whole_seconds
from .errors import BadRequest, Conflict, NotFound, ValidationFailed
from .ids import IdSource
from .index import ObjectStore
from .records import Record
from .schema import (
    EMPTY,
    NOT_UNIQUE_TYPES,
    RESERVED_SLUGS,
    FieldDef,
    FieldType,
    ObjectDef,
    check_value,
    slugify,
)
from .webhooks import Webhooks


@dataclass(slots=True)
class FixtureSet:
    """A checked fixture folder (see `fixtures.load_fixtures`); shared read-only by backends."""

    objects: list[ObjectDef]
    users: dict[str, User]
    keys: dict[str, ApiKey]
    records: list[Record]
    #: object id -> unique field slug -> normalised value -> record id, for `records` (the loader
    #: has it from its checks); None: worked out from the records.
    unique: dict[str, dict[str, dict[Any, str]]] | None = None


@dataclass(slots=True)
class Page:
    records: list[Record]
    total: int
    page: int
    per_page: int

    @property
    def total_pages(self) -> int:
        return -(-self.total // self.per_page)


class Backend:
    """One isolated copy of the state. Every verb either succeeds or raises and changes nothing."""

    def __init__(self, fixtures: FixtureSet, clock: Clock | None = None, ids: IdSource | None = None) -> None:
        self.fixtures = fixtures
        self.clock = clock or Clock()
        self.ids = ids or IdSource()
        self.users = fixtures.users
        # Keys are copied: a tenant may change its plan or limits, and reset restores them.
        self.keys = {k: dataclasses.replace(v) for k, v in fixtures.keys.items()}
        self.limiter = RateLimiter()
        self.webhooks = Webhooks(self.clock, self.ids)
        self.objects: dict[str, ObjectDef] = {}
        self.stores: dict[str, ObjectStore] = {}
        self.by_id: dict[str, Record] = {}
        # object id -> field slug -> normalised value -> record id, for unique fields
        self.unique: dict[str, dict[str, dict[Any, str]]] = {}
        #: How to take back each change since the last reset: a function and its arguments. Record
        #: writes keep one tuple each, `(Backend._remove, self, rec)`, rather than a closure (a
        #: function, its cells and their tuple): these live until the next reset, and every
        #: object the garbage collector tracks makes its full collections longer.
        self._undo: list[tuple[Any, ...]] = []
        self._unique_borrowed = False
        for obj in fixtures.objects:
            self._add_object(_copy_object(obj))
        self._load(fixtures.records, fixtures.unique)
        self._undo.clear()

    def _load(self, records: list[Record], unique: dict[str, dict[str, dict[Any, str]]] | None) -> None:
        """`_insert` of each record, in bulk: no index is built yet, and the unique values' maps
        are the loader's when it has them (reading them off 1,000,000 records would decode each
        record's JSON). They are shared with the fixture set, and so with other tenants, until
        the first write copies them (`_own_unique`)."""
        stores = self.stores
        for rec in records:
            stores[rec.object_id].records[rec.id] = rec
        self.by_id.update((rec.id, rec) for rec in records)
        if unique is None:
            for rec in records:
                self._index_unique(rec, add=True)
            return
        for object_id, taken in self.unique.items():
            for slug in taken:
                taken[slug] = unique.get(object_id, {}).get(slug, {})
        self._unique_borrowed = True

    def _own_unique(self) -> None:
        """Copy the unique values' maps shared with the fixture set, before a change to them."""
        for taken in self.unique.values():
            for slug in taken:
                taken[slug] = dict(taken[slug])
        self._unique_borrowed = False

    # --- reset ---------------------------------------------------------------------------

    @property
    def changes(self) -> int:
        return len(self._undo)

    def reset(self) -> None:
        """Back to the fixture state, undoing each change since the last reset in reverse."""
        while self._undo:
            undo, *args = self._undo.pop()
            undo(*args)
        for name, key in self.fixtures.keys.items():
            mine = self.keys[name]
            mine.plan, mine.per_minute, mine.per_day = key.plan, key.per_minute, key.per_day
        self.limiter.reset()
        self.webhooks.reset()
        self.clock.reset()
        self.ids.reset()

    def replace_state(self, objects: list[ObjectDef], records: list[Record]) -> None:
        """Swap in a whole checked state (an import, see `state.py`); one undo entry swaps the old
        one back, so a later reset still returns to the fixture set."""
        if self._unique_borrowed:
            self._own_unique()
        saved = (self.objects, self.stores, self.by_id, self.unique)
        self.objects, self.stores, self.by_id, self.unique = {}, {}, {}, {}
        for obj in objects:
            self._add_object(obj)
        for rec in records:
            self._insert(rec)

        def undo() -> None:
            self.objects, self.stores, self.by_id, self.unique = saved

        self._undo.append((undo,))

    # --- keys ----------------------------------------------------------------------------

    def set_key_limits(
        self, key: str, plan: str | None = None, per_minute: int | None = None, per_day: int | None = None
    ) -> ApiKey:
        """Change a key's plan (its limits follow) and/or set custom limits; reset undoes it."""
        api_key = self.keys.get(key)
        if api_key is None:
            raise NotFound(f"API key {key!r} not found", {"key": key, "id": key})
        if plan is not None:
            if plan not in PLANS:
                raise BadRequest.field("plan", f"expected one of {list(PLANS)}, got {plan!r}")
            api_key.plan = plan
            api_key.per_minute, api_key.per_day = PLANS[plan]
        if per_minute is not None:
            api_key.per_minute = per_minute
        if per_day is not None:
            api_key.per_day = per_day
        return api_key

    # --- objects and fields --------------------------------------------------------------

    def list_objects(self) -> list[ObjectDef]:
        return list(self.objects.values())

    def get_object(self, object_id: str) -> ObjectDef:
        obj = self.objects.get(object_id)
        if obj is None:
            raise NotFound(f"Object {object_id!r} not found", {"object_id": object_id, "id": object_id})
        return obj

    def create_object(self, name: str, icon: str | None, fields: list[dict[str, Any]]) -> ObjectDef:
        # Order of checks (CONTRACT.md): 400 for a field's form, then 422, then 409.
        slug = slugify(name)
        object_id = f"obj_{slug}"
        obj = ObjectDef(object_id, name, slug, icon)
        defs: list[FieldDef] = []
        errors: list[dict[str, str]] = []
        if not slug:
            errors.append({"field": "name", "message": "must contain a letter or a digit"})
        duplicate: tuple[int, str] | None = None
        seen: set[str] = set()
        for i, spec in enumerate(fields):
            f = self._field_def(obj, spec, f"fields[{i}]", errors, own_object=object_id)
            if f is None:
                continue
            if f.slug in seen and duplicate is None:
                duplicate = (i, f.slug)
            seen.add(f.slug)
            f.position = len(defs)
            defs.append(f)
        if errors:
            raise ValidationFailed(errors)
        if object_id in self.objects:
            raise Conflict(
                f"An object with slug {slug!r} already exists",
                {"field": "slug", "value": slug, "id": object_id},
            )
        if duplicate is not None:
            raise Conflict(
                f"Two fields share the slug {duplicate[1]!r}",
                {"field": f"fields[{duplicate[0]}].name", "value": duplicate[1]},
            )
        for f in defs:
            obj.add_field(f)
        self._add_object(obj)
        self._undo.append((Backend._drop_object, self, object_id))
        return obj

    def create_field(self, object_id: str, spec: dict[str, Any]) -> FieldDef:
        obj = self.get_object(object_id)
        errors: list[dict[str, str]] = []
        f = self._field_def(obj, spec, "", errors, own_object=object_id)
        if f is None or errors:
            raise ValidationFailed(errors)
        if f.slug in obj.by_slug:
            raise Conflict(
                f"{object_id} already has a field with slug {f.slug!r}",
                {"field": "name", "value": f.slug, "id": obj.by_slug[f.slug].id},
            )
        f.position = len(obj.fields)
        obj.add_field(f)
        if f.unique:
            self.unique[object_id][f.slug] = {}

        def undo() -> None:
            obj.fields.pop()
            del obj.by_slug[f.slug]
            self.unique[object_id].pop(f.slug, None)
            self.stores[object_id].drop_index(f.slug)

        self._undo.append((undo,))
        return f

    def _field_def(
        self,
        obj: ObjectDef,
        spec: dict[str, Any],
        where: str,
        errors: list[dict[str, str]],
        own_object: str,
    ) -> FieldDef | None:
        def err(key: str, message: str) -> None:
            errors.append({"field": f"{where}.{key}" if where else key, "message": message})

        name = spec["name"]
        slug = slugify(name)
        if not slug:
            err("name", "must contain a letter or a digit")
            return None
        if slug in RESERVED_SLUGS:
            raise BadRequest.field(
                f"{where}.name" if where else "name",
                f"the slug {slug!r} is reserved; choose another name",
                reserved=sorted(RESERVED_SLUGS),
            )
        try:
            ftype = FieldType(spec["type"])
        except ValueError:
            err(
                "type",
                f"unknown field type {spec['type']!r}; use one of {[t.value for t in FieldType]}",
            )
            return None
        options = spec.get("options")
        opts = options or {}
        if ftype == FieldType.STATUS:
            _check_choices(opts, "stages", err)
        elif ftype in (FieldType.DROPDOWN, FieldType.MULTI_SELECT):
            _check_choices(opts, "choices", err)
        elif ftype == FieldType.REFERENCE:
            target = opts.get("object_id")
            if target != own_object and target not in self.objects:
                err("options.object_id", f"expected the id of an existing object, got {target!r}")
        unique = bool(spec.get("unique", False))
        if unique and ftype in NOT_UNIQUE_TYPES:
            err("unique", f"a {ftype} field cannot be unique")
        f = FieldDef(
            id=self.ids.new("fld_"),
            name=name,
            slug=slug,
            type=ftype,
            required=bool(spec.get("required", False)),
            unique=unique,
            options=options,
        )
        if "default_value" in spec and spec["default_value"] is not None and not errors:
            value, message = check_value(f, spec["default_value"], self._record_exists, self._user_exists)
            if message:
                err("default_value", message)
            elif value is not EMPTY:
                f.default_value, f.has_default = value, True
        return f

    def _add_object(self, obj: ObjectDef) -> None:
        self.objects[obj.id] = obj
        self.stores[obj.id] = ObjectStore()
        self.unique[obj.id] = {f.slug: {} for f in obj.fields if f.unique}

    def _drop_object(self, object_id: str) -> None:
        for rec in list(self.stores[object_id].records.values()):
            del self.by_id[rec.id]
        del self.objects[object_id], self.stores[object_id], self.unique[object_id]

    # --- records -------------------------------------------------------------------------

    def get_record(self, record_id: str) -> Record:
        rec = self.by_id.get(record_id)
        if rec is None:
            raise NotFound(f"Record {record_id!r} not found", {"record_id": record_id, "id": record_id})
        return rec

    def query_records(
        self,
        object_id: str,
        filters: dict[str, Any] | None = None,
        sort: str | None = None,
        order: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> Page:
        obj = self.get_object(object_id)
        query = q.compile_query(obj, filters, sort, order)
        store = self.stores[object_id]
        ids, total = q.run(store, query, page, per_page)
        return Page(list(map(store.records.__getitem__, ids)), total, page, per_page)

    def create_record(self, object_id: str, field_values: dict[str, Any], user_id: str) -> Record:
        obj = self.get_object(object_id)
        values, errors = self._check_values(obj, field_values)
        for f in obj.fields:
            if f.has_default and f.slug not in field_values:
                values[f.slug] = f.default_value
        self._check_required(obj, values, errors)
        if errors:
            raise ValidationFailed(errors)
        self._check_unique(obj, values, None)
        now = whole_seconds(self.clock.now_us())
        rec = Record(self.ids.new("rec_"), object_id, values, now, now, user_id)
        self._insert(rec)
        self._undo.append((Backend._remove, self, rec))
        self.webhooks.emit("record.created", rec.to_json)
        return rec

    def update_record(self, record_id: str, field_values: dict[str, Any]) -> Record:
        old = self.get_record(record_id)
        obj = self.objects[old.object_id]
        changes, errors = self._check_values(obj, field_values)
        # The record's values in their order, less those the write names (set or emptied), then
        # the ones it sets, in its order.
        merged = old.values.copy()
        for slug in field_values:
            merged.pop(slug, None)
        merged.update(changes)
        self._check_required(obj, merged, errors)
        if errors:
            raise ValidationFailed(errors)
        self._check_unique(obj, changes, old.id)  # the values it keeps were its own already
        # Whole seconds, unless that would not move `updated_at` forward: then 1 ms past it.
        new = old.replace(merged, max(whole_seconds(self.clock.now_us()), old.updated_at + 1000))
        self._replace(old, new, {*field_values, "updated_at"})
        self._undo.append((Backend._replace, self, new, old))
        self.webhooks.emit("record.updated", new.to_json)
        return new

    def delete_record(self, record_id: str) -> None:
        rec = self.get_record(record_id)
        self._remove(rec)
        self._undo.append((Backend._insert, self, rec))
        self.webhooks.emit("record.deleted", rec.to_json)

    def _check_values(
        self, obj: ObjectDef, field_values: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        values: dict[str, Any] = {}
        errors: list[dict[str, str]] = []
        by_slug, record_exists, user_exists = obj.by_slug, self._record_exists, self._user_exists
        for slug, raw in field_values.items():
            f = by_slug.get(slug)
            if f is None:
                errors.append(
                    {
                        "field": slug,
                        "message": f"unknown field for {obj.id}; its fields are "
                        + ", ".join(x.slug for x in obj.fields),
                    }
                )
                continue
            value, message = check_value(f, raw, record_exists, user_exists)
            if message:
                errors.append({"field": slug, "message": message})
            elif value is not EMPTY:
                values[slug] = value
        return values, errors

    @staticmethod
    def _check_required(obj: ObjectDef, values: dict[str, Any], errors: list[dict[str, str]]) -> None:
        for f in obj.fields:
            if f.required and f.slug not in values and not any(e["field"] == f.slug for e in errors):
                errors.append({"field": f.slug, "message": "is required and cannot be empty"})

    def _check_unique(self, obj: ObjectDef, values: dict[str, Any], own_id: str | None) -> None:
        for slug, taken in self.unique[obj.id].items():
            if slug in values:
                holder = taken.get(_unique_key(obj.by_slug[slug], values[slug]))
                if holder is not None and holder != own_id:
                    raise Conflict(
                        f"{slug!r} must be unique: {values[slug]!r} is already taken by {holder}",
                        {"field": slug, "value": values[slug], "record_id": holder},
                    )

    def _record_exists(self, object_id: str, record_id: str) -> bool:
        rec = self.by_id.get(record_id)
        return rec is not None and rec.object_id == object_id

    def _user_exists(self, user_id: str) -> bool:
        return user_id in self.users

    # --- the three primitive changes (each undoes another) -------------------------------

    def _insert(self, rec: Record) -> None:
        self.stores[rec.object_id].insert(rec)
        self.by_id[rec.id] = rec
        self._index_unique(rec, add=True)

    def _remove(self, rec: Record) -> None:
        self.stores[rec.object_id].remove(rec)
        del self.by_id[rec.id]
        self._index_unique(rec, add=False)

    def _replace(self, old: Record, new: Record, touched: AbstractSet[str] | None = None) -> None:
        self.stores[new.object_id].replace(old, new, touched)
        self.by_id[new.id] = new
        uniques = self.unique[new.object_id]
        if uniques and (touched is None or not touched.isdisjoint(uniques)):
            old_values, new_values = old.values, new.values
            if any(old_values.get(slug) != new_values.get(slug) for slug in uniques):
                self._index_unique(old, add=False)
                self._index_unique(new, add=True)

    def _index_unique(self, rec: Record, add: bool) -> None:
        if self._unique_borrowed:
            self._own_unique()
        obj = self.objects[rec.object_id]
        for slug, taken in self.unique[rec.object_id].items():
            if slug in rec.values:
                key = _unique_key(obj.by_slug[slug], rec.values[slug])
                if add:
                    taken[key] = rec.id
                elif taken.get(key) == rec.id:
                    del taken[key]


_EMAIL = FieldType.EMAIL  # looked up once: an enum member's lookup goes through its metaclass


def _unique_key(f: FieldDef, value: Any) -> Any:
    return value.lower() if f.type == _EMAIL else value


def _check_choices(opts: dict[str, Any], key: str, err: Callable[[str, str], None]) -> None:
    choices = opts.get(key)
    if (
        not isinstance(choices, list)
        or not choices
        or not all(isinstance(c, str) and c for c in choices)
        or len(set(choices)) != len(choices)
    ):
        err(f"options.{key}", "expected a non-empty array of distinct, non-empty strings")


def _copy_object(obj: ObjectDef) -> ObjectDef:
    """Objects are mutated by schema writes; fields never are, so they are shared."""
    clone = copy.copy(obj)
    clone.fields = list(obj.fields)
    clone.by_slug = dict(obj.by_slug)
    return clone
