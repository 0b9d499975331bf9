"""`bench/query.py --quick` runs and prints its table (the numbers themselves are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_query_bench_quick_prints_the_table() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "query.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "10,000 contacts" in out
    header = next(line for line in out.splitlines() if line.startswith("operation"))
    for column in ("mock p50", "mock p99", "sqlite p50", "sqlite p99", "ratio"):
        assert column in header
    for op in (
        "$eq status",
        "deal_value range",
        "$contains on name",
        "$contains on email",
        "$in source",
        "deep page",
        "create",
        "update",
        "delete",
    ):
        assert any(line.startswith(op) and line.count("ms") >= 4 for line in out.splitlines()), op
    assert "RSS before loading" in out and "build the Backend" in out and "warm-up" in out
    assert "compared on every query repetition: all identical" in out
