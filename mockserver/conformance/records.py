"""Record semantics: create, read, PATCH merges, null clears, updated_at moves, 404 after delete."""

from __future__ import annotations

from typing import Any

from ..domain.schema import FieldType, parse_datetime_us
from .client import Exchange, dumps
from .oracle import is_empty
from .report import Finding
from .shapes import check_error
from .suite import TIMESTAMP, Suite, field_values_of


class RecordChecks(Suite):
    """One record through its life: create, read, three PATCHes, a rejected write, delete."""

    def run_records(self) -> None:
        self.report.progress("records: create, read, PATCH merge, null clears, updated_at, delete")
        obj = self.obj
        values = {k: v for k, v in self.setup.values_for(self.scratch, 901).items() if not is_empty(v)}
        changeable = [
            f for f in obj.fields if not f.required and not f.unique and f.type not in (FieldType.REFERENCE,)
        ]
        for f in changeable:  # every changeable field starts with a value, so merges are visible
            if f.slug not in values:
                alt = self.setup.values_for(self.scratch, 903).get(f.slug)
                alt = alt if not is_empty(alt) else self.setup.values_for(self.scratch, 904).get(f.slug)
                if not is_empty(alt):
                    values[f.slug] = alt
        ex = self.client.request(
            "POST", "/api/crm/record", json_body={"object_id": obj.id, "field_values": values}
        )
        check = ("records.create", "records", "POST /api/crm/record answers 201 with the record as stored")
        self.report.ran(*check)
        body = ex.json if isinstance(ex.json, dict) else {}
        rid = body.get("id")
        if ex.status != 201 or not isinstance(rid, str):
            self.report.fail(*check, Finding("201 and the record", ex.summary(), ex))
            return
        self.crud_record = rid
        stored = dict(values)
        for f in obj.fields:
            if f.has_default and f.slug not in values:
                stored[f.slug] = f.default_value
        self._expect_record(check, ex, body, stored, rid)
        self._timestamps(ex, body)
        current = body

        ex = self.client.get(f"/api/crm/record/{rid}")
        self.report.ran("records.get", "records", "GET /api/crm/record/{id} returns the record, unwrapped")
        if ex.status != 200 or ex.json != current:
            self.report.fail(
                "records.get",
                "records",
                "GET /api/crm/record/{id} returns the record, unwrapped",
                Finding(f"200 {dumps(current)}", ex.summary(400), ex),
            )

        with_value = [f.slug for f in changeable if f.slug in field_values_of(current)]
        merge = (
            "records.patch-merges",
            "PATCH merges field_values: keys sent change, the rest stay",
            "PATCH merges field_values: keys sent change, null clears, the rest stay; {} changes "
            "nothing; every PATCH moves updated_at forward",
        )
        clears = (
            "records.null-clears",
            "null in a PATCH clears that field and keeps the others",
            "a key sent as null is cleared (left out of field_values); the rest stay",
        )
        if len(with_value) >= 2:
            change, clear = with_value[0], with_value[1]
            steps: list[tuple[dict[str, Any], tuple[str, str, str]]] = [
                ({change: self._other_value(change, field_values_of(current)[change])}, merge),
                ({clear: None}, clears),
                ({}, merge),
            ]
            for patch, (check_id, title, rule) in steps:
                after = self._patch(current, patch, check_id, title, rule)
                if after is None:
                    self._delete(rid)
                    return
                current = after
        self._rejected_write_changes_nothing(rid, current)
        self._delete(rid)

    def attach_reproducers(self) -> None:
        """Findings on a record the run created and then deleted replay its writes first (the POST
        that created it, then each PATCH), so the reproducer works after the run."""
        gone = set(self.client.created) - set(self.setup.battery_records)
        if not gone:
            return
        position = {id(ex): i for i, ex in enumerate(self.client.log)}
        writes: dict[str, list[Exchange]] = {}
        for ex in self.client.log:
            if not 200 <= ex.status < 300:
                continue
            if ex.method == "POST" and ex.path == "/api/crm/record" and isinstance(ex.json, dict):
                rid = ex.json.get("id")
                if rid in gone:
                    writes.setdefault(rid, []).append(ex)
            elif ex.method == "PATCH" and ex.path.startswith("/api/crm/record/"):
                rid = ex.path.rsplit("/", 1)[1]
                if rid in writes:
                    writes[rid].append(ex)
        for check in self.report.checks.values():
            for f in check.findings:
                if f.request is None or f.steps or not f.request.path.startswith("/api/crm/record/"):
                    continue
                rid = f.request.path.rsplit("/", 1)[1]
                if rid not in writes:
                    continue
                at = position.get(id(f.request), len(self.client.log))
                f.steps = [w for w in writes[rid] if position[id(w)] < at]
                f.record_id = rid

    def _other_value(self, slug: str, old: Any) -> Any:
        for i in range(905, 930):
            v = self.setup.values_for(self.scratch, i).get(slug)
            if not is_empty(v) and v != old:
                return v
        return old

    def _patch(
        self, before: dict[str, Any], change: dict[str, Any], check_id: str, title: str, rule: str
    ) -> dict[str, Any] | None:
        rid = before["id"]
        ex = self.client.request("PATCH", f"/api/crm/record/{rid}", json_body={"field_values": change})
        self.report.ran(check_id, "records", title, rule)
        expected = {k: v for k, v in field_values_of(before).items() if k not in change}
        expected.update({k: v for k, v in change.items() if not is_empty(v)})
        body = ex.json if isinstance(ex.json, dict) else {}
        if ex.status != 200 or not isinstance(body.get("field_values"), dict):
            self.report.fail(
                check_id,
                "records",
                title,
                Finding(f"200 with field_values {dumps(expected)}", ex.summary(), ex),
                rule,
            )
            return None
        got = body["field_values"]
        if got != expected:
            lost = sorted(k for k in expected if k not in got)
            changed = sorted(k for k in expected if k in got and got[k] != expected[k])
            kept = sorted(k for k in got if k not in expected)
            detail = []
            if lost:
                detail.append(f"fields not sent were lost: {', '.join(lost)}")
            if changed:
                detail.append(f"fields with other values: {', '.join(changed)}")
            if kept:
                detail.append(f"fields that should be gone: {', '.join(kept)}")
            self.report.fail(
                check_id,
                "records",
                title,
                Finding(f"field_values {dumps(expected)}", f"field_values {dumps(got)}", ex, detail=detail),
                rule,
            )
        self._timestamps(ex, body)
        moved = (
            "records.updated-at",
            "records",
            "every PATCH moves updated_at forward and keeps created_at",
        )
        self.report.ran(*moved)
        old_us = parse_datetime_us(str(before.get("updated_at")))
        new_us = parse_datetime_us(str(body.get("updated_at")))
        if (
            old_us is None
            or new_us is None
            or new_us <= old_us
            or body.get("created_at") != before.get("created_at")
        ):
            self.report.fail(
                *moved,
                Finding(
                    f"updated_at later than {before.get('updated_at')}, "
                    f"created_at {before.get('created_at')}",
                    f"updated_at {body.get('updated_at')}, created_at {body.get('created_at')}",
                    ex,
                ),
            )
        return body

    def _rejected_write_changes_nothing(self, rid: str, current: dict[str, Any]) -> None:
        bad = self._bad_values()
        ex = self.client.request("PATCH", f"/api/crm/record/{rid}", json_body={"field_values": bad})
        check_error(
            self.report,
            ex,
            422,
            "VALIDATION_ERROR",
            "errors.validation-patch",
            "a PATCH with invalid field_values is 422 VALIDATION_ERROR",
            rule="field_values that break the object's schema are 422 VALIDATION_ERROR",
        )
        after = self.client.get(f"/api/crm/record/{rid}")
        check = ("records.error-changes-nothing", "records", "a rejected write changes nothing")
        self.report.ran(*check)
        if after.status != 200 or after.json != current:
            self.report.fail(*check, Finding(f"200 {dumps(current)}", after.summary(400), after))

    def _delete(self, rid: str) -> None:
        path = f"/api/crm/record/{rid}"
        ex = self.client.request("DELETE", path)
        check = ("records.delete", "records", "DELETE answers 204 with an empty body")
        self.report.ran(*check)
        if ex.status != 204 or ex.text:
            self.report.fail(*check, Finding("204, empty body", ex.summary(), ex))
        gone = ("records.gone", "records", "after DELETE the record is 404 on GET, PATCH and DELETE")
        for again in (
            self.client.get(path),
            self.client.request("PATCH", path, json_body={"field_values": {}}),
            self.client.request("DELETE", path),
        ):
            check_error(self.report, again, 404, "NOT_FOUND", gone[0], gone[2], names=rid, area=gone[1])

    def _timestamps(self, ex: Exchange, body: dict[str, Any]) -> None:
        check = (
            "records.timestamps",
            "records",
            "created_at and updated_at are UTC timestamps (YYYY-MM-DDTHH:MM:SS[.fff]Z)",
        )
        self.report.ran(*check)
        for name in ("created_at", "updated_at"):
            value = body.get(name)
            if not isinstance(value, str) or not TIMESTAMP.match(value):
                self.report.fail(
                    *check, Finding(f"{name} as YYYY-MM-DDTHH:MM:SS[.fff]Z", f"{name} = {value!r}", ex)
                )

    def _expect_record(
        self,
        check: tuple[str, str, str],
        ex: Exchange,
        body: dict[str, Any],
        stored: dict[str, Any],
        rid: str,
    ) -> None:
        problems = []
        if body.get("object_id") != self.obj.id:
            problems.append(f"object_id {body.get('object_id')!r}")
        if not isinstance(body.get("created_by"), str):
            problems.append("no created_by")
        if field_values_of(body) != stored:
            problems.append(f"field_values {dumps(field_values_of(body))}")
        if problems:
            self.report.fail(
                *check,
                Finding(f"object_id {self.obj.id}, field_values {dumps(stored)}", "; ".join(problems), ex),
            )
