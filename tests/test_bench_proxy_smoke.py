"""`bench/proxy.py --quick` runs the proxy in front of the mock and prints both sides (not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_proxy_prints_direct_and_proxy_side_by_side() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-P",
            str(ROOT / "bench" / "proxy.py"),
            "--quick",
            "--requests",
            "40",
            "--seconds",
            "1",
            "--rounds",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    rows = {
        line.split()[0]: line.split()[1:]
        for line in lines
        if line.startswith(("direct ", "proxy ", "added "))
    }
    assert set(rows) >= {"direct", "proxy", "added"}
    assert all(float(v) >= 0 for v in rows["direct"] + rows["proxy"])
    assert "a page of 25 records" in run.stdout
    assert any(line.startswith("p50 added ") for line in lines)
    # With wrk: the round's figures, and the verdict on the median of the rounds.
    if any(line.startswith("req/s with wrk") for line in lines):
        assert any(line.strip().startswith("round 1: direct ") for line in lines)
        assert any("median of 1 round(s)" in line for line in lines)
    # Every exchange the bench sent went through the checks, and the mock showed no deviation.
    assert "0 deviation(s)" in run.stdout
