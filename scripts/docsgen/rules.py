"""The contract's rules as the conformance kit checks them (`mockserver/conformance/rules.py`)."""

from __future__ import annotations

from .text import cell, code, plain, table


def contract_rules() -> str:
    from mockserver.conformance.rules import AREAS, RULES

    out = []
    for area in AREAS:
        rules = [r for r in RULES if r.area == area]
        if not rules:
            continue
        out.append(f"### Rules: {area} {{#rules-{area}}}\n")
        rows = [
            [
                code(r.id),
                plain(r.text),
                cell(f"needs {r.needs}") if r.needs else "",
            ]
            for r in rules
        ]
        out.append(table(["rule", "the rule", "checked when"], rows))
    return f"{len(RULES)} rules in {len(out) // 2} areas.\n\n" + "\n".join(out)
