"""The checks in a process of their own: the proxy's event loop only hands each exchange over.

Checking a page of 25 records costs about a millisecond of Python; in the forwarding process that
would delay the next request (and cap the throughput at a few hundred a second). Here the event
loop appends each exchange, as the bytes it saw (`forward.Wire`), to a backlog; a sender thread
pickles what has gathered in batches to a child interpreter (`checkrun.py`, over a socket pair),
which decodes and checks each exchange in order at a lower CPU priority, and sends back its log
lines as they come and its reports when asked (`drain`, `stop`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TextIO

import httpx

from ..conformance.report import Report
from ..openapi import Spec
from .forward import Wire
from .inspector import Captured, Inspector
from .record import Recorder

#: Exchanges waiting for the checks beyond this many are forwarded unchecked (and counted), so a
#: client faster than the checks cannot make the proxy's memory grow without bound.
MAX_BACKLOG = 20_000
#: Exchanges sent to the checks in one message, at most.
BATCH = 256


@dataclass
class State:
    """The reports as the checks left them, and what the run saw."""

    upstream: str
    server: Report
    client: Report
    exchanges: int = 0
    unchecked: int = 0
    recorded: str = ""
    record_error: str = ""

    @property
    def deviations(self) -> int:
        return self.server.finding_count

    @property
    def mistakes(self) -> int:
        return self.client.finding_count


class Checker:
    """The parent's handle on the checking process."""

    def __init__(
        self,
        upstream: str,
        spec: str | None,
        record: str | None,
        out: TextIO | None,
        start_timeout: float = 60.0,
    ) -> None:
        self.upstream = upstream
        self.out = out if out is not None else sys.stderr
        self.state = State(upstream, Report(upstream, self.out), Report(upstream, self.out))
        # A child interpreter of our own (not multiprocessing's spawn, which would run the calling
        # script's top level again in the child when it lacks an `if __name__ == "__main__"` guard).
        parent, child = socket.socketpair()
        args = [
            sys.executable,
            "-m",
            "mockserver.proxy.checkrun",
            str(child.fileno()),
            upstream,
            spec or "",
            record or "",
        ]
        self._proc = subprocess.Popen(args, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        child.close()
        self._conn = Connection(parent.detach())
        #: Exchanges and questions, sent in this order by the sender thread alone.
        self._backlog: collections.deque[Wire | tuple[str, int]] = collections.deque()
        self._wake = threading.Condition()
        self._tokens = itertools.count(1)
        self._answers: dict[int, threading.Event] = {}
        self._unchecked = 0
        self._closed = False
        ready = threading.Event()
        self._answers[0] = ready
        self._reader = threading.Thread(target=self._read, name="proxy checks reader", daemon=True)
        self._reader.start()
        self._sender = threading.Thread(target=self._send_loop, name="proxy checks sender", daemon=True)
        self._sender.start()
        if not ready.wait(start_timeout):
            raise RuntimeError("the proxy's checking process did not start")

    def submit(self, wire: Wire) -> None:
        """Called on the event loop: an append (and a wake-up when the sender sleeps)."""
        backlog = self._backlog
        if len(backlog) >= MAX_BACKLOG:
            self._unchecked += 1
            return
        backlog.append(wire)
        if len(backlog) == 1:
            with self._wake:
                self._wake.notify()

    def _send_loop(self) -> None:
        backlog = self._backlog
        while True:
            with self._wake:
                while not backlog and not self._closed:
                    self._wake.wait(0.1)
            if not backlog and self._closed:
                return
            batch: list[Wire | tuple[str, int]] = []
            while backlog and len(batch) < BATCH:
                batch.append(backlog.popleft())
            try:
                self._conn.send(batch)
            except (OSError, ValueError):
                return
            if len(backlog) < BATCH:
                time.sleep(0.002)  # under load, let a batch gather rather than wake per exchange

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (AttributeError, ImportError, pickle.UnpicklingError) as exc:  # a bug: say it, go on
                self.out.write(f"kantos-mock proxy: a message from the checks could not be read: {exc!r}\n")
                continue
            except (EOFError, OSError):
                for waiting in self._answers.values():
                    waiting.set()
                return
            kind = message[0]
            if kind == "log":
                self.out.write(message[1])
                self.out.flush()
            elif kind in ("state", "ready"):
                token = message[1]
                if kind == "state":
                    state: State = message[2]
                    state.server.out = state.client.out = self.out
                    state.unchecked += self._unchecked
                    self.state = state
                event: threading.Event | None = self._answers.pop(token, None)
                if event is not None:
                    event.set()

    def _ask(self, what: str, timeout: float) -> State:
        # Behind everything submitted before it: the sender sends the backlog in order.
        token = next(self._tokens)
        event = self._answers[token] = threading.Event()
        self._backlog.append((what, token))
        with self._wake:
            self._wake.notify()
        if not event.wait(timeout):
            raise TimeoutError(f"the proxy's checks did not finish in {timeout:g} s")
        return self.state

    def drain(self, timeout: float = 60.0) -> State:
        """The reports once everything handed over so far is checked."""
        return self._ask("drain", timeout)

    def stop(self, timeout: float = 120.0) -> State:
        """Finish the checks, write `--record`'s folder, end the process; the final reports."""
        if self._closed:
            return self.state
        try:
            state = self._ask("stop", timeout)
        finally:
            self._closed = True
            with self._wake:
                self._wake.notify()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._conn.close()
        return state


class _PipeOut:
    """A text stream for the child's log lines: each flushed line goes to the parent."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.buffer: list[str] = []

    def write(self, text: str) -> int:
        self.buffer.append(text)
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            text, self.buffer = "".join(self.buffer), []
            self.conn.send(("log", text))


def _child(conn: Connection, upstream: str, spec: str | None, record: str | None) -> None:
    # Forwarding comes first: on a busy machine the checks take the CPU time that is left (and
    # catch up when the client pauses), rather than slowing every answer down.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    out: Any = _PipeOut(conn)
    recorder = Recorder(record) if record is not None else None
    inspector = Inspector(upstream, Spec.load(spec), out=out, recorder=recorder)
    loop = asyncio.new_event_loop()
    http = httpx.AsyncClient(timeout=60.0, follow_redirects=False)
    for name in list(http.headers):  # the upstream sees only the headers the proxy names
        del http.headers[name]
    inspector.http = http
    conn.send(("ready", 0))
    try:
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                return
            for message in batch:
                if len(message) != 2:
                    captured = Captured.from_wire(message)
                    try:
                        loop.run_until_complete(inspector.inspect(captured))
                    except Exception as exc:  # a bug in a check must not stop the later checks
                        inspector.server.problem(
                            f"checking {captured.method} {captured.path} failed: {exc!r}"
                        )
                    continue
                what, token = message
                state = State(upstream, inspector.server, inspector.client, inspector.exchanges)
                if what == "stop" and recorder is not None:
                    try:
                        state.recorded = recorder.write()
                    except Exception as exc:  # reported, and the reports still come back
                        state.record_error = f"--record: {exc}"
                # The reports' text streams stay here; the parent gives them its own.
                saved = inspector.server.out, inspector.client.out
                inspector.server.out = inspector.client.out = None  # type: ignore[assignment,unused-ignore]
                try:
                    conn.send(("state", token, state))
                finally:
                    inspector.server.out, inspector.client.out = saved
                if what == "stop":
                    return
    finally:
        loop.run_until_complete(http.aclose())
        loop.close()
