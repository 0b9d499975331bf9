"""`bench/http.py --quick` runs on loopback and prints its table (the numbers are not judged here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("GET one record", "2 filters, sort desc, page 3", "$contains on name", "POST create", "PATCH")


def run_bench(*args: str) -> str:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "http.py"), "--quick", "--records", "2000", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def table_rows(out: str, server: str) -> dict[str, list[str]]:
    """The results table's row of `server` for each scenario, split into cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scenario") and "req/s" in line)
    rows: dict[str, list[str]] = {}
    scenario = ""
    for line in lines[start + 2 :]:
        if line.startswith("floor: "):
            break
        for title in SCENARIOS:
            if line.startswith(title):
                scenario = title
        cells = line[30:].split()
        if cells and cells[0] == server:
            rows[scenario] = cells
    return rows


def test_http_bench_quick_runs_mock_and_floor_with_the_asyncio_client() -> None:
    # The asyncio client is what runs where wrk is missing; json-server is left out (no npm, no network).
    out = run_bench("--only", "mock,floor", "--load-generator", "asyncio")
    assert "2,000 contacts" in out
    assert "load generator: asyncio client" in out
    header = next(line for line in out.splitlines() if line.startswith("scenario"))
    for column in ("server", "req/s", "p50 ms", "p99 ms", "errors", "floor"):
        assert column in header
    for server in ("mock", "floor"):
        rows = table_rows(out, server)
        assert set(rows) == set(SCENARIOS), (server, out)
        for scenario, cells in rows.items():
            assert float(cells[1].replace(",", "")) > 0, (server, scenario)
            assert cells[4] == "0", f"{server} {scenario}: errors\n{out}"
    assert "json-server" not in out.split("Results on")[1].split("Targets")[0]
    assert "GET one record: mock >= 70% of the floor's req/s" in out
    assert "start-up on the bundled fixtures < 1 s" in out
    assert "event loop" in out and "HTTP parser" in out
    assert "load average before the run" in out and "nproc" in out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_http_bench_quick_drives_the_mock_with_wrk() -> None:
    # Every POST carries a fresh email (a unique field): a repeat would show as 409s in `errors`.
    out = run_bench("--only", "mock", "--load-generator", "wrk")
    assert "load generator: wrk" in out
    rows = table_rows(out, "mock")
    assert set(rows) == set(SCENARIOS), out
    for scenario, cells in rows.items():
        assert float(cells[1].replace(",", "")) > 0, scenario
        assert cells[4] == "0", f"{scenario}: errors\n{out}"
