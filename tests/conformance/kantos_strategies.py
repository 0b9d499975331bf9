"""Hypothesis strategies for requests that are valid for the bundled fixtures' objects.

Shared by `hooks.py` (which steers schemathesis' positive cases with them) and the plain tests
that prove the strategies produce requests the mock accepts.
"""

from __future__ import annotations

import string
from datetime import date, datetime
from typing import Any

from hypothesis import strategies as st

from mockserver.domain.fixtures import load_fixtures
from mockserver.domain.schema import FieldDef, FieldType, ObjectDef

FIXTURES = load_fixtures()  # the bundled set, loaded once per process
OBJECTS: dict[str, ObjectDef] = {o.id: o for o in FIXTURES.objects}
USERS: list[str] = sorted(FIXTURES.users)
RECORDS_BY_OBJECT: dict[str, list[str]] = {}
for _record in FIXTURES.records:
    RECORDS_BY_OBJECT.setdefault(_record.object_id, []).append(_record.id)

# ---------------------------------------------------------------------------- values

_WORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=60
).filter(lambda s: s.strip() != "")
_NUMBER = st.integers(-(10**9), 10**9) | st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)
_DATE = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
_DATETIME = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
_OFFSET = st.sampled_from(["Z", "+00:00", "+02:00", "-05:30"])


def _iso_date(d: date) -> str:
    return d.isoformat()


def _iso_datetime(d: datetime, offset: str) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S") + offset


def value_strategy(f: FieldDef) -> st.SearchStrategy[Any]:
    """Values the contract accepts for a field of this definition (CONTRACT.md, "Writes")."""
    t = f.type
    choices = list(f.choices) if t in (FieldType.STATUS, FieldType.DROPDOWN, FieldType.MULTI_SELECT) else []
    if t == FieldType.TEXT:
        return TEXT
    if t == FieldType.LONG_TEXT:
        return st.text(max_size=300).filter(lambda s: s != "")
    if t in (FieldType.NUMBER, FieldType.CURRENCY):
        return _NUMBER
    if t == FieldType.EMAIL:
        return st.builds(lambda a, b: f"{a}@{b}.example", _WORD, _WORD.map(str.lower))
    if t == FieldType.PHONE:
        return st.from_regex(r"\+1 \(555\) [0-9]{3}-[0-9]{4}", fullmatch=True)
    if t in (FieldType.URL, FieldType.IMAGE):
        return st.builds(lambda a, b: f"https://{a}.example/{b}", _WORD.map(str.lower), _WORD)
    if t == FieldType.DATE:
        return _DATE.map(_iso_date)
    if t == FieldType.DATETIME:
        return st.builds(_iso_datetime, _DATETIME, _OFFSET)
    if t == FieldType.BOOLEAN:
        return st.booleans()
    if t in (FieldType.STATUS, FieldType.DROPDOWN):
        return st.sampled_from(choices)
    if t == FieldType.MULTI_SELECT:
        return st.lists(st.sampled_from(choices), unique=True, max_size=len(choices))
    if t == FieldType.REFERENCE:
        return st.sampled_from(RECORDS_BY_OBJECT.get(f.target_object or "", []) or ["rec_missing"])
    if t == FieldType.USER:
        return st.sampled_from(USERS)
    raise AssertionError(f"no value strategy for field type {t}")


def field_values_strategy(obj: ObjectDef) -> st.SearchStrategy[dict[str, Any]]:
    """`field_values` valid for `obj`: every required field, and a subset of the others."""
    required = {f.slug: value_strategy(f) for f in obj.fields if f.required}
    optional = {f.slug: value_strategy(f) for f in obj.fields if not f.required and not f.unique}
    return st.fixed_dictionaries(required, optional=optional)


# ---------------------------------------------------------------------------- filters

_TEXT_TYPES = frozenset(
    {
        FieldType.TEXT,
        FieldType.LONG_TEXT,
        FieldType.EMAIL,
        FieldType.PHONE,
        FieldType.URL,
        FieldType.IMAGE,
        FieldType.STATUS,
        FieldType.DROPDOWN,
        FieldType.REFERENCE,
        FieldType.USER,
    }
)
_INSTANT = st.one_of(_DATE.map(_iso_date), st.builds(_iso_datetime, _DATETIME, _OFFSET))


def condition_strategy(kind: str, operand: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A filter condition on a field of `kind` ("text", "number", "instant", "boolean", "multi")."""
    ops: dict[str, st.SearchStrategy[Any]] = {
        "$eq": operand,
        "$ne": operand,
        "$in": st.lists(operand, max_size=3),
        "$nin": st.lists(operand, max_size=3),
        "$empty": st.booleans(),
    }
    if kind == "text":
        for op in ("$contains", "$not_contains", "$starts_with", "$ends_with"):
            ops[op] = operand
    if kind in ("number", "instant"):
        for op in ("$gt", "$gte", "$lt", "$lte"):
            ops[op] = operand
    if kind == "multi":
        ops["$contains"] = operand
    names = sorted(ops)
    return st.one_of(
        operand,  # a bare value means $eq
        st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True).flatmap(
            lambda chosen: st.fixed_dictionaries({name: ops[name] for name in chosen})
        ),
    )


def _field_condition(f: FieldDef) -> st.SearchStrategy[Any]:
    t = f.type
    if t in (FieldType.NUMBER, FieldType.CURRENCY):
        return condition_strategy("number", _NUMBER)
    if t == FieldType.DATE:
        return condition_strategy("instant", _DATE.map(_iso_date))
    if t == FieldType.DATETIME:  # a date-only operand means that day's midnight UTC
        return condition_strategy("instant", _INSTANT)
    if t == FieldType.BOOLEAN:
        return condition_strategy("boolean", st.booleans())
    if t == FieldType.MULTI_SELECT:
        return condition_strategy("multi", st.sampled_from(list(f.choices)))
    assert t in _TEXT_TYPES, t
    operand = value_strategy(f) if t != FieldType.LONG_TEXT else _WORD
    return condition_strategy("text", st.one_of(operand, _WORD))


def filters_strategy(obj: ObjectDef) -> st.SearchStrategy[dict[str, Any]]:
    conditions: dict[str, st.SearchStrategy[Any]] = {f.slug: _field_condition(f) for f in obj.fields}
    conditions["id"] = condition_strategy("text", st.sampled_from(RECORDS_BY_OBJECT.get(obj.id, ["rec_x"])))
    conditions["created_by"] = condition_strategy("text", st.sampled_from(USERS))
    for system in ("created_at", "updated_at"):
        conditions[system] = condition_strategy("instant", _INSTANT)
    return st.fixed_dictionaries({}, optional=conditions).filter(lambda d: len(d) <= 3)


def query_strategy(obj: ObjectDef) -> st.SearchStrategy[dict[str, Any]]:
    sortable = [f.slug for f in obj.fields] + ["id", "created_at", "updated_at", "created_by"]
    return st.fixed_dictionaries(
        {"filters": filters_strategy(obj)},
        optional={
            "sort": st.sampled_from(sortable),
            "order": st.sampled_from(["asc", "desc"]),
            "per_page": st.integers(1, 100),
            "page": st.integers(1, 3),
        },
    )
