"""schemathesis hooks for the Kantos contract, loaded through `hooks` in schemathesis.toml.

Used by the conformance tests and by `st run` alike. Two things:

1. **Steering.** openapi.yaml cannot say which ids exist or which fields an object has: that is
   server state. Left alone, schemathesis would create records with random `field_values`
   (always a 422) and query random filter fields (always a 400), so positive cases would never
   reach record storage or the query engine, and the stateful phase would have nothing to read,
   update or delete. In the fuzzing and stateful phases, half of the *positive* cases of three
   operations are rewritten into requests that are valid for the bundled fixtures' objects:

   - `createRecord`: `field_values` valid for the object (every required field, some others);
   - `updateRecord`: a new `name` (every bundled object has a required `name` text field);
   - `queryRecords`: filters and a sort on the object's own fields, with operands of the right
     type for each field's type.

   Negative cases, the examples and coverage phases, and the other half of the positive cases
   are left exactly as schemathesis generated them. Ids come from `[dictionaries]` in
   schemathesis.toml.

2. **A check.** `kantos_state_dependent_400`: where the contract lets a schema-valid request be
   a 400 because the rule depends on the server's state (a query's unknown filter or sort
   field, or wrong operand type for the field; a reference field to an unknown object), the
   400 must name exactly that: `details.param` `filters` or `sort`, or `details.field` ending
   in `options.object_id`. Any other 400 on valid input fails.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.meta import TestPhase

# `st run` loads this file by path: make its sibling module importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kantos_strategies import (
    OBJECTS,
    TEXT,
    field_values_strategy,
    query_strategy,
)

STEERED_PHASES = frozenset({TestPhase.FUZZING, TestPhase.STATEFUL})

CREATE_RECORD = "POST /api/crm/record"
UPDATE_RECORD = "PATCH /api/crm/record/{record_id}"
QUERY_RECORDS = "GET /api/crm/records/query"
CREATE_FIELD = "POST /api/crm/objects/{object_id}/fields"
CREATE_OBJECT = "POST /api/crm/objects"


# ---------------------------------------------------------------------------- the hook


def _steerable(case: schemathesis.Case) -> bool:
    meta = case.meta
    return (
        meta is not None
        and meta.phase.name in STEERED_PHASES
        and meta.generation.mode == GenerationMode.POSITIVE
    )


def _replace_body(case: schemathesis.Case, body: dict[str, Any]) -> schemathesis.Case:
    case.body = body
    return case


def _replace_query(case: schemathesis.Case, query: dict[str, Any]) -> schemathesis.Case:
    # object_id stays as generated (or as the link set it); the rest follows the object.
    case.query = {"object_id": case.query["object_id"], **query}
    return case


@schemathesis.hook
def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy[Any]:
    if not _steerable(case):
        return st.just(case)
    label = case.operation.label
    steered: st.SearchStrategy[schemathesis.Case] | None = None
    if label == CREATE_RECORD and isinstance(case.body, dict) and case.body.get("object_id") in OBJECTS:
        obj = OBJECTS[case.body["object_id"]]
        steered = field_values_strategy(obj).map(
            lambda fv: _replace_body(case, {"object_id": obj.id, "field_values": fv})
        )
    elif label == UPDATE_RECORD and isinstance(case.body, dict):
        steered = TEXT.map(lambda name: _replace_body(case, {"field_values": {"name": name}}))
    elif label == QUERY_RECORDS and case.query.get("object_id") in OBJECTS:
        obj = OBJECTS[case.query["object_id"]]
        steered = query_strategy(obj).map(lambda q: _replace_query(case, q))
    if steered is None:
        return st.just(case)
    return st.one_of(st.just(case), steered)


# ---------------------------------------------------------------------------- the check

#: Where the contract lets a schema-valid request be a 400, because the rule depends on the
#: server's state: what `details` must then name (CONTRACT.md, "Query semantics"; FieldInput).
STATE_DEPENDENT_400 = {
    # An unknown filter or sort field for this object, or an operand of the wrong type for it.
    QUERY_RECORDS: ("param", re.compile(r"filters|sort")),
    # A reference field to an object that does not exist.
    CREATE_FIELD: ("field", re.compile(r"options\.object_id")),
    CREATE_OBJECT: ("field", re.compile(r"fields(?:\.|\[)\d+\]?\.options\.object_id")),
}


@schemathesis.check
def kantos_state_dependent_400(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A schema-valid request answered 400 must name the state-dependent rule it broke."""
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE or response.status_code != 400:
        return None
    rule = STATE_DEPENDENT_400.get(case.operation.label)
    if rule is None:
        return None  # positive_data_acceptance already rejects any 400 here
    key, allowed = rule
    try:
        details = response.json().get("details") or {}
    except (ValueError, AttributeError):
        details = {}
    named = details.get(key)
    if not isinstance(named, str) or not allowed.fullmatch(named):
        raise AssertionError(
            "A schema-valid request was rejected with 400 for a reason that does not depend on "
            f"the server's state: details.{key} is {named!r}, expected {allowed.pattern!r}. "
            f"Response: {response.text[:500]}"
        )
    return None
