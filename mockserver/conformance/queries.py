"""Queries against the oracle: the filter battery, sorted walks over every page, paging limits."""

from __future__ import annotations

from typing import Any

from ..domain.schema import FieldType
from .battery import Battery, Probe, diagnose_order, order_check, type_name
from .client import Exchange, dumps
from .oracle import SYSTEM_KEYS, Expected
from .report import Finding
from .rules import BY_ID
from .shapes import check_error
from .suite import PAGE_SHAPE, QUICK_SORT_TYPES, Suite, fmt_ids


class QueryChecks(Suite):
    """Filters, sorted walks and paging, each answer compared with the oracle."""

    def run_filters(self) -> None:
        probes = Battery(self.oracle, self.scratch.raw, self.rng, self.quick).probes()
        if self.options.rules is not None:
            chosen = [BY_ID[r] for r in self.options.rules]
            probes = [p for p in probes if any(r.covers(p.check_id) for r in chosen)]
        self.report.progress(f"filters: {len(probes)} queries derived from the fields and values")
        for i, probe in enumerate(probes, 1):
            self._probe(probe)
            if i % 100 == 0:
                self.report.progress(f"filters: {i}/{len(probes)}")
        bad = sum(len(c.findings) for c in self.report.checks.values() if c.area == "filters")
        self.report.progress(f"filters: done, {bad} deviating")

    def _probe(self, probe: Probe) -> None:
        per_page = 100
        exp = self.oracle.query(probe.filters, "id", "asc", 1, per_page)
        ex = self.client.query(
            {"object_id": self.obj.id, "filters": probe.filters, "sort": "id", "per_page": per_page}
        )
        self.report.ran(probe.check_id, "filters", probe.title, probe.rule)
        types = ", ".join(type_name(self.oracle, s) for s in probe.fields)
        label = f"filters={dumps(probe.filters)} ({types})"
        if exp.error is not None:
            field = probe.fields[0] if len(probe.fields) == 1 else None
            check_error(
                self.report, ex, 400, "BAD_REQUEST", probe.check_id, probe.title, names=field, rule=probe.rule
            )
            return
        got = self.page_of(ex)
        if got is None:
            self.report.fail(
                probe.check_id,
                "filters",
                probe.title,
                Finding(f"200 with {exp.total} record(s)", ex.summary(), ex, label),
                probe.rule,
            )
            return
        ids, pagination = got
        self.check_pagination(ex, pagination, 1, per_page)
        total = pagination.get("total")
        wanted = set(exp.ids)
        missing = [r for r in exp.ids if r not in set(ids)]
        extra = [r for r in ids if r not in wanted]
        if missing or extra or total != exp.total:
            detail = []
            slugs = probe.fields
            if missing:
                detail.append(
                    f"missing {len(missing)} record(s) the filter matches, e.g. "
                    + "; ".join(self._describe(r, slugs) for r in missing[:3])
                )
            if extra:
                detail.append(
                    f"{len(extra)} record(s) the filter does not match, e.g. "
                    + "; ".join(self._describe(r, slugs) for r in extra[:3])
                )
            self.report.fail(
                probe.check_id,
                "filters",
                probe.title,
                Finding(
                    f"total {exp.total}: {fmt_ids(exp.ids)}",
                    f"total {total!r}: {fmt_ids(ids)}",
                    ex,
                    label,
                    detail,
                ),
                probe.rule,
            )
        elif ids != exp.ids:
            self._order_finding(ex, "id", False, ids, exp.ids, label + " sort=id")

    # --- sorting and walking every page --------------------------------------------------------

    def sort_keys(self) -> list[str | None]:
        """Every field and system field; in quick runs one field of each way of ordering."""
        if not self.quick:
            return [None, *SYSTEM_KEYS, *(f.slug for f in self.obj.fields)]
        picked: list[str] = []
        for t in QUICK_SORT_TYPES:
            f = next((f for f in self.obj.fields if f.type == t), None)
            if f is not None and len(picked) < 8:
                picked.append(f.slug)
        return [None, "created_at", "id", *picked]

    def per_page(self) -> int:
        n = len(self.oracle.records)
        size = min(100, max(2, n // 4 + 1))
        while n % size == 0 and size < min(n, 100):
            size += 1
        return size

    def run_sorting(self) -> None:
        keys = self.sort_keys()
        size = self.per_page()
        for check_id, title, rule in (
            (
                "sorting.empty-last",
                "empty values sort last, in both orders",
                'empty values (missing, null, "", []) sort after every value, ascending and descending',
            ),
            (
                "sorting.ties-by-id",
                "ties are broken by id ascending, in both orders, so pages are stable",
                "id ascending breaks every tie, in both orders, so pages never overlap or skip",
            ),
        ):
            self.report.check(check_id, "sorting", title, rule)
        self.report.progress(
            f"sorting: {len(keys)} sort keys x asc/desc, walking every page of {size} "
            f"({len(self.oracle.records)} records)"
        )
        for key in keys:
            for order in ("asc", "desc"):
                self._walk(key, order, size)
                if len(self.oracle.records) <= 100:  # the whole set on one page: every pair compared
                    self._walk(key, order, 100)
        bad = sum(len(c.findings) for c in self.report.checks.values() if c.area == "sorting")
        self.report.progress(f"sorting: done, {bad} deviating")

    def _walk(self, slug: str | None, order: str, size: int) -> None:
        n = len(self.oracle.records)
        pages = max(1, -(-n // size))
        walk = list(range(1, pages + 1))
        if len(walk) > 8:
            walk = [*walk[:6], pages]
        desc = order == "desc"
        sort_slug = slug or "created_at"
        stable = (
            "paging.stable",
            "paging",
            "walking every page returns each record exactly once (no overlap, no gap)",
            "id ascending breaks every tie, in both orders, so pages never overlap or skip",
        )
        self.report.ran("sorting.empty-last", "sorting", "empty values sort last, in both orders")
        self.report.ran(
            "sorting.ties-by-id",
            "sorting",
            "ties are broken by id ascending, in both orders, so pages are stable",
        )
        self.report.ran(*stable[:3], stable[3])
        order_id, order_title, order_rule = order_check(self.oracle, sort_slug)
        self.report.ran(order_id, "sorting", order_title, order_rule)
        self.report.ran("sorting.other", "sorting", "sorted pages match the reference engine")
        received: list[str] = []
        expected: list[str] = []
        first_bad: tuple[Exchange, int, list[str], list[str]] | None = None
        seen_on: dict[str, int] = {}
        overlap: tuple[Exchange, str, int, int] | None = None
        for page in walk:
            params: dict[str, Any] = {"object_id": self.obj.id, "page": page, "per_page": size}
            if slug is not None:
                params["sort"] = slug
            if slug is not None or desc:
                params["order"] = order
            exp = self.oracle.query(None, slug, order, page, size)
            ex = self.client.query(params)
            self.report.ran("paging.walk", "paging", "every page of a sorted walk is 200")
            got = self.page_of(ex)
            label = f"sort={slug or '(default)'} order={order} per_page={size}, page {page} of {pages}"
            if got is None:
                self.report.fail(
                    "paging.walk",
                    "paging",
                    "every page of a sorted walk is 200",
                    Finding(PAGE_SHAPE, ex.summary(), ex, label),
                )
                return
            ids, pagination = got
            self.check_pagination(ex, pagination, page, size)
            self._check_total(ex, pagination, exp, label)
            for rid in ids:
                if rid in seen_on and overlap is None:
                    overlap = (ex, rid, seen_on[rid], page)
                seen_on.setdefault(rid, page)
            received += ids
            expected += exp.ids
            if ids != exp.ids and first_bad is None:
                first_bad = (ex, page, exp.ids, ids)
        if walk[-1] == pages and len(walk) == pages:
            missing = [r for r in self.oracle.records if r not in seen_on]
            if overlap is not None or missing:
                ex = overlap[0] if overlap else self.client.log[-1]
                detail = []
                if overlap:
                    detail.append(f"{overlap[1]} came on page {overlap[2]} and again on page {overlap[3]}")
                if missing:
                    detail.append(f"{len(missing)} record(s) on no page, e.g. {fmt_ids(missing, 3)}")
                self.report.fail(
                    *stable[:3],
                    Finding(
                        f"each of the {n} records exactly once over {pages} pages",
                        f"{len(received)} ids, {len(set(received))} distinct",
                        ex,
                        f"sort={slug or '(default)'} order={order} per_page={size}",
                        detail,
                    ),
                    stable[3],
                )
        if first_bad is not None:
            ex, page, exp_ids, ids = first_bad
            diag = diagnose_order(self.oracle, sort_slug, desc, received, lambda r: self.show(r, sort_slug))
            finding = Finding(
                f"page {page}: {fmt_ids(exp_ids, 8)}",
                f"page {page}: {fmt_ids(ids, 8)}",
                ex,
                f"sort={slug or '(default: created_at)'} order={order} per_page={size}, "
                f"page {page} of {pages}",
                [diag.detail] if diag else [],
            )
            self.report_order(finding, diag, default=slug is None and not desc)

    def _check_total(self, ex: Exchange, pagination: dict[str, Any], exp: Expected, label: str) -> None:
        check = ("paging.total", "paging", "pagination.total counts every matching record")
        self.report.ran(*check)
        if pagination.get("total") != exp.total:
            self.report.fail(
                *check, Finding(f"total {exp.total}", f"total {pagination.get('total')!r}", ex, label)
            )

    # --- paging edges ------------------------------------------------------------------------

    def _paging_edges(self, n: int) -> None:
        """per_page=1, a per_page that divides the total (a full last page, then nothing), and one
        that does not (a short last page): each page exactly the reference engine's."""
        exact = max((s for s in range(2, min(n, 20) + 1) if n % s == 0), default=None)
        partial = self.per_page()
        walks: list[tuple[int, list[int]]] = [(1, [1, 2, n, n + 1])]
        if exact is not None:
            walks.append((exact, [n // exact, n // exact + 1]))
        walks.append((partial, [-(-n // partial)]))
        check = ("paging.edges", "paging", "per_page=1, a full last page and a short one page exactly")
        for size, pages in walks:
            for page in pages:
                exp = self.oracle.query(None, "id", "asc", page, size)
                ex = self.client.query(
                    {"object_id": self.obj.id, "sort": "id", "page": page, "per_page": size}
                )
                self.report.ran(*check)
                got = self.page_of(ex)
                label = f"sort=id per_page={size} page={page} ({n} records)"
                if got is None:
                    self.report.fail(*check, Finding(PAGE_SHAPE, ex.summary(), ex, label))
                    continue
                ids, pagination = got
                self.check_pagination(ex, pagination, page, size)
                if ids != exp.ids or pagination.get("total") != exp.total:
                    self.report.fail(
                        *check,
                        Finding(
                            f"total {exp.total}, {len(exp.ids)} record(s): {fmt_ids(exp.ids)}",
                            f"total {pagination.get('total')!r}, {len(ids)} record(s): {fmt_ids(ids)}",
                            ex,
                            label,
                        ),
                    )

    def run_paging(self) -> None:
        n = len(self.oracle.records)
        size = self.per_page()
        pages = -(-n // size)
        base = {"object_id": self.obj.id}
        self.report.progress("paging: defaults, limits, past the end, empty results")

        ex = self.client.query(base)
        exp = self.oracle.query(None, None, None, 1, 25)
        got = self.page_of(ex)
        check = (
            "paging.defaults",
            "paging",
            "without page and per_page: page 1 of 25, sorted by created_at asc",
        )
        self.report.ran(*check)
        if got is None:
            self.report.fail(*check, Finding(PAGE_SHAPE, ex.summary(), ex))
        else:
            ids, pagination = got
            self.check_pagination(ex, pagination, 1, 25)
            if ids != exp.ids:
                self._order_finding(
                    ex, "created_at", False, ids, exp.ids, "no sort, page or per_page", default=True
                )

        ex = self.client.query({**base, "per_page": 100})
        check = ("paging.per-page-100", "paging", "per_page=100 is accepted")
        self.report.ran(*check)
        got = self.page_of(ex)
        if got is None:
            self.report.fail(*check, Finding(PAGE_SHAPE, ex.summary(), ex))
        else:
            self.check_pagination(ex, got[1], 1, 100)
            self._check_total(ex, got[1], self.oracle.query(None, None, None, 1, 100), "per_page=100")

        limits = "page >= 1 and per_page 1..100; anything else is 400 BAD_REQUEST naming the parameter"
        for params, name, title in (
            ({"per_page": 101}, "per_page", "per_page above 100 is rejected with 400, not clamped"),
            ({"per_page": 0}, "per_page", "per_page=0 is rejected with 400"),
            ({"page": 0}, "page", "page=0 is rejected with 400"),
            ({"per_page": "ten"}, "per_page", "a non-integer per_page is rejected with 400"),
        ):
            key = "paging.limit." + "-".join(f"{k}-{v}" for k, v in params.items())
            ex = self.client.query({**base, **params})
            self.report.ran(key, "paging", title, limits)
            if ex.status != 400:
                received = ex.summary(200)
                if ex.status == 200 and isinstance(ex.json, dict):
                    received = f"200 with pagination {dumps(ex.json.get('pagination'))}"
                self.report.fail(
                    key, "paging", title, Finding(f"400 BAD_REQUEST naming {name}", received, ex), limits
                )
            else:
                check_error(self.report, ex, 400, "BAD_REQUEST", key, title, names=name, rule=limits)

        past = pages + 1
        ex = self.client.query({**base, "page": past, "per_page": size})
        check = ("paging.past-the-end", "paging", "a page past the end is 200 with empty data")
        self.report.ran(*check)
        got = self.page_of(ex)
        if got is None or got[0]:
            self.report.fail(
                *check,
                Finding(f"200, data [], total {n}", ex.summary(200), ex, f"page={past} per_page={size}"),
            )
        else:
            self.check_pagination(ex, got[1], past, size)
            self._check_total(ex, got[1], self.oracle.query(None, None, None, past, size), f"page={past}")

        self._paging_edges(n)

        text = next((f.slug for f in self.obj.fields if f.type == FieldType.TEXT), None)
        if text is not None:
            filters = {text: {"$eq": f"no such value {self.setup.marker}"}}
            ex = self.client.query({**base, "filters": filters, "per_page": 10})
            check = ("paging.no-match", "paging", "no match: 200, data [], total 0, total_pages 0")
            self.report.ran(*check)
            got = self.page_of(ex)
            if got is None or got[0] or got[1].get("total") != 0:
                self.report.fail(*check, Finding("200, data [], total 0, total_pages 0", ex.summary(200), ex))
            else:
                self.check_pagination(ex, got[1], 1, 10)
