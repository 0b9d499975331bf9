"""Reference pages of the documentation site, generated from the code and the specs at build time.

`scripts/mkdocs_hooks.py` (mkdocs.yml `hooks:`) replaces a page line `<!-- generated: NAME -->`
with `GENERATORS[NAME]()`, and `<!-- include: PATH -->` with the file at PATH (from the repository
root), so the pages cannot drift from the parsers, specs, error classes and files they describe.
"""

from __future__ import annotations

from collections.abc import Callable

from . import api, cli, errors, fixtures, live, rules

GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli.cli_reference,
    "kantos-api": api.kantos_api_reference,
    "control-api": api.control_api_reference,
    "errors": errors.error_reference,
    "fixture-constants": fixtures.fixture_constants,
    "field-types": fixtures.field_types,
    "contract-rules": rules.contract_rules,
    "csv-example": live.csv_export,
}
