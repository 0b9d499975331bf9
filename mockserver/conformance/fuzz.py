"""The schemathesis phase: openapi.yaml, every check and every phase (stateful too), as findings.

schemathesis runs in a subprocess (`python -m schemathesis.cli run`): its Hypothesis state, its
threads and its output stay out of the kit's process, and a time budget can stop it cleanly
(SIGINT, which still writes its reports). Its JUnit report carries, per operation, each failure
with a curl reproducer; the kit turns those into findings and adds the suite to its own JUnit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx

from .client import KEY_VARIABLE, is_loopback
from .report import Finding, Report

KEY_ENV = "KANTOS_CONFORMANCE_API_KEY"
PHASES = "examples,coverage,fuzzing,stateful"


@dataclass(frozen=True, slots=True)
class Budget:
    max_examples: int
    stateful_examples: int
    seconds: float


QUICK = Budget(max_examples=3, stateful_examples=5, seconds=14.0)
FULL = Budget(max_examples=150, stateful_examples=100, seconds=90.0)


def time_budget(quick: bool, spent: float) -> Budget:
    """The phase's budget, given the seconds the run has spent: quick runs stay under 20 s and
    full ones under 2 minutes, unless the server is so slow that the floor is reached."""
    base = QUICK if quick else FULL
    total = 18.0 if quick else 115.0
    floor = 5.0 if quick else 30.0
    return Budget(base.max_examples, base.stateful_examples, max(floor, min(base.seconds, total - spent)))


def spec_path() -> Path:
    return Path(str(resources.files("mockserver") / "openapi.yaml"))


def config_text(base_url: str, api_key: str, budget: Budget, timeout: float = 10.0) -> str:
    """The bundled configuration plus dictionaries of the server's own object and record ids."""
    text = (Path(__file__).parent / "schemathesis.toml").read_text(encoding="utf-8")
    objects, records, slugs = _server_ids(base_url, api_key, timeout)
    parameters = []
    extra = [
        "",
        "# Added by the kit for this run: the stateful budget, and ids that exist on the server.",
        "[phases.stateful.generation]",
        f"max-examples = {budget.stateful_examples}",
    ]
    if objects:
        extra += ["[dictionaries.object_ids]", f"values = {_toml_list(objects)}"]
        parameters += [
            '"query.object_id" = { dictionary = "object_ids", probability = 0.8 }',
            '"path.object_id" = { dictionary = "object_ids", probability = 0.8 }',
            '"body.object_id" = { dictionary = "object_ids", probability = 0.8 }',
        ]
    if records:
        extra += ["[dictionaries.record_ids]", f"values = {_toml_list(records)}"]
        parameters.append('"path.record_id" = { dictionary = "record_ids", probability = 0.7 }')
    extra += [
        "[dictionaries.sort_fields]",
        f"values = {_toml_list(['created_at', 'updated_at', 'id', *slugs])}",
    ]
    parameters.append('"query.sort" = { dictionary = "sort_fields", probability = 0.6 }')
    return text + "\n".join([*extra, "[parameters]", *parameters]) + "\n"


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _server_ids(base_url: str, api_key: str, timeout: float) -> tuple[list[str], list[str], list[str]]:
    headers = {"X-Api-Key": api_key}
    objects: list[str] = []
    records: list[str] = []
    slugs: list[str] = []
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as http:
            listed = http.get("/api/crm/objects").json().get("data") or []
            objects = [o["id"] for o in listed if isinstance(o, dict) and isinstance(o.get("id"), str)][:20]
            for object_id in objects:
                page = http.get(
                    "/api/crm/records/query", params={"object_id": object_id, "sort": "id", "per_page": 10}
                ).json()
                records = [r["id"] for r in page.get("data") or [] if isinstance(r, dict) and "id" in r]
                if records:
                    fields = http.get(f"/api/crm/objects/{object_id}").json().get("fields") or []
                    slugs = [
                        f["slug"] for f in fields if isinstance(f, dict) and isinstance(f.get("slug"), str)
                    ]
                    break
    except (httpx.HTTPError, ValueError, AttributeError, TypeError):
        pass  # without dictionaries schemathesis generates ids freely; the phase still runs
    return objects, records, slugs[:8]


def run_schemathesis(
    report: Report, base_url: str, api_key: str, *, quick: bool, seed: int, budget: Budget | None = None
) -> None:
    """Run schemathesis against the server and add what it finds to `report`."""
    budget = budget or (QUICK if quick else FULL)
    if importlib.util.find_spec("schemathesis") is None:
        report.problem(
            "schemathesis is not installed, so the fuzz phase could not run: "
            "pip install 'schemathesis>=4,<5' (or run with --no-fuzz)"
        )
        return
    report.progress(
        f"schemathesis: every check, phases {PHASES} (up to {budget.max_examples} examples per "
        f"operation, {budget.stateful_examples} stateful scenarios, {budget.seconds:.0f} s budget)"
    )
    with tempfile.TemporaryDirectory(prefix="kantos-conformance-") as tmp:
        folder = Path(tmp)
        config = folder / "schemathesis.toml"
        config.write_text(config_text(base_url, api_key, budget), encoding="utf-8")
        junit, summary = folder / "junit.xml", folder / "report.json"
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "--no-color",
            "run",
            str(spec_path()),
            "--url",
            base_url,
            "--checks",
            "all",
            "--phases",
            PHASES,
            "--max-examples",
            str(budget.max_examples),
            "--seed",
            str(seed),
            "--workers",
            "2",
            "--report",
            "junit,json",
            "--report-dir",
            str(folder),
            "--report-junit-path",
            str(junit),
            "--report-json-path",
            str(summary),
        ]
        if is_loopback(base_url):
            # New connections, as the kit's own client does on loopback (see client._limits).
            command += ["--header", "Connection: close"]
        started = time.monotonic()
        output, stopped = _run(command, {**os.environ, KEY_ENV: api_key}, budget.seconds, report)
        elapsed = time.monotonic() - started
        _collect(report, junit, summary, output, stopped, elapsed, budget)


#: How long schemathesis may take to start and load the spec before its time budget starts: on a
#: loaded machine, importing it alone can take longer than a quick run's whole budget.
STARTUP_SECONDS = 90.0


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(command: list[str], env: dict[str, str], seconds: float, report: Report) -> tuple[list[str], bool]:
    """Run schemathesis, relaying its phase results as progress; SIGINT it when over budget.

    The budget counts from the moment schemathesis says it has loaded the specification, so a
    slow start never eats the time meant for testing (nor leaves it stopped before it wrote any
    report)."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        # SIGINT is how the budget stops it, so that it still writes its reports. A process started
        # in the background by a non-interactive shell (`kantos-mock conformance ... &` in CI), or
        # by a pytest-xdist worker, ignores SIGINT, and a child inherits that: restore it.
        preexec_fn=_default_sigint if os.name == "posix" else None,
    )
    lines: list[str] = []
    phase = re.compile(r"^\s*\S*\s*(Examples|Coverage|Fuzzing|Stateful) \(in [\d.]+s\)")
    loaded = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "Loaded specification" in line or phase.match(line):
                loaded.set()
            if phase.match(line):
                report.progress("schemathesis: " + line.strip())
        loaded.set()  # its output ended: nothing more to wait for

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    stopped = False
    try:
        loaded.wait(timeout=STARTUP_SECONDS)
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        stopped = True
        report.progress(f"schemathesis: time budget of {seconds:.0f} s spent; stopping it")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
    return lines, stopped


_CASE = re.compile(r"^\d+\. Test Case ID: (\S+)\s*$", re.MULTILINE)
_CHECK = re.compile(r"^- ([A-Z]{2}\d{3})? ?(.+)$")


def _collect(
    report: Report,
    junit: Path,
    summary: Path,
    output: list[str],
    stopped: bool,
    elapsed: float,
    budget: Budget,
) -> None:
    doc: dict[str, Any] = {}
    if summary.exists():
        try:
            doc = json.loads(summary.read_text(encoding="utf-8"))
        except ValueError:
            doc = {}
    if not junit.exists() or not doc:
        tail = "\n".join(output[-15:])
        why = (
            f"it was stopped by its {budget.seconds:.0f} s budget before it wrote them"
            if stopped
            else "exit status unknown"
        )
        report.problem(f"schemathesis did not produce its reports ({why}); its last lines:\n{tail}")
        return
    root = ET.parse(junit).getroot()
    cases = doc.get("test_cases") or {}
    ops = doc.get("operations") or {}
    summary_check = (
        "schemathesis.run",
        "schemathesis",
        "schemathesis finds no failure with every check, stateful phase included",
    )
    report.ran(*summary_check, count=int(cases.get("generated", 0) or 0))
    for case in root.iter("testcase"):
        failure = case.find("failure")
        if failure is not None and failure.text:
            _findings(report, case.get("name", "?"), failure.text)
        error = case.find("error")
        if error is not None:
            report.problem(
                f"schemathesis could not test {case.get('name')}: {(error.text or '').strip()[:500]}"
            )
    for err in doc.get("errors") or []:
        if not any(str(err.get("title")) in p for p in report.problems):
            report.problem(f"schemathesis: {err.get('title')} ({err.get('count')}x)")
    phases = ", ".join(f"{k} {v.get('status')}" for k, v in (doc.get("phases") or {}).items())
    report.progress(
        f"schemathesis: {cases.get('generated', 0)} test cases on {ops.get('tested', 0)} operations in "
        f"{elapsed:.1f} s ({phases}); {cases.get('unique_failures', 0)} unique failure(s)"
    )
    if stopped:
        report.note(
            f"schemathesis was stopped after its time budget ({budget.seconds:.0f} s); "
            "its results cover the phases it completed"
        )


def _findings(report: Report, operation: str, text: str) -> None:
    """One finding per failing test case and check, grouped by schemathesis' failure code."""
    starts = list(_CASE.finditer(text))
    for i, match in enumerate(starts):
        block = text[match.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        checks, expectation, response, curls = _parse_block(block)
        for code, title in checks or [("", "failure")]:
            check_id = f"schemathesis.{code or re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}"
            report.fail(
                check_id,
                "schemathesis",
                f"{code} {title}".strip(),
                Finding(
                    expectation or title,
                    response or "(see the reproducer)",
                    label=f"{operation} (test case {match.group(1)})",
                    curl="\n      $ ".join(curls) if curls else "",
                ),
            )


def _parse_block(block: str) -> tuple[list[tuple[str, str]], str, str, list[str]]:
    checks: list[tuple[str, str]] = []
    expectation: list[str] = []
    response: list[str] = []
    curls: list[str] = []
    section = ""
    for raw in block.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _CHECK.match(line)
        if m and raw.startswith("- "):
            title = re.sub(r"\s*\(\d+ violations?\)$", "", m.group(2).strip())
            checks.append((m.group(1) or "", title))
            section = "check"
        elif section == "check" and line.startswith("Schema at"):
            section = "schema"  # the schema dump: the report keeps the message, not the schema
        elif re.match(r"^\[\d{3}\]", line):
            response.append(line.rstrip(":"))
            section = "response"
        elif line.startswith("Reproduce with"):
            section = "reproduce"
        elif line.startswith("st replay") or line.startswith("schemathesis replay"):
            section = ""
        elif section == "check":
            expectation.append(line)
        elif section == "response":
            response.append(line.strip("`"))
        elif section == "reproduce" and line.startswith("curl "):
            curls.append(_with_key_variable(line))
    return checks, "; ".join(expectation), "\n".join(response), curls


def _with_key_variable(curl: str) -> str:
    curl = curl.replace("-H 'Connection: close' ", "")
    return re.sub(r"-H '[Xx]-[Aa]pi-[Kk]ey: \[Filtered\]'", f'-H "X-Api-Key: ${KEY_VARIABLE}"', curl)
