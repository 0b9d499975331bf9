"""Checks of single answers (and of what earlier answers showed), under the rules of the kit's table.

The validation proxy runs these on every exchange it forwards; they take the engine's matchers
and ordering (through `oracle.Oracle`) and report in a `Report`, so the proxy and the kit name a
deviation by the same check id and rule. Nothing here sends a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from ..domain.records import Record
from ..domain.schema import EMPTY, ObjectDef, check_value, parse_datetime_us
from .battery import RULES as FILTER_RULES
from .battery import diagnose_order, order_check
from .client import Exchange
from .oracle import SYSTEM_KEYS, Oracle, OracleInputError, is_empty, record
from .report import Finding, Report
from .shapes import scan

QUERY_PATH = "/api/crm/records/query"
RECORD_PATH = "/api/crm/record"
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")


@dataclass(slots=True)
class Seen:
    """The latest version of a record that an answer showed, and when that answer arrived."""

    doc: dict[str, Any]
    at: float


@dataclass(slots=True)
class Asked:
    """What a query asked for, as the mock reads its parameters."""

    object_id: str
    filters: dict[str, Any] | None
    sort: str | None
    order: str | None
    page: int
    per_page: int


class History:
    """What answers showed so far: each record's latest version, and the records deleted."""

    def __init__(self) -> None:
        self.records: dict[str, Seen] = {}
        self.deleted: dict[str, float] = {}  # record id -> when the 204 arrived

    def latest(self, rid: str, before: float) -> dict[str, Any] | None:
        """The latest version seen in an answer that arrived before `before` (a request's start)."""
        seen = self.records.get(rid)
        return seen.doc if seen is not None and seen.at <= before else None

    def saw(self, doc: dict[str, Any], at: float) -> None:
        rid = doc.get("id")
        if not isinstance(rid, str):
            return
        old = self.records.get(rid)
        if old is None or _updated(old.doc) <= _updated(doc):
            self.records[rid] = Seen(doc, at)

    def gone(self, rid: str, at: float) -> None:
        self.deleted[rid] = at
        self.records.pop(rid, None)


def _updated(doc: dict[str, Any]) -> int:
    """updated_at in microseconds (as strings, "…:01Z" would sort after "…:01.001Z")."""
    value = doc.get("updated_at")
    if not isinstance(value, str):
        return -1
    us = _TIMES.get(value)
    if us is None:
        if len(_TIMES) >= _CACHED:
            _TIMES.clear()
        parsed = parse_datetime_us(value)
        us = _TIMES[value] = parsed if parsed is not None else -1
    return us


#: The proxy sees the same records in answer after answer: what was parsed once is kept (up to
#: _CACHED of each; then the cache starts again).
_CACHED = 50_000
_TIMES: dict[str, int] = {}
_RECORDS: dict[bytes, Record] = {}


def _record(doc: dict[str, Any]) -> Record:
    """`oracle.record(doc)`, once per distinct JSON (records are immutable)."""
    try:
        key = orjson.dumps(doc)
    except TypeError:  # what orjson cannot encode (an integer beyond 64 bits)
        return record(doc)
    rec = _RECORDS.get(key)
    if rec is None:
        if len(_RECORDS) >= _CACHED:
            _RECORDS.clear()
        rec = _RECORDS[key] = record(doc)
    return rec


class AnswerChecks:
    """Checks each exchange's answer against the contract and the history of answers."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.history = History()

    def check(
        self,
        ex: Exchange,
        sent_at: float,
        answered_at: float,
        obj: ObjectDef | None,
        asked: Asked | None = None,
        body: Any = None,
        concurrent: bool = False,
    ) -> None:
        """`obj`: the object the request is about (None when unknown); `asked`: a query's parameters
        as the mock reads them; `body`: the request's decoded JSON body, when the mock accepts it;
        `concurrent`: another request for the same record overlapped this one, so a PATCH's other
        fields are not compared with the last answer."""
        if not ex.path.startswith("/api/"):
            return
        scan(self.report, [ex])
        doc = ex.json
        if ex.method == "GET" and ex.path == QUERY_PATH and ex.status == 200 and isinstance(doc, dict):
            data = doc.get("data")
            if isinstance(data, list):
                if obj is not None and asked is not None:
                    self._query(ex, obj, asked, doc, data)
                self._history(ex, [d for d in data if isinstance(d, dict)], sent_at, answered_at, listed=True)
            return
        rid = ex.path.removeprefix(RECORD_PATH + "/") if ex.path.startswith(RECORD_PATH + "/") else None
        if ex.method == "POST" and ex.path == RECORD_PATH and ex.status == 201 and isinstance(doc, dict):
            if obj is not None and isinstance(body, dict):
                self._create(ex, obj, body, doc)
            self._history(ex, [doc], sent_at, answered_at)
        elif (
            rid
            and ex.method in ("PATCH", "DELETE")
            and 200 <= ex.status < 300
            and self._was_deleted(rid, sent_at)
        ):
            self.report.fail(
                "records.gone",
                "records",
                "a deleted record is 404",
                Finding(f"404: a DELETE of {rid} was answered before this request", ex.summary(200), ex),
            )
        elif rid and ex.method == "PATCH" and ex.status == 200 and isinstance(doc, dict):
            before = self.history.latest(rid, sent_at)
            if isinstance(body, dict):
                self._patch(ex, obj, body, before, doc, concurrent)
            self.history.saw(doc, answered_at)
        elif rid and ex.method == "DELETE":
            self._delete(ex, rid, answered_at)
        elif rid and ex.method == "GET" and ex.status == 200 and isinstance(doc, dict):
            self._history(ex, [doc], sent_at, answered_at)

    # --- queries -------------------------------------------------------------------------------

    def _query(
        self, ex: Exchange, obj: ObjectDef, asked: Asked, doc: dict[str, Any], data: list[Any]
    ) -> None:
        self._paging(ex, asked, doc, data)
        try:
            records = [_record(d) for d in data if isinstance(d, dict)]
        except OracleInputError:
            return  # the shape check (spec.response) reports a record without its members
        if not records or len({r.id for r in records}) != len(records):
            return
        oracle = Oracle(obj, records)
        expected = oracle.query(asked.filters, asked.sort, asked.order, 1, len(records))
        if expected.error is not None:
            return  # the client's side reports the refused query
        matched = set(expected.ids)
        for slug, cond in (asked.filters or {}).items():
            ops = cond if isinstance(cond, dict) else {"bare": cond}
            for op, operand in ops.items():
                check_id, title, rule = filter_check(oracle, slug, op, operand)
                self.report.ran(check_id, "filters", title, rule)
        if asked.filters:
            for rec in records:
                if rec.id not in matched:
                    self._filter_miss(ex, oracle, asked.filters, rec.id)
        received = [r.id for r in records if r.id in matched]
        slug = asked.sort or "created_at"
        check_id, title, rule = order_check(oracle, slug)
        if received != expected.ids:
            diagnosis = diagnose_order(
                oracle, slug, asked.order == "desc", received, lambda rid: _show(oracle.value(rid, slug))
            )
            if diagnosis is not None:
                self.report.fail(
                    diagnosis.check_id,
                    "sorting",
                    diagnosis.title,
                    Finding(
                        f"the page in the order sort={slug} order={asked.order or 'asc'} gives",
                        diagnosis.detail,
                        ex,
                    ),
                    diagnosis.rule,
                )
                check_id = diagnosis.check_id
        self.report.ran(check_id, "sorting", title, rule)

    def _filter_miss(self, ex: Exchange, oracle: Oracle, filters: dict[str, Any], rid: str) -> None:
        """Name the filter key (and operator) that the record does not satisfy."""
        for slug, cond in filters.items():
            if rid in oracle.query({slug: cond}, per_page=100).ids:
                continue
            ops = cond if isinstance(cond, dict) else {"bare": cond}
            failing = [
                op
                for op, operand in ops.items()
                if rid not in oracle.query({slug: {op: operand}}, per_page=100).ids
            ] or ["combined"]
            op = failing[0] if op_is_known(failing[0]) else "combined"
            check_id, title, rule = filter_check(oracle, slug, op, ops.get(op))
            value = oracle.value(rid, slug)
            self.report.fail(
                check_id,
                "filters",
                title,
                Finding(
                    f"only records where {slug} satisfies {_show({slug: cond})}",
                    f"{rid} with {slug} = {_show(value) if value is not None else '(empty)'}",
                    ex,
                ),
                rule,
            )
            return
        self.report.fail(
            "filters.combined",
            "filters",
            "all filter keys AND together",
            Finding(f"only records matching {_show(filters)}", f"{rid}, which does not", ex),
        )

    def _paging(self, ex: Exchange, asked: Asked, doc: dict[str, Any], data: list[Any]) -> None:
        p = doc.get("pagination")
        if not isinstance(p, dict) or not all(
            isinstance(p.get(k), int) for k in ("total", "page", "per_page")
        ):
            return  # the shape check reports it
        total, page, per_page = p["total"], asked.page, asked.per_page
        self.report.ran("paging.echo", "paging", "pagination echoes page and per_page")
        if (p["page"], p["per_page"]) != (page, per_page):
            self.report.fail(
                "paging.echo",
                "paging",
                "pagination echoes page and per_page",
                Finding(
                    f"page {page}, per_page {per_page}", f"page {p['page']}, per_page {p['per_page']}", ex
                ),
            )
        self.report.ran("paging.total-pages", "paging", "total_pages is ceil(total / per_page)")
        want_pages = -(-total // per_page)
        if p.get("total_pages") != want_pages:
            self.report.fail(
                "paging.total-pages",
                "paging",
                "total_pages is ceil(total / per_page)",
                Finding(
                    f"total_pages {want_pages} (ceil({total} / {per_page}))",
                    f"total_pages {p.get('total_pages')!r}",
                    ex,
                ),
            )
        want = max(0, min(per_page, total - (page - 1) * per_page))
        check_id = "paging.past-the-end" if page > want_pages else "paging.edges"
        self.report.ran(
            check_id, "paging", "pages hold per_page records, the last the rest, past the end none"
        )
        if len(data) != want:
            where = "past the end" if page > want_pages else f"page {page} of {want_pages}"
            self.report.fail(
                check_id,
                "paging",
                "pages hold per_page records, the last the rest, past the end none",
                Finding(
                    f"{want} record(s) on {where} (total {total}, per_page {per_page})",
                    f"{len(data)} record(s)",
                    ex,
                ),
            )

    # --- writes --------------------------------------------------------------------------------

    def _create(self, ex: Exchange, obj: ObjectDef, body: dict[str, Any], doc: dict[str, Any]) -> None:
        sent = body.get("field_values")
        if not isinstance(sent, dict):
            return
        expected: dict[str, Any] = {}
        for slug, value in sent.items():
            f = obj.by_slug.get(slug)
            if f is None:
                return  # the client's side reports the unknown field
            stored, message = check_value(f, value, _anything, _anything)
            if message is not None:
                return
            if stored is not EMPTY:
                expected[slug] = stored
        for f in obj.fields:
            if f.has_default and f.slug not in sent:
                expected[f.slug] = f.default_value
        got = doc.get("field_values")
        self.report.ran("records.create", "records", "a create answers the record as stored")
        problems = _differences(expected, got if isinstance(got, dict) else {}, None)
        if doc.get("object_id") != body.get("object_id"):
            problems.append(f"object_id {doc.get('object_id')!r}, sent {body.get('object_id')!r}")
        if problems:
            self.report.fail(
                "records.create",
                "records",
                "a create answers the record as stored",
                Finding(f"field_values {_show(expected)}", "; ".join(problems), ex),
            )

    def _patch(
        self,
        ex: Exchange,
        obj: ObjectDef | None,
        body: dict[str, Any],
        before: dict[str, Any] | None,
        doc: dict[str, Any],
        concurrent: bool = False,
    ) -> None:
        sent = body.get("field_values")
        got = doc.get("field_values")
        if not isinstance(sent, dict) or not isinstance(got, dict):
            return
        expected: dict[str, Any] = {}
        cleared: list[str] = []
        for slug, value in sent.items():
            f = obj.by_slug.get(slug) if obj is not None else None
            if f is None:
                stored: Any = EMPTY if is_empty(value) else value
            else:
                stored, message = check_value(f, value, _anything, _anything)
                if message is not None:
                    return
            if stored is EMPTY:
                cleared.append(slug)
            else:
                expected[slug] = stored
        kept: dict[str, Any] = {}
        if before is not None and not concurrent and isinstance(before.get("field_values"), dict):
            kept = {k: v for k, v in before["field_values"].items() if k not in sent and not is_empty(v)}
        self.report.ran("records.patch-merges", "records", "PATCH merges field_values")
        problems = _differences({**kept, **expected}, got, set(sent) | set(kept))
        if problems:
            self.report.fail(
                "records.patch-merges",
                "records",
                "PATCH merges field_values",
                Finding(
                    "the keys sent changed, the others as the last answer showed them"
                    if before is not None
                    else "the keys sent changed",
                    "; ".join(problems),
                    ex,
                ),
            )
        if cleared:
            self.report.ran("records.null-clears", "records", "null in a PATCH clears the field")
            left = [k for k in cleared if not is_empty(got.get(k))]
            if left:
                self.report.fail(
                    "records.null-clears",
                    "records",
                    "null in a PATCH clears the field",
                    Finding(f"{', '.join(left)} cleared", f"field_values {_show(got)}", ex),
                )
        if before is not None:
            self.report.ran(
                "records.updated-at", "records", "PATCH moves updated_at forward, keeps created_at"
            )
            problems = []
            if not _later(doc.get("updated_at"), before.get("updated_at")):
                problems.append(f"updated_at {doc.get('updated_at')!r}, was {before.get('updated_at')!r}")
            if doc.get("created_at") != before.get("created_at"):
                problems.append(f"created_at {doc.get('created_at')!r}, was {before.get('created_at')!r}")
            if problems:
                self.report.fail(
                    "records.updated-at",
                    "records",
                    "PATCH moves updated_at forward, keeps created_at",
                    Finding(
                        "updated_at later than the last answer's, created_at the same",
                        "; ".join(problems),
                        ex,
                    ),
                )

    def _was_deleted(self, rid: str, sent_at: float) -> bool:
        deleted = self.history.deleted.get(rid)
        if deleted is not None and deleted <= sent_at:
            self.report.ran("records.gone", "records", "a deleted record is 404")
            return True
        return False

    def _delete(self, ex: Exchange, rid: str, answered_at: float) -> None:
        if ex.status == 404:
            return
        self.report.ran("records.delete", "records", "DELETE answers 204 with an empty body")
        if ex.status != 204 or ex.text:
            self.report.fail(
                "records.delete",
                "records",
                "DELETE answers 204 with an empty body",
                Finding("204 with an empty body", ex.summary(), ex),
            )
        if 200 <= ex.status < 300:
            self.history.gone(rid, answered_at)

    # --- what earlier answers showed -------------------------------------------------------------

    def _history(
        self,
        ex: Exchange,
        docs: list[dict[str, Any]],
        sent_at: float,
        answered_at: float,
        listed: bool = False,
    ) -> None:
        for doc in docs:
            rid = doc.get("id")
            if not isinstance(rid, str):
                continue
            deleted = self.history.deleted.get(rid)
            if deleted is not None and deleted <= sent_at:
                check_id = "records.read-your-writes.delete" if listed else "records.gone"
                title = "a deleted record is absent from queries" if listed else "a deleted record is 404"
                self.report.fail(
                    check_id,
                    "records",
                    title,
                    Finding(
                        f"no {rid}: a DELETE of it was answered before this request",
                        f"{rid} in the answer" if listed else ex.summary(200),
                        ex,
                    ),
                )
                continue
            before = self.history.latest(rid, sent_at)
            if before is not None and before != doc:  # most re-reads show the same record: nothing to compare
                self._compare(ex, before, doc)
            self.history.saw(doc, answered_at)

    def _compare(self, ex: Exchange, before: dict[str, Any], doc: dict[str, Any]) -> None:
        """An answer must not show an older version than one already seen, nor a change without a
        write (the same updated_at with other values)."""
        old, new = before.get("updated_at"), doc.get("updated_at")
        rid = doc.get("id")
        if isinstance(old, str) and isinstance(new, str) and _later(old, new):
            self.report.fail(
                "records.read-your-writes.stale",
                "records",
                "answers show the latest version of a record",
                Finding(
                    f"{rid} as of updated_at {old} (or later), as an earlier answer showed it",
                    f"updated_at {new}: an older version",
                    ex,
                ),
            )
            return
        if old != new:
            return  # a write (perhaps by another client) came between: nothing to compare
        self.report.ran("records.updated-at", "records", "a record changes only with updated_at")
        changed = _differences(_values(before), _values(doc), None)
        for key in ("created_at", "created_by", "object_id"):
            if before.get(key) != doc.get(key):
                changed.append(f"{key} {doc.get(key)!r}, was {before.get(key)!r}")
        if changed:
            self.report.fail(
                "records.updated-at",
                "records",
                "a record changes only with updated_at",
                Finding(
                    f"{rid} as an earlier answer showed it (same updated_at {new})",
                    "changed without a write: " + "; ".join(changed),
                    ex,
                ),
            )


def op_is_known(op: str) -> bool:
    return op in FILTER_RULES or op in RANGE_OPS or op == "bare"


def filter_check(oracle: Oracle, slug: str, op: str, operand: Any) -> tuple[str, str, str]:
    """The kit's check id, title and rule text for operator `op` on `slug`."""
    f = oracle.obj.by_slug.get(slug)
    if op in ("$in", "$nin") and operand == []:
        return "filters.list-edges", "$in: [] matches nothing, $nin: [] everything", ""
    if f is not None and f.type == "multi_select":
        return "filters.multi-select", f"{op} on a multi_select field", ""
    if op == "bare":
        group, title, rule = "bare", "a bare value filters like $eq", FILTER_RULES["$eq"]
    elif op in RANGE_OPS:
        group, title, rule = "range", "range filters ($gt $gte $lt $lte)", FILTER_RULES["range"]
    elif op in FILTER_RULES:
        group, title, rule = op, f"filter {op}", FILTER_RULES[op]
    else:
        return "filters.combined", "all filter keys AND together", FILTER_RULES["combined"]
    if slug in SYSTEM_KEYS:
        return f"filters.system.{group}", f"{title} on {slug}", ""
    return f"filters.{group}", title, rule


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    values = doc.get("field_values")
    return {k: v for k, v in values.items() if not is_empty(v)} if isinstance(values, dict) else {}


def _differences(expected: dict[str, Any], got: dict[str, Any], only: set[str] | None) -> list[str]:
    """How `got` differs from `expected` (empty values as absent); `only`: compare just these keys."""
    out = []
    keys = set(expected) | {k for k, v in got.items() if not is_empty(v)}
    for key in sorted(keys if only is None else keys & only):
        want, have = expected.get(key), got.get(key)
        if is_empty(have):
            have = None
        if want != have or isinstance(want, bool) != isinstance(have, bool):
            if want is None:
                out.append(f"{key} = {_show(have)} (expected absent)")
            elif have is None:
                out.append(f"{key} missing (expected {_show(want)})")
            else:
                out.append(f"{key} = {_show(have)} (expected {_show(want)})")
    return out


def _later(a: Any, b: Any) -> bool:
    """Whether timestamp `a` is strictly after `b` (both as the contract writes them)."""
    ua = parse_datetime_us(a) if isinstance(a, str) else None
    ub = parse_datetime_us(b) if isinstance(b, str) else None
    return ua is not None and ub is not None and ua > ub


def _anything(*_: Any) -> bool:
    """References and users are not checked against the server's data: the proxy cannot see it."""
    return True


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 160 else text[:157] + "..."
