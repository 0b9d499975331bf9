"""Protocol: methods, parameters, body size and type, refused JSON text, the order of checks, keys."""

from __future__ import annotations

from typing import Any

from .client import Exchange, dumps
from .report import Finding
from .shapes import CODES, check_error
from .writes import WriteChecks

LIMIT = 1_048_576  # bytes: a body over 1 MiB is 413 (CONTRACT.md, "Errors")
QUERY = "/api/crm/records/query"

#: Each route of the contract and its methods (CONTRACT.md, "Surface").
ROUTES = {
    QUERY: {"GET"},
    "/api/crm/record": {"POST"},
    "/api/crm/record/{id}": {"GET", "PATCH", "DELETE"},
    "/api/crm/objects": {"GET", "POST"},
    "/api/crm/objects/{id}": {"GET"},
    "/api/crm/objects/{id}/fields": {"POST"},
}


class ProtocolChecks(WriteChecks):
    """The HTTP rules of the contract, each checked with the request that shows it."""

    def run_protocol(self) -> None:
        self.report.progress("protocol: methods, parameters, body size, content types, JSON text, order")
        self._methods()
        self._parameters()
        self._body_size()
        self._content_types()
        self._json_text()
        self._order()
        self._other_keys()
        self._schema_writes()

    def _path(self, route: str) -> str:
        rid = self.scratch.record_ids[0] if self.scratch.record_ids else "rec_x"
        return route.replace("{id}", rid if route.startswith("/api/crm/record/") else self.obj.id)

    # --- methods -----------------------------------------------------------------------------

    def _methods(self) -> None:
        title = "HEAD, OPTIONS and every unlisted method are 405 with Allow listing the route's methods"
        for route, methods in ROUTES.items():
            tried = ["HEAD", "OPTIONS"] if self.quick else ["HEAD", "OPTIONS", "PUT", "TRACE"]
            tried += [m for m in ("GET", "POST", "PATCH", "DELETE") if m not in methods][:1]
            for method in tried:
                ex = self.client.request(method, self._path(route))
                self.report.ran("protocol.methods", "protocol", title)
                if ex.status != 405:
                    self.report.fail(
                        "protocol.methods",
                        "protocol",
                        title,
                        Finding("405 METHOD_NOT_ALLOWED", ex.summary(), ex),
                    )
                    continue
                if method != "HEAD":
                    check_error(self.report, ex, 405, CODES[405], "protocol.methods", title, area="protocol")
                self.allow(ex, methods)

    # --- parameters --------------------------------------------------------------------------

    def _parameters(self) -> None:
        base = [("object_id", self.obj.id)]
        filters = dumps({"id": {"$empty": False}})
        for name, value in (
            ("object_id", self.obj.id),
            ("filters", filters),
            ("sort", "id"),
            ("order", "asc"),
            ("page", "1"),
            ("per_page", "5"),
        ):
            params = (
                [(name, value), (name, value)]
                if name == "object_id"
                else [*base, (name, value), (name, value)]
            )
            ex = self.client.request("GET", QUERY, params=params)
            check_error(
                self.report,
                ex,
                400,
                "BAD_REQUEST",
                "protocol.repeated-param",
                "a known query parameter given twice is 400 naming it",
                names=name,
                area="protocol",
            )
        ex = self.client.request("GET", QUERY, params=[*base, ("sort", "")])
        check_error(
            self.report, ex, 400, "BAD_REQUEST", "protocol.empty-param", "an empty sort= is 400", names="sort"
        )
        plain = self.client.request("GET", QUERY, params=[*base, ("sort", "id"), ("per_page", "7")])
        extra = self.client.request(
            "GET",
            QUERY,
            params=[
                *base,
                ("sort", "id"),
                ("limit", "1"),
                ("per_page", "7"),
                ("offset", "3"),
                ("fields", "x"),
            ],
        )
        check = (
            "protocol.unknown-param",
            "protocol",
            "unknown query parameters (limit, offset, …) are ignored",
        )
        self.report.ran(*check)
        if extra.status != plain.status or extra.json != plain.json:
            self.report.fail(
                *check,
                Finding(f"the same answer as without them: {plain.summary(200)}", extra.summary(200), extra),
            )

    # --- body size ---------------------------------------------------------------------------

    def _padded(self, size: int, malformed: bool = False) -> bytes:
        """A valid record body (or a malformed one) padded with JSON whitespace to `size` bytes."""
        body = dumps({"object_id": self.obj.id, "field_values": self.fresh()}).encode()
        if malformed:
            body = body[:-1]
        return body + b" " * (size - len(body))

    def _body_size(self) -> None:
        title = "a body over 1 MiB is 413 however it is sent; a body of exactly 1 MiB is not"
        check_id = "protocol.body-size"
        for chunked in (False, True):
            how = "chunked" if chunked else "content-length"
            ex = self.client.request(
                "POST",
                "/api/crm/record",
                raw_body=self._padded(LIMIT + 1),
                content_type="application/json",
                chunked=chunked,
            )
            check_error(self.report, ex, 413, CODES[413], f"{check_id}.{how}", title, area="protocol")
            ex = self.client.request(
                "POST",
                "/api/crm/record",
                raw_body=self._padded(LIMIT),
                content_type="application/json",
                chunked=chunked,
            )
            self.expect_status(
                ex, 201, f"{check_id}.{how}", title, area="protocol", label=f"exactly {LIMIT} bytes"
            )
        rid = self.scratch.record_ids[-1] if self.scratch.record_ids else None
        if rid is not None:
            before = self.client.get(f"/api/crm/record/{rid}")
            body = dumps({"field_values": {}}).encode()
            ex = self.client.request(
                "PATCH",
                f"/api/crm/record/{rid}",
                raw_body=body + b" " * (LIMIT + 1 - len(body)),
                content_type="application/json",
                chunked=True,
            )
            check_error(self.report, ex, 413, CODES[413], f"{check_id}.patch", title, area="protocol")
            self._unchanged(before, self.client.get(f"/api/crm/record/{rid}"))

    # --- content types -----------------------------------------------------------------------

    def _content_types(self) -> None:
        title = "bodies are application/json with charset=utf-8 or none; anything else is 415"

        def body() -> bytes:
            return dumps({"object_id": self.obj.id, "field_values": self.fresh()}).encode()

        for ctype, status in (
            ("application/json", 201),
            ("application/json; charset=utf-8", 201),
            ("application/json;charset=UTF-8", 201),
            ("application/json; charset=latin-1", 415),
            ("application/json; charset=utf-16", 415),
            ("text/plain", 415),
            ("application/x-www-form-urlencoded", 415),
            (None, 415),
        ):
            ex = self.client.request("POST", "/api/crm/record", raw_body=body(), content_type=ctype)
            self.expect_status(
                ex,
                status,
                "protocol.content-type.post",
                title,
                area="protocol",
                label=f"Content-Type: {ctype}",
            )
        rid = self.scratch.record_ids[-1] if self.scratch.record_ids else None
        if rid is not None:
            for ctype in ("text/plain", "application/json; charset=iso-8859-1"):
                ex = self.client.request(
                    "PATCH", f"/api/crm/record/{rid}", raw_body=b'{"field_values": {}}', content_type=ctype
                )
                self.expect_status(
                    ex,
                    415,
                    "protocol.content-type.patch",
                    title,
                    area="protocol",
                    label=f"Content-Type: {ctype}",
                )

    # --- JSON text ---------------------------------------------------------------------------

    def _json_text(self) -> None:
        title = "JSON the contract refuses is 400 BAD_REQUEST"
        text = next((f.slug for f in self.obj.fields if f.type in ("text", "long_text")), None)
        number = next((f.slug for f in self.obj.fields if f.type in ("number", "currency")), None)
        good = dumps({"object_id": self.obj.id, "field_values": self.fresh()})
        cases: list[tuple[str, bytes]] = [
            ("trailing-content", (good + " {}").encode()),
            ("invalid-utf8", good.encode()[:-2] + b'\xff"}'),
        ]
        if text is not None:
            cases.append(("lone-surrogate", good[:-2].encode() + f', "{text}": "a\\ud800b"}}}}'.encode()))
        if number is not None:
            for name, literal in (("nan", "NaN"), ("infinity", "Infinity"), ("too-large", "1e400")):
                cases.append((name, good[:-2].encode() + f', "{number}": {literal}}}}}'.encode()))
        for name, raw in cases:
            ex = self.client.request("POST", "/api/crm/record", raw_body=raw, content_type="application/json")
            check_error(
                self.report, ex, 400, CODES[400], f"protocol.json-text.{name}", title, area="protocol"
            )

    # --- the order of checks -----------------------------------------------------------------

    def _order(self) -> None:
        missing_rec = f"rec_no_such_record_{self.setup.marker}"
        missing_obj = f"obj_no_such_object_{self.setup.marker}"
        big = b"x" * (LIMIT + 10)
        taken = self._taken_unique()
        cases: list[tuple[str, int, Exchange]] = [
            ("401-before-404", 401, self.client.request("GET", "/api/crm/no-such-route", auth="none")),
            ("401-before-405", 401, self.client.request("DELETE", QUERY, auth="wrong")),
            ("404-route-before-405", 404, self.client.request("PUT", "/api/crm/no-such-route")),
            (
                "405-before-415",
                405,
                self.client.request(
                    "PUT", f"/api/crm/record/{missing_rec}", raw_body=b"x", content_type="text/plain"
                ),
            ),
            (
                "415-before-413",
                415,
                self.client.request("POST", "/api/crm/record", raw_body=big, content_type="text/plain"),
            ),
            (
                "413-before-400",
                413,
                self.client.request("POST", "/api/crm/record", raw_body=big, content_type="application/json"),
            ),
            (
                "400-before-404",
                400,
                self.client.request(
                    "POST",
                    "/api/crm/record",
                    json_body={"object_id": missing_obj, "field_values": {}, "extra": 1},
                ),
            ),
            (
                "404-before-422",
                404,
                self.client.request(
                    "PATCH",
                    f"/api/crm/record/{missing_rec}",
                    json_body={"field_values": {"no_such_field": 1}},
                ),
            ),
            (
                "404-object-before-422",
                404,
                self.client.request(
                    "POST", "/api/crm/record", json_body={"object_id": missing_obj, "field_values": {"x": 1}}
                ),
            ),
            (
                "query-400-before-404",
                400,
                self.client.query({"object_id": missing_obj, "per_page": 0}),
            ),
            (
                "query-404-before-400",
                404,
                self.client.query({"object_id": missing_obj, "sort": "no_such_field", "filters": {"x": 1}}),
            ),
        ]
        if taken is not None:
            slug, value = taken
            cases.append(
                (
                    "422-before-409",
                    422,
                    self.create(self.fresh(**{slug: value, f"no_such_{self.setup.marker}": 1})),
                )
            )
        for name, status, ex in cases:
            check_error(
                self.report,
                ex,
                status,
                CODES[status],
                f"errors.order.{name}",
                f"checks run in the contract's order: {name.replace('-', ' ')}",
            )

    def _taken_unique(self) -> tuple[str, Any] | None:
        for f in self.obj.fields:
            if f.unique:
                for rid in self.scratch.record_ids:
                    value = self.scratch.raw.get(rid, {}).get("field_values", {}).get(f.slug)
                    if value not in (None, "", []):
                        return f.slug, value
        return None

    # --- other keys: intake, non-admin -------------------------------------------------------

    def _other_keys(self) -> None:
        if self.options.intake_key:
            self.client.other_keys["intake"] = self.options.intake_key
            title = "an intake key on /api/crm/* is 403 FORBIDDEN, before routing"
            record = {"object_id": self.obj.id, "field_values": self.fresh()}
            for ex in (
                self.client.request("GET", "/api/crm/objects", auth="intake"),
                self.client.request("GET", QUERY, params={"object_id": self.obj.id}, auth="intake"),
                self.client.request("POST", "/api/crm/record", json_body=record, auth="intake"),
            ):
                check_error(self.report, ex, 403, CODES[403], "errors.intake-key", title)
            ex = self.client.request("GET", "/api/crm/no-such-route", auth="intake")
            check_error(self.report, ex, 403, CODES[403], "errors.order.intake-403-before-404", title)
        if self.options.non_admin_key:
            self.client.other_keys["non-admin"] = self.options.non_admin_key
            title = "creating objects or fields needs an admin user's key: 403 FORBIDDEN"
            before = self.client.get("/api/crm/objects")
            for path, body in (
                ("/api/crm/objects", {"name": f"Not Allowed {self.setup.marker}"}),
                (
                    f"/api/crm/objects/{self.obj.id}/fields",
                    {"name": f"Not Allowed {self.setup.marker}", "type": "text"},
                ),
            ):
                ex = self.client.request("POST", path, json_body=body, auth="non-admin")
                check_error(self.report, ex, 403, CODES[403], "schema.admin-only", title, area="schema")
            ex = self.client.request(
                "POST", "/api/crm/objects", raw_body=b"x", content_type="text/plain", auth="non-admin"
            )
            check_error(self.report, ex, 403, CODES[403], "errors.order.schema-403-before-415", title)
            self._unchanged(before, self.client.get("/api/crm/objects"))

    # --- schema writes -----------------------------------------------------------------------

    def _schema_writes(self) -> None:
        if not self.scratch.own_object:
            return  # the key may not write schema: the setup checked the 403
        path = f"/api/crm/objects/{self.obj.id}/fields"
        before = self.client.get(f"/api/crm/objects/{self.obj.id}")
        cases: list[tuple[str, int, dict[str, Any], str | None]] = [
            ("schema.reserved-slug", 400, {"name": "Created At", "type": "datetime"}, None),
            ("schema.reserved-slug", 400, {"name": "ID", "type": "text"}, None),
            ("schema.duplicate-slug", 409, {"name": self.obj.fields[0].name, "type": "text"}, None),
            (
                "schema.unique-refused",
                422,
                {"name": f"Flag {self.setup.marker}", "type": "boolean", "unique": True},
                None,
            ),
            (
                "schema.unique-refused",
                422,
                {"name": f"Essay {self.setup.marker}", "type": "long_text", "unique": True},
                None,
            ),
            ("schema.unknown-type", 422, {"name": f"Colour {self.setup.marker}", "type": "colour"}, None),
        ]
        for check_id, status, body, names in cases:
            ex = self.client.request("POST", path, json_body=body)
            check_error(
                self.report,
                ex,
                status,
                CODES[status],
                check_id,
                f"a field definition the contract refuses is {status}",
                names=names,
                area="schema",
            )
        after = self.client.get(f"/api/crm/objects/{self.obj.id}")
        check = ("records.error-changes-nothing", "records", "a rejected write changes nothing")
        self.report.ran(*check)
        if before.status == 200 and after.json != before.json:
            self.report.fail(
                *check, Finding(f"the object as before: {before.summary(300)}", after.summary(300), after)
            )
