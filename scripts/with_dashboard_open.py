"""Run a command (a benchmark) with the dashboard open on the Requests view of every mock it starts.

    ./dev shell python scripts/with_dashboard_open.py ./dev bench http --only mock,floor

Watches the command's descendants for `mockserver serve ... --port N` (and `kantos-mock serve`)
and opens, in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), a page on
`http://127.0.0.1:N/_mock/ui#/requests` for each, left open (polling the journal live) until that
server exits. Prints what it opened, and how many journal polls each page made, on stderr.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def mock_port(pid: int) -> int | None:
    """The port of a `serve` command line of the mock, or None."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv]
    is_mock = "serve" in words and any(w.endswith(("mockserver", "kantos-mock")) for w in words)
    if not is_mock or "--port" not in words:
        return None
    port = words[words.index("--port") + 1]
    return int(port) if port.isdigit() and port != "0" else None


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    proc = subprocess.Popen(argv)
    pages: dict[int, tuple[Page, list[int]]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            while proc.poll() is None:
                alive = {pid for pid in descendants(proc.pid) if mock_port(pid) is not None}
                for pid in alive - set(pages):
                    port = mock_port(pid)
                    page = browser.new_page()
                    polls = [0]
                    page.on(
                        "request",
                        lambda r, polls=polls: polls.__setitem__(0, polls[0] + ("/_mock/requests?" in r.url)),
                    )
                    try:
                        page.goto(f"http://127.0.0.1:{port}/_mock/ui#/requests", timeout=30_000)
                        page.wait_for_selector("#journal-rows", timeout=30_000)
                    except Exception as exc:  # the server may still be loading, or gone
                        print(f"dashboard: could not open port {port} yet: {exc}", file=sys.stderr)
                        page.close()
                        continue
                    print(f"dashboard: Requests view open on 127.0.0.1:{port} (pid {pid})", file=sys.stderr)
                    pages[pid] = (page, polls)
                for pid in set(pages) - alive:
                    page, polls = pages.pop(pid)
                    print(f"dashboard: pid {pid} gone after {polls[0]} journal polls", file=sys.stderr)
                    page.close()
                # Let Playwright dispatch the page's events while we wait.
                if pages:
                    next(iter(pages.values()))[0].wait_for_timeout(500)
                else:
                    time.sleep(0.5)
        finally:
            browser.close()
    return proc.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
