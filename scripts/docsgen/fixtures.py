"""Tables for the fixture format reference, read from the constants the loader checks against."""

from __future__ import annotations

from .text import cell, code, table


def fixture_constants() -> str:
    from mockserver.domain.auth import KEY_TYPES, PLANS
    from mockserver.domain.fixtures import CSV_SYSTEM_COLUMNS, RECORD_FORMATS
    from mockserver.domain.schema import NOT_UNIQUE_TYPES, RESERVED_SLUGS, TEXT_MAX_CHARS

    plans = table(
        ["plan", "per minute", "per day"],
        [[code(name), f"{m:,}", f"{d:,}"] for name, (m, d) in PLANS.items()],
    )
    rows = [
        ["key types", ", ".join(code(t) for t in KEY_TYPES)],
        ["reserved field slugs", ", ".join(code(s) for s in sorted(RESERVED_SLUGS))],
        ["types that cannot be `unique`", ", ".join(code(str(t)) for t in sorted(NOT_UNIQUE_TYPES))],
        ["longest `text` value", f"{TEXT_MAX_CHARS} characters"],
        ["CSV columns besides field slugs", ", ".join(code(c) for c in CSV_SYSTEM_COLUMNS)],
        ["formats `pull --format` and `write_fixture_set` write", ", ".join(code(f) for f in RECORD_FORMATS)],
    ]
    return "### Plans\n\n" + plans + "\n### Limits and names\n\n" + table(["what", "value"], rows)


def field_types() -> str:
    """One row per field type: the value it takes (the loader's and the API's own words), the
    options it needs, whether it may be unique and what empties it on a write."""
    from mockserver.domain.schema import _EXPECTED, NOT_UNIQUE_TYPES, STRING_EMPTYABLE, FieldType

    needs = {
        FieldType.STATUS: "`stages`: a non-empty list of strings",
        FieldType.DROPDOWN: "`choices`: a non-empty list of strings",
        FieldType.MULTI_SELECT: "`choices`: a non-empty list of strings",
        FieldType.REFERENCE: "`object_id`: an object id of the set",
    }
    rows = []
    for t in FieldType:
        empties = ["`null`"]
        if t in STRING_EMPTYABLE:
            empties.append('`""`')
        if t is FieldType.MULTI_SELECT:
            empties.append("`[]`")
        rows.append(
            [
                code(t.value),
                cell(_EXPECTED[t]),
                needs.get(t, ""),
                "no" if t in NOT_UNIQUE_TYPES else "yes",
                ", ".join(empties),
            ]
        )
    return table(["type", "a value is", "options", "may be unique", "emptied by"], rows)
