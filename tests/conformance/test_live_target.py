"""The same conformance tests judge a server over HTTP, and `st run` works with the same config.

Both start a real mock on a free port (uvicorn in a thread, response self-check on via
KANTOS_MOCK_VALIDATE_RESPONSES, so a drifting response is a 500 the run reports) and run a small
budget against it in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kantos_conformance import BASE_URL, ROOT

from mockserver.server import MockServer

HERE = Path(__file__).resolve().parent
LIVE_BUDGET = "5"  # examples per operation and stateful scenarios: enough to show the mode works

pytestmark = pytest.mark.skipif(BASE_URL is not None, reason="already running against KANTOS_BASE_URL")


@pytest.fixture(scope="module")
def live_mock() -> Iterator[MockServer]:
    assert os.environ.get("KANTOS_MOCK_VALIDATE_RESPONSES") == "1"
    with MockServer(seed=7) as mock:
        yield mock


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        # A fresh process: not an xdist worker even when this test runs in one.
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_conformance_tests_judge_a_live_server(live_mock: MockServer) -> None:
    result = _run(
        [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(HERE / "test_schemathesis.py"),
            str(HERE / "test_configured_key.py"),
        ],
        KANTOS_BASE_URL=live_mock.url,
        KANTOS_FUZZ_EXAMPLES=LIVE_BUDGET,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert f"target: {live_mock.url}" in output
    assert "skipped" not in output.splitlines()[-1], output[-2000:]
    sent = re.search(r"requests sent by the tests: (\d+)", output)
    assert sent is not None and int(sent.group(1)) > 100, output[-2000:]


def test_st_run_uses_the_same_configuration(live_mock: MockServer) -> None:
    result = _run(
        [
            "-m",
            "schemathesis.cli",
            "run",
            "openapi.yaml",
            "--url",
            live_mock.url,
            "--max-examples",
            "3",
            "--phases",
            "examples,fuzzing",
        ]
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert f"Configuration:    {ROOT / 'schemathesis.toml'}" in output
    assert "Dictionaries:     3 dictionaries" in output
    assert "9 selected / 9 total" in output
