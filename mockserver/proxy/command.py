"""`kantos-mock proxy`: the validation proxy in the foreground, its report at shutdown."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from types import FrameType

import uvicorn

from .. import __version__
from ..server import base_url, bind
from . import ValidationProxy, uvicorn_config


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


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_from_args(ns: argparse.Namespace) -> int:
    try:
        proxy = ValidationProxy(ns.upstream, record=ns.record, spec=ns.spec, out=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"kantos-mock proxy: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind(ns.host, ns.port)
    except OSError as exc:
        print(
            f"kantos-mock proxy: cannot listen on {ns.host}:{ns.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    url = base_url(sock)
    config = uvicorn_config(proxy.app)
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        if server.started:
            print(f"kantos-mock {__version__} proxy at {url}, forwarding to {proxy.upstream}", flush=True)
            print(f"base URL: {url}", flush=True)
        await task

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    # uvicorn shuts down on Ctrl-C or SIGTERM (the lifespan shutdown finishes the queued checks),
    # then raises the signal again: KeyboardInterrupt.
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=config.get_loop_factory()) as runner,
    ):
        runner.run(main())
    sock.close()
    return finish(proxy, ns)


def finish(proxy: ValidationProxy, ns: argparse.Namespace) -> int:
    """Print the text report, write the others; the exit status."""
    print(proxy.render(), flush=True)
    if ns.report:
        proxy.write_json(ns.report)
        print(f"report: {ns.report}", flush=True)
    if ns.junit:
        proxy.write_junit(ns.junit)
        print(f"junit: {ns.junit}", flush=True)
    status = 0
    if ns.record and proxy.recorder is not None:
        try:
            print(proxy.recorder.write(), flush=True)
        except Exception as exc:  # the report above must still come out whole
            print(f"kantos-mock proxy: --record: {exc}", file=sys.stderr)
            status = 2
    failed = proxy.deviations + (0 if ns.ignore_client else proxy.mistakes)
    if ns.fail_on_deviation and failed:
        return 1
    return status
