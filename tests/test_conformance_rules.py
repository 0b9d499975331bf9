"""The kit's rules table: every rule has checks that run, every check names a rule, the report
prints the coverage, the JUnit XML has one case per rule, and the clean mock passes any seed."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest

from mockserver.conformance import Options, check, run, scratch
from mockserver.conformance.report import Report
from mockserver.conformance.rules import AREAS, RULES, rules_for
from mockserver.server import MockServer

ADMIN_KEY = "kantos_admin_local_key"
OTHER_KEYS = {"intake_key": "kantos_intake_local_key", "non_admin_key": "kantos_server_local_key"}
#: Every option the mock can serve: other keys, a key on a small plan, webhooks with a retry.
EVERY_OPTION = Options(**OTHER_KEYS, limited_key="kantos_free_local_key", webhooks=True, webhook_retries=True)


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with MockServer(seed=21) as mock:
        # A small plan, so the kit reaches the 429 in a few requests.
        httpx.patch(
            f"{mock.url}/_mock/keys/kantos_free_local_key", json={"per_minute": 20}
        ).raise_for_status()
        yield mock.url


@pytest.fixture(scope="module")
def complete(mock_url: str) -> Report:
    """A full run with every option the mock can serve, the fuzz phase aside."""
    return check(mock_url, ADMIN_KEY, fuzz=False, out=io.StringIO(), seed=1, options=EVERY_OPTION)


def test_rule_ids_are_unique_and_every_rule_names_checks() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.checks, rule.id
        assert rule.area in AREAS, rule.id
        assert rule.text, rule.id


def test_every_check_of_a_complete_run_names_a_rule(complete: Report) -> None:
    assert complete.unknown_checks() == []
    assert not complete.problems, complete.problems
    for c in complete.checks.values():
        assert rules_for(c.id), c.id


def test_a_complete_run_checks_every_rule_but_those_needing_other_phases(complete: Report) -> None:
    _, unchecked = complete.coverage()
    # The fuzz phase (spec.schemathesis) is run by test_conformance_kit's quick run with fuzzing.
    assert {r.id for r in unchecked} <= {"spec.schemathesis"}, [r.id for r in unchecked]


def test_every_check_a_rule_names_runs_in_some_run(complete: Report, mock_url: str) -> None:
    """Each of a rule's checks runs: in the complete run, or (the 403 of schema writes for the
    kit's own key) in a run whose key is not an admin's."""
    only_setup = Options(only=frozenset())  # the 403 comes while the kit sets up
    other = check(
        mock_url,
        OTHER_KEYS["non_admin_key"],
        quick=True,
        fuzz=False,
        out=io.StringIO(),
        seed=3,
        options=only_setup,
    )
    ran = [c.id for r in (complete, other) for c in r.checks.values() if c.runs]
    for rule in RULES:
        if rule.id == "spec.schemathesis":
            continue
        for pattern in rule.checks:
            assert any(rule.covers(c) and (c == pattern or pattern.endswith("*")) for c in ran), (
                f"{rule.id}: no check {pattern!r} ran"
            )


def test_the_report_prints_the_coverage_and_the_time_of_each_phase(complete: Report) -> None:
    text = complete.render()
    checked, unchecked = complete.coverage()
    assert f"contract coverage: {len(checked)} of {len(RULES)} rules checked" in text
    for rule in unchecked:
        assert f"not checked: {rule.id}" in text
    assert "time by phase: setup" in text
    for phase in ("filters", "sorting", "paging", "records", "writes", "formats", "errors", "protocol"):
        assert f"{phase} " in text.split("time by phase:")[1]


def test_junit_has_one_case_per_rule_and_skips_the_unchecked(mock_url: str, tmp_path: Path) -> None:
    junit = tmp_path / "kit.xml"
    status = run(
        mock_url, ADMIN_KEY, quick=True, fuzz=False, junit_path=str(junit), out=io.StringIO(), seed=2
    )
    assert status == 0
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {r.id for r in RULES}
    skipped = {name for name, c in cases.items() if c.find("skipped") is not None}
    assert "errors.intake-key" in skipped and "spec.schemathesis" in skipped  # no --intake-key, no fuzzing
    assert "filters.eq" not in skipped and cases["filters.eq"].find("failure") is None


def test_scratch_value_lists_cycle_through_every_value() -> None:
    """Record i's value is LIST[(7 * i + 3 * pos) % len(LIST)]: a length sharing a factor with 7
    would leave values out (and with them the ties, cases and non-ASCII text the checks need)."""
    lists = {n: v for n, v in vars(scratch).items() if re.fullmatch(r"_[A-Z_]+", n) and isinstance(v, list)}
    assert len(lists) >= 10
    for name, values in lists.items():
        assert math.gcd(len(values), 7) == 1, name


@pytest.mark.parametrize("seed", [11, 22, 33])  # with the complete run's seed 1: four seeds
def test_the_clean_mock_passes_whatever_the_seed(mock_url: str, seed: int) -> None:
    report = check(
        mock_url, ADMIN_KEY, fuzz=False, out=io.StringIO(), seed=seed, options=Options(**OTHER_KEYS)
    )
    assert not report.failing, report.render()
    assert not report.problems, report.problems
    assert report.exit_status() == 0
