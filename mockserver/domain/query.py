"""The query engine: compiles `filters` and `sort` against an object, then selects, orders, pages.

Semantics are CONTRACT.md's "Query semantics". Each filter key compiles to a `Condition`: tests
that decide a record, and where possible an index `Plan` that yields the candidates directly.
The engine starts from the most selective plan and narrows with the remaining tests.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import BadRequest, describe
from .index import FieldIndex, ObjectStore
from .records import KeySpec, Kind, key_spec
from .schema import ObjectDef, is_number, parse_date, parse_instant_operand

OPERATORS = (
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$contains",
    "$not_contains",
    "$starts_with",
    "$ends_with",
    "$empty",
)
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
_OPERATOR_SET = frozenset(OPERATORS)
_RANGE_SET = frozenset(RANGE_OPS)
TEXT_OPS = ("$contains", "$not_contains", "$starts_with", "$ends_with")
_TOP = "\U0010ffff"


@dataclass(slots=True)
class Plan:
    """Candidate ids straight from a field index. `exact`: the ids need no further test."""

    kind: str  # "range" | "keys" | "options" | "text" | "nonempty" | "empty" | "none"
    exact: bool
    lo: Any = None
    lo_incl: bool = True
    hi: Any = None
    hi_incl: bool = True
    keys: list[Any] = field(default_factory=list)
    #: "text": a positive text operator and its folded, non-empty needle (the text index answers).
    text: tuple[str, str] = ("", "")

    def estimate(self, idx: FieldIndex) -> int:
        if self.kind == "range":
            return idx.count_range(self.lo, self.lo_incl, self.hi, self.hi_incl)
        if self.kind == "keys":
            return sum(idx.count_range(k, True, k, True) for k in self.keys)
        if self.kind == "options":
            assert idx.options is not None
            return sum(len(idx.options.get(o, ())) for o in self.keys)
        if self.kind == "nonempty":
            return len(idx.sorted)
        if self.kind == "empty":
            return len(idx.empties)
        if self.kind == "text":
            return idx.text_index().count(*self.text)
        return 0

    def ids(self, idx: FieldIndex) -> list[str]:
        if self.kind == "range":
            return idx.ids_range(self.lo, self.lo_incl, self.hi, self.hi_incl)
        if self.kind == "keys":
            out: list[str] = []
            for k in self.keys:
                out += idx.ids_range(k, True, k, True)
            return out
        if self.kind == "options":
            assert idx.options is not None
            found: set[str] = set()
            for o in self.keys:
                found |= idx.options.get(o, set())
            return list(found)
        if self.kind == "nonempty":
            return list(idx.keys)
        if self.kind == "empty":
            return list(idx.empties)
        if self.kind == "text":
            return idx.text_index().ids(*self.text)
        return []


class Test(NamedTuple):
    """`fn` decides a record from the field's index key (`on_key`) or its stored value, None when
    empty. `fast` names a shape the engine runs without a call per record: "empty",
    "nonempty", or "contains" (`arg` holds the lowercased needle)."""

    on_key: bool
    fn: Callable[[Any], bool]
    fast: str | None = None
    arg: Any = None


@dataclass(slots=True)
class Condition:
    """One filter key, checked. A composite index answers from `eq_keys`, `nonempty` or
    `bounds` alone; `tests` and `plan`, for the general path, are made on first use."""

    spec: KeySpec
    #: The operators and operands as given (a bare value as `{"$eq": value}`), all valid.
    cond: dict[str, Any]
    #: The index keys a lone, exact `$eq` or `$in` asks for (None otherwise).
    eq_keys: tuple[Any, ...] | None = None
    #: A lone `$empty: false`.
    nonempty: bool = False
    #: `(lo, lo_incl, hi, hi_incl)` when the condition is only range operators.
    bounds: tuple[Any, bool, Any, bool] | None = None
    built: tuple[list[Test], Plan | None] | None = None

    @property
    def tests(self) -> list[Test]:
        return self._compiled()[0]

    @property
    def plan(self) -> Plan | None:
        return self._compiled()[1]

    def _compiled(self) -> tuple[list[Test], Plan | None]:
        if self.built is None:
            self.built = _tests_and_plan(self.spec, self.cond)
        return self.built


@dataclass(slots=True)
class Query:
    conditions: list[Condition]
    sort: KeySpec
    desc: bool


# --- compiling -------------------------------------------------------------------------------


def compile_query(
    obj: ObjectDef, filters: dict[str, Any] | None, sort: str | None, order: str | None
) -> Query:
    """Check `filters` and `sort` against the object's fields; raise BadRequest naming them."""
    conditions = [_compile_key(obj, slug, cond) for slug, cond in (filters or {}).items()]
    sort_slug = sort if sort is not None else "created_at"
    spec = key_spec(obj, sort_slug)
    if spec is None:
        raise BadRequest.param(
            "sort",
            f"unknown sort field {sort_slug!r} for {obj.id}; use a field slug or one of "
            "id, created_at, updated_at, created_by",
            field=sort_slug,
            known=[*sorted(obj.by_slug), "created_at", "created_by", "id", "updated_at"],
        )
    return Query(conditions, spec, order == "desc")


def _compile_key(obj: ObjectDef, slug: str, cond: Any) -> Condition:
    spec = key_spec(obj, slug)
    if spec is None:
        raise BadRequest(
            f"Unknown filter field {slug!r} for {obj.id}",
            {
                "param": "filters",
                "field": slug,
                "reason": f"unknown field; {obj.id} has "
                + ", ".join([*sorted(obj.by_slug), "created_at", "created_by", "id", "updated_at"]),
            },
        )
    if not isinstance(cond, dict):
        if isinstance(cond, str) and spec.kind == Kind.CHOICE:  # a bare option: the usual filter
            assert spec.field is not None
            positions = spec.field.choice_positions_folded.get(cond.lower())
            if positions:  # what `_eq` plans for it: these keys, exactly
                return Condition(spec, {"$eq": cond}, eq_keys=positions)
        cond = {"$eq": cond}
    elif not cond:
        raise _operand_error(spec, "(none)", "an operator object with at least one operator", cond)
    # The two usual shapes, checked here as `_tests_and_plan` checks them (same errors, same
    # order); their tests and plan wait until something asks for them.
    if _RANGE_SET.issuperset(cond):
        lo, hi = _range_bounds(spec, cond)
        bounds = (lo[0] if lo else None, lo[1] if lo else True, hi[0] if hi else None, hi[1] if hi else True)
        return Condition(spec, cond, bounds=bounds)
    if spec.kind == Kind.CHOICE and len(cond) == 1:
        operand = cond.get("$eq")
        if isinstance(operand, str):
            assert spec.field is not None
            positions = spec.field.choice_positions_folded.get(operand.lower())
            if positions:  # what `_eq` plans for it: these keys, exactly
                return Condition(spec, cond, eq_keys=positions)
    tests, plan = built = _tests_and_plan(spec, cond)
    condition = Condition(spec, cond, built=built)
    if len(tests) == 1 and plan is not None and plan.kind == "keys" and plan.exact:
        condition.eq_keys = tuple(plan.keys)
    elif len(tests) == 1 and tests[0].fast == "nonempty":
        condition.nonempty = True
    return condition


_Bound = tuple[Any, bool]


def _range_bounds(spec: KeySpec, cond: dict[str, Any]) -> tuple[_Bound | None, _Bound | None]:
    """The tightest lower and upper bound, `(key, inclusive)`, of the condition's range
    operators; each operand checked in turn."""
    lo: _Bound | None = None
    hi: _Bound | None = None
    for op, operand in cond.items():
        if op not in _RANGE_SET:
            continue
        if operand is None:
            raise _operand_error(spec, op, _expected_for(spec, op), operand)
        key = _range_operand(spec, op, operand)
        incl = op in ("$gte", "$lte")
        if op in ("$gt", "$gte"):
            if lo is None or key > lo[0] or (key == lo[0] and not incl):
                lo = (key, incl)
        elif hi is None or key < hi[0] or (key == hi[0] and not incl):
            hi = (key, incl)
    return lo, hi


def _tests_and_plan(spec: KeySpec, cond: dict[str, Any]) -> tuple[list[Test], Plan | None]:
    """Check every operator and operand, in order; a test per operator, and the one index plan
    that narrows best (a range plan stands for all the range operators together)."""
    tests: list[Test] = []
    plans: list[Plan] = []
    for op, operand in cond.items():
        if op not in _OPERATOR_SET:
            raise BadRequest(
                f"Unknown filter operator {op!r} on {spec.slug!r}",
                {
                    "param": "filters",
                    "field": spec.slug,
                    "operator": op,
                    "reason": "unknown operator; use one of " + ", ".join(OPERATORS),
                },
            )
        if operand is None:
            raise _operand_error(spec, op, _expected_for(spec, op), operand)
        if op in _RANGE_SET:
            tests.append(_range_test(op, _range_operand(spec, op, operand)))
        else:
            test, op_plan = _compile_op(spec, op, operand)
            tests.append(test)
            if op_plan is not None:
                plans.append(op_plan)
    lo, hi = _range_bounds(spec, cond)
    if lo is not None or hi is not None:
        plans.append(
            Plan(
                "range",
                exact=False,
                lo=lo and lo[0],
                lo_incl=lo[1] if lo else True,
                hi=hi and hi[0],
                hi_incl=hi[1] if hi else True,
            )
        )
    # One plan per condition: prefer the narrowest kind; the rest stay as tests.
    plan: Plan | None = None
    if len(plans) == 1:
        plan = plans[0]
    elif plans:
        plan = min(plans, key=lambda p: _PLAN_PREFERENCE[p.kind])
    if plan is not None and len(tests) > 1:
        plan.exact = False
    return tests, plan


_PLAN_PREFERENCE = {"none": 0, "keys": 1, "options": 2, "range": 3, "text": 4, "empty": 5, "nonempty": 6}
#: How each positive text operator decides a folded value (the needle folded too).
_TEXT_CHECKS: dict[str, Callable[[str, str], bool]] = {
    "$contains": operator.contains,
    "$starts_with": str.startswith,
    "$ends_with": str.endswith,
}


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix` (None: there is none)."""
    chars = prefix.rstrip(_TOP)
    return chars[:-1] + chr(ord(chars[-1]) + 1) if chars else None


def _range_test(op: str, key: Any) -> Test:
    if op == "$gt":
        return Test(True, lambda v: v is not None and v > key)
    if op == "$gte":
        return Test(True, lambda v: v is not None and v >= key)
    if op == "$lt":
        return Test(True, lambda v: v is not None and v < key)
    return Test(True, lambda v: v is not None and v <= key)


def _compile_op(spec: KeySpec, op: str, operand: Any) -> tuple[Test, Plan | None]:
    if op == "$eq":  # the usual operator, and the meaning of a bare value
        return _eq(spec, op, operand)
    kind = spec.kind
    if op == "$empty":
        if not isinstance(operand, bool):
            raise _operand_error(spec, op, "a boolean (true or false)", operand)
        if operand:
            return Test(True, lambda v: v is None, "empty"), Plan("empty", exact=True)
        return Test(True, lambda v: v is not None, "nonempty"), Plan("nonempty", exact=True)

    if op in TEXT_OPS:
        if not isinstance(operand, str):
            raise _operand_error(spec, op, "a string", operand)
        if kind == Kind.MULTI:
            if op in ("$starts_with", "$ends_with"):
                raise _not_applicable(spec, op, "multi_select fields take $contains and $not_contains")
            needle = operand.lower()

            def has(v: Any) -> bool:
                return v is not None and any(o.lower() == needle for o in v)

            if op == "$contains":
                return Test(False, has), None
            return Test(False, lambda v: not has(v)), None
        if kind not in (Kind.STRING, Kind.CHOICE):
            raise _not_applicable(spec, op, "text operators apply to text-like fields")
        needle = operand.lower()
        if kind == Kind.CHOICE:
            if op == "$not_contains":
                return Test(False, lambda v: v is None or needle not in v.lower()), None
            # Few options: the plan is the positions of the options that pass. Not exact: the
            # stored value decides (writes refuse values outside the options, and sorting still
            # places one, so this does too).
            assert spec.field is not None
            check = _TEXT_CHECKS[op]
            passing = [pos for opt, pos in spec.field.choice_position.items() if check(opt.lower(), needle)]
            choice_plan = Plan("keys", exact=False, keys=passing) if passing else Plan("none", exact=True)
            return Test(False, lambda v: v is not None and check(v.lower(), needle)), choice_plan
        # Index keys of string fields are lowercased (except `id`'s).
        on_key = spec.slug != "id"
        text_plan: Plan | None
        if not needle:  # "" is in every value: matches are the non-empty values
            text_plan = Plan("empty" if op == "$not_contains" else "nonempty", exact=True)
        elif op == "$not_contains":
            text_plan = None  # the complement of a posting: the text index counts it, a scan lists it
        elif op == "$starts_with" and on_key:  # a run of the ordered keys
            text_plan = Plan("range", exact=False, lo=needle, hi=_successor(needle), hi_incl=False)
        else:
            text_plan = Plan("text", exact=True, text=(op, needle))
        if op == "$contains":
            if on_key:
                return Test(True, lambda v: v is not None and needle in v, "contains", needle), text_plan
            return Test(False, lambda v: v is not None and needle in v.lower()), text_plan
        if op == "$not_contains":
            if on_key:
                return Test(True, lambda v: v is None or needle not in v), text_plan
            return Test(False, lambda v: v is None or needle not in v.lower()), text_plan
        if op == "$starts_with":
            if on_key:
                return Test(True, lambda v: v is not None and v.startswith(needle)), text_plan
            return Test(False, lambda v: v is not None and v.lower().startswith(needle)), text_plan
        if on_key:
            return Test(True, lambda v: v is not None and v.endswith(needle)), text_plan
        return Test(False, lambda v: v is not None and v.lower().endswith(needle)), text_plan

    # $eq $ne $in $nin
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise _operand_error(spec, op, "an array of " + _expected_scalar(spec, op), operand)
        if kind == Kind.MULTI:
            for item in operand:
                if not isinstance(item, str):
                    raise _operand_error(spec, op, "an array of strings", operand)
            wanted = set(operand)

            def any_of(v: Any) -> bool:
                return v is not None and not wanted.isdisjoint(v)

            if op == "$in":
                return Test(False, any_of), Plan("options", exact=True, keys=list(wanted))
            return Test(False, lambda v: not any_of(v)), None
        tests_plans = [_eq(spec, op, item) for item in operand]
        fns = [t.fn for t, _ in tests_plans]
        on_key = tests_plans[0][0].on_key if tests_plans else True
        keys: list[Any] = []
        exact = True
        for _, p in tests_plans:
            if p is None or p.kind == "none":
                continue
            exact = exact and p.exact
            keys.extend(k for k in p.keys if k not in keys)
        in_plan = Plan("keys", exact=exact, keys=keys) if keys else Plan("none", exact=True)

        def in_any(v: Any) -> bool:
            return v is not None and any(fn(v) for fn in fns)

        if op == "$in":
            return Test(on_key, in_any), in_plan
        return Test(on_key, lambda v: not in_any(v)), None

    test, eq_plan = _eq(spec, op, operand)
    if op == "$eq":
        return test, eq_plan
    fn = test.fn
    return Test(test.on_key, lambda v: not fn(v)), None


def _eq(spec: KeySpec, op: str, operand: Any) -> tuple[Test, Plan | None]:
    """Equality with one operand: the test and the index keys that hold the matches."""
    kind = spec.kind
    if kind == Kind.MULTI:
        if isinstance(operand, str):
            return Test(False, lambda v: v is not None and operand in v), Plan(
                "options", exact=True, keys=[operand]
            )
        if isinstance(operand, list) and op in ("$eq", "$ne") and all(isinstance(x, str) for x in operand):
            target = frozenset(operand)
            if not target:  # [] is the empty value: nothing non-empty equals it
                return Test(False, lambda v: False), Plan("none", exact=True)
            return Test(False, lambda v: v is not None and frozenset(v) == target), Plan(
                "options", exact=False, keys=[next(iter(target))]
            )
        raise _operand_error(spec, op, _expected_scalar(spec, op), operand)
    if kind in (Kind.STRING, Kind.CHOICE):
        if not isinstance(operand, str):
            raise _operand_error(spec, op, _expected_scalar(spec, op), operand)
        if kind == Kind.CHOICE:
            assert spec.field is not None
            # Values are indexed by their option's position; case folds onto every option
            # spelled the same but for case.
            positions = spec.field.choice_positions_folded.get(operand.lower(), ())
            if not positions:
                return Test(True, lambda v: False), Plan("none", exact=True)
            return Test(True, lambda v: v in positions), Plan("keys", exact=True, keys=list(positions))
        if spec.type_name == "email":
            low = operand.lower()
            return Test(True, lambda v: v == low), Plan("keys", exact=True, keys=[low])
        # Exact, case-sensitive: the lowercased index key narrows, the stored value decides.
        return Test(False, lambda v: v == operand), Plan("keys", exact=False, keys=[spec.sort_key(operand)])
    if kind == Kind.NUMBER:
        if not is_number(operand):
            raise _operand_error(spec, op, _expected_scalar(spec, op), operand)
        return Test(True, lambda v: v is not None and v == operand), Plan("keys", exact=True, keys=[operand])
    if kind == Kind.BOOLEAN:
        if not isinstance(operand, bool):
            raise _operand_error(spec, op, _expected_scalar(spec, op), operand)
        key = int(operand)
        return Test(True, lambda v: v == key), Plan("keys", exact=True, keys=[key])
    key = _range_operand(spec, op, operand)  # DATE, INSTANT
    return Test(True, lambda v: v == key), Plan("keys", exact=True, keys=[key])


def _range_operand(spec: KeySpec, op: str, operand: Any) -> Any:
    kind = spec.kind
    if kind == Kind.NUMBER:
        if not is_number(operand):
            raise _operand_error(spec, op, "a number", operand)
        return operand
    if kind == Kind.DATE:
        if not isinstance(operand, str) or parse_date(operand) is None:
            raise _operand_error(spec, op, "a date as YYYY-MM-DD", operand)
        return operand
    if kind == Kind.INSTANT:
        us = parse_instant_operand(operand) if isinstance(operand, str) else None
        if us is None:
            raise _operand_error(
                spec,
                op,
                "a date (YYYY-MM-DD) or a datetime with an offset (2024-01-15T10:30:00Z)",
                operand,
            )
        return us
    raise _not_applicable(
        spec,
        op,
        "range operators apply to number, currency, date, datetime, created_at and updated_at",
    )


def _expected_for(spec: KeySpec, op: str) -> str:
    """What an operator's operand must be on this field (for messages)."""
    if op == "$empty":
        return "a boolean (true or false)"
    if op in ("$in", "$nin"):
        return "an array of " + _expected_scalar(spec, op)
    if op in TEXT_OPS:
        return "a string"
    if op in RANGE_OPS and spec.kind == Kind.NUMBER:
        return "a number"
    return _expected_scalar(spec, op)


def _expected_scalar(spec: KeySpec, op: str) -> str:
    return {
        Kind.NUMBER: "a number",
        Kind.STRING: "a string",
        Kind.CHOICE: "a string",
        Kind.BOOLEAN: "a boolean",
        Kind.DATE: "a date as YYYY-MM-DD",
        Kind.INSTANT: "a date (YYYY-MM-DD) or a datetime with an offset",
        Kind.MULTI: "a string" if op in ("$in", "$nin") else "a string or an array of strings",
    }[spec.kind]


def _operand_error(spec: KeySpec, op: str, expected: str, got: Any) -> BadRequest:
    return BadRequest(
        f"Filter on {spec.slug!r} ({spec.type_name}): {op} expects {expected}, got {describe(got)}",
        {
            "param": "filters",
            "field": spec.slug,
            "operator": op,
            "expected": expected,
            "reason": f"{op} on a {spec.type_name} field expects {expected}, got {describe(got)}",
        },
    )


def _not_applicable(spec: KeySpec, op: str, why: str) -> BadRequest:
    return BadRequest(
        f"Filter on {spec.slug!r} ({spec.type_name}): {op} does not apply; {why}",
        {
            "param": "filters",
            "field": spec.slug,
            "operator": op,
            "reason": f"{op} does not apply to a {spec.type_name} field; {why}",
        },
    )


# --- running ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Shape:
    """A query a composite index answers: exact keys on some fields (`eq`), and at most one
    more condition, a range or `$empty: false`, on the `tail` field that follows them."""

    eq: tuple[KeySpec, ...]
    keysets: tuple[tuple[Any, ...], ...]
    tail: KeySpec
    bounds: tuple[Any, bool, Any, bool] | None  # None: no range; (None, True, None, True): non-empty
    #: One key per eq field: the query is one run of one group.
    single_keys: bool


#: Past this many key combinations ($in on several fields), the general path is cheaper.
MAX_KEY_COMBINATIONS = 64
#: Walking the sort order for a page stops being worth it past this many records.
MAX_WALK = 20_000


def _composite_shape(query: Query) -> Shape | None:
    eq: list[Condition] = []
    tail: Condition | None = None
    combinations = 1
    for c in query.conditions:
        if c.eq_keys is not None:
            eq.append(c)
            combinations *= len(c.eq_keys)
        elif (c.bounds is not None or c.nonempty) and tail is None:
            tail = c
        else:
            return None
    if (not eq and tail is None) or combinations > MAX_KEY_COMBINATIONS:
        return None
    if len(eq) > 1:
        eq.sort(key=lambda c: c.spec.slug)  # one index per set of fields, whatever the filter's order
    if tail is None:
        tail_spec, bounds = query.sort, None
    else:
        tail_spec, bounds = tail.spec, tail.bounds or (None, True, None, True)
    return Shape(
        tuple([c.spec for c in eq]),
        tuple([c.eq_keys or () for c in eq]),
        tail_spec,
        bounds,
        combinations == 1,
    )


def _run_composite(
    store: ObjectStore, query: Query, shape: Shape, offset: int, limit: int
) -> tuple[list[str], int] | None:
    """Count from a composite index; page from it too when it is ordered like the query,
    else by walking the sort order until the page is full. None: not worth it here."""
    idx = store.composite(shape.eq, shape.tail)
    if shape.tail.slug == query.sort.slug and shape.single_keys:
        keys = tuple([k[0] for k in shape.keysets])
        return idx.page(keys, shape.bounds, query.desc, offset, limit)
    total = idx.count(shape.keysets, shape.bounds)
    if total == 0 or offset >= total:
        return [], total
    if (offset + limit) * len(store) / total > MAX_WALK:
        return None
    match = idx.matcher(shape.keysets, shape.bounds)
    ids: list[str] = []
    seen = 0
    for rid in store.index(query.sort).iter_order(query.desc):
        if match(rid):
            if seen >= offset:
                ids.append(rid)
                if len(ids) == limit:
                    break
            seen += 1
    return ids, total


def select(store: ObjectStore, conditions: list[Condition]) -> list[str] | None:
    """Ids of the records matching every condition (unordered), or None for all of them."""
    if not conditions:
        return None
    indexed = [(c, store.index(c.spec)) for c in conditions]
    best: tuple[int, Condition, FieldIndex] | None = None
    for c, idx in indexed:
        if c.plan is not None:
            est = c.plan.estimate(idx)
            if best is None or est < best[0]:
                best = (est, c, idx)
    if best is not None:
        _, first, first_idx = best
        assert first.plan is not None
        candidates = first.plan.ids(first_idx)
        remaining = [(c, i) for c, i in indexed if c is not first]
        if not first.plan.exact:
            remaining.insert(0, (first, first_idx))
    else:
        candidates, remaining = _scan(store, indexed)
    records = store.records
    for c, idx in remaining:
        for test in c.tests:
            if not candidates:
                return candidates
            keys = idx.keys
            if test.fast == "nonempty":
                candidates = [r for r in candidates if r in keys]
            elif test.fast == "empty":
                candidates = [r for r in candidates if r not in keys]
            elif test.on_key:
                fn = test.fn
                candidates = [r for r in candidates if fn(keys.get(r))]
            else:
                fn, get = test.fn, c.spec.get
                candidates = [r for r in candidates if fn(get(records[r]))]
    return candidates


def _scan(
    store: ObjectStore, indexed: list[tuple[Condition, FieldIndex]]
) -> tuple[list[str], list[tuple[Condition, FieldIndex]]]:
    """No index narrows the query: scan the first condition decided on index keys straight from
    its index's (id, key) pairs, then narrow with the rest."""
    for i, (c, idx) in enumerate(indexed):
        if all(t.on_key for t in c.tests):
            fns = [t.fn for t in c.tests]
            if len(c.tests) == 1 and c.tests[0].fast == "contains":
                needle = c.tests[0].arg
                found = [rid for rid, key in idx.keys.items() if needle in key]
            elif len(fns) == 1:
                fn = fns[0]
                found = [rid for rid, key in idx.keys.items() if fn(key)]
            else:
                found = [rid for rid, key in idx.keys.items() if all(f(key) for f in fns)]
            if all(f(None) for f in fns):
                found += idx.empties
            return found, indexed[:i] + indexed[i + 1 :]
    return list(store.records), indexed


def order_page(
    store: ObjectStore,
    matches: list[str] | None,
    sort: KeySpec,
    desc: bool,
    offset: int,
    limit: int,
) -> list[str]:
    """The ids of one page of `matches` (None: all records) in sort order."""
    idx = store.index(sort)
    if matches is None:
        return idx.page(desc, offset, limit)
    m = len(matches)
    if offset >= m:
        return []
    wanted = min(offset + limit, m)
    # Walking the index in order costs about the position of the last wanted match;
    # sorting the matches costs m log m. Take the cheaper.
    walk_cost = wanted * len(store) / m
    sort_cost = m * max(1.0, math.log2(m)) * 2
    if walk_cost <= sort_cost:
        member = set(matches)
        out: list[str] = []
        seen = 0
        for rid in idx.iter_order(desc):
            if rid in member:
                if seen >= offset:
                    out.append(rid)
                    if len(out) == limit:
                        break
                seen += 1
        return out
    return _sorted_page(idx, matches, desc, offset, limit)


def _sorted_page(idx: FieldIndex, matches: list[str], desc: bool, offset: int, limit: int) -> list[str]:
    """One page of `matches`, sorted by the keys of `idx`: records with a value by key (ties by id
    ascending), then the empty ones by id."""
    keys = idx.keys
    wanted = offset + limit
    found = list(map(keys.get, matches))  # one lookup a match: most are cache misses
    has_value = list(map(operator.is_not, found, itertools.repeat(None)))
    with_value = list(itertools.compress(matches, has_value))
    if len(with_value) > 4 * wanted:
        # A small page of many matches: the page's last key, found by a heap, bounds the keys
        # that can reach the page, and only those are sorted, by id and then by key.
        values: list[Any] = list(itertools.compress(found, has_value))
        edge = (heapq.nlargest if desc else heapq.nsmallest)(wanted, values)[-1]
        beyond = (
            map(operator.lt, values, itertools.repeat(edge))
            if desc
            else map(operator.lt, itertools.repeat(edge), values)
        )
        with_value = list(itertools.compress(with_value, map(operator.not_, beyond)))
    with_value.sort()
    with_value.sort(key=keys.__getitem__, reverse=desc)  # stable: ties stay by id ascending
    page = with_value[offset:wanted]
    if len(page) < limit:  # the page reaches the empties (with_value was not cut: it is short)
        empty = sorted(itertools.compress(matches, map(operator.not_, has_value)))
        page += empty[max(0, offset - len(with_value)) : wanted - len(with_value)]
    return page


def _run_text(store: ObjectStore, query: Query, offset: int, limit: int) -> tuple[list[str], int] | None:
    """A lone text operator on a text-like field: the text index counts the matches, and the page
    comes from walking the sort order while matches are dense, else from sorting the matches (the
    general path would list every match first, to count them). None: not this shape."""
    if len(query.conditions) != 1:
        return None
    c = query.conditions[0]
    if len(c.cond) != 1 or c.spec.kind != Kind.STRING:
        return None
    ((op, operand),) = c.cond.items()
    if op not in _TEXT_SET or not isinstance(operand, str):
        return None
    needle = operand.lower()
    if not needle:
        return None
    idx = store.index(c.spec)
    text = idx.text_index()
    n = len(store)
    listing: Callable[[], list[str]] | None = None
    if op == "$not_contains":
        total = n - text.count("$contains", needle)
    else:
        total, listing = text.match(op, needle)
    if total == 0 or offset >= total:
        return [], total
    # A step of a walk in C costs about an eighth of what a match costs to list and sort.
    sort_idx = store.index(query.sort)
    steps = (offset + limit) * n / total  # the walk's length if the matches are spread evenly
    if steps > 8 * total:
        if listing is None:
            return None  # few matches, of nearly every record: the general path scans
        return _sorted_page(sort_idx, listing(), query.desc, offset, limit), total
    # Walk the sort order, testing each id's folded value, all in C. An empty value folds to "",
    # which no positive operator passes and $not_contains does (as the contract says). Matches
    # bunched late in the order would make the walk far longer than `steps`: it stops at twice
    # that, and a page it did not fill comes from the matches instead.
    budget = 2 * math.ceil(steps)
    ids, ids_again = itertools.tee(itertools.islice(sort_idx.ids_in_order(query.desc), budget))
    values: Iterator[str]
    if c.spec.slug == "id":
        values = map(str.lower, ids_again)
    else:
        values = map(idx.keys.get, ids_again, itertools.repeat(""))
    passes: Iterator[bool]
    if op == "$not_contains":
        passes = map(operator.not_, map(operator.contains, values, itertools.repeat(needle)))
    else:
        passes = map(_TEXT_CHECKS[op], values, itertools.repeat(needle))
    page = list(itertools.islice(itertools.compress(ids, passes), offset, offset + limit))
    if len(page) < min(limit, total - offset):  # the walk ran out of steps
        if listing is None:
            return None
        return _sorted_page(sort_idx, listing(), query.desc, offset, limit), total
    return page, total


_TEXT_SET = frozenset(TEXT_OPS)


def run(store: ObjectStore, query: Query, page: int, per_page: int) -> tuple[list[str], int]:
    """One page of ids and the total number of matches."""
    shape = _composite_shape(query)
    if shape is not None:
        answer = _run_composite(store, query, shape, (page - 1) * per_page, per_page)
        if answer is not None:
            return answer
    else:
        answer = _run_text(store, query, (page - 1) * per_page, per_page)
        if answer is not None:
            return answer
    matches = select(store, query.conditions)
    total = len(store) if matches is None else len(matches)
    ids = order_page(store, matches, query.sort, query.desc, (page - 1) * per_page, per_page)
    return ids, total
