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
        out += self.edge_probes()
        return out

    # --- edges: the same on every run, whatever the seed ------------------------------------

    def edge_probes(self) -> list[Probe]:
        """Probes that do not depend on the seed: every operator on every field, refused operands,
        list and emptiness edges, non-ASCII text, case folding, multi_select sets, date operands."""
        out: list[Probe] = []
        # Quick runs: every field type, but of the system fields only id (a string) and
        # created_at (an instant); fewer refused operands and non-ASCII values.
        system = ("id", "created_at") if self.quick else SYSTEM_KEYS
        slugs = [f.slug for f in self.oracle.obj.fields] + list(system)
        for slug in slugs:
            spec = self.oracle.spec(slug)
            values = self.values(slug)
            if spec is None:
                continue
            out += self._every_operator(slug, spec.kind, values)
            out += self._refused_operands(slug, spec.kind)
            out += [
                self._edge(slug, {"$in": []}, "filters.list-edges", "$in: [] and $nin: []"),
                self._edge(slug, {"$nin": []}, "filters.list-edges", "$in: [] and $nin: []"),
            ]
            if not values:
                continue
            if spec.kind == Kind.STRING:
                out += self._unicode(slug, values)
            if spec.kind in (Kind.STRING, Kind.CHOICE) and slug not in SYSTEM_KEYS:
                out += self._case_folding(slug, spec.kind, values)
            if spec.kind == Kind.MULTI:
                out += self._multi(slug, values)
            if spec.kind == Kind.INSTANT:
                out += self._date_operands(slug, values)
            out += self._operators_and(slug, spec.kind, values)
        return out

    def _edge(self, slug: str, cond: Any, check_id: str, title: str) -> Probe:
        return Probe({slug: cond}, check_id, title, "", [slug])

    def _sample(self, kind: str, values: list[Any]) -> Any:
        """A stored value (the most common one), or a value of the right type when none is."""
        if values:
            counts = Counter(_hashable(v) for v in values)
            best = max(values, key=lambda v: (counts[_hashable(v)], str(v)))
            return list(best) if isinstance(best, list) else best
        return {
            Kind.NUMBER: 1,
            Kind.STRING: "a",
            Kind.CHOICE: "a",
            Kind.BOOLEAN: True,
            Kind.DATE: "2024-01-01",
            Kind.INSTANT: "2024-01-01T00:00:00Z",
            Kind.MULTI: ["a"],
        }[kind]

    def _every_operator(self, slug: str, kind: str, values: list[Any]) -> list[Probe]:
        """Each of the 13 operators with an operand of the field's type: the oracle says which the
        contract refuses (a 400) and what the others match."""
        v = self._sample(kind, values)
        scalar = v[0] if isinstance(v, list) and v else v
        text = scalar if isinstance(scalar, str) else str(scalar)
        fragment = text[1:4] if len(text) > 3 else text
        operands: dict[str, Any] = {
            "$eq": v,
            "$ne": v,
            "$gt": scalar,
            "$gte": scalar,
            "$lt": scalar,
            "$lte": scalar,
            "$in": [scalar],
            "$nin": [scalar],
            "$contains": _swap(fragment),
            "$not_contains": _swap(fragment),
            "$starts_with": _swap(text[:2]),
            "$ends_with": _swap(text[-2:]),
            "$empty": False,
        }
        out = []
        for op, operand in operands.items():
            cond = {op: operand}
            if self.oracle.query({slug: cond}, "id", "asc", 1, 1).error is not None:
                out.append(
                    Probe(
                        {slug: cond},
                        "filters.refused-operator",
                        "an operator the field's type does not take is 400 naming the field",
                        "",
                        [slug],
                    )
                )
            else:
                out.append(self._probe(slug, cond, op if op in RULES else "range"))
        return out

    def _refused_operands(self, slug: str, kind: str) -> list[Probe]:
        """Operands of the wrong JSON type, null, and malformed dates: a 400 naming the field."""
        wrong: list[dict[str, Any]] = [{"$eq": None}, {"$in": "x"}, {"$in": [None]}, {"$empty": "yes"}]
        by_kind: dict[str, list[dict[str, Any]]] = {
            Kind.NUMBER: [{"$gte": "10"}, {"$eq": "1"}, {"$eq": True}, {"$nin": ["1"]}],
            Kind.STRING: [{"$eq": 1}, {"$contains": 5}, {"$ne": ["a"]}, {"$starts_with": None}],
            Kind.CHOICE: [{"$eq": 1}, {"$in": [True]}, {"$contains": {}}],
            Kind.BOOLEAN: [{"$eq": "true"}, {"$eq": 1}, {"$in": ["false"]}],
            Kind.DATE: [{"$gte": "2024-1-5"}, {"$lt": 20240101}, {"$eq": "2024-01-15T10:30:00Z"}],
            Kind.INSTANT: [{"$gt": "yesterday"}, {"$lt": 1700000000}, {"$gte": "2024-01-15 10:30"}],
            Kind.MULTI: [{"$contains": ["vip"]}, {"$eq": 1}, {"$in": "vip"}],
        }
        wrong += by_kind[kind]
        title = "an operand of the wrong type is 400 BAD_REQUEST naming the field"
        if self.quick:  # one of the four shared ones (which, by field), and the type's own first two
            shared = len(slug) % 4
            wrong = [wrong[shared], *wrong[4:6]]
        return [Probe({slug: cond}, "filters.refused-operand", title, "", [slug]) for cond in wrong]

    def _unicode(self, slug: str, values: list[Any]) -> list[Probe]:
        """Text operators on every stored non-ASCII value, in the other case: fixed, not drawn."""
        out = []
        for v in sorted({v for v in values if isinstance(v, str) and not v.isascii()})[
            : 1 if self.quick else 4
        ]:
            at = next(i for i, ch in enumerate(v) if not ch.isascii())
            window = v[max(0, at - 1) : at + 2]
            title = "text operators fold the case of non-ASCII letters"
            for cond in (
                {"$contains": _swap(window)},
                {"$not_contains": _swap(window)},
                {"$starts_with": _swap(v[: at + 1])},
                {"$ends_with": _swap(v[at:])},
                {"$eq": v},
                {"$in": [v, _swap(v)]},
            ):
                out.append(Probe({slug: cond}, "filters.unicode", title, "", [slug]))
        return out

    def _case_folding(self, slug: str, kind: str, values: list[Any]) -> list[Probe]:
        """status and dropdown options, and email, match in any case; other text $eq is exact."""
        v = sorted({v for v in values if isinstance(v, str)})[0]
        title = "$eq and $in fold case on status, dropdown and email, and only there"
        return [
            Probe({slug: {"$eq": _swap(v)}}, "filters.case-folding", title, "", [slug]),
            Probe({slug: {"$in": [_swap(v)]}}, "filters.case-folding", title, "", [slug]),
            Probe({slug: _swap(v)}, "filters.case-folding", title, "", [slug]),
        ]

    def _multi(self, slug: str, values: list[Any]) -> list[Probe]:
        """A string means has that option; an array means exactly that set, in any order."""
        title = "multi_select: $eq string has it, $eq array is exactly that set, $contains has it"
        sets = sorted({tuple(v) for v in values if isinstance(v, list)}, key=lambda t: (-len(t), t))
        widest = list(sets[0])
        option = widest[0]
        conds: list[Any] = [
            {"$eq": option},
            {"$eq": list(reversed(widest))},
            {"$eq": widest[:1]},
            {"$contains": _swap(option)},
            {"$in": [_swap(option)]},
            {"$nin": [option]},
            {"$ne": widest},
        ]
        return [Probe({slug: c}, "filters.multi-select", title, "", [slug]) for c in conds]

    def _date_operands(self, slug: str, values: list[Any]) -> list[Probe]:
        """Date operands on an instant mean midnight UTC; offset operands name their instant.

        The days chosen are the UTC midnights nearest to stored values, just before and just after
        one: a server that reads the day in another zone then lands on the wrong side of them."""
        title = "a date operand on a datetime means that day's midnight UTC"
        day_us = 86_400_000_000
        before: list[tuple[int, int]] = []  # (distance to the next midnight, that midnight)
        after: list[tuple[int, int]] = []  # (distance from the last midnight, that midnight)
        for v in values:
            us = parse_datetime_us(v) if isinstance(v, str) else None
            if us is not None:
                since = us % day_us
                after.append((since, us - since))
                before.append((day_us - since, us - since + day_us))
        take = 1 if self.quick else 2
        midnights = sorted({m for _, m in sorted(before)[:take]} | {m for _, m in sorted(after)[:take]})
        out = []
        for midnight in midnights:
            day = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=midnight)).strftime("%Y-%m-%d")
            out += [
                Probe({slug: {"$lt": day}}, "filters.date-operand", title, "", [slug]),
                Probe({slug: {"$gte": day}}, "filters.date-operand", title, "", [slug]),
                Probe({slug: {"$gte": day + "T00:00:00+03:00"}}, "filters.date-operand", title, "", [slug]),
            ]
        return out

    def _operators_and(self, slug: str, kind: str, values: list[Any]) -> list[Probe]:
        """Several operators on one field all apply."""
        v = self._sample(kind, values)
        title = "several operators on one field AND together"
        if kind in (Kind.NUMBER, Kind.DATE, Kind.INSTANT):
            ordered = sorted(values, key=lambda x: (parse_datetime_us(x) or 0) if kind == Kind.INSTANT else x)
            lo, hi = ordered[len(ordered) // 4], ordered[3 * len(ordered) // 4]
            conds: list[Any] = [{"$gte": lo, "$lte": hi, "$ne": v}, {"$gt": lo, "$empty": False}]
        elif kind == Kind.STRING and isinstance(v, str):
            conds = [{"$ne": v, "$empty": False}, {"$contains": _swap(v[:2]), "$not_contains": _swap(v)}]
        else:
            conds = [{"$ne": v, "$empty": False}]
        return [Probe({slug: c}, "filters.operators-and", title, "", [slug]) for c in conds]

    def _probe(self, slug: str, cond: Any, op: str, rule_key: str | None = None) -> Probe:
        """A single-field probe; its check is the operator's, whatever the field's type."""
        if op == "bare":
            group, title, rule = "bare", "a bare value filters like $eq", RULES["$eq"]
        elif op in RULES:
            group, title, rule = op, f"filter {op}", RULES[op]
        else:
            group, title, rule = "range", "range filters ($gt $gte $lt $lte)", RULES["range"]
        if slug in SYSTEM_KEYS:  # the system fields' own rule: they filter like fields of their type
            return Probe({slug: cond}, f"filters.system.{group}", f"{title} on {slug}", "", [slug])
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
