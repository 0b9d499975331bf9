"""The checks in a process of their own: the proxy's event loop only hands each exchange over.

Checking a page of 25 records costs about a millisecond of Python; in the forwarding process that
would delay the next request (and cap the throughput at a few hundred a second). Here the event
loop appends each exchange, as the bytes it saw (`forward.Wire`), to a backlog; a sender thread
pickles what has gathered in batches to a child interpreter (`checkrun.py`, over a socket pair),
which decodes and checks each exchange in order, and sends back its log lines as they come and its
reports when asked (`drain`, `stop`).

The checks run at the lowest CPU priority (Linux's SCHED_IDLE) while traffic flows, so they take
only the CPU time the forwarding and the upstream leave; once the traffic pauses, or someone waits
for them (`drain`, `stop`), they are lifted back to the normal priority to catch up. Where the
process may not lift a priority back (an unprivileged user without a RLIMIT_NICE of 20, a container
without CAP_SYS_NICE), they run at `nice 10` throughout instead, which never starves them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
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

#: Exchanges waiting for the checks beyond this many, or beyond this many bytes of bodies, are
#: forwarded unchecked (and counted), so a client faster than the checks cannot make the proxy's
#: memory grow without bound. (While traffic flows the checks may get little CPU time: the backlog
#: is what lets them catch up afterwards.)
MAX_BACKLOG = 100_000
MAX_BACKLOG_BYTES = 1 << 30
#: One message to the checks: at most this many exchanges, and no more once this many bytes of
#: bodies are in it.
BATCH = 256
BATCH_BYTES = 256 * 1024
#: How often (seconds) the traffic is looked at: when no exchange came in one such interval it is
#: taken to have paused, and the checks are lifted to the normal priority until it resumes.
QUIET = 0.1


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
        # Bytes of bodies handed over (written on the event loop only) and sent on (by the sender
        # only): their difference is the backlog's.
        self._bytes_in = 0
        self._bytes_out = 0
        self._submitted = 0  # exchanges handed over
        self._closed = False
        #: The checking process can be lifted from SCHED_IDLE (it says so when ready).
        self._liftable = False
        self._lifted = True  # it starts at the normal priority; traffic moves it to SCHED_IDLE
        self._quiet = True  # no exchange came in the last interval
        self._waiting = 0  # drain() and stop() calls waiting on the checks
        self._priority_lock = threading.Lock()
        ready = threading.Event()
        self._answers[0] = ready
        self._reader = threading.Thread(target=self._read, name="proxy checks reader", daemon=True)
        self._reader.start()
        self._sender = threading.Thread(target=self._send_loop, name="proxy checks sender", daemon=True)
        self._sender.start()
        if not ready.wait(start_timeout):
            raise RuntimeError("the proxy's checking process did not start")
        if self._liftable:
            self._watcher = threading.Thread(target=self._watch, name="proxy checks priority", daemon=True)
            self._watcher.start()

    def submit(self, wire: Wire) -> None:
        """Called on the event loop: an append (and a wake-up when the sender sleeps). The bodies
        are referenced, not copied."""
        backlog = self._backlog
        if len(backlog) >= MAX_BACKLOG or self._bytes_in - self._bytes_out >= MAX_BACKLOG_BYTES:
            self._unchecked += 1
            return
        self._bytes_in += len(wire[4]) + len(wire[7])
        self._submitted += 1
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
            size = 0
            exchanges = False
            while backlog and len(batch) < BATCH and size < BATCH_BYTES:
                message = backlog.popleft()
                if len(message) != 2:
                    size += len(message[4]) + len(message[7])
                    exchanges = True
                batch.append(message)
            self._bytes_out += size
            if exchanges and self._quiet and self._liftable:  # the traffic resumed: yield to it now
                self._quiet = False
                self._set_priority()
            try:
                self._conn.send(batch)
            except (OSError, ValueError):
                return
            if len(backlog) < BATCH:
                time.sleep(0.002)  # under load, let a batch gather rather than wake per exchange

    def _watch(self) -> None:
        """Every QUIET seconds: has the traffic paused, or resumed?"""
        seen = self._submitted
        while not self._closed and self._liftable:
            time.sleep(QUIET)
            submitted = self._submitted
            quiet = submitted == seen
            seen = submitted
            if quiet != self._quiet:
                self._quiet = quiet
                self._set_priority()

    def _set_priority(self) -> None:
        """The checks at the normal priority while someone waits for them or the traffic has
        paused, else at SCHED_IDLE. (Called by the watcher, the sender, drain() and stop().)"""
        with self._priority_lock:
            lift = self._waiting > 0 or self._quiet
            if not self._liftable or lift == self._lifted:
                return
            policy = os.SCHED_OTHER if lift else os.SCHED_IDLE  # type: ignore[attr-defined,unused-ignore]
            try:
                os.sched_setscheduler(self._proc.pid, policy, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
            except OSError:  # the process is gone, or the permission was taken away
                self._liftable = False
                return
            self._lifted = lift

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
                if kind == "ready":
                    self._liftable = message[2]
                if kind == "state":
                    state: State = message[2]
                    state.server.out = state.client.out = self.out
                    state.unchecked += self._unchecked
                    self.state = state
                event: threading.Event | None = self._answers.pop(token, None)
                if event is not None:
                    event.set()

    def _ask(self, what: str, timeout: float) -> State:
        # Behind everything submitted before it: the sender sends the backlog in order. Meanwhile
        # the checks run at the normal priority, so waiting for them is not starved.
        token = next(self._tokens)
        event = self._answers[token] = threading.Event()
        with self._priority_lock:
            self._waiting += 1
        self._set_priority()
        try:
            self._backlog.append((what, token))
            with self._wake:
                self._wake.notify()
            if not event.wait(timeout):
                raise TimeoutError(f"the proxy's checks did not finish in {timeout:g} s")
        finally:
            with self._priority_lock:
                self._waiting -= 1
            if what != "stop":
                self._set_priority()
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


def _liftable() -> bool:
    """This process may go to SCHED_IDLE and back: tried on a thread of its own (the policy is a
    thread's), so the main thread is left as it was."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
        except (OSError, AttributeError):  # not permitted, or not Linux
            return
        ok.append(True)

    thread = threading.Thread(target=probe, name="priority probe")
    thread.start()
    thread.join()
    return bool(ok)


def _child(conn: Connection, upstream: str, spec: str | None, record: str | None) -> None:
    # Forwarding comes first: while traffic flows the checks take the CPU time that is left (and
    # catch up when it pauses), rather than slowing every answer down. The parent moves this
    # process between SCHED_IDLE and the normal priority; where it cannot, nice 10 throughout.
    liftable = _liftable()
    if not liftable:
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
    # What start-up built (the spec, the checks) lives as long as the process: the collector
    # need not walk it again.
    gc.freeze()
    conn.send(("ready", 0, liftable))
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
