"""Values on write: each field type's valid and invalid format edges, valid values stored as sent."""

from __future__ import annotations

from typing import Any

from ..domain.schema import FieldDef, FieldType
from .client import dumps
from .report import Finding
from .writes import WriteChecks


def edges(f: FieldDef, marker: str, users: list[str], references: list[str]) -> tuple[list[Any], list[Any]]:
    """(valid values, invalid values) at the edges of the format the contract gives `f`'s type."""
    t = f.type
    if t == FieldType.TEXT:
        return (
            ["x" * 255, "é" * 255, "日本語 テキスト", "  spaced  "],
            ["x" * 256, "é" * 256, 5, True, ["a"], {"a": 1}],
        )
    if t == FieldType.LONG_TEXT:
        return ["x" * 5000, "line one\nline two\ttab", "Ünïcode ✓"], [5, False, ["a"]]
    if t in (FieldType.NUMBER, FieldType.CURRENCY):
        return [0, -5, 1.5, 99.99, 1e20, -0.25], ["5", True, False, [1], {"v": 1}]
    if t == FieldType.EMAIL:
        return (
            ["a@b", "First.Last+tag@Example.co.uk", f"x_{marker}@sub.example.org"],
            ["no-at-sign", "a@", "@example.com", "a b@example.com", "a@@example.com", 5],
        )
    if t == FieldType.PHONE:
        return (
            ["1234567", "+1 (555) 010-0001", "123456789012345", "555.010.0002"],
            ["123456", "1234567890123456", "555-CALL-NOW", "+1 555 010 000x", 5550100001],
        )
    if t in (FieldType.URL, FieldType.IMAGE):
        return (
            ["https://example.com", "http://example.com/a/b?q=1#frag", "https://sub.example.org:8443/p.png"],
            ["ftp://example.com/file", "example.com", "mailto:a@example.com", "https://", 5],
        )
    if t == FieldType.DATE:
        return (
            ["2024-02-29", "1999-12-31", "2000-01-01"],
            ["2023-02-29", "2024-13-01", "2024-1-5", "2024-01-15T00:00:00Z", "15/01/2024", 20240115],
        )
    if t == FieldType.DATETIME:
        return (
            [
                "2024-01-15T10:30:00Z",
                "2024-01-15T10:30Z",
                "2024-01-15T10:30:00.123+05:30",
                "2024-02-29T23:59:59-08:00",
            ],
            ["2024-01-15T10:30:00", "2024-02-30T10:00:00Z", "2024-01-15", "2024-01-15T25:00:00Z", 1705314600],
        )
    if t == FieldType.BOOLEAN:
        return [True, False], ["true", 1, 0, "yes"]
    if t in (FieldType.STATUS, FieldType.DROPDOWN):
        options = list(f.choices)
        other_case = [o.swapcase() for o in options if o.swapcase() != o][:1]
        return options, [*other_case, f"not an option {marker}", 1, [options[0]] if options else ["x"]]
    if t == FieldType.MULTI_SELECT:
        options = list(f.choices)
        other_sets = [[o.swapcase()] for o in options if o.swapcase() != o][:1]
        return (
            [options[:1], options[:2], list(reversed(options))],
            [*other_sets, options[0] if options else "x", [f"not an option {marker}"], [1]],
        )
    if t == FieldType.REFERENCE:
        return references[:2], [f"rec_no_such_record_{marker}", 5]
    if t == FieldType.USER:
        return users[:2], [f"user_no_such_user_{marker}", 5]
    return [], []


class FormatChecks(WriteChecks):
    """Each field type's format on create: valid edges stored as sent, invalid ones 422."""

    def run_formats(self) -> None:
        self.report.progress("formats: valid and invalid edges of every field type on write")
        done: set[FieldType] = set()
        for f in self.obj.fields:
            if f.type in done or (f.unique and f.type not in (FieldType.EMAIL,)):
                continue
            done.add(f.type)
            self._field_formats(f)
        self._system_values()

    def _field_formats(self, f: FieldDef) -> None:
        check_id = f"formats.{f.type}"
        title = f"{f.type} values: valid edges are stored as sent, invalid ones are 422"
        references = self.scratch.references.get(f.target_object or "", [])
        valid, invalid = edges(f, self.setup.marker, self.scratch.users, references)
        for value in valid:
            if f.unique and isinstance(value, str) and "@" in value:
                value = value.replace("@", f".{self.setup.marker}{WriteChecks._serial}@", 1)
            ex = self.create(self.fresh(**{f.slug: value}))
            self.report.ran(check_id, "formats", title)
            label = f"{f.type} field {f.slug} = {_short(value)}"
            if ex.status != 201:
                self.report.fail(check_id, "formats", title, Finding("201", ex.summary(), ex, label))
                continue
            got = ex.json.get("field_values", {}).get(f.slug) if isinstance(ex.json, dict) else None
            if not _same(got, value, f.type):
                self.report.fail(
                    check_id,
                    "formats",
                    title,
                    Finding(
                        f"{f.slug} stored as sent: {_short(value)}", f"{f.slug} = {_short(got)}", ex, label
                    ),
                )
                continue
            rid = self.created_id(ex)
            again = self.client.get(f"/api/crm/record/{rid}")
            if again.status != 200 or again.json != ex.json:
                self.report.fail(
                    check_id,
                    "formats",
                    title,
                    Finding(
                        f"GET returns the record as created: {dumps(ex.json)[:300]}", again.summary(), again
                    ),
                )
        for value in invalid:
            ex = self.create(self.fresh(**{f.slug: value}))
            label = f"{f.type} field {f.slug} = {_short(value)}"
            self.expect_status(ex, 422, check_id, title, names=f.slug, area="formats", label=label)

    def _system_values(self) -> None:
        """created_by, object_id and the timestamps of a new record, and what a PATCH keeps."""
        check = ("records.system-values", "records", "a new record's system values follow the contract")
        self.report.ran(*check)
        a, b = self.create(self.fresh()), self.create(self.fresh())
        docs = [ex.json for ex in (a, b) if ex.status == 201 and isinstance(ex.json, dict)]
        if len(docs) < 2:
            return
        problems = []
        for doc in docs:
            if doc.get("object_id") != self.obj.id:
                problems.append(f"object_id {doc.get('object_id')!r}, not {self.obj.id}")
            if not isinstance(doc.get("id"), str) or not doc["id"]:
                problems.append(f"id {doc.get('id')!r}")
            if str(doc.get("updated_at")) < str(doc.get("created_at")):
                problems.append(
                    f"updated_at {doc.get('updated_at')} before created_at {doc.get('created_at')}"
                )
        if docs[0].get("created_by") != docs[1].get("created_by") or not isinstance(
            docs[0].get("created_by"), str
        ):
            problems.append(
                f"created_by {docs[0].get('created_by')!r} and {docs[1].get('created_by')!r} for the same key"
            )
        if docs[0]["id"] == docs[1]["id"]:
            problems.append(f"two creates gave the same id {docs[0]['id']}")
        rid = docs[0]["id"]
        patched = self.patch(rid, {"field_values": {}})
        pdoc = patched.json if isinstance(patched.json, dict) else {}
        for key in ("id", "object_id", "created_by", "created_at"):
            if patched.status == 200 and pdoc.get(key) != docs[0].get(key):
                problems.append(f"PATCH changed {key}: {docs[0].get(key)!r} -> {pdoc.get(key)!r}")
        if problems:
            self.report.fail(
                *check,
                Finding(
                    "object_id of the object, distinct ids, one created_by per key, "
                    "updated_at >= created_at, and PATCH keeps id, object_id, created_by, created_at",
                    "; ".join(problems),
                    patched if patched.status == 200 and any("PATCH" in p for p in problems) else b,
                ),
            )


def _same(got: Any, sent: Any, t: FieldType) -> bool:
    """Stored as sent: equal, booleans not standing for numbers; a multi_select as the same options."""
    if isinstance(got, bool) != isinstance(sent, bool):
        return False
    if t == FieldType.MULTI_SELECT and isinstance(got, list) and isinstance(sent, list):
        return sorted(map(str, got)) == sorted(map(str, sent))
    return bool(got == sent)


def _short(value: Any, limit: int = 60) -> str:
    text = dumps(value)
    return (
        text
        if len(text) <= limit
        else f"{text[:limit]}… ({len(value) if isinstance(value, str) else '?'} chars)"
    )
