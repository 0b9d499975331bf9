"""The query battery: filters derived from the object's fields and actual values, and sort diagnosis."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain.records import Kind
from ..domain.schema import parse_datetime_us
from .oracle import SYSTEM_KEYS, Oracle

RULES = {
    "$eq": "$eq (or a bare value) is exact, except that status and dropdown values match their option "
    "case-insensitively and email compares lowercased; it never matches an empty value",
    "$ne": "$ne matches every record whose value differs, including the records where it is empty",
    "$in": "$in matches any of the values exactly (multi_select: has any of them); never an empty value",
    "$nin": "$nin matches records whose value is none of them, including empty values",
    "$contains": "$contains is a case-insensitive substring match (multi_select: has this option, "
    "case-insensitively); it never matches an empty value",
    "$not_contains": "$not_contains is case-insensitive and matches empty values",
    "$starts_with": "$starts_with is a case-insensitive prefix match",
    "$ends_with": "$ends_with is a case-insensitive suffix match",
    "range": "$gt $gte $lt $lte compare numbers by value, dates in calendar order and datetimes, "
    "created_at and updated_at in time order (a date operand means that day's midnight UTC); "
    "they never match an empty value",
    "$empty": '$empty: true matches missing, null, "" and [] values; false matches the rest',
    "combined": "all filter keys AND together",
}
SORT_RULES = {
    "text": "text sorts case-insensitively (email and the other string types lowercased)",
    "choice": "status and dropdown sort by their options' order",
    "boolean": "false sorts before true",
    "multi": "multi_select sorts by its values joined",
    "value": "numbers by value, dates in calendar order, datetimes in time order",
}


@dataclass(slots=True)
class Probe:
    """One filter query of the battery and the check it belongs to."""

    filters: dict[str, Any]
    check_id: str
    title: str
    rule: str
    fields: list[str] = field(default_factory=list)


def _swap(s: str) -> str:
    swapped = s.swapcase()
    return swapped if swapped != s else s.upper() if s.upper() != s else s


def type_name(oracle: Oracle, slug: str) -> str:
    f = oracle.obj.by_slug.get(slug)
    return str(f.type) if f is not None else slug


class Battery:
    """Builds filter probes from an oracle's records: values present, medians, ties, empties."""

    def __init__(
        self, oracle: Oracle, raw: dict[str, dict[str, Any]], rng: random.Random, quick: bool
    ) -> None:
        self.oracle = oracle
        self.raw = raw
        self.rng = rng
        self.quick = quick

    # --- values ------------------------------------------------------------------------------

    def values(self, slug: str) -> list[Any]:
        """Non-empty values of a field (or system field) as the server returned them."""
        out: list[Any] = []
        for rid, rec in self.oracle.records.items():
            if slug in SYSTEM_KEYS:
                v = self.raw.get(rid, {}).get(slug, rec.id if slug == "id" else None)
            else:
                v = rec.values.get(slug)
            if v is not None and v != "" and v != []:
                out.append(v)
        return out

    def _two(self, values: list[Any]) -> tuple[Any, Any]:
        counts = Counter(_hashable(v) for v in values)
        first = max(values, key=lambda v: (counts[_hashable(v)], str(v)))
        others = sorted({_hashable(v) for v in values} - {_hashable(first)}, key=str)
        second = self.rng.choice(others) if others else first
        if isinstance(second, tuple):
            second = list(second)
        return first, second

    def _substring(self, values: list[Any]) -> str | None:
        strings = sorted({v for v in values if isinstance(v, str) and len(v) >= 3})
        if not strings:
            return None
        s = self.rng.choice(strings)
        n = min(len(s), self.rng.randint(2, 5))
        start = self.rng.randint(0, len(s) - n)
        return s[start : start + n]

    # --- probes ------------------------------------------------------------------------------

    def probes(self) -> list[Probe]:
        out: list[Probe] = []
        for f in self.oracle.obj.fields:
            out += self._field_probes(f.slug)
        for slug in SYSTEM_KEYS:
            out += self._field_probes(slug)
        out += self._combinations(out)
        return out

    def _probe(self, slug: str, cond: Any, op: str, rule_key: str | None = None) -> Probe:
        """A single-field probe; its check is the operator's, whatever the field's type."""
        if op == "bare":
            group, title, rule = "bare", "a bare value filters like $eq", RULES["$eq"]
        elif op in RULES:
            group, title, rule = op, f"filter {op}", RULES[op]
        else:
            group, title, rule = "range", "range filters ($gt $gte $lt $lte)", RULES["range"]
        return Probe({slug: cond}, f"filters.{group}", title, RULES.get(rule_key or "", rule), [slug])

    def _field_probes(self, slug: str) -> list[Probe]:
        spec = self.oracle.spec(slug)
        values = self.values(slug)
        if spec is None or not values:
            return []
        kind = spec.kind
        q = self.quick
        p = self._probe
        out: list[Probe] = []
        v1, v2 = self._two(values)
        if kind == Kind.STRING:
            sub = self._substring(values)
            any_s = self.rng.choice(sorted(v for v in values if isinstance(v, str)))
            out.append(p(slug, {"$eq": v1}, "$eq"))
            out.append(p(slug, {"$ne": v1}, "$ne"))
            out.append(p(slug, {"$in": [v1, v2]}, "$in"))
            if sub is not None:
                out.append(p(slug, {"$contains": _swap(sub)}, "$contains"))
            out.append(p(slug, {"$empty": True}, "$empty"))
            if not q:
                out.append(p(slug, {"$eq": _swap(v1)}, "$eq"))
                out.append(p(slug, v1, "bare", "$eq"))
                out.append(p(slug, {"$nin": [v1, v2]}, "$nin"))
                if sub is not None:
                    out.append(p(slug, {"$not_contains": _swap(sub)}, "$not_contains"))
                out.append(p(slug, {"$starts_with": _swap(any_s[:3])}, "$starts_with"))
                out.append(p(slug, {"$ends_with": _swap(any_s[-3:])}, "$ends_with"))
                out.append(p(slug, {"$empty": False}, "$empty"))
        elif kind == Kind.CHOICE:
            out.append(p(slug, {"$eq": _swap(v1)}, "$eq"))
            out.append(p(slug, {"$ne": v1}, "$ne"))
            out.append(p(slug, {"$in": [v1, v2]}, "$in"))
            if not q:
                out.append(p(slug, {"$nin": [v2]}, "$nin"))
                out.append(p(slug, {"$contains": _swap(str(v1)[1:4] or str(v1))}, "$contains"))
                out.append(p(slug, {"$not_contains": _swap(str(v2)[:2])}, "$not_contains"))
                out.append(p(slug, {"$empty": True}, "$empty"))
        elif kind in (Kind.NUMBER, Kind.DATE):
            ordered = sorted(values)
            med, lo, hi = (
                ordered[len(ordered) // 2],
                ordered[len(ordered) // 4],
                ordered[3 * len(ordered) // 4],
            )
            out.append(p(slug, {"$ne": v1}, "$ne"))
            out.append(p(slug, {"$gte": med}, "$gte"))
            out.append(p(slug, {"$gte": lo, "$lt": hi}, "$gte+$lt"))
            out.append(p(slug, {"$empty": True}, "$empty"))
            if not q:
                out.append(p(slug, {"$eq": v1}, "$eq"))
                out.append(p(slug, {"$gt": med}, "$gt"))
                out.append(p(slug, {"$lt": med}, "$lt"))
                out.append(p(slug, {"$lte": med}, "$lte"))
                out.append(p(slug, {"$in": [v1, v2]}, "$in"))
                out.append(p(slug, {"$nin": [v1, v2]}, "$nin"))
                out.append(p(slug, {"$empty": False}, "$empty"))
        elif kind == Kind.INSTANT:
            out += self._instant_probes(slug, values)
        elif kind == Kind.BOOLEAN:
            out.append(p(slug, {"$ne": True}, "$ne"))
            out.append(p(slug, {"$eq": True}, "$eq"))
            if not q:
                out.append(p(slug, False, "bare", "$eq"))
                out.append(p(slug, {"$empty": True}, "$empty"))
                out.append(p(slug, {"$empty": False}, "$empty"))
        elif kind == Kind.MULTI:
            f = self.oracle.obj.by_slug[slug]
            options = sorted({o for v in values for o in v}) or list(f.choices)
            o1 = self.rng.choice(options)
            o2 = self.rng.choice(list(f.choices) or options)
            out.append(p(slug, {"$contains": _swap(o1)}, "$contains"))
            out.append(p(slug, {"$in": [o1, o2]}, "$in"))
            out.append(p(slug, {"$empty": True}, "$empty"))
            if not q:
                out.append(p(slug, {"$eq": o1}, "$eq"))
                out.append(p(slug, {"$eq": list(v1)}, "$eq"))
                out.append(p(slug, {"$nin": [o1]}, "$nin"))
                out.append(p(slug, {"$not_contains": _swap(o2)}, "$not_contains"))
                out.append(p(slug, {"$ne": o1}, "$ne"))
                out.append(p(slug, {"$empty": False}, "$empty"))
        if slug in SYSTEM_KEYS and q:
            out = out[:2]
        return out

    def _instant_probes(self, slug: str, values: list[Any]) -> list[Probe]:
        p = self._probe
        timed = sorted(
            (us, v) for v in values if isinstance(v, str) and (us := parse_datetime_us(v)) is not None
        )
        if not timed:
            return []
        med_us, med = timed[len(timed) // 2]
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=med_us)
        day = when.strftime("%Y-%m-%d")
        shifted = (when + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S") + "+05:30"
        if when.microsecond:
            shifted = shifted.replace("+05:30", f".{when.microsecond:06d}+05:30")
        out = [
            p(slug, {"$gt": med}, "$gt"),
            p(slug, {"$lt": day}, "$lt"),
        ]
        if not self.quick:
            out += [
                p(slug, {"$gte": shifted}, "$gte"),
                p(slug, {"$lte": med}, "$lte"),
                p(slug, {"$gte": day, "$lt": (when + timedelta(days=400)).strftime("%Y-%m-%d")}, "$gte+$lt"),
            ]
            if slug not in SYSTEM_KEYS:
                out += [
                    p(slug, {"$eq": med}, "$eq"),
                    p(slug, {"$ne": med}, "$ne"),
                    p(slug, {"$empty": True}, "$empty"),
                ]
        return out

    def _combinations(self, probes: list[Probe]) -> list[Probe]:
        singles = [pr for pr in probes if len(pr.fields) == 1]
        out: list[Probe] = []
        wanted = 4 if self.quick else 14
        for _ in range(wanted * 5):
            if len(out) >= wanted or len(singles) < 2:
                break
            a, b = self.rng.sample(singles, 2)
            if a.fields[0] == b.fields[0]:
                continue
            out.append(
                Probe(
                    {**a.filters, **b.filters},
                    "filters.combined",
                    "filters on two fields AND together",
                    RULES["combined"],
                    [a.fields[0], b.fields[0]],
                )
            )
        return out


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


# --- sort order diagnosis -------------------------------------------------------------------


@dataclass(slots=True)
class Diagnosis:
    check_id: str
    title: str
    rule: str
    detail: str


def sort_family(oracle: Oracle, slug: str) -> str:
    spec = oracle.spec(slug)
    if spec is None:
        return "value"
    if spec.kind == Kind.STRING:
        return "text"
    if spec.kind == Kind.CHOICE:
        return "choice"
    if spec.kind == Kind.BOOLEAN:
        return "boolean"
    if spec.kind == Kind.MULTI:
        return "multi"
    return "value"


def order_check(oracle: Oracle, slug: str) -> tuple[str, str, str]:
    """The check that sorting by `slug` puts values in the contract's order: id, title, rule."""
    family = sort_family(oracle, slug)
    kinds = {
        "text": "text-like fields (and id, created_by)",
        "choice": "status and dropdown fields",
        "boolean": "boolean fields",
        "multi": "multi_select fields",
        "value": "number, currency, date, datetime fields (and created_at, updated_at)",
    }
    return f"sorting.order.{family}", f"sorting {kinds[family]} orders their values", SORT_RULES[family]


def diagnose_order(oracle: Oracle, slug: str, desc: bool, received: list[str], show: Any) -> Diagnosis | None:
    """Why `received` is not in the contract's order for sort `slug`; None when it is."""
    keys = {rid: oracle.sort_key(rid, slug) for rid in received if rid in oracle.records}
    seq = [rid for rid in received if rid in keys]
    order = "desc" if desc else "asc"
    for a, b in itertools.pairwise(seq):
        if keys[a] is None and keys[b] is not None:
            return Diagnosis(
                "sorting.empty-last",
                "empty values sort last, in both orders",
                'empty values (missing, null, "", []) sort after every value, ascending and descending',
                f"{a} (empty {slug}) came before {b} ({slug} = {show(b)}) with order={order}",
            )
    values = [rid for rid in seq if keys[rid] is not None]
    for a, b in itertools.pairwise(values):
        ka, kb = keys[a], keys[b]
        if (ka > kb) if not desc else (ka < kb):
            check_id, title, rule = order_check(oracle, slug)
            return Diagnosis(
                check_id,
                title,
                rule,
                f"{a} ({slug} = {show(a)}) came before {b} ({slug} = {show(b)}) with order={order}",
            )
    for a, b in itertools.pairwise(seq):
        if keys[a] == keys[b] and a > b:
            return Diagnosis(
                "sorting.ties-by-id",
                "ties are broken by id ascending, in both orders, so pages are stable",
                "id ascending breaks every tie, in both orders, so pages never overlap or skip",
                f"{a} came before {b} though both have {slug} = {show(a)}: ties go by id ascending",
            )
    return None
