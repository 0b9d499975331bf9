"""Conformance tests: report what schemathesis generated, against which target, in how long."""

from __future__ import annotations

import time

import pytest
from kantos_conformance import FUZZ_EXAMPLES, STATS, target_description

_started = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not STATS.total:
        return
    write = terminalreporter.write_line
    terminalreporter.section("kantos conformance (schemathesis)")
    write(f"target: {target_description()}")
    budget = "schemathesis.toml" if FUZZ_EXAMPLES is None else f"KANTOS_FUZZ_EXAMPLES={FUZZ_EXAMPLES}"
    write(f"budget: {budget}")
    write(f"requests sent by the tests: {STATS.total} in {time.monotonic() - _started:.1f} s")
    write("  by phase:  " + ", ".join(f"{k} {v}" for k, v in sorted(STATS.by(1).items())))
    write("  by mode:   " + ", ".join(f"{k} {v}" for k, v in sorted(STATS.by(2).items())))
    write("  by status: " + ", ".join(f"{k} {v}" for k, v in sorted(STATS.by(3).items())))
    if config.option.verbose > 0:
        write("by operation, phase and mode (status x count):")
        rows: dict[tuple[str, str, str], list[str]] = {}
        for (op, phase, mode, status), n in sorted(STATS.cases.items()):
            rows.setdefault((op, phase, mode), []).append(f"{status}x{n}")
        for (op, phase, mode), statuses in rows.items():
            write(f"  {op:40} {phase:9} {mode:8} {' '.join(statuses)}")
