"""The generated reference pages (scripts/docsgen, wired in by scripts/mkdocs_hooks.py) cover what
they are generated from: every CLI option, every operation and schema, every error class."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import mkdocs_hooks  # noqa: E402
from docsgen import GENERATORS, api, cli, errors  # noqa: E402
from docsgen.live import error_exchanges  # noqa: E402

from mockserver.domain.errors import KantosError  # noqa: E402
from mockserver.domain.schema import FieldType  # noqa: E402


@pytest.fixture(scope="module")
def cli_page() -> str:
    return cli.cli_reference()


def test_every_subcommand_has_a_section(cli_page: str) -> None:
    names = [name for name, _, _ in cli.parsers()]
    assert {"serve", "check-fixtures", "conformance", "pull", "proxy"} <= set(names)
    for name in names[1:]:
        assert f"## `kantos-mock {name}` {{#{name}}}" in cli_page


@pytest.mark.parametrize("command", ["serve", "check-fixtures", "conformance", "pull", "proxy"])
def test_every_option_appears_with_its_help(cli_page: str, command: str) -> None:
    parser = dict((name, p) for name, _, p in cli.parsers())[command]
    start = cli_page.index(f"{{#{command}}}")
    end = cli_page.find("\n## ", start)
    section = cli_page[start : end if end != -1 else None].replace("\\", "")  # `\_` shows as `_`
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert actions
    for action in actions:
        for name in action.option_strings or [action.dest]:
            assert f"`{name}`" in section, f"{command}: {name} is missing"
        first_words = " ".join((action.help or "").split()[:4])
        assert first_words in section, f"{command}: the help of {action.dest} is missing"


def test_defaults_come_from_the_parser_not_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANTOS_API_KEY", "secret_key_from_the_build_environment")
    page = cli.cli_reference()
    assert "secret_key_from_the_build_environment" not in page
    assert "| `--port` | `PORT` | `8000` |" in page  # serve's port default, as the parser has it


@pytest.mark.parametrize(("spec", "name"), [("openapi.yaml", "kantos-api"), ("control.yaml", "control-api")])
def test_every_operation_and_schema_is_rendered(spec: str, name: str) -> None:
    page = GENERATORS[name]()
    data = yaml.safe_load(api.spec_path(spec).read_text(encoding="utf-8"))
    operations = api.operations(data)
    assert operations
    for method, path, op, _ in operations:
        assert f"{{#{op['operationId']}}}" in page
        assert f"`{method.upper()} {path}`" in page
        for status in op.get("responses", {}):
            assert f"| `{status}` |" in page
    for schema in data["components"]["schemas"]:
        assert f"{{#{api.schema_anchor(schema)}}}" in page
    # Every link to a schema, shared response or operation points at an anchor the page has.
    anchors = set(re.findall(r"\{#([^}]+)\}", page))
    for target in re.findall(r"\]\(#([^)]+)\)", page):
        assert target in anchors, target


def test_every_error_class_is_in_the_table_with_a_real_answer_of_the_mock() -> None:
    page = errors.error_reference()
    made = {e.body["code"]: e for e in error_exchanges()}
    for cls in errors.error_classes():
        assert f"| `{cls.status}` |" in page and f"`{cls.code}`" in page
        if cls is not KantosError:
            assert made[cls.code].status == cls.status, cls.code


def test_the_field_type_table_has_every_type() -> None:
    page = GENERATORS["field-types"]()
    for t in FieldType:
        assert f"| `{t.value}` |" in page


def test_every_contract_rule_is_listed() -> None:
    from mockserver.conformance.rules import RULES

    page = GENERATORS["contract-rules"]()
    for rule in RULES:
        assert f"| `{rule.id}` |" in page


def test_markers_expand_and_fail_loudly(tmp_path: Path) -> None:
    (tmp_path / "NOTES.md").write_text("# Notes\n\nkept as it is\n", encoding="utf-8")
    page = "intro\n<!-- include: NOTES.md -->\n<!-- include: MISSING.md, optional -->\n"
    out = mkdocs_hooks.expand(page, root=tmp_path)
    assert "kept as it is" in out and "`MISSING.md` is not in the repository yet" in out
    assert "<!--" not in out
    with pytest.raises(FileNotFoundError):
        mkdocs_hooks.expand("<!-- include: MISSING.md -->\n", root=tmp_path)
    with pytest.raises(KeyError):
        mkdocs_hooks.expand("<!-- generated: no-such-thing -->\n", root=tmp_path)


def test_each_reference_page_uses_its_generator() -> None:
    pages = {
        "reference/cli.md": "cli",
        "reference/kantos-api.md": "kantos-api",
        "reference/control-api.md": "control-api",
        "reference/errors.md": "errors",
        "reference/fixture-formats.md": "field-types",
        "contract.md": "contract-rules",
    }
    for page, name in pages.items():
        assert f"<!-- generated: {name} -->" in (ROOT / "docs" / page).read_text(encoding="utf-8"), page
    assert "<!-- generated: csv-example -->" in (ROOT / "docs/reference/fixture-formats.md").read_text(
        encoding="utf-8"
    )
    assert "<!-- include: ARCHITECTURE.md -->" in (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    assert "<!-- include: CHANGELOG.md" in (ROOT / "docs/changelog.md").read_text(encoding="utf-8")


def test_the_error_examples_in_openapi_yaml_are_answers_the_mock_gives() -> None:
    """Each example of a shared error response is, word for word, what the mock answers to one of
    the error reference's requests: readers copy these, and client code is written against them."""
    document = yaml.safe_load((ROOT / "mockserver" / "openapi.yaml").read_text(encoding="utf-8"))
    components = document["components"]
    answers = [e.body for e in error_exchanges()]
    checked: set[int] = set()
    for name, response in components["responses"].items():
        for label, example in (response["content"]["application/json"].get("examples") or {}).items():
            if "$ref" in example:
                example = components["examples"][example["$ref"].rsplit("/", 1)[-1]]
            assert example["value"] in answers, f"responses.{name}.examples.{label} is not a real answer"
            checked.add(example["value"]["status"])
    assert checked == {a["status"] for a in answers}  # every error status has a checked example
