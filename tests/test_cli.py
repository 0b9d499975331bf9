"""The `kantos-mock` command line as a real process: serve on a socket, stop cleanly, fail fast."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from kantos_support import ADMIN_KEY, SyncASGITransport

from mockserver import __version__, create_app
from mockserver.domain.backend import FixtureSet

CONSOLE_SCRIPT = Path(sys.executable).with_name("kantos-mock")
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class Lines:
    """Collects a process's stdout lines from a background thread, so reads can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.text = ""
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self._stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (match := pattern.search(self.text)) is None:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(
                    f"{pattern.pattern!r} not printed within {timeout} s; output:\n{self.text}"
                )
            self.text += line
        return match


@contextmanager
def serving(*command: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            lines = Lines(proc)
            url = lines.wait_for(URL).group(0)
            lines.wait_for(re.compile(re.escape(ADMIN_KEY)), timeout=2.0)
            yield proc, url, lines.text
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)


def exercise(url: str) -> str:
    """A query and a create over the socket; returns the created record's id."""
    with httpx.Client(base_url=url, headers={"X-Api-Key": ADMIN_KEY}, timeout=5) as c:
        r = c.get("/api/crm/records/query", params={"object_id": "obj_contacts", "per_page": 5})
        assert r.status_code == 200, r.text
        assert len(r.json()["data"]) == 5
        assert r.json()["pagination"]["total"] > 5
        body = {"object_id": "obj_contacts", "field_values": {"name": "Over The Wire"}}
        created = c.post("/api/crm/record", json=body)
        assert created.status_code == 201, created.text
        record_id: str = created.json()["id"]
        assert c.get(f"/api/crm/record/{record_id}").json()["field_values"]["name"] == "Over The Wire"
        return record_id


def stop(proc: subprocess.Popen[str], sig: signal.Signals) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within {STOP_TIMEOUT} s of {sig.name}")


@pytest.fixture(scope="module")
def seeded_first_id(fixture_set: FixtureSet) -> str:
    """The id an in-process app with seed 7 gives the record `exercise` creates."""
    app = create_app(fixture_set, seed=7)
    with httpx.Client(
        transport=SyncASGITransport(app), base_url="http://kantos.test", headers={"X-Api-Key": ADMIN_KEY}
    ) as c:
        body = {"object_id": "obj_contacts", "field_values": {"name": "Over The Wire"}}
        record_id: str = c.post("/api/crm/record", json=body).json()["id"]
        return record_id


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        pytest.param(
            [sys.executable, "-m", "mockserver", "serve"], signal.SIGTERM, id="python-m-serve-sigterm"
        ),
        pytest.param([str(CONSOLE_SCRIPT), "serve"], signal.SIGTERM, id="kantos-mock-serve-sigterm"),
        pytest.param(
            [sys.executable, "-m", "mockserver"], signal.SIGINT, id="python-m-default-command-ctrl-c"
        ),
    ],
)
def test_serve_answers_real_http_on_loopback_and_exits_0_on_signal(
    command: list[str], sig: signal.Signals, seeded_first_id: str
) -> None:
    with serving(*command, "--port", "0", "--seed", "7") as (proc, url, banner):
        assert url.startswith("http://127.0.0.1:"), "binds 127.0.0.1 by default"
        assert int(url.rsplit(":", 1)[1]) > 0, "--port 0 prints the port it picked"
        assert ADMIN_KEY in banner, "prints the API key to use"
        assert exercise(url) == seeded_first_id, "--seed 7 gives the ids of any other seed-7 run"
        assert stop(proc, sig) == 0


def test_serve_on_a_taken_port_exits_nonzero_without_hanging() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "mockserver", "serve", "--port", port],
            capture_output=True,
            text=True,
            timeout=15,
        )
    assert result.returncode != 0
    assert port in result.stderr, result.stderr
    assert "http://" not in result.stdout


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        pytest.param("does-not-exist", "not a folder", id="missing-folder"),
        pytest.param("", "objects.yaml", id="empty-folder"),
    ],
)
def test_serve_with_bad_fixtures_exits_nonzero_with_the_problem_on_stderr(
    tmp_path: Path, folder: str, problem: str
) -> None:
    directory = tmp_path / folder if folder else tmp_path
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--fixtures", str(directory)],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert result.returncode != 0
    assert problem in result.stderr, result.stderr
    assert "http://" not in result.stdout


def test_version_flag_prints_the_package_version() -> None:
    result = subprocess.run([str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, timeout=15)
    assert result.returncode == 0
    assert __version__ in result.stdout
