"""`kantos-mock proxy`: the validation proxy in the foreground, its report at shutdown."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
from pathlib import Path

from .. import __version__
from ..openapi import Spec
from ..server import base_url, bind
from . import as_json, render, write_junit
from .checker import Checker, State
from .forward import Forwarder, new_loop, serve


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--upstream", required=True, metavar="URL", help="the Kantos-compatible server to forward to"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8010, help="port to bind; 0 picks a free one (default 8010)")
    p.add_argument("--report", metavar="PATH", help="write the report as JSON to PATH at shutdown")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML to PATH at shutdown (a case per rule)")
    p.add_argument(
        "--fail-on-deviation",
        action="store_true",
        help="exit 1 at shutdown if the upstream deviated, or the client sent a request the contract refuses",
    )
    p.add_argument(
        "--ignore-client",
        action="store_true",
        help="with --fail-on-deviation: only the upstream's deviations fail (the client's are reported)",
    )
    p.add_argument(
        "--record", metavar="DIR", help="write what the traffic showed as a fixture folder at shutdown"
    )
    p.add_argument("--spec", metavar="PATH", help="OpenAPI file (default: the bundled openapi.yaml)")


def run_from_args(ns: argparse.Namespace) -> int:
    try:
        Spec.load(ns.spec)
        checker = Checker(ns.upstream.rstrip("/"), ns.spec, ns.record, sys.stderr)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"kantos-mock proxy: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind(ns.host, ns.port)
    except OSError as exc:
        checker.stop()
        print(
            f"kantos-mock proxy: cannot listen on {ns.host}:{ns.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    url = base_url(sock)
    fwd = Forwarder(ns.upstream, checker.submit)
    # What start-up built (the spec loaded above, the modules) lives as long as the process: the
    # collector, run often by the forwarding's short-lived objects, need not walk it again.
    gc.freeze()
    loop = new_loop()
    stop = asyncio.Event()

    def started() -> None:
        print(f"kantos-mock {__version__} proxy at {url}, forwarding to {fwd.upstream}", flush=True)
        print(f"base URL: {url}", flush=True)

    async def main() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or SIGTERM: the report, then exit
            # Not on Windows, nor outside the main thread (then Ctrl-C raises KeyboardInterrupt).
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
        await serve(fwd, sock, stop, started)

    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()
        sock.close()
        state = checker.stop()
    return finish(state, ns)


def finish(state: State, ns: argparse.Namespace) -> int:
    """Print the text report, write the others; the exit status."""
    print(render(state), flush=True)
    if ns.report:
        Path(ns.report).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.report).write_text(json.dumps(as_json(state), indent=2) + "\n", encoding="utf-8")
        print(f"report: {ns.report}", flush=True)
    if ns.junit:
        write_junit(state, ns.junit)
        print(f"junit: {ns.junit}", flush=True)
    status = 0
    if state.recorded:
        print(state.recorded, flush=True)
    if state.record_error:
        print(f"kantos-mock proxy: {state.record_error}", file=sys.stderr)
        status = 2
    failed = state.deviations + (0 if ns.ignore_client else state.mistakes)
    if ns.fail_on_deviation and failed:
        return 1
    return status
