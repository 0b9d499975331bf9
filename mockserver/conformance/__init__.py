"""The conformance kit: tells a Kantos-compatible server where it deviates from the contract.

```python
from mockserver.conformance import run

status = run("http://127.0.0.1:8000", "kantos_admin_local_key", quick=True, junit_path="kantos.xml")
```

Two phases: the behaviour suite (filters, sorting, paging, record semantics, value formats,
errors, protocol and rate-limit headers, each query answer compared with the mock's own query
engine applied to the same records; webhooks with `webhooks=True`, a 429 with `limited_key`),
then schemathesis with `openapi.yaml` and every check, stateful phase included. Every check
names the contract rules it tests (`rules.RULES`); the report ends with the contract coverage.
"""

from __future__ import annotations

import random
import secrets
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TextIO

from .behaviour import Behaviour
from .client import Client, Unreachable
from .ratelimits import scan_windows
from .report import Report
from .rules import BY_ID
from .scratch import Setup
from .shapes import scan

__all__ = ["Options", "check", "run"]


@dataclass(frozen=True, slots=True)
class Options:
    """What a run checks beyond the behaviour suite, and where it writes its reports.

    ```python
    options = Options(limited_key="kantos_free_local_key", only=frozenset({"rate-limits"}))
    report = check("http://127.0.0.1:8000", "kantos_admin_local_key", options=options)
    ```

    Attributes:
        webhooks: also check webhook deliveries, with a receiver of the kit's own.
        webhook_listen: HOST:PORT for that receiver (default: a free loopback port).
        webhook_retries: fail the first delivery and check that the retry carries the same event id.
        limited_key: a key on a small plan: the kit drives it into a 429.
        intake_key: an intake key: the kit checks that /api/crm/* refuses it with 403.
        non_admin_key: a server key of a user who is not an admin: the kit checks that schema
            writes refuse it.
        html_path: write a self-contained HTML report there.
        only: run only these phases (see `PHASES`), after the setup; None runs them all.
        rules: in the filters phase, send only the queries that check these contract rules (ids
            from `rules.RULES`, such as `"filters.range"`); None sends them all. The other phases
            are chosen with `only`.
    """

    webhooks: bool = False
    webhook_listen: str | None = None
    webhook_retries: bool = False
    limited_key: str | None = None
    intake_key: str | None = None
    non_admin_key: str | None = None
    html_path: str | None = None
    only: frozenset[str] | None = None
    rules: frozenset[str] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rules or ()) - BY_ID.keys())
        if unknown:
            raise ValueError(f"no such rule of the contract: {', '.join(unknown)}")


#: The phases of a run, in order; `Options.only` and `--only` choose among them.
PHASES = (
    "filters",
    "sorting",
    "paging",
    "records",
    "writes",
    "formats",
    "errors",
    "protocol",
    "rate-limits",
    "webhooks",
    "schemathesis",
)


def run(
    base_url: str,
    api_key: str,
    quick: bool = False,
    junit_path: str | None = None,
    fuzz: bool = True,
    out: TextIO | None = None,
    *,
    seed: int | None = None,
    timeout: float = 30.0,
    keep_data: bool = False,
    options: Options | None = None,
) -> int:
    """Run the kit against `base_url`; print progress and the report to `out`.

    Returns the exit status: 0 when nothing deviates, 1 when something does, 2 when the kit could
    not complete its run (server unreachable, the scratch data could not be set up, …).
    `keep_data` leaves the scratch records in place, so the reproducers of query findings can be
    replayed against them; `seed` fixes the generated data and queries.
    """
    options = options if options is not None else Options()
    stream: TextIO = out if out is not None else sys.stdout
    report = check(
        base_url,
        api_key,
        quick,
        fuzz,
        stream,
        seed=seed,
        timeout=timeout,
        keep_data=keep_data,
        options=options,
    )
    stream.write(report.render())
    if junit_path:
        report.write_junit(junit_path)
        print(f"JUnit XML written to {junit_path}", file=stream)
    if options.html_path:
        from .html import write_html

        write_html(report, options.html_path)
        print(f"HTML report written to {options.html_path}", file=stream)
    stream.flush()
    return report.exit_status()


def check(
    base_url: str,
    api_key: str,
    quick: bool = False,
    fuzz: bool = True,
    out: TextIO | None = None,
    *,
    seed: int | None = None,
    timeout: float = 30.0,
    keep_data: bool = False,
    options: Options | None = None,
) -> Report:
    """Run the kit's phases and return the report, unrendered (`run` prints and writes it).

    The arguments are `run`'s. Progress lines go to `out` (default stdout) as the run goes;
    `report.exit_status()` is what `run` would return, `report.render()` its text report.
    """
    options = options if options is not None else Options()
    base_url = base_url.rstrip("/")
    report = Report(base_url, out if out is not None else sys.stdout)
    seed = seed if seed is not None else secrets.randbits(32)
    report.seed = seed
    rng = random.Random(seed)
    marker = secrets.token_hex(3)  # new on every run: objects cannot be deleted, names must not clash
    report.progress(
        f"Kantos conformance kit against {base_url} ({'quick' if quick else 'full'} run, seed {seed})"
    )
    reachable = _behaviour(report, base_url, api_key, quick, rng, marker, timeout, keep_data, options)
    if fuzz and reachable and (options.only is None or "schemathesis" in options.only):
        from .fuzz import run_schemathesis, time_budget

        budget = time_budget(quick, time.monotonic() - report.started)
        with report.phase("schemathesis"):
            run_schemathesis(report, base_url, api_key, quick=quick, seed=seed, budget=budget)
    unknown = report.unknown_checks()
    if unknown:  # a bug in the kit: every check must name a rule of the contract
        report.problem(f"checks that name no rule of the contract: {', '.join(unknown)}")
    return report


def _behaviour(
    report: Report,
    base_url: str,
    api_key: str,
    quick: bool,
    rng: random.Random,
    marker: str,
    timeout: float,
    keep_data: bool,
    options: Options,
) -> bool:
    """The behaviour suite; False when the server could not be reached at all."""
    client = Client(base_url, api_key, timeout=timeout, notify=report.progress)
    setup = Setup(client, report, rng, quick, marker)
    suite: Behaviour | None = None
    try:
        try:
            with report.phase("setup"):
                scratch = setup.prepare()
                ready = scratch is not None and setup.snapshot(scratch) is not None
            if scratch is not None and ready:
                suite = Behaviour(client, report, setup, scratch, rng, quick, options)
                for name, step in suite.steps():
                    if options.only is not None and name not in options.only:
                        continue
                    try:
                        with report.phase(name):
                            step()
                    except Unreachable:
                        raise
                    except Exception as exc:  # a bug in the kit must not hide the other results
                        report.problem(f"the kit failed in {step.__name__}: {exc!r}")
                        traceback.print_exc(file=report.out)
        finally:
            if client.log and any(ex.status for ex in client.log):
                setup.cleanup(keep=keep_data)
        scan(report, client.log)
        scan_windows(report, client.log)
        if suite is not None:
            suite.attach_reproducers()
        report.progress(f"behaviour suite: {len(client.log)} requests")
    except Unreachable as exc:
        report.problem(f"cannot reach the server: {exc}")
        return False
    except Exception as exc:  # a bug in the kit: say so, and still print the report
        report.problem(f"the kit failed while setting up: {exc!r}")
        traceback.print_exc(file=report.out)
    finally:
        client.close()
    return True
