"""The kit's schemathesis phase: its time budget is for testing, not for starting up.

On a loaded machine, importing schemathesis and loading the spec can take longer than a quick
run's whole budget; counted from the process start, the phase was stopped before it wrote any
report and the kit could not complete. A stand-in process plays schemathesis here.
"""

from __future__ import annotations

import signal
import sys

from mockserver.conformance import fuzz
from mockserver.conformance.report import Report


def _stand_in(startup: float, testing: float) -> list[str]:
    script = (
        "import time\n"
        f"time.sleep({startup})\n"
        "print('Loaded specification from openapi.yaml', flush=True)\n"
        "try:\n"
        f"    time.sleep({testing})\n"
        "except KeyboardInterrupt:\n"  # as schemathesis does: stop, write the reports
        "    print('interrupted', flush=True)\n"
        "    raise SystemExit(1)\n"
        "print('done', flush=True)\n"
    )
    return [sys.executable, "-c", script]


def test_a_slow_start_does_not_use_up_the_budget() -> None:
    lines, stopped = fuzz._run(_stand_in(startup=1.5, testing=0.2), {}, 1.0, Report("http://x"))
    assert not stopped
    assert lines[-1] == "done"


def test_testing_past_the_budget_is_stopped() -> None:
    lines, stopped = fuzz._run(_stand_in(startup=0.0, testing=30), {}, 0.5, Report("http://x"))
    assert stopped
    assert lines[-1] == "interrupted"


def test_the_budget_stops_it_even_when_this_process_ignores_sigint() -> None:
    """As in a CI job's background process (`kantos-mock conformance ... &`): the child would
    inherit the ignored SIGINT, never stop at the budget, and be killed 15 s later without its
    reports."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        lines, stopped = fuzz._run(_stand_in(startup=0.0, testing=30), {}, 0.5, Report("http://x"))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stopped
    assert lines[-1] == "interrupted"  # not killed: it had the chance to write its reports
