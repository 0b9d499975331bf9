"""`bench/journal.py --quick` runs and prints its table (the numbers themselves are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_journal_bench_quick_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-P", str(ROOT / "bench" / "journal.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for line in ("GET one record", "page-3 query", "POST create", "one poll finding 300 new requests"):
        assert line in result.stdout, result.stdout
