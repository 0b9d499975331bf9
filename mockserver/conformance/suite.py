"""What every part of the behaviour suite shares: the scratch area, the oracle, page parsing."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Any

from ..domain.schema import FieldType
from .battery import Diagnosis, diagnose_order
from .client import Client, Exchange, dumps
from .oracle import SYSTEM_KEYS, Oracle, is_empty
from .report import Finding, Report
from .scratch import Scratch, Setup

if TYPE_CHECKING:
    from . import Options

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
QUICK_SORT_TYPES = (
    FieldType.TEXT,
    FieldType.NUMBER,
    FieldType.DATETIME,
    FieldType.BOOLEAN,
    FieldType.STATUS,
    FieldType.DROPDOWN,
    FieldType.MULTI_SELECT,
    FieldType.DATE,
    FieldType.EMAIL,
    FieldType.CURRENCY,
)
PAGE_SHAPE = '200 {"data": [Record], "pagination": {"total", "page", "per_page", "total_pages"}}'


def fmt_ids(ids: list[str], limit: int = 6) -> str:
    if not ids:
        return "(none)"
    shown = ", ".join(ids[:limit])
    return shown + (f", … (+{len(ids) - limit})" if len(ids) > limit else "")


class Suite:
    """The scratch area and oracle a behaviour check runs on, with helpers for reading answers."""

    def __init__(
        self,
        client: Client,
        report: Report,
        setup: Setup,
        scratch: Scratch,
        rng: random.Random,
        quick: bool,
        options: Options,
    ) -> None:
        assert scratch.oracle is not None
        self.options = options
        self.client = client
        self.report = report
        self.setup = setup
        self.scratch = scratch
        self.oracle: Oracle = scratch.oracle
        self.obj = scratch.obj
        self.rng = rng
        self.quick = quick
        self.crud_record: str | None = None  # the record run_records works on (deleted at its end)

    # --- helpers -----------------------------------------------------------------------------

    def show(self, rid: str, slug: str) -> str:
        doc = self.scratch.raw.get(rid, {})
        if slug in SYSTEM_KEYS:
            value = doc.get(slug, rid if slug == "id" else None)
        else:
            fv = doc.get("field_values")
            value = fv.get(slug) if isinstance(fv, dict) else None
        return "(empty)" if is_empty(value) else dumps(value)

    def page_of(self, ex: Exchange) -> tuple[list[str], dict[str, Any]] | None:
        """The ids and pagination of a query answer; a shape finding when it has neither."""
        check = ("paging.shape", "paging", "query answers are {data: [Record], pagination: {...}}")
        self.report.ran(*check)
        body = ex.json
        data = body.get("data") if isinstance(body, dict) else None
        pagination = body.get("pagination") if isinstance(body, dict) else None
        if (
            ex.status != 200
            or not isinstance(data, list)
            or not isinstance(pagination, dict)
            or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in data)
        ):
            if ex.status == 200:
                self.report.fail(*check, Finding(PAGE_SHAPE, ex.summary(), ex))
            return None
        return [r["id"] for r in data], pagination

    def check_pagination(self, ex: Exchange, pagination: dict[str, Any], page: int, per_page: int) -> None:
        total, total_pages = pagination.get("total"), pagination.get("total_pages")
        check = (
            "paging.total-pages",
            "paging",
            "total_pages is ceil(total / per_page), 0 when nothing matches",
        )
        self.report.ran(*check)
        if isinstance(total, int) and total >= 0:
            want = -(-total // per_page)
            if total_pages != want:
                self.report.fail(
                    *check,
                    Finding(
                        f"total_pages {want} (total {total}, per_page {per_page})",
                        f"total_pages {total_pages!r}",
                        ex,
                    ),
                )
        echo = ("paging.echo", "paging", "pagination echoes the page and per_page asked for")
        self.report.ran(*echo)
        if pagination.get("page") != page or pagination.get("per_page") != per_page:
            self.report.fail(
                *echo,
                Finding(
                    f"page {page}, per_page {per_page}",
                    f"page {pagination.get('page')!r}, per_page {pagination.get('per_page')!r}",
                    ex,
                ),
            )

    def allow(self, ex: Exchange, methods: set[str]) -> None:
        """A 405 carries Allow listing exactly `methods`."""
        check = ("errors.allow", "errors", "a 405 carries Allow listing the route's methods")
        self.report.ran(*check)
        allow = {m.strip().upper() for m in (ex.header("allow") or "").split(",") if m.strip()}
        if ex.status == 405 and allow != methods:
            self.report.fail(
                *check, Finding(f"Allow: {', '.join(sorted(methods))}", f"Allow: {ex.header('allow')!r}", ex)
            )

    def _describe(self, rid: str, slugs: list[str]) -> str:
        return rid + " (" + ", ".join(f"{s} = {self.show(rid, s)}" for s in slugs) + ")"

    def _order_finding(
        self,
        ex: Exchange,
        slug: str,
        desc: bool,
        received: list[str],
        expected: list[str],
        label: str,
        default: bool = False,
    ) -> None:
        diag = diagnose_order(self.oracle, slug, desc, received, lambda r: self.show(r, slug))
        finding = Finding(
            f"ids in this order: {fmt_ids(expected, 8)}",
            f"ids in this order: {fmt_ids(received, 8)}",
            ex,
            label,
            [diag.detail] if diag else [],
        )
        self.report_order(finding, diag, default)

    def report_order(self, finding: Finding, diag: Diagnosis | None, default: bool = False) -> None:
        """A page out of order, under the rule it breaks: without sort and order, the default's."""
        if default:
            check = (
                "paging.defaults",
                "paging",
                "without page and per_page: page 1 of 25, sorted by created_at asc",
            )
            self.report.fail(*check, finding)
        elif diag is None:
            self.report.fail("sorting.other", "sorting", "sorted pages match the reference engine", finding)
        else:
            self.report.fail(diag.check_id, "sorting", diag.title, finding, diag.rule)

    def _bad_values(self) -> dict[str, Any]:
        bad: dict[str, Any] = {f"no_such_field_{self.setup.marker}": 1}
        for f in self.obj.fields:
            if f.type in (FieldType.NUMBER, FieldType.CURRENCY):
                bad[f.slug] = "not a number"
                break
            if f.type == FieldType.BOOLEAN:
                bad[f.slug] = "yes"
                break
        return bad

    def _valid_minimal(self) -> dict[str, Any]:
        values = self.setup.values_for(self.scratch, 950)
        keep = {f.slug for f in self.obj.fields if f.required}
        return {k: v for k, v in values.items() if k in keep and not is_empty(v)}


def field_values_of(doc: dict[str, Any]) -> dict[str, Any]:
    fv = doc.get("field_values")
    return fv if isinstance(fv, dict) else {}
