"""The kit's own data: a scratch object (or an existing one), its records, the snapshot, the cleanup."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..domain.schema import STRING_EMPTYABLE, FieldDef, FieldType, ObjectDef
from .client import Client, Exchange
from .oracle import Oracle, OracleInputError, object_def, record
from .report import Finding, Report
from .shapes import check_error

OMIT: Any = object()

# Record i's value of the field at position pos is LIST[(7 * i + 3 * pos) % len(LIST)]: each list's
# length must be coprime with 7, or a field would cycle through only some of its values
# (tests/test_conformance_rules.py checks it).

#: The scratch object's fields: one of every type, with options that make sorting interesting
#: (stages out of alphabetical order, choices in mixed case).
SCRATCH_FIELDS: list[dict[str, Any]] = [
    {"name": "Name", "type": "text", "required": True},
    {"name": "Notes", "type": "long_text"},
    {"name": "Score", "type": "number"},
    {"name": "Amount", "type": "currency", "options": {"currency": "USD"}},
    {"name": "Email", "type": "email", "unique": True},
    {"name": "Phone", "type": "phone"},
    {"name": "Website", "type": "url"},
    {"name": "Avatar", "type": "image"},
    {"name": "Birthday", "type": "date"},
    {"name": "Last Seen", "type": "datetime"},
    {"name": "Active", "type": "boolean"},
    {
        "name": "Stage",
        "type": "status",
        "options": {"stages": ["New", "Contacted", "Won", "Lost"]},
        "default_value": "New",
    },
    {"name": "Tier", "type": "dropdown", "options": {"choices": ["Gold", "silver", "Bronze"]}},
    {"name": "Tags", "type": "multi_select", "options": {"choices": ["vip", "Beta", "news", "Partner"]}},
    {"name": "Owner", "type": "user"},
]
ADDED_FIELD = {"name": "Nickname", "type": "text"}

_TEXT = [
    "alpha Bravo",
    "Alpha bravo",
    "ALPHA",
    "charlie",
    "Charlie Delta",
    "delta echo",
    "Écho",
    "echo",
    "foxtrot Golf",
    "golf",
    "Zulu",
    "mike November",
    "Øresund Bridge",
    "Дмитрий Иванов",
    "bravo Zulu",
]
_LONG = ["First line\nsecond Line", "notes about ALPHA", "short", "Notes about alpha", "Ünïcode text"]
_NUMBER = [-5, 0, 1.5, 3, 3, 7, 10, 42, 1000000, -0.25]
_CURRENCY = [0, 99.99, 100, 100, 250.5, 12.25, 5000, 0.5]
_EMAIL_USERS = ["Ann", "bob", "CAROL", "dave", "Eve"]
_PHONE = ["+1 (555) 010-0001", "+44 20 7946 0958", "555.010.0002", "+1 (555) 010-0001", "0123 456 789"]
_URL = ["https://example.com/a", "http://Example.org/B", "https://example.com/a", "https://kantos.test/p?q=1"]
_IMAGE = ["https://img.example.com/1.png", "https://IMG.example.com/2.png", "https://img.example.com/1.png"]
_DATE = ["2023-01-15", "2024-02-29", "2024-02-29", "1999-12-31", "2024-12-01", "2000-01-01"]
_DATETIME = [
    "2024-01-15T10:30:00Z",
    "2024-01-15T12:30:00+02:00",  # the same instant as the first: a tie in time order
    "2023-06-01T00:00:00-05:00",
    "2024-07-04T09:15:30.250Z",
    "2024-01-15T10:30:00Z",
    "2025-03-09T23:59:00+05:30",
    "2024-03-01T01:30:00+03:00",  # 2024-02-29 in UTC: a date operand must not read it as March
    "2023-12-31T23:30:00-01:00",  # 2024-01-01 in UTC
]


@dataclass(slots=True)
class Scratch:
    """Where the behaviour suite works: the object, what the kit created, and the oracle."""

    obj: ObjectDef
    own_object: bool
    record_ids: list[str] = field(default_factory=list)
    oracle: Oracle | None = None
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # record id -> JSON as listed
    users: list[str] = field(default_factory=list)
    references: dict[str, list[str]] = field(default_factory=dict)  # object id -> record ids
    unknown_fields: list[str] = field(default_factory=list)


class Setup:
    """Creates the scratch data the battery runs on, and removes it again."""

    def __init__(self, client: Client, report: Report, rng: random.Random, quick: bool, marker: str) -> None:
        self.client = client
        self.report = report
        self.rng = rng
        self.quick = quick
        self.marker = marker
        self.objects: list[dict[str, Any]] = []
        self.battery_records: set[str] = set()

    # --- discovery ---------------------------------------------------------------------------

    def discover(self) -> bool:
        ex = self.client.get("/api/crm/objects")
        check = ("setup.list-objects", "setup", "GET /api/crm/objects lists the objects")
        self.report.ran(*check)
        data = ex.json.get("data") if isinstance(ex.json, dict) else None
        if ex.status in (401, 403):
            self.report.problem(
                f"the server refused the API key ({ex.summary(160)}): "
                "pass a server key of the server under test"
            )
            return False
        if ex.status != 200 or not isinstance(data, list):
            self.report.fail(
                *check,
                Finding('200 {"data": [{"id", "name", "slug", "icon", "field_count"}]}', ex.summary(), ex),
            )
            return False
        self.objects = [o for o in data if isinstance(o, dict) and isinstance(o.get("id"), str)]
        return True

    def get_object(self, object_id: str) -> tuple[ObjectDef, list[str]] | None:
        ex = self.client.get(f"/api/crm/objects/{object_id}")
        check = ("setup.get-object", "setup", "GET /api/crm/objects/{id} returns the object with its fields")
        self.report.ran(*check)
        if ex.status == 200 and isinstance(ex.json, dict):
            try:
                return object_def(ex.json)
            except OracleInputError as exc:
                self.report.fail(*check, Finding("an object with fields: [Field]", str(exc), ex))
                return None
        self.report.fail(*check, Finding("200 and the object", ex.summary(), ex))
        return None

    def _peek(self, object_id: str, n: int) -> tuple[list[dict[str, Any]], int]:
        ex = self.client.query({"object_id": object_id, "sort": "id", "per_page": n})
        body = ex.json if isinstance(ex.json, dict) else {}
        data = [r for r in body.get("data") or [] if isinstance(r, dict)]
        pagination = body.get("pagination")
        total = pagination.get("total") if isinstance(pagination, dict) else None
        return data, total if isinstance(total, int) else len(data)

    # --- the scratch object ------------------------------------------------------------------

    def prepare(self) -> Scratch | None:
        """Make the scratch object (admin keys) or choose an existing one; create the records."""
        if not self.discover():
            return None
        users: list[str] = []
        peeks: dict[str, tuple[list[dict[str, Any]], int]] = {}
        for o in self.objects[:12]:
            peeks[o["id"]] = self._peek(o["id"], 5)
            users += [r["created_by"] for r in peeks[o["id"]][0] if isinstance(r.get("created_by"), str)]
        target = next((oid for oid, (recs, _) in peeks.items() if recs), None)
        scratch = self._create_object(target)
        if scratch is None:
            scratch = self._choose_existing(peeks)
            if scratch is None:
                return None
        scratch.users = sorted(set(users))
        for oid, (recs, _) in peeks.items():
            scratch.references[oid] = [r["id"] for r in recs if isinstance(r.get("id"), str)]
        self._create_records(scratch)
        return scratch

    def _create_object(self, reference_target: str | None) -> Scratch | None:
        name = f"Conformance {self.marker}"
        fields = [dict(f) for f in SCRATCH_FIELDS]
        if reference_target is not None:
            fields.append({"name": "Parent", "type": "reference", "options": {"object_id": reference_target}})
        ex = self.client.request(
            "POST", "/api/crm/objects", json_body={"name": name, "icon": "beaker", "fields": fields}
        )
        check = (
            "setup.create-object",
            "setup",
            "POST /api/crm/objects creates an object with fields of every type",
        )
        if ex.status == 403:
            self.report.progress("the key may not create objects (403): using an existing object")
            self._check_error_shape(ex, 403, "FORBIDDEN")
            return None
        self.report.ran(*check)
        body = ex.json if isinstance(ex.json, dict) else {}
        if ex.status != 201 or not isinstance(body.get("id"), str):
            self.report.fail(*check, Finding("201 and the new object", ex.summary(), ex))
            return None
        object_id = body["id"]
        self.report.progress(f"created scratch object {object_id} ({name!r}, {len(fields)} fields)")
        self.report.note(
            f"the scratch object {object_id} ({name!r}) stays on the server: the Kantos API has no "
            "way to delete an object. The kit deleted the records it created in it."
        )
        expected_slugs = ["name", "notes", "score", "amount", "email", "phone", "website", "avatar"]
        got = [f.get("slug") for f in body.get("fields") or [] if isinstance(f, dict)]
        if got[: len(expected_slugs)] != expected_slugs or body.get("slug") != f"conformance_{self.marker}":
            self.report.fail(
                "setup.slugs",
                "setup",
                "slugs are the name lowercased, runs of other characters turned into _",
                Finding(
                    f"object slug conformance_{self.marker}, field slugs {expected_slugs} …",
                    f"object slug {body.get('slug')!r}, field slugs {got[: len(expected_slugs)]}",
                    ex,
                ),
            )
        else:
            self.report.ran(
                "setup.slugs",
                "setup",
                "slugs are the name lowercased, runs of other characters turned into _",
            )
        added = self.client.request("POST", f"/api/crm/objects/{object_id}/fields", json_body=ADDED_FIELD)
        add_check = ("setup.create-field", "setup", "POST /api/crm/objects/{id}/fields adds a field")
        self.report.ran(*add_check)
        if added.status != 201:
            self.report.fail(*add_check, Finding("201 and the new field", added.summary(), added))
        got_obj = self.get_object(object_id)
        if got_obj is None:
            return None
        obj, unknown = got_obj
        if added.status == 201 and "nickname" not in obj.by_slug:
            self.report.fail(
                *add_check,
                Finding("the object then lists the field nickname", "it does not", self.client.log[-1]),
            )
        self._check_field_count(object_id, len(obj.fields) + len(unknown))
        return Scratch(obj, own_object=True, unknown_fields=unknown)

    def _check_field_count(self, object_id: str, count: int) -> None:
        ex = self.client.get("/api/crm/objects")
        check = ("setup.field-count", "setup", "GET /api/crm/objects lists each object with its field_count")
        self.report.ran(*check)
        data = ex.json.get("data") if isinstance(ex.json, dict) else None
        listed = next((o for o in data or [] if isinstance(o, dict) and o.get("id") == object_id), None)
        if listed is None or listed.get("field_count") != count:
            got = "not listed" if listed is None else f"field_count {listed.get('field_count')!r}"
            self.report.fail(*check, Finding(f"{object_id} with field_count {count}", got, ex))

    def _choose_existing(self, peeks: dict[str, tuple[list[dict[str, Any]], int]]) -> Scratch | None:
        best: tuple[tuple[int, int], ObjectDef, list[str]] | None = None
        for o in self.objects[:12]:
            got = self.get_object(o["id"])
            if got is None:
                continue
            obj, unknown = got
            total = peeks.get(obj.id, ([], 0))[1]
            if total > 20_000:
                continue
            score = (len({f.type for f in obj.fields}), -total)
            if best is None or score > best[0]:
                best = (score, obj, unknown)
        if best is None:
            self.report.problem("no object to work in: none could be read, and the key cannot create one")
            return None
        _, obj, unknown = best
        self.report.progress(f"working in the existing object {obj.id} ({len(obj.fields)} fields)")
        return Scratch(obj, own_object=False, unknown_fields=unknown)

    # --- records -----------------------------------------------------------------------------

    def record_count(self, scratch: Scratch) -> int:
        if scratch.own_object:
            return 26 if self.quick else 40
        return 10 if self.quick else 16

    def _create_records(self, scratch: Scratch) -> None:
        check = ("setup.create-records", "setup", "POST /api/crm/record creates records with valid values")
        n = self.record_count(scratch)
        failures = 0
        for i in range(n):
            values = self.values_for(scratch, i)
            ex = self.client.request(
                "POST", "/api/crm/record", json_body={"object_id": scratch.obj.id, "field_values": values}
            )
            self.report.ran(*check)
            rid = ex.json.get("id") if isinstance(ex.json, dict) else None
            if ex.status == 201 and isinstance(rid, str):
                scratch.record_ids.append(rid)
                self.battery_records.add(rid)
                created_by = ex.json.get("created_by")
                if isinstance(created_by, str) and created_by not in scratch.users:
                    scratch.users.append(created_by)
            else:
                failures += 1
                self.report.fail(*check, Finding("201 and the record", ex.summary(), ex))
                if failures >= 3 and not scratch.record_ids:
                    break
        self.report.progress(f"created {len(scratch.record_ids)} records in {scratch.obj.id}")

    def values_for(self, scratch: Scratch, i: int, variant: int = 0) -> dict[str, Any]:
        """Valid field_values for record number `i`: ties, mixed case, and empty values of each form."""
        out: dict[str, Any] = {}
        for pos, f in enumerate(scratch.obj.fields):
            v = self._value(scratch, f, i + variant * 7, pos)
            if v is not OMIT:
                out[f.slug] = v
        return out

    def _value(self, scratch: Scratch, f: FieldDef, i: int, pos: int) -> Any:
        # Every fifth record (offset per field) leaves a non-required field empty, in each of
        # the three ways: absent, null, and "" or [] where the type allows it.
        if not f.required and (i + pos) % 5 == 2:
            form = (i // 5 + pos) % 3
            if form == 0 and not f.has_default:
                return OMIT
            if form == 2 and f.type in STRING_EMPTYABLE:
                return ""
            if form == 2 and f.type == FieldType.MULTI_SELECT:
                return []
            return None
        k = i * 7 + pos * 3
        unique = f"{self.marker}{i:03d}"
        t = f.type
        if t == FieldType.TEXT:
            text = _TEXT[k % len(_TEXT)]
            if not scratch.own_object:
                text = f"cf {self.marker} {text}"
            return f"{text} {unique}" if f.unique else text
        if t == FieldType.LONG_TEXT:
            return _LONG[k % len(_LONG)]
        if t == FieldType.NUMBER:
            return _NUMBER[k % len(_NUMBER)] + (i if f.unique else 0)
        if t == FieldType.CURRENCY:
            return _CURRENCY[k % len(_CURRENCY)] + (i if f.unique else 0)
        if t == FieldType.EMAIL:
            user = _EMAIL_USERS[k % len(_EMAIL_USERS)]
            return (
                f"{user}.{unique}@Example.com"
                if f.unique or not scratch.own_object
                else f"{user}@example.com"
            )
        if t == FieldType.PHONE:
            return _PHONE[k % len(_PHONE)] if not f.unique else f"+1 555 {i:07d}"
        if t == FieldType.URL:
            return _URL[k % len(_URL)] if not f.unique else f"https://example.com/{unique}"
        if t == FieldType.IMAGE:
            return _IMAGE[k % len(_IMAGE)] if not f.unique else f"https://img.example.com/{unique}.png"
        if t == FieldType.DATE:
            return _DATE[k % len(_DATE)] if not f.unique else f"20{i % 100:02d}-0{1 + i % 9}-1{i % 10}"
        if t == FieldType.DATETIME:
            return _DATETIME[k % len(_DATETIME)] if not f.unique else f"2024-01-01T00:{i % 60:02d}:00Z"
        if t == FieldType.BOOLEAN:
            return k % 3 != 1
        if t in (FieldType.STATUS, FieldType.DROPDOWN):
            return f.choices[k % len(f.choices)] if f.choices else OMIT
        if t == FieldType.MULTI_SELECT:
            if not f.choices:
                return OMIT
            a, b = f.choices[k % len(f.choices)], f.choices[(k + 1) % len(f.choices)]
            return [a] if k % 3 == 0 or a == b else [b, a] if k % 3 == 1 else [a, b]
        if t == FieldType.REFERENCE:
            ids = scratch.references.get(f.target_object or "", [])
            return ids[k % len(ids)] if ids else (None if not f.required else OMIT)
        if t == FieldType.USER:
            return (
                scratch.users[k % len(scratch.users)] if scratch.users else (None if not f.required else OMIT)
            )
        return OMIT

    # --- the snapshot the oracle works on -----------------------------------------------------

    def snapshot(self, scratch: Scratch) -> Oracle | None:
        """Every record of the object, read page by page sorted by id, as the oracle's input."""
        check = (
            "setup.read-all",
            "setup",
            "paging through an object sorted by id returns each record exactly once",
        )
        docs: dict[str, dict[str, Any]] = {}
        page, per_page, total = 1, 100, None
        while True:
            ex = self.client.query(
                {
                    "object_id": scratch.obj.id,
                    "sort": "id",
                    "order": "asc",
                    "page": page,
                    "per_page": per_page,
                }
            )
            self.report.ran(*check)
            body = ex.json if isinstance(ex.json, dict) else None
            data = body.get("data") if body else None
            pagination = body.get("pagination") if body else None
            if ex.status != 200 or not isinstance(data, list) or not isinstance(pagination, dict):
                self.report.fail(
                    *check, Finding('200 {"data": [...], "pagination": {...}}', ex.summary(), ex)
                )
                self.report.problem(f"could not read the records of {scratch.obj.id}; no oracle")
                return None
            total = pagination.get("total") if isinstance(pagination.get("total"), int) else total
            for doc in data:
                if isinstance(doc, dict) and isinstance(doc.get("id"), str):
                    if doc["id"] in docs:
                        self.report.fail(
                            *check, Finding("each record once", f"{doc['id']} again on page {page}", ex)
                        )
                    docs[doc["id"]] = doc
            if not data or page >= 500 or (isinstance(total, int) and page * per_page >= total):
                break
            page += 1
        if isinstance(total, int) and total != len(docs):
            self.report.fail(
                *check,
                Finding(
                    f"{total} records (pagination.total)", f"{len(docs)} distinct records over {page} pages"
                ),
            )
        missing = [rid for rid in scratch.record_ids if rid not in docs]
        if missing:
            self.report.fail(
                *check,
                Finding(
                    "every record the kit created",
                    f"{len(missing)} missing, e.g. {missing[0]}",
                    self.client.log[-1],
                ),
            )
        try:
            records = [record(doc) for doc in docs.values()]
        except OracleInputError as exc:
            self.report.fail(
                "setup.record-shape",
                "setup",
                "records have id, object_id, field_values, created_at, updated_at, created_by",
                Finding("a Record with UTC timestamps", str(exc), self.client.log[-1]),
            )
            records = []
            for doc in docs.values():
                try:
                    records.append(record(doc))
                except OracleInputError:
                    continue
        scratch.raw = docs
        scratch.oracle = Oracle(scratch.obj, records)
        return scratch.oracle

    # --- cleanup -----------------------------------------------------------------------------

    def cleanup(self, keep: bool = False) -> None:
        """Delete every record any request of the run created (all but the battery's when `keep`)."""
        left = [rid for rid in dict.fromkeys(self.client.created) if rid not in self.client.deleted]
        if keep:
            kept = [rid for rid in left if rid in self.battery_records]
            left = [rid for rid in left if rid not in self.battery_records]
            self.report.note(
                f"--keep-data: the {len(kept)} scratch record(s) the queries ran on stay in place, so the "
                "reproducers of query findings can be replayed; delete them with "
                f"DELETE /api/crm/record/{{id}} (ids: {', '.join(kept[:3])}{', …' if len(kept) > 3 else ''})"
            )
        elif any(
            c.findings and c.area in ("filters", "sorting", "paging") for c in self.report.checks.values()
        ):
            self.report.note(
                "the query reproducers read the scratch records, which the kit has deleted: run again "
                "with --keep-data to leave them in place for replaying that run's reproducers"
            )
        failed: list[Exchange] = []
        for rid in left:
            ex = self.client.request("DELETE", f"/api/crm/record/{rid}")
            if ex.status not in (204, 200, 404):
                failed.append(ex)
        if failed:
            self.report.problem(
                f"could not delete {len(failed)} record(s) the kit created, e.g. {failed[0].path}: "
                f"{failed[0].summary(120)}"
            )
        self.report.progress(f"cleanup: deleted {len(left) - len(failed)} record(s) the kit created")

    def _check_error_shape(self, ex: Exchange, status: int, code: str) -> None:
        check_error(
            self.report, ex, status, code, "errors.forbidden-schema-write", "403 FORBIDDEN without admin"
        )
