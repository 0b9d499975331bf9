"""`bench/scale.py` runs on small sizes, prints its tables and writes its plot (numbers not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_scale_bench_prints_its_tables_and_writes_the_plot(tmp_path: Path) -> None:
    png = tmp_path / "scale.png"
    # One small size: each wrk run lasts at least a second, and there are 16 of them per size.
    args = ["--quick", "--sizes", "800", "--reps", "5", "--duration", "1", "--plot", str(png)]
    run = subprocess.run(
        [sys.executable, "-P", str(ROOT / "bench" / "scale.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "== 800 contacts" in out
    for label in ("GET one record", "page-3 query", "random $contains", "POST"):
        assert out.count(f"    {label}") == 2, label  # in process and over HTTP
        assert f"{label}, HTTP % of floor req/s" in out
    assert "start-up, serve to first answer s" in out
    for label in ("GET one record", "page-3 query", "random $contains"):  # the reads the HTTP targets judge
        assert f"    1 connection: {label}" in out
        assert f"{label}, HTTP 1 connection ms" in out
    assert "n/a: 1,000,000 was not among --sizes" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
