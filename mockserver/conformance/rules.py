"""The contract's rules as data: each rule's id, area, text and the kit checks that test it.

The rules come from CONTRACT.md's sections and the decisions `openapi.yaml` writes down. The
kit's report, its coverage line and its JUnit XML (one test case per rule) are all read from
this table, and `tests/test_conformance_rules.py` fails when a rule has no check or a check the
kit runs names no rule.

A check pattern is a check id, or a prefix ending in `*` for families whose ids the kit makes
as it goes (`paging.limit.per_page-101`, `schemathesis.not_a_server_error`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: The areas, in the order reports show them.
AREAS = (
    "schema",
    "filters",
    "sorting",
    "paging",
    "records",
    "formats",
    "errors",
    "protocol",
    "rate-limits",
    "webhooks",
    "spec",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the contract and the checks that test it."""

    id: str
    area: str
    text: str
    checks: tuple[str, ...]
    #: Why the rule may go unchecked in a run (an option it needs); empty when every run checks it.
    needs: str = ""

    def covers(self, check_id: str) -> bool:
        return any(_matches(pattern, check_id) for pattern in self.checks)


def _matches(pattern: str, check_id: str) -> bool:
    if pattern.endswith("*"):
        return check_id.startswith(pattern[:-1])
    return check_id == pattern


def _r(rule_id: str, text: str, *checks: str, needs: str = "") -> Rule:
    return Rule(rule_id, rule_id.split(".", 1)[0], text, checks, needs)


RULES: tuple[Rule, ...] = (
    # --- schema ------------------------------------------------------------------------------
    _r(
        "schema.list",
        "GET /api/crm/objects lists every object as {id, name, slug, icon, field_count}; field_count "
        "follows added fields",
        "setup.list-objects",
        "setup.field-count",
    ),
    _r("schema.get", "GET /api/crm/objects/{id} returns the object with fields: [Field]", "setup.get-object"),
    _r(
        "schema.create",
        "POST /api/crm/objects creates an object (with fields of every type); POST "
        "/api/crm/objects/{id}/fields adds a field",
        "setup.create-object",
        "setup.create-field",
        needs="an admin key",
    ),
    _r(
        "schema.slugs",
        "a slug is the name lowercased, runs of anything but a-z0-9 turned into _, trimmed of _; "
        "object ids are obj_<slug>",
        "setup.slugs",
        needs="an admin key",
    ),
    _r(
        "schema.admin",
        "creating objects or fields needs a key of an admin user, else 403 FORBIDDEN",
        "errors.forbidden-schema-write",
        "schema.admin-only",
        needs="--non-admin-key, or a non-admin --api-key",
    ),
    _r(
        "schema.write-rules",
        "field slugs id, created_at, updated_at, created_by, object_id are reserved (400); a duplicate "
        "field slug is 409; unique is refused on multi_select, boolean and long_text (422); an unknown "
        "type is 422",
        "schema.reserved-slug",
        "schema.duplicate-slug",
        "schema.unique-refused",
        "schema.unknown-type",
        needs="an admin key",
    ),
    # --- filters -----------------------------------------------------------------------------
    _r(
        "filters.eq",
        "$eq (or a bare value) is exact, except that status and dropdown values match their option "
        "case-insensitively and email compares lowercased; it never matches an empty value",
        "filters.$eq",
        "filters.bare",
        "filters.case-folding",
    ),
    _r(
        "filters.ne",
        "$ne matches every record whose value differs, including the records where it is empty",
        "filters.$ne",
    ),
    _r(
        "filters.in",
        "$in matches any of the values exactly (multi_select: has any of them); never an empty value",
        "filters.$in",
    ),
    _r(
        "filters.nin",
        "$nin matches records whose value is none of them, including empty values",
        "filters.$nin",
    ),
    _r("filters.list-edges", "$in: [] matches nothing and $nin: [] matches everything", "filters.list-edges"),
    _r(
        "filters.contains",
        "$contains is a case-insensitive substring match; it never matches an empty value",
        "filters.$contains",
    ),
    _r(
        "filters.not-contains",
        "$not_contains is case-insensitive and matches empty values",
        "filters.$not_contains",
    ),
    _r("filters.starts-with", "$starts_with is a case-insensitive prefix match", "filters.$starts_with"),
    _r("filters.ends-with", "$ends_with is a case-insensitive suffix match", "filters.$ends_with"),
    _r(
        "filters.unicode",
        "text operators fold case for any text a user may store, not only ASCII (É matches é, Ü "
        "matches ü); $eq on text stays exact",
        "filters.unicode",
    ),
    _r(
        "filters.range",
        "$gt $gte $lt $lte compare numbers by value, dates in calendar order and datetimes, created_at "
        "and updated_at in time order; they never match an empty value",
        "filters.range",
    ),
    _r(
        "filters.date-operand",
        "a date-only operand against a datetime means that day's midnight UTC; an offset operand "
        "compares as the instant it names",
        "filters.date-operand",
    ),
    _r(
        "filters.empty",
        '$empty: true matches missing, null, "" and [] values; false matches the rest',
        "filters.$empty",
    ),
    _r(
        "filters.multi-select",
        "on multi_select, $eq with a string means has that option, with an array exactly that set; "
        "$contains means has this option (case-insensitive); $in has any of these",
        "filters.multi-select",
    ),
    _r(
        "filters.system-fields",
        "the system fields id, created_at, updated_at and created_by filter like fields of their type",
        "filters.system.*",
    ),
    _r(
        "filters.combined",
        "all filter keys AND together, and so do several operators on one field",
        "filters.combined",
        "filters.operators-and",
    ),
    _r(
        "filters.operator-types",
        "range operators apply only to number, currency, date, datetime and the timestamps; text "
        "operators only to the string types, status, dropdown, reference, user, id and created_by; "
        "$starts_with and $ends_with not to multi_select; elsewhere 400 BAD_REQUEST",
        "errors.range-on-text",
        "filters.refused-operator",
    ),
    _r(
        "filters.operand-types",
        "an operand of the wrong JSON type (a string for a number field, a non-array for $in, a "
        "non-boolean for $empty, null anywhere, a bad date) is 400 naming field and operator",
        "errors.operand-type",
        "filters.refused-operand",
    ),
    _r(
        "filters.malformed",
        "malformed filters (not JSON, not an object, empty, an unknown operator, an empty operator "
        "object) are 400 BAD_REQUEST naming filters",
        "errors.malformed-filters",
        "errors.filters-not-object",
        "errors.unknown-operator",
        "errors.empty-filters",
    ),
    _r(
        "filters.unknown-field",
        "an unknown filter field is 400 BAD_REQUEST naming filters",
        "errors.unknown-filter-field",
    ),
    # --- sorting -----------------------------------------------------------------------------
    _r(
        "sorting.text",
        "text sorts case-insensitively (email and the other string types lowercased)",
        "sorting.order.text",
    ),
    _r("sorting.choice", "status and dropdown sort by their options' order", "sorting.order.choice"),
    _r("sorting.boolean", "booleans sort false before true", "sorting.order.boolean"),
    _r(
        "sorting.multi", "multi_select sorts by its values joined with ',', lowercased", "sorting.order.multi"
    ),
    _r(
        "sorting.value",
        "numbers sort by value, dates in calendar order, datetimes and the timestamps in time order",
        "sorting.order.value",
    ),
    _r(
        "sorting.empty-last",
        'empty values (missing, null, "", []) sort after every value, ascending and descending',
        "sorting.empty-last",
    ),
    _r(
        "sorting.ties",
        "id ascending breaks every tie, in both orders, so pages never overlap or skip",
        "sorting.ties-by-id",
        "paging.stable",
    ),
    _r(
        "sorting.default",
        "sort defaults to created_at and order to asc; any field or system field sorts, in both orders",
        "paging.defaults",
        "sorting.other",
    ),
    _r(
        "sorting.bad",
        "an unknown sort field, an empty sort= and an order other than asc/desc are 400 naming the parameter",
        "errors.unknown-sort",
        "errors.bad-order",
        "protocol.empty-param",
    ),
    # --- paging ------------------------------------------------------------------------------
    _r(
        "paging.shape",
        'a query answers {"data": [Record], "pagination": {"total", "page", "per_page", "total_pages"}}',
        "paging.shape",
        "paging.walk",
        "setup.read-all",
    ),
    _r("paging.echo", "pagination echoes the page and per_page asked for", "paging.echo"),
    _r("paging.total", "pagination.total counts every matching record", "paging.total"),
    _r(
        "paging.total-pages",
        "total_pages is ceil(total / per_page), 0 when nothing matches",
        "paging.total-pages",
        "paging.no-match",
    ),
    _r(
        "paging.limits",
        "page >= 1 (default 1) and per_page 1..100 (default 25); anything else, a non-integer "
        "included, is 400 naming the parameter, never clamped",
        "paging.limit.*",
    ),
    _r(
        "paging.edges",
        "per_page=1 and per_page=100 page exactly; the last page holds the rest; a page past the end "
        "is 200 with empty data and the same total",
        "paging.edges",
        "paging.past-the-end",
        "paging.per-page-100",
    ),
    # --- records -----------------------------------------------------------------------------
    _r(
        "records.create",
        "POST /api/crm/record answers 201 with the record as stored: id, object_id, field_values, "
        "created_at, updated_at, created_by",
        "records.create",
        "setup.create-records",
        "setup.record-shape",
    ),
    _r("records.get", "GET /api/crm/record/{id} returns the record, unwrapped", "records.get"),
    _r(
        "records.system-values",
        "created_by is the key's user; object_id is the record's object; created_at and updated_at "
        "are the time of the write",
        "records.system-values",
    ),
    _r(
        "records.timestamps",
        "created_at and updated_at are UTC, YYYY-MM-DDTHH:MM:SS[.fff]Z",
        "records.timestamps",
    ),
    _r(
        "records.patch-merge",
        "PATCH merges field_values: keys sent change, the rest stay; {} changes nothing",
        "records.patch-merges",
    ),
    _r("records.null-clears", "null in a PATCH clears the field; the rest stay", "records.null-clears"),
    _r(
        "records.updated-at",
        "every PATCH, {} included, moves updated_at forward and keeps created_at",
        "records.updated-at",
    ),
    _r(
        "records.patch-body",
        "PATCH takes only field_values; any other top-level key is 400",
        "records.patch-body",
    ),
    _r(
        "records.required",
        "required fields must be present on create and cannot be cleared (null or empty) by PATCH: 422",
        "errors.required",
        "records.required",
    ),
    _r(
        "records.defaults",
        "default_values fill keys that are absent on create; an explicit null stays empty",
        "records.defaults",
    ),
    _r(
        "records.empties",
        'empty fields are left out of field_values; "" empties the string types, [] a multi_select, null '
        'any field; "" for a number, currency, boolean or date is 422',
        "records.empties",
    ),
    _r(
        "records.unknown-keys",
        "an unknown top-level body key is 400; an unknown field in field_values is 422",
        "errors.unknown-body-key",
        "records.unknown-field",
    ),
    _r(
        "records.unique",
        "a value taken on a unique field is 409 CONFLICT (email ignoring case); a record may keep its "
        "own value; empty values never conflict; deleting a record frees its value",
        "errors.conflict",
        "records.unique.*",
    ),
    _r(
        "records.delete",
        "DELETE answers 204 with an empty body; then GET, PATCH and DELETE are 404",
        "records.delete",
        "records.gone",
    ),
    _r(
        "records.read-your-writes",
        "after a create, an update or a delete, queries that name the changed values reflect it at once",
        "records.read-your-writes.*",
    ),
    _r(
        "records.error-changes-nothing",
        "an error never changes state: a rejected write leaves the record and the object as they were",
        "records.error-changes-nothing",
    ),
    # --- formats (values on write) -------------------------------------------------------------
    *(
        _r(f"formats.{name}", text, f"formats.{name}")
        for name, text in (
            ("text", "text is a string of at most 255 characters (characters, not bytes)"),
            ("long_text", "long_text is a string of any length"),
            ("number", "number is a finite JSON number (not a string, not a boolean)"),
            ("currency", "currency is a finite JSON number"),
            (
                "email",
                'email is a WHATWG "valid email address" (no dot needed in the domain), stored as sent',
            ),
            ("phone", "phone is a string of 7 to 15 digits with + ( ) - . and spaces"),
            ("url", "url is an http or https URL"),
            ("image", "image is an http or https URL"),
            ("date", "date is YYYY-MM-DD, a real calendar day"),
            (
                "datetime",
                "datetime is YYYY-MM-DDTHH:MM[:SS[.fff]] with Z or ±HH:MM, stored as sent; naive datetimes "
                "and impossible dates are 422",
            ),
            ("boolean", "boolean is true or false"),
            ("status", "status is one of options.stages, in the stage's exact case"),
            ("dropdown", "dropdown is one of options.choices, in the choice's exact case"),
            ("multi_select", "multi_select is an array of options.choices, each in its exact case"),
            ("reference", "reference is the id of an existing record of options.object_id"),
            ("user", "user is the id of one of the workspace's users"),
        )
    ),
    _r(
        "formats.every-violation",
        "field_values that break the schema are 422 VALIDATION_ERROR listing every violation in "
        "details.errors as {field, message}",
        "errors.validation",
        "errors.validation-lists-all",
        "errors.validation-patch",
    ),
    # --- errors ------------------------------------------------------------------------------
    _r(
        "errors.shape",
        'every error is {"error": "<message>", "code": "<CODE>", "status": <int>, "details": {...}} with '
        "its status's code",
        "errors.shape",
    ),
    _r(
        "errors.auth",
        "a missing or unknown X-Api-Key is 401 UNAUTHORIZED",
        "errors.missing-key",
        "errors.wrong-key",
    ),
    _r(
        "errors.intake-key",
        "an intake key on /api/crm/* is 403 FORBIDDEN",
        "errors.intake-key",
        needs="--intake-key",
    ),
    _r(
        "errors.not-found",
        "an unknown route, object or record is 404 NOT_FOUND, details naming the id",
        "errors.unknown-route",
        "errors.unknown-object",
        "errors.unknown-record",
        "errors.missing-object-id",
    ),
    _r(
        "errors.method",
        "a method a route does not serve, HEAD and OPTIONS included, is 405 METHOD_NOT_ALLOWED with Allow "
        "listing exactly the route's methods",
        "errors.method",
        "errors.allow",
        "protocol.methods",
    ),
    _r(
        "errors.order",
        "checks run in the contract's order: 401, 429, 403 (intake), unknown route 404, 405, 403 "
        "(schema), 415, 413, 400 for the body's form, 404 for the object or record, 422, 409; for a "
        "query 400 for the parameters' form, then 404 for the object, then 400 for fields and operands",
        "errors.order.*",
    ),
    _r("errors.no-5xx", "no request, however malformed, gets a 5xx", "protocol.no-5xx"),
    # --- protocol ----------------------------------------------------------------------------
    _r("protocol.json", "responses with a body are application/json", "protocol.json"),
    _r(
        "protocol.repeated-params",
        "a known query parameter given twice is 400 naming it",
        "errors.repeated-param",
        "protocol.repeated-param",
    ),
    _r("protocol.unknown-params", "unknown query parameters are ignored", "protocol.unknown-param"),
    _r(
        "protocol.body-size",
        "a body over 1 MiB (1,048,576 bytes) is 413 PAYLOAD_TOO_LARGE however it is sent (with a "
        "Content-Length or chunked); a body of exactly 1 MiB is not",
        "protocol.body-size.*",
    ),
    _r(
        "protocol.content-type",
        "POST and PATCH bodies are application/json with charset=utf-8 or none; any other type or "
        "charset, or none, is 415 UNSUPPORTED_MEDIA_TYPE",
        "errors.media-type",
        "protocol.content-type.*",
    ),
    _r(
        "protocol.json-text",
        "malformed JSON, NaN and Infinity, numbers too large for a double, lone surrogate escapes and "
        "content after the document are 400 BAD_REQUEST",
        "errors.malformed-body",
        "protocol.json-text.*",
    ),
    # --- rate limits -------------------------------------------------------------------------
    _r(
        "rate-limits.headers",
        "every /api response carries X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset "
        "(Unix seconds); a 401 may leave them out",
        "protocol.rate-limit-headers",
    ),
    _r(
        "rate-limits.window",
        "the headers describe a fixed window: within it the limit stays, remaining falls by one per "
        "counted request, and reset is the window's end (the next clock minute, or the next UTC day)",
        "rate-limits.window",
    ),
    _r(
        "rate-limits.exceeded",
        "over the limit: 429 RATE_LIMITED with Retry-After, whole seconds until the window resets",
        "rate-limits.429",
        needs="--limited-key",
    ),
    _r(
        "rate-limits.no-quota",
        "429s use no quota: after the window resets the key has its whole allowance less what succeeded",
        "rate-limits.429-no-quota",
        needs="--limited-key",
    ),
    _r(
        "rate-limits.no-change",
        "a request answered 429 changes nothing",
        "rate-limits.429-changes-nothing",
        needs="--limited-key",
    ),
    # --- webhooks ----------------------------------------------------------------------------
    _r(
        "webhooks.events",
        "a create, an update and a delete each send one delivery: record.created, record.updated, "
        "record.deleted",
        "webhooks.events",
        needs="--webhooks",
    ),
    _r(
        "webhooks.body",
        'the body is {"event", "timestamp", "data": Record, "signature"}, data equal to the record as '
        "the API returned it",
        "webhooks.body",
        needs="--webhooks",
    ),
    _r(
        "webhooks.signature",
        'signature is "sha256=" + HMAC-SHA256 with the secret over the compact JSON of the body without '
        "signature; the same value is in X-Kantos-Signature",
        "webhooks.signature",
        needs="--webhooks",
    ),
    _r(
        "webhooks.event-id",
        "each delivery carries X-Kantos-Event-Id, one per event",
        "webhooks.event-id",
        needs="--webhooks",
    ),
    _r(
        "webhooks.retry",
        "a failed delivery is retried (after 1, 5 and 30 minutes) with the same X-Kantos-Event-Id",
        "webhooks.retry",
        needs="--webhooks --webhook-retries",
    ),
    # --- spec --------------------------------------------------------------------------------
    _r(
        "spec.schemathesis",
        "every operation answers as openapi.yaml states: statuses, shapes, headers, links (schemathesis, "
        "every check, stateful phase included)",
        "schemathesis.*",
        "spec.response",  # the validation proxy's check of each answer it forwards
        needs="the fuzz phase (not --no-fuzz)",
    ),
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}


def rules_for(check_id: str) -> list[Rule]:
    """The rules a check tests (empty for a check the table does not know)."""
    return [r for r in RULES if r.covers(check_id)]


def uncovered(check_ids: Iterable[str]) -> list[Rule]:
    """The rules that none of `check_ids` tests."""
    ids = list(check_ids)
    return [r for r in RULES if not any(r.covers(c) for c in ids)]
