"""The validation proxy: forwards traffic to a Kantos server unchanged, and reports who strays.

It forwards a client's traffic to a Kantos-compatible server and reports where either side strays
from `openapi.yaml` and the contract.

```python
with ValidationProxy("https://sandbox.kantos.example") as proxy:
    run_my_tests(base_url=proxy.url)
assert proxy.deviations == 0, proxy.render()
```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from ..conformance.client import KEY_VARIABLE
from ..conformance.report import Check, Report, _xml_safe, render_check
from ..openapi import Spec
from ..server import base_url, bind
from .checker import Checker, State
from .forward import Forwarder, new_loop, serve

__all__ = ["State", "ValidationProxy"]


class ValidationProxy:
    """The proxy on a real socket (a free port by default), in a background thread; its checks in
    a process of their own.

    ```python
    with ValidationProxy("https://sandbox.kantos.example") as proxy:
        run_my_tests(base_url=proxy.url)   # the client's traffic goes through unchanged
    assert proxy.deviations == 0, proxy.render()
    ```

    `start()` (or `with`) binds and serves, and raises when the spec is bad or the proxy does not
    come up in `start_timeout` seconds. The checks never delay an answer, so the results are as
    of the last `drain()` (wait for the checks of everything forwarded so far) or `stop()`.
    `render()` gives the text report `kantos-mock proxy` prints; `write_json(path)` and
    `write_junit(path)` write the others.

    Args:
        upstream: the Kantos-compatible server to forward to (base URL).
        host: the interface to bind.
        port: the port to bind; 0 (the default) picks a free one, read it from `url`.
        record: at `stop()`, write what the traffic showed as a fixture folder there.
        spec: the OpenAPI file to judge by (default: the bundled `openapi.yaml`).
        out: where the checking process's log lines go (default: stderr).
        start_timeout: seconds `start()` waits for the proxy and its checking process.

    Attributes:
        url: the proxy's base URL once started; point the client at it.
        deviations: findings against the upstream (its answers that break the contract).
        mistakes: findings against the client (requests the contract refuses).
        exchanges: requests forwarded and checked.
    """

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: str | Path | None = None,
        spec: str | Path | None = None,
        out: TextIO | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.record = str(record) if record is not None else None
        self.spec = str(spec) if spec is not None else None
        self.out = out
        self.host, self.port = host, port
        self.start_timeout = start_timeout
        self.url = ""
        self.checker: Checker | None = None
        self.forwarder: Forwarder | None = None
        self._state: State | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # --- running -----------------------------------------------------------------------------------

    def start(self) -> ValidationProxy:
        if self._thread is not None:
            return self
        Spec.load(self.spec)  # a bad spec fails here, not in the checking process
        self.checker = Checker(self.upstream, self.spec, self.record, self.out, self.start_timeout)
        fwd = self.forwarder = Forwarder(self.upstream, self.checker.submit)
        try:
            sock = bind(self.host, self.port)
        except OSError:
            self.stop()
            raise
        self.url = base_url(sock)
        started = threading.Event()
        loop = self._loop = new_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._stop = asyncio.Event()
            try:
                loop.run_until_complete(serve(fwd, sock, self._stop, started.set))
            finally:
                sock.close()
                loop.close()

        self._thread = threading.Thread(target=run, name=f"kantos-mock proxy {self.url}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not started.wait(0.01):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"kantos-mock proxy did not start on {self.url}")
        return self

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until every exchange forwarded so far is checked (the proxy keeps running)."""
        if self.checker is not None:
            self._state = self.checker.drain(timeout)

    def stop(self) -> None:
        """Stop serving, finish the checks, and (with `record`) write the fixture folder."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout=30)
        self._loop = self._stop = self._thread = None
        if self.checker is not None:
            self._state = self.checker.stop()
            self.checker = None

    def __enter__(self) -> ValidationProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- results -----------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The reports as of the last `drain()` or `stop()`."""
        if self._state is None:
            return State(self.upstream, Report(self.upstream), Report(self.upstream))
        return self._state

    @property
    def server_report(self) -> Report:
        """The upstream's deviations from the contract, by the kit's check ids."""
        return self.state.server

    @property
    def client_report(self) -> Report:
        """The client's requests that the contract refuses, by the kit's check ids."""
        return self.state.client

    @property
    def deviations(self) -> int:
        return self.state.deviations

    @property
    def mistakes(self) -> int:
        return self.state.mistakes

    @property
    def exchanges(self) -> int:
        return self.state.exchanges

    @property
    def recorded(self) -> str:
        """With `record`: the summary of the fixture folder written at `stop()`."""
        return self.state.recorded

    def findings(self, side: str = "server") -> dict[str, list[str]]:
        """Rule id -> the check ids that found something, on one side ("server" or "client")."""
        report = self.server_report if side == "server" else self.client_report
        out: dict[str, list[str]] = {}
        for c in report.failing:
            for rule in c.rules or []:
                out.setdefault(rule.id, []).append(c.id)
        return out

    def render(self, max_examples: int = 3) -> str:
        return render(self.state, max_examples)

    def write_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(as_json(self.state), indent=2) + "\n", encoding="utf-8")

    def write_junit(self, path: str | Path) -> None:
        write_junit(self.state, path)


# --- reports ---------------------------------------------------------------------------------------


def _failing(report: Report) -> list[Check]:
    return sorted(report.failing, key=lambda c: (c.rule_area, c.id))


def render(inspector: State, max_examples: int = 3) -> str:
    server, client = _failing(inspector.server), _failing(inspector.client)
    base = inspector.upstream
    lines = ["", "=" * 78]
    lines.append(
        f"Kantos validation proxy: {inspector.deviations} deviation(s) of the upstream, "
        f"{inspector.mistakes} request(s) of the client the contract refuses; "
        f"{inspector.exchanges} exchange(s)"
    )
    lines.append(f"upstream: {base}")
    lines.append("=" * 78)
    if server or client:
        lines.append(f"Reproducers read the API key from ${KEY_VARIABLE}: export {KEY_VARIABLE}=<your key>")
    if server:
        lines += ["", "THE SERVER'S SIDE: answers that stray from the contract"]
        for i, c in enumerate(server, 1):
            lines += ["", *render_check(c, base, i, max_examples)]
    if client:
        lines += ["", "THE CLIENT'S SIDE: requests the contract refuses (forwarded all the same)"]
        for i, c in enumerate(client, 1):
            lines += ["", *render_check(c, base, i, max_examples)]
    if inspector.unchecked:
        lines += [
            "",
            f"note: {inspector.unchecked} exchange(s) went through unchecked: the checks fell behind",
        ]
    if inspector.record_error:
        lines += ["", f"! {inspector.record_error}"]
    problems = inspector.server.problems
    if problems:
        lines += ["", "The proxy could not check everything:", *(f"  ! {p}" for p in problems)]
    if inspector.server.notes:
        lines += ["", *(f"note: {n}" for n in inspector.server.notes)]
    checked = sorted({r.id for c in inspector.server.checks.values() if c.runs for r in c.rules})
    lines += ["", f"rules the exchanges exercised ({len(checked)}): {', '.join(checked) or 'none'}"]
    return "\n".join(lines) + "\n"


def as_json(inspector: State) -> dict[str, Any]:
    def side(report: Report) -> list[dict[str, Any]]:
        return [
            {
                "check": c.id,
                "rules": [r.id for r in c.rules],
                "area": c.rule_area,
                "title": c.title,
                "runs": c.runs,
                "findings": [
                    {
                        "expected": f.expected,
                        "received": f.received,
                        "request": f"{f.request.method} {f.request.path}" if f.request else None,
                        "params": f.request.params if f.request else [],
                        "status": f.request.status if f.request else None,
                        "curl": f.request.curl(inspector.upstream) if f.request else f.curl,
                    }
                    for f in c.findings
                ],
            }
            for c in _failing(report)
        ]

    return {
        "upstream": inspector.upstream,
        "exchanges": inspector.exchanges,
        "unchecked": inspector.unchecked,
        "deviations": inspector.deviations,
        "client_mistakes": inspector.mistakes,
        "server": side(inspector.server),
        "client": side(inspector.client),
        "problems": inspector.server.problems,
        "key_variable": KEY_VARIABLE,
    }


def junit(inspector: State) -> ET.Element:
    """The kit's JUnit (one case per rule; unexercised rules skipped) for the server's side, and a
    suite of the client's mistakes, one case per rule they break."""
    root = inspector.server.junit()
    root.set("name", "kantos-proxy")
    for suite in root.iter("testsuite"):
        suite.set("name", suite.get("name", "").replace("conformance.", "proxy.server.", 1))
        for case in suite.iter("testcase"):
            case.set("classname", case.get("classname", "").replace("conformance.", "proxy.server.", 1))
    failing = _failing(inspector.client)
    suite = ET.SubElement(root, "testsuite", name="proxy.client", tests=str(len(failing)))
    suite.set("failures", str(len(failing)))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    for c in failing:
        case = ET.SubElement(suite, "testcase", classname="proxy.client", name=c.id)
        failure = ET.SubElement(case, "failure", message=c.title, type="client-mistake")
        failure.text = _xml_safe("\n".join(render_check(c, inspector.upstream, None, 50)))
    root.set("tests", str(int(root.get("tests", "0")) + len(failing)))
    root.set("failures", str(int(root.get("failures", "0")) + len(failing)))
    return root


def write_junit(state: State, path: str | Path) -> None:
    tree = ET.ElementTree(junit(state))
    ET.indent(tree)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
