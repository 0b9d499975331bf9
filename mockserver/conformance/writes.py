"""Write semantics: required, defaults, empties, PATCH, uniqueness, system values, read-your-writes."""

from __future__ import annotations

from typing import Any

from ..domain.schema import STRING_EMPTYABLE, FieldDef, FieldType
from .client import Exchange, dumps
from .oracle import is_empty
from .report import Finding
from .shapes import CODES, check_error, details
from .suite import Suite, field_values_of

#: Types whose empty string is not a way to empty them: "" is a 422 (CONTRACT.md, "Empty on writes").
NO_EMPTY_STRING = (FieldType.NUMBER, FieldType.CURRENCY, FieldType.BOOLEAN, FieldType.DATE)


class WriteChecks(Suite):
    """Creates, PATCHes and deletes of the kit's own records, each answer checked against the rules."""

    _serial = 2000  # record numbers for values_for(): distinct unique values on every create
    _ryw_start = 0  # where in the client's log the read-your-writes sequence began

    def run_writes(self) -> None:
        self.report.progress("writes: required, defaults, empties, PATCH body, uniqueness, read-your-writes")
        self._defaults()
        self._empties()
        self._required()
        self._patch_body()
        self._unknown_field()
        self._unique()
        self._read_your_writes()

    # --- helpers -----------------------------------------------------------------------------

    def fresh(self, **overrides: Any) -> dict[str, Any]:
        """Valid field_values with only what must be there: required fields, and unique ones with
        values no other record holds."""
        WriteChecks._serial += 1
        values = self.setup.values_for(self.scratch, WriteChecks._serial)
        keep = {f.slug for f in self.obj.fields if f.required or f.unique}
        out = {k: v for k, v in values.items() if k in keep and not is_empty(v)}
        for f in self.obj.fields:  # required and unique fields always get a value: no check skips by luck
            for variant in range(1, 4):
                if f.slug in out or f.slug not in keep:
                    break
                # Another record number (past any other) whose value here is not left empty.
                number = WriteChecks._serial + 100_001 * variant
                alt = self.setup.values_for(self.scratch, number).get(f.slug)
                if not is_empty(alt):
                    out[f.slug] = alt
        out.update(overrides)
        return {k: v for k, v in out.items() if v is not _DROP}

    def create(self, values: dict[str, Any]) -> Exchange:
        return self.client.request(
            "POST", "/api/crm/record", json_body={"object_id": self.obj.id, "field_values": values}
        )

    def patch(self, rid: str, body: Any) -> Exchange:
        return self.client.request("PATCH", f"/api/crm/record/{rid}", json_body=body)

    def delete(self, rid: str) -> Exchange:
        return self.client.request("DELETE", f"/api/crm/record/{rid}")

    def created_id(self, ex: Exchange) -> str | None:
        body = ex.json if isinstance(ex.json, dict) else {}
        rid = body.get("id")
        return rid if ex.status == 201 and isinstance(rid, str) else None

    def expect_status(
        self,
        ex: Exchange,
        status: int,
        check_id: str,
        title: str,
        names: str | None = None,
        *,
        area: str = "records",
        label: str = "",
    ) -> bool:
        """The status expected: a success status, or an error with its code (and `names` in details)."""
        if status >= 400:
            ok = check_error(self.report, ex, status, CODES[status], check_id, title, names=names, area=area)
            if not ok and label:
                self.report.checks[check_id].findings[-1].label = label
            return ok
        self.report.ran(check_id, area, title)
        if ex.status != status:
            self.report.fail(check_id, area, title, Finding(f"{status}", ex.summary(), ex, label))
            return False
        return True

    def _optional(self, types: tuple[FieldType, ...] | frozenset[FieldType]) -> list[FieldDef]:
        return [f for f in self.obj.fields if not f.required and not f.unique and f.type in types]

    # --- defaults and empties ----------------------------------------------------------------

    def _defaults(self) -> None:
        check = ("records.defaults", "default_value fills an absent key; an explicit null stays empty")
        for f in self.obj.fields:
            if not f.has_default or f.required:
                continue
            absent = self.fresh()
            absent.pop(f.slug, None)
            ex = self.create(absent)
            if self.expect_status(ex, 201, *check):
                got = field_values_of(ex.json).get(f.slug)
                if got != f.default_value:
                    self.report.fail(
                        *check[:1],
                        "records",
                        check[1],
                        Finding(
                            f"field_values.{f.slug} = {dumps(f.default_value)} (its default_value)",
                            f"field_values.{f.slug} = {dumps(got)}",
                            ex,
                        ),
                    )
            ex = self.create(self.fresh(**{f.slug: None}))
            if self.expect_status(ex, 201, *check):
                self._left_out(ex, f.slug, "sent as null: no default", check)
            return

    def _empties(self) -> None:
        check = ("records.empties", 'empty values ("", [], null) are left out; "" is a 422 for other types')
        for f in self._optional(STRING_EMPTYABLE | {FieldType.MULTI_SELECT}):
            empty: Any = [] if f.type == FieldType.MULTI_SELECT else ""
            for value in (empty, None):
                if f.has_default and value is None:
                    continue
                ex = self.create(self.fresh(**{f.slug: value}))
                if self.expect_status(ex, 201, *check):
                    self._left_out(
                        ex,
                        f.slug,
                        f"sent as {dumps(value)}",
                        check,
                        f"{f.type} field {f.slug} = {dumps(value)}",
                    )
            if self.quick:
                break
        for f in self._optional(NO_EMPTY_STRING):
            ex = self.create(self.fresh(**{f.slug: ""}))
            self.expect_status(ex, 422, *check, names=f.slug)

    def _left_out(self, ex: Exchange, slug: str, why: str, check: tuple[str, str], label: str = "") -> None:
        """A 201 whose record still lists `slug`: an empty value must be left out of field_values."""
        values = field_values_of(ex.json)
        if slug in values:
            self.report.fail(
                check[0],
                "records",
                check[1],
                Finding(
                    f"{slug} left out of field_values ({why})",
                    f"field_values.{slug} = {dumps(values[slug])}",
                    ex,
                    label,
                ),
            )

    def _required(self) -> None:
        check = ("records.required", "a required field cannot be missing, empty or cleared: 422")
        required = [f for f in self.obj.fields if f.required and not f.has_default]
        if not required:
            return
        f = required[0]
        if f.type in STRING_EMPTYABLE:
            ex = self.create(self.fresh(**{f.slug: ""}))
            self.expect_status(ex, 422, *check, names=f.slug)
        ex = self.create(self.fresh(**{f.slug: None}))
        self.expect_status(ex, 422, *check, names=f.slug)
        rid = self.created_id(self.create(self.fresh()))
        if rid is None:
            return
        ex = self.patch(rid, {"field_values": {f.slug: None}})
        self.expect_status(ex, 422, *check, names=f.slug)
        if f.type in STRING_EMPTYABLE:
            ex = self.patch(rid, {"field_values": {f.slug: ""}})
            self.expect_status(ex, 422, *check, names=f.slug)

    # --- what PATCH and POST take ------------------------------------------------------------

    def _patch_body(self) -> None:
        check = ("records.patch-body", "PATCH takes only field_values: any other key is 400")
        rid = self.created_id(self.create(self.fresh()))
        if rid is None:
            return
        before = self.client.get(f"/api/crm/record/{rid}")
        for body in (
            {"field_values": {}, "object_id": self.obj.id},
            {"field_values": {}, "created_at": "2020-01-01T00:00:00Z"},
        ):
            extra = next(k for k in body if k != "field_values")
            ex = self.patch(rid, body)
            self.expect_status(ex, 400, *check, names=extra)
        after = self.client.get(f"/api/crm/record/{rid}")
        self._unchanged(before, after)

    def _unchanged(self, before: Exchange, after: Exchange) -> None:
        check = ("records.error-changes-nothing", "records", "a rejected write changes nothing")
        self.report.ran(*check)
        if before.status == 200 and (after.status != 200 or after.json != before.json):
            self.report.fail(*check, Finding(f"200 {dumps(before.json)}", after.summary(400), after))

    def _unknown_field(self) -> None:
        check = ("records.unknown-field", "an unknown field in field_values is 422 naming it")
        slug = f"no_such_field_{self.setup.marker}"
        ex = self.create(self.fresh(**{slug: "x"}))
        if self.expect_status(ex, 422, *check, names=slug):
            self._listed_in_errors(ex, slug, check)
        rid = self.created_id(self.create(self.fresh()))
        if rid is not None:
            before = self.client.get(f"/api/crm/record/{rid}")
            ex = self.patch(rid, {"field_values": {slug: "x"}})
            self.expect_status(ex, 422, *check, names=slug)
            self._unchanged(before, self.client.get(f"/api/crm/record/{rid}"))

    def _listed_in_errors(self, ex: Exchange, slug: str, check: tuple[str, str]) -> None:
        errors = details(ex).get("errors")
        fields = (
            {e.get("field") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
        )
        if slug not in fields:
            self.report.fail(
                check[0],
                "records",
                check[1],
                Finding(f"details.errors with field {slug!r}", f"details = {dumps(details(ex))}", ex),
            )

    # --- uniqueness over a record's whole life ------------------------------------------------

    def _unique(self) -> None:
        unique = next((f for f in self.obj.fields if f.unique), None)
        if unique is None:
            return
        slug = unique.slug
        a = self.create(self.fresh())
        b = self.create(self.fresh())
        a_id, b_id = self.created_id(a), self.created_id(b)
        if a_id is None or b_id is None:
            return
        a_value = field_values_of(a.json).get(slug)
        if is_empty(a_value):
            return
        ex = self.patch(a_id, {"field_values": {slug: a_value}})
        self.expect_status(
            ex, 200, "records.unique.own-value", "a record may keep (resend) its own unique value"
        )

        before = self.client.get(f"/api/crm/record/{b_id}")
        ex = self.patch(b_id, {"field_values": {slug: a_value}})
        self.expect_status(
            ex, 409, "records.unique.patch", "a PATCH to a value another record holds is 409", slug
        )
        self._unchanged(before, self.client.get(f"/api/crm/record/{b_id}"))

        if unique.type == FieldType.EMAIL and isinstance(a_value, str):
            ex = self.create(self.fresh(**{slug: _other_case(a_value)}))
            self.expect_status(
                ex, 409, "records.unique.email-case", "email uniqueness ignores case: 409", slug
            )

        if not unique.required:
            title = "empty values never conflict on a unique field"
            for _ in range(2):
                ex = self.create(self.fresh(**{slug: _DROP}))
                self.expect_status(ex, 201, "records.unique.empty", title)
            ex = self.patch(b_id, {"field_values": {slug: None}})
            self.expect_status(ex, 200, "records.unique.empty", title)

        self.delete(a_id)
        ex = self.create(self.fresh(**{slug: a_value}))
        self.expect_status(ex, 201, "records.unique.freed", "deleting a record frees its unique value")

    # --- read your writes --------------------------------------------------------------------

    def _read_your_writes(self) -> None:
        text = next(
            (f for f in self.obj.fields if f.type in (FieldType.TEXT, FieldType.LONG_TEXT) and not f.unique),
            None,
        )
        if text is None:
            return
        marker = f"ryw{self.setup.marker}"
        slug = text.slug
        first, second = f"{marker} alpha", f"{marker} omega"
        start = len(self.client.log)  # a finding replays the sequence from here: creation, queries, writes
        self._ryw_start = start
        ex = self.create(self.fresh(**{slug: first}))
        rid = self.created_id(ex)
        if rid is None:
            return
        latest = ex.json
        self._sees(rid, {slug: {"$contains": marker}}, [rid], "create", latest)
        self._sees(rid, {slug: {"$eq": first}}, [rid], "create", latest)
        ex = self.patch(rid, {"field_values": {slug: second}})
        if ex.status == 200:
            latest = ex.json
            self._sees(rid, {slug: {"$eq": second}}, [rid], "update", latest)
            self._sees(rid, {slug: {"$eq": first}}, [], "update")
            self._sees(rid, {slug: {"$contains": "omega", "$starts_with": marker}}, [rid], "update", latest)
        number = next((f for f in self._optional((FieldType.NUMBER, FieldType.CURRENCY))), None)
        if number is not None:
            ex = self.patch(rid, {"field_values": {number.slug: 987654.5}})
            if ex.status == 200:
                latest = ex.json
                filters = {slug: {"$contains": marker}, number.slug: {"$gte": 987654}}
                self._sees(rid, filters, [rid], "update", latest)
            ex = self.patch(rid, {"field_values": {number.slug: None}})
            if ex.status == 200:
                latest = ex.json
                filters = {slug: {"$contains": marker}, number.slug: {"$empty": True}}
                self._sees(rid, filters, [rid], "update", latest)
        rejected = self.create(self.fresh(**{slug: f"{marker} rejected", f"no_such_{marker}": 1}))
        if rejected.status >= 400:
            self._sees(rid, {slug: {"$eq": f"{marker} rejected"}}, [], "rejected create")
        ex = self.delete(rid)
        if ex.status in (200, 204):
            self._sees(rid, {slug: {"$contains": marker}}, [], "delete")

    def _sees(
        self, rid: str, filters: dict[str, Any], want: list[str], after: str, latest: Any = None
    ) -> None:
        """The query finds exactly `want`, and lists the record as the last write returned it."""
        check_id = f"records.read-your-writes.{after.replace(' ', '-')}"
        title = f"after a {after}, queries that name the changed values reflect it at once"
        steps = self.client.log[self._ryw_start :]
        ex = self.client.query({"object_id": self.obj.id, "filters": filters, "sort": "id", "per_page": 100})
        self.report.ran(check_id, "records", title)
        page = self.page_of(ex)
        ids = page[0] if page else None
        total = page[1].get("total") if page else None
        listed = next((r for r in ex.json["data"] if r.get("id") == rid), None) if ids else None
        if ids == want and latest is not None and listed is not None and listed != latest:
            self.report.fail(
                check_id,
                "records",
                title,
                Finding(
                    f"{rid} as the {after} returned it: {dumps(latest)}",
                    f"{rid} listed as {dumps(listed)}",
                    ex,
                    f"after the {after} of {rid}: filters={dumps(filters)}",
                    steps=steps,
                    record_id=rid,
                ),
            )
        elif ids != want or total != len(want):
            self.report.fail(
                check_id,
                "records",
                title,
                Finding(
                    f"total {len(want)}: {want or '(none)'}",
                    f"total {total!r}: {ids}" if page else ex.summary(),
                    ex,
                    f"after the {after} of {rid}: filters={dumps(filters)}",
                    steps=steps,
                    record_id=rid,
                ),
            )


_DROP: Any = object()  # fresh(slug=_DROP): leave the field out


def _other_case(email: str) -> str:
    swapped = email.swapcase()
    return swapped if swapped != email else email.upper()
