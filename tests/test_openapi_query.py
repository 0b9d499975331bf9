"""`Operation.parse_query` checks all query parameters with one validator; it gives exactly what
checking them one by one gives (`_checked_query`): the same values, or the same first error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mockserver.domain.errors import BadRequest
from mockserver.openapi import Spec

SPEC = Spec.load()
QUERY = SPEC.operations["queryRecords"]

# Valid and invalid raw values of each parameter of queryRecords.
CANDIDATES: dict[str, list[str]] = {
    "object_id": ["obj_contacts", "", "x"],
    "filters": [
        '{"status":"new","deal_value":{"$gte":5000}}',
        "{}",
        "",
        "null",
        "[]",
        '{"a":null}',
        '{"a":{}}',
        '{"a":{"$bogus":1}}',
        '{"a":{"$gte":[1]}}',
        '{"":1}',
        "{not json",
    ],
    "sort": ["deal_value", ""],
    "order": ["desc", "asc", "up", ""],
    "page": ["3", "0", "-1", "+2", "1.5", "x", "", "9223372036854775807", "9223372036854775808"],
    "per_page": ["25", "100", "101", "0", "1e2", "007"],
    "unknown": ["anything"],
}

ITEMS = st.lists(
    st.sampled_from(sorted(CANDIDATES)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(CANDIDATES[name]))
    ),
    max_size=8,
)


def outcome(parse: Any, items: list[tuple[str, str]]) -> tuple[str, Any]:
    try:
        return "ok", parse(items)
    except BadRequest as exc:
        return "error", (exc.message, exc.details)


def one_by_one(items: list[tuple[str, str]]) -> dict[str, Any]:
    return QUERY._checked_query(dict(items))


def test_query_records_checks_its_parameters_at_once() -> None:
    assert QUERY.query_check is not None


@given(ITEMS)
@example([("object_id", "obj_contacts"), ("page", "0"), ("filters", "{not json")])
@example([("object_id", ""), ("per_page", "500")])
@example([("per_page", "0")])
def test_parse_query_agrees_with_checking_one_by_one(items: list[tuple[str, str]]) -> None:
    # Names given twice are refused before either way runs; keep each name once here.
    items = list(dict(items).items())
    assert outcome(QUERY.parse_query, items) == outcome(one_by_one, items)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            [("object_id", "obj_contacts")],
            {"object_id": "obj_contacts", "order": "asc", "page": 1, "per_page": 25},
        ),
        (
            [("per_page", "7"), ("object_id", "o"), ("filters", '{"a":1}'), ("extra", "x")],
            {"object_id": "o", "filters": {"a": 1}, "order": "asc", "page": 1, "per_page": 7},
        ),
    ],
)
def test_parse_query_types_values_and_fills_defaults(
    items: list[tuple[str, str]], expected: dict[str, Any]
) -> None:
    parsed = QUERY.parse_query(items)
    assert parsed == expected
    assert list(parsed) == list(expected)  # in the spec's order of parameters


def test_the_first_bad_parameter_is_the_one_named() -> None:
    with pytest.raises(BadRequest) as caught:
        QUERY.parse_query([("per_page", "500"), ("object_id", "")])
    assert caught.value.details["param"] == "object_id"
