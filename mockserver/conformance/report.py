"""Findings grouped by check: the readable report, the JUnit XML, and the exit status."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from xml.etree import ElementTree as ET

from .client import KEY_VARIABLE, Exchange
from .rules import AREAS, RULES, Rule, rules_for


@dataclass(slots=True)
class Finding:
    """One request whose answer deviates, with what the contract expects and what came back."""

    expected: str
    received: str
    request: Exchange | None = None
    label: str = ""  # what the request asks, in a few words (shown in place of the full URL)
    detail: list[str] = field(default_factory=list)
    curl: str | None = None  # for findings whose request the kit did not send itself
    #: Requests to replay first (the first one creating `record_id`), when the finding depends on them.
    steps: list[Exchange] = field(default_factory=list)
    record_id: str | None = None


@dataclass(slots=True)
class Check:
    """A rule of the contract; `runs` counts the requests that exercised it."""

    id: str
    area: str
    title: str
    rule: str = ""
    runs: int = 0
    findings: list[Finding] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def rules(self) -> list[Rule]:
        return rules_for(self.id)

    @property
    def rule_area(self) -> str:
        rules = self.rules
        return rules[0].area if rules else self.area


def _area_key(area: str) -> int:
    return AREAS.index(area) if area in AREAS else len(AREAS)


class Report:
    """Collects checks and findings while the kit runs; renders them when it is done.

    `check()` returns one. Attributes a caller reads:

    Attributes:
        checks: every check the run made, by check id (each with its runs and findings).
        notes: remarks printed with the report that change no verdict.
        problems: what the kit could not do (an unreachable server, scratch data it could not
            make); any makes the exit status 2.
        timings: seconds spent in each phase of the run, in run order.
        seed: the run's seed; the same seed makes the same data and queries.
    """

    def __init__(self, base_url: str, out: TextIO | None = None) -> None:
        self.base_url = base_url
        self.out = out if out is not None else sys.stdout
        self.checks: dict[str, Check] = {}
        self.notes: list[str] = []
        self.problems: list[str] = []  # the kit could not do something: exit status 2
        self.started = time.monotonic()
        #: Seconds spent in each phase of the run (setup, filters, …, schemathesis), in run order.
        self.timings: dict[str, float] = {}
        self.seed: int | None = None  # the run's seed, shown in the HTML report

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times a phase of the run; the report prints each phase's time at the end."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - started

    # --- recording ---------------------------------------------------------------------------

    def check(self, check_id: str, area: str, title: str, rule: str = "") -> Check:
        existing = self.checks.get(check_id)
        if existing is None:
            existing = self.checks[check_id] = Check(check_id, area, title, rule)
        return existing

    def ran(self, check_id: str, area: str, title: str, rule: str = "", count: int = 1) -> Check:
        c = self.check(check_id, area, title, rule)
        c.runs += count
        return c

    def fail(
        self,
        check_id: str,
        area: str,
        title: str,
        finding: Finding,
        rule: str = "",
    ) -> None:
        self.check(check_id, area, title, rule).findings.append(finding)

    def progress(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:5.1f}s] {message}", file=self.out, flush=True)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def problem(self, message: str) -> None:
        self.problems.append(message)
        self.progress(f"problem: {message}")

    # --- verdict -----------------------------------------------------------------------------

    @property
    def failing(self) -> list[Check]:
        """The checks that found a deviation."""
        return [c for c in self.checks.values() if c.findings]

    @property
    def finding_count(self) -> int:
        """How many deviating requests the checks found, all checks together."""
        return sum(len(c.findings) for c in self.checks.values())

    def exercised(self, rule: Rule) -> list[Check]:
        """The checks of `rule` that this run exercised (sent at least one request for)."""
        return [c for c in self.checks.values() if (c.runs or c.findings) and rule.covers(c.id)]

    def coverage(self) -> tuple[list[Rule], list[Rule]]:
        """The contract's rules this run checked, and those it did not."""
        checked = [r for r in RULES if self.exercised(r)]
        return checked, [r for r in RULES if r not in checked]

    def unknown_checks(self) -> list[str]:
        """Checks that name no rule of the table (a bug in the kit: the test suite fails on it)."""
        return sorted(c.id for c in self.checks.values() if not c.rules)

    def exit_status(self) -> int:
        """0: conforms; 1: deviations found; 2: the kit could not complete its run."""
        if self.failing:
            return 1
        return 2 if self.problems else 0

    # --- text --------------------------------------------------------------------------------

    def render(self, max_examples: int = 3) -> str:
        """The text report: each failing check with up to `max_examples` of its findings, then the
        rules by area, the contract's coverage and the time by phase."""
        lines: list[str] = []
        failing = sorted(self.failing, key=lambda c: (_area_key(c.rule_area), c.id))
        passed = [c for c in self.checks.values() if c.ok]
        lines.append("")
        lines.append("=" * 78)
        if failing:
            n = sum(len(c.findings) for c in failing)
            lines.append(f"Kantos conformance: {len(failing)} finding(s) from {n} deviating request(s)")
        else:
            lines.append("Kantos conformance: no deviations found")
        lines.append(f"server: {self.base_url}")
        lines.append("=" * 78)
        if failing:
            lines.append(
                f"Reproducers read the API key from ${KEY_VARIABLE}: "
                f"export {KEY_VARIABLE}=<the key passed with --api-key>"
            )
        for i, c in enumerate(failing, 1):
            lines.append("")
            lines.extend(render_check(c, self.base_url, i, max_examples))
        if self.problems:
            lines.append("")
            lines.append("The kit could not complete:")
            lines.extend(f"  ! {p}" for p in self.problems)
        if self.notes:
            lines.append("")
            lines.extend(f"note: {n}" for n in self.notes)
        lines.append("")
        lines.extend(self.summary_lines())
        lines.append(
            f"{len(passed)} checks passed, {len(failing)} failed, "
            f"{len(self.problems)} problem(s); {time.monotonic() - self.started:.1f} s"
        )
        return "\n".join(lines) + "\n"

    def by_area(self) -> dict[str, tuple[int, int, int, int]]:
        """Per rule area: rules passed, rules failed, rules checked, rules in the table."""
        out: dict[str, list[int]] = {a: [0, 0, 0, 0] for a in AREAS}
        for rule in RULES:
            counts = out.setdefault(rule.area, [0, 0, 0, 0])
            counts[3] += 1
            checks = self.exercised(rule)
            if checks:
                counts[2] += 1
                counts[1 if any(c.findings for c in checks) else 0] += 1
        return {a: (c[0], c[1], c[2], c[3]) for a, c in out.items() if c[3]}

    def summary_lines(self) -> list[str]:
        """Rules by area, the contract coverage with the rules left unchecked, and phase times."""
        lines = ["rules by area (passed/failed of checked; in the table):"]
        for area, (ok, bad, n_checked, total) in self.by_area().items():
            lines.append(f"  {area:<12} {ok:>3} passed {bad:>3} failed   {n_checked:>3} of {total} checked")
        checked, unchecked = self.coverage()
        lines.append(f"contract coverage: {len(checked)} of {len(RULES)} rules checked")
        for rule in unchecked:
            why = f" (needs {rule.needs})" if rule.needs else ""
            lines.append(f"  not checked: {rule.id}{why}: {rule.text}")
        if self.timings:
            lines.append(
                "time by phase: " + ", ".join(f"{name} {secs:.1f} s" for name, secs in self.timings.items())
            )
        return lines

    # --- JUnit -------------------------------------------------------------------------------

    def junit(self) -> ET.Element:
        """One test case per rule of the contract, in a suite per area; unchecked rules are skipped."""
        root = ET.Element("testsuites", name="kantos-conformance")
        for area in AREAS:
            rules = [r for r in RULES if r.area == area]
            if not rules:
                continue
            suite = ET.SubElement(root, "testsuite", name=f"conformance.{area}")
            failures = skipped = 0
            for rule in rules:
                checks = self.exercised(rule)
                elapsed = sum(c.elapsed for c in checks)
                case = ET.SubElement(
                    suite, "testcase", classname=f"conformance.{area}", name=rule.id, time=f"{elapsed:.3f}"
                )
                failing = [c for c in checks if c.findings]
                if failing:
                    failures += 1
                    failure = ET.SubElement(case, "failure", message=rule.text, type="deviation")
                    failure.text = _xml_safe(
                        "\n".join(line for c in failing for line in render_check(c, self.base_url, None, 50))
                    )
                elif not checks:
                    skipped += 1
                    why = f"needs {rule.needs}" if rule.needs else "no check of this rule ran"
                    ET.SubElement(case, "skipped", message=f"not checked in this run: {why}")
                else:
                    runs = ", ".join(f"{c.id} ({c.runs} request(s))" for c in checks)
                    ET.SubElement(case, "system-out").text = _xml_safe(f"{rule.text}\nchecked by: {runs}")
            suite.set("tests", str(len(rules)))
            suite.set("failures", str(failures))
            suite.set("errors", "0")
            suite.set("skipped", str(skipped))
        if self.problems:
            suite = ET.SubElement(
                root, "testsuite", name="conformance.kit", tests="1", failures="0", errors="1", skipped="0"
            )
            case = ET.SubElement(suite, "testcase", classname="conformance.kit", name="complete run")
            error = ET.SubElement(case, "error", message="the kit could not complete its run")
            error.text = _xml_safe("\n".join(self.problems))
        tests = failures = errors = 0
        for suite in root.iter("testsuite"):
            tests += int(suite.get("tests", "0"))
            failures += int(suite.get("failures", "0"))
            errors += int(suite.get("errors", "0"))
        root.set("tests", str(tests))
        root.set("failures", str(failures))
        root.set("errors", str(errors))
        return root

    def write_junit(self, path: str | Path) -> None:
        """Write the report as JUnit XML: one test case per contract rule (skipped when the run
        did not exercise it), failed with the findings of its checks."""
        tree = ET.ElementTree(self.junit())
        ET.indent(tree)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tree.write(path, encoding="utf-8", xml_declaration=True)


def render_check(c: Check, base_url: str, number: int | None, max_examples: int) -> list[str]:
    head = f"{number}. " if number is not None else ""
    n = len(c.findings)
    runs = f"{n} of {max(c.runs, n)} request(s) deviate" if c.runs else f"{n} deviating request(s)"
    lines = [f"{head}[{c.rule_area}] {c.title} ({runs})"]
    rules = [f"rule {r.id}: {r.text}" for r in c.rules] or ([f"rule: {c.rule}"] if c.rule else [])
    for text in rules:
        lines += textwrap.wrap(text, width=100, initial_indent="   ", subsequent_indent="         ")
    for j, f in enumerate(c.findings[:max_examples], 1):
        lines.append(f"   {j}) {f.label or _label(f.request)}")
        lines += _field("expected", f.expected)
        lines += _field("received", f.received)
        lines += [f"      {d}" for d in f.detail]
        lines += _reproducer(f, base_url)
    rest = c.findings[max_examples:]
    if rest:
        labels = "; ".join(f.label or _label(f.request) for f in rest[:6])
        more = " …" if len(rest) > 6 else ""
        lines.append(f"   … and {len(rest)} more: {labels}{more}")
    return lines


def _reproducer(f: Finding, base_url: str) -> list[str]:
    commands = reproducer_commands(f, base_url)
    lines = [f"      $ {command}" for command in commands]
    if len(commands) > 1:
        lines.insert(0, "      reproduce in order (the first request creates the record again):")
    return lines


def reproducer_commands(f: Finding, base_url: str) -> list[str]:
    """The shell commands that replay a finding, in order (none when it has no request to replay)."""
    if f.curl is not None:
        return [f.curl]
    if f.request is None:
        return []
    var = (f.record_id, "REC_ID") if f.record_id else None
    lines = []
    for step in f.steps:
        if (
            var is not None
            and step.method == "POST"
            and isinstance(step.json, dict)
            and step.json.get("id") == var[0]
        ):
            grab = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])'"
            lines.append(f"REC_ID=$({step.curl(base_url, headers=False)} | {grab})")
        else:
            lines.append(step.curl(base_url, var=var))
    lines.append(f.request.curl(base_url, var=var))
    return lines


def _field(name: str, text: str) -> list[str]:
    first, *rest = text.splitlines() or [""]
    return [f"      {name}: {first}"] + [f"                {line}" for line in rest]


def _label(ex: Exchange | None) -> str:
    if ex is None:
        return "(no request)"
    query = " ".join(f"{k}={v}" for k, v in ex.params if k != "object_id")
    return f"{ex.method} {ex.path}" + (f" {query}" if query else "")


_XML_ILLEGAL = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)])


def _xml_safe(text: str) -> str:
    return text.translate(_XML_ILLEGAL)
