"""Error cases: the status, code and details of each kind of bad request."""

from __future__ import annotations

from collections.abc import Callable

from ..domain.schema import FieldType
from .client import Exchange, dumps
from .oracle import is_empty
from .report import Finding
from .shapes import CODES, check_error, details, error_shape_problem
from .suite import Suite, field_values_of


class ErrorChecks(Suite):
    """The error cases: each bad request gets its status, its code and details naming the culprit."""

    def run_errors(self) -> None:
        self.report.progress("errors: statuses, codes and bodies of 400/401/404/405/409/415/422")
        obj = self.obj
        c = self.client
        q = "/api/crm/records/query"
        filters_rule = (
            "a malformed filters parameter, an unknown filter field or operator and an operand of the "
            "wrong type are 400 BAD_REQUEST naming filters; never a 5xx"
        )
        text = next((f.slug for f in obj.fields if f.type == FieldType.TEXT), None)
        number = next((f.slug for f in obj.fields if f.type in (FieldType.NUMBER, FieldType.CURRENCY)), None)
        cases: list[tuple[Exchange, int, str, str, str, str | None, str]] = []

        def add(
            ex: Exchange, status: int, check_id: str, title: str, names: str | None = None, rule: str = ""
        ) -> None:
            cases.append((ex, status, CODES[status], check_id, title, names, rule))

        base = [("object_id", obj.id)]
        add(
            c.request("GET", q, params=[*base, ("filters", '{"' + (text or "name") + '": ')]),
            400,
            "errors.malformed-filters",
            "malformed JSON in filters is 400 BAD_REQUEST, not a 5xx",
            "filters",
            filters_rule,
        )
        add(
            c.request("GET", q, params=[*base, ("filters", "[1, 2]")]),
            400,
            "errors.filters-not-object",
            "filters that is not a JSON object is 400",
            "filters",
            filters_rule,
        )
        add(
            c.query({"object_id": obj.id, "filters": {f"no_such_field_{self.setup.marker}": 1}}),
            400,
            "errors.unknown-filter-field",
            "an unknown filter field is 400 BAD_REQUEST",
            "filters",
            filters_rule,
        )
        if text is not None:
            add(
                c.query({"object_id": obj.id, "filters": {text: {"$regex": "a"}}}),
                400,
                "errors.unknown-operator",
                "an unknown filter operator is 400 BAD_REQUEST",
                "filters",
                filters_rule,
            )
            add(
                c.query({"object_id": obj.id, "filters": {text: {"$gt": "a"}}}),
                400,
                "errors.range-on-text",
                "a range operator on a text field is 400 BAD_REQUEST",
                "filters",
                filters_rule,
            )
        if number is not None:
            add(
                c.query({"object_id": obj.id, "filters": {number: {"$gte": "ten"}}}),
                400,
                "errors.operand-type",
                "an operand of the wrong type is 400 BAD_REQUEST",
                "filters",
                filters_rule,
            )
        if not self.quick and text is not None:
            for cond in ({"$in": "a"}, {"$empty": "yes"}, {"$eq": None}):
                add(
                    c.query({"object_id": obj.id, "filters": {text: cond}}),
                    400,
                    "errors.operand-type",
                    "an operand of the wrong type is 400 BAD_REQUEST",
                    "filters",
                    filters_rule,
                )
        add(
            c.query({"object_id": obj.id, "sort": f"no_such_field_{self.setup.marker}"}),
            400,
            "errors.unknown-sort",
            "an unknown sort field is 400 BAD_REQUEST",
            "sort",
        )
        add(
            c.query({"object_id": obj.id, "order": "sideways"}),
            400,
            "errors.bad-order",
            "order other than asc/desc is 400",
            "order",
        )
        add(
            c.request("GET", q, params=[*base, ("filters", "")]),
            400,
            "errors.empty-filters",
            "an empty filters= is 400",
            "filters",
        )
        add(
            c.request("GET", q, params=[*base, ("per_page", "10"), ("per_page", "20")]),
            400,
            "errors.repeated-param",
            "a known query parameter given twice is 400",
            "per_page",
        )
        add(
            c.query({"sort": "id"}),
            400,
            "errors.missing-object-id",
            "a query without object_id is 400",
            "object_id",
        )
        missing_obj = f"obj_no_such_object_{self.setup.marker}"
        add(
            c.query({"object_id": missing_obj}),
            404,
            "errors.unknown-object",
            "an unknown object_id is 404 NOT_FOUND",
            missing_obj,
        )
        missing_rec = f"rec_no_such_record_{self.setup.marker}"
        add(
            c.get(f"/api/crm/record/{missing_rec}"),
            404,
            "errors.unknown-record",
            "an unknown record is 404 NOT_FOUND naming it",
            missing_rec,
        )
        add(
            c.get(f"/api/crm/objects/{missing_obj}"),
            404,
            "errors.unknown-object",
            "an unknown object_id is 404 NOT_FOUND",
            missing_obj,
        )
        add(
            c.get("/api/crm/no-such-route"),
            404,
            "errors.unknown-route",
            "an unknown /api route is 404 NOT_FOUND",
        )
        add(
            c.request("GET", "/api/crm/objects", auth="none"),
            401,
            "errors.missing-key",
            "a request without X-Api-Key is 401 UNAUTHORIZED",
        )
        add(
            c.request("GET", "/api/crm/objects", auth="wrong"),
            401,
            "errors.wrong-key",
            "an unknown API key is 401 UNAUTHORIZED",
        )

        ex = c.request("DELETE", q)
        add(ex, 405, "errors.method", "a method the route does not serve is 405 with Allow")
        self.allow(ex, {"GET"})
        if not self.quick:
            ex = c.request("PUT", f"/api/crm/record/{missing_rec}", json_body={"field_values": {}})
            add(ex, 405, "errors.method", "a method the route does not serve is 405 with Allow")
            self.allow(ex, {"GET", "PATCH", "DELETE"})

        record_body = {"object_id": obj.id, "field_values": self._valid_minimal()}
        add(
            c.request(
                "POST", "/api/crm/record", raw_body=dumps(record_body).encode(), content_type="text/plain"
            ),
            415,
            "errors.media-type",
            "a POST body that is not application/json is 415",
        )
        add(
            c.request("POST", "/api/crm/record", raw_body=b'{"object_id": ', content_type="application/json"),
            400,
            "errors.malformed-body",
            "malformed JSON in a body is 400 BAD_REQUEST",
        )
        add(
            c.request("POST", "/api/crm/record", json_body={**record_body, "extra": 1}),
            400,
            "errors.unknown-body-key",
            "an unknown top-level body key is 400 BAD_REQUEST",
            "extra",
        )
        bad = self._bad_values()
        ex = c.request(
            "POST",
            "/api/crm/record",
            json_body={"object_id": obj.id, "field_values": {**self._valid_minimal(), **bad}},
        )
        add(
            ex,
            422,
            "errors.validation",
            "invalid field_values are 422 VALIDATION_ERROR listing every violation",
        )
        self._lists_every_violation(ex, list(bad))
        required = next((f for f in obj.fields if f.required), None)
        if required is not None:
            minimal = self._valid_minimal()
            minimal.pop(required.slug, None)
            add(
                c.request(
                    "POST", "/api/crm/record", json_body={"object_id": obj.id, "field_values": minimal}
                ),
                422,
                "errors.required",
                "a record without a required field is 422 VALIDATION_ERROR",
                required.slug,
            )
        self._conflict(add)
        for ex, status, code, check_id, title, names, rule in cases:
            check_error(self.report, ex, status, code, check_id, title, names=names, rule=rule)

    def _lists_every_violation(self, ex: Exchange, slugs: list[str]) -> None:
        check = (
            "errors.validation-lists-all",
            "errors",
            "a 422 lists every violation in details.errors, not just the first",
        )
        self.report.ran(*check)
        if ex.status != 422 or error_shape_problem(ex) is not None:
            return
        errors = details(ex).get("errors")
        named = {e.get("field") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
        if not set(slugs) <= named:
            self.report.fail(
                *check,
                Finding(
                    f"details.errors naming {', '.join(slugs)}",
                    f"details.errors = {dumps(errors)}",
                    ex,
                ),
            )

    def _conflict(self, add: Callable[..., None]) -> None:
        for f in self.obj.fields:
            if not f.unique:
                continue
            values_taken = (
                field_values_of(self.scratch.raw[r]).get(f.slug)
                for r in self.scratch.record_ids
                if r in self.scratch.raw
            )
            taken = next((v for v in values_taken if not is_empty(v)), None)
            if taken is None:
                continue
            values = {**self._valid_minimal(), f.slug: taken}
            ex = self.client.request(
                "POST", "/api/crm/record", json_body={"object_id": self.obj.id, "field_values": values}
            )
            add(ex, 409, "errors.conflict", "a value already taken on a unique field is 409 CONFLICT", f.slug)
            return
