"""The `kantos-mock` command line: serve, check-fixtures, conformance, pull, proxy."""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Sequence

from . import __version__
from .conformance.command import add_arguments as add_conformance_arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kantos-mock", description="A local fake of the Kantos CRM API.")
    parser.add_argument("--version", action="version", version=f"kantos-mock {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the Kantos API (the default command)")
    add_serve_arguments(serve)
    check = sub.add_parser("check-fixtures", help="check a fixture folder; errors name file and path")
    check.add_argument("directory", help="the fixture folder")
    conformance = sub.add_parser(
        "conformance",
        help="check a running Kantos-compatible server against the contract; exit 0 only when it conforms",
    )
    add_conformance_arguments(conformance)
    pull = sub.add_parser(
        "pull",
        help="copy a live Kantos-compatible server's objects, fields and records into a fixture folder",
    )
    from .pull import add_arguments as add_pull_arguments

    add_pull_arguments(pull)
    proxy = sub.add_parser(
        "proxy", help="forward a client's traffic to a Kantos server and report where either side strays"
    )
    from .proxy.command import add_arguments as add_proxy_arguments

    add_proxy_arguments(proxy)
    return parser


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default 8000)")
    p.add_argument("--fixtures", metavar="DIR", help="fixture folder (default: the bundled set)")
    p.add_argument("--spec", metavar="PATH", help="OpenAPI file (default: the bundled openapi.yaml)")
    p.add_argument("--seed", type=int, help="seed for ids, so every run creates the same ids")
    p.add_argument(
        "--state-file",
        metavar="PATH",
        help="load the state from PATH at start when it exists; write it there atomically after each change",
    )
    p.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="turn off the control API under /_mock (reset, journal, state, faults, clock, keys) "
        "and the dashboard",
    )
    p.add_argument(
        "--control-token",
        metavar="TOKEN",
        help="require TOKEN (X-Mock-Token header, or the cookie the printed one-time link sets) on /_mock; "
        "on a bind other than loopback one is generated and printed when not given",
    )
    p.add_argument(
        "--webhook-allow",
        metavar="HOST",
        action="append",
        default=[],
        help="let webhook subscriptions target HOST besides loopback addresses (repeatable)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help", "--version")):
        args.insert(0, "serve")
    ns = _parser().parse_args(args)
    if ns.command == "check-fixtures":
        return _check_fixtures(ns.directory)
    if ns.command == "conformance":
        from .conformance.command import run_from_args

        return run_from_args(ns)
    if ns.command == "serve":
        return _serve(ns)
    if ns.command == "pull":
        from .pull import run_from_args as run_pull

        return run_pull(ns)
    if ns.command == "proxy":
        from .proxy.command import run_from_args as run_proxy

        return run_proxy(ns)
    _parser().print_help()
    return 2


def _check_fixtures(directory: str) -> int:
    from .domain.fixtures import FixtureError, load_fixtures

    try:
        fs = load_fixtures(directory)
    except FixtureError as exc:
        print(exc, file=sys.stderr)
        return 1
    counts = {o.id: 0 for o in fs.objects}
    for rec in fs.records:
        counts[rec.object_id] += 1
    print(
        f"{directory}: OK: {len(fs.objects)} objects, {len(fs.records)} records "
        f"({', '.join(f'{k} {v}' for k, v in counts.items())}), {len(fs.users)} users, {len(fs.keys)} keys"
    )
    return 0


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After each collection, freeze what survived it, as was done after loading.

    What a write makes (the new record, its undo entry) lives as long as the server, and each
    collection walks every object not frozen. Freezing after full collections only (the first
    fix: full ones had paused requests for 100-230 ms) still left the young collections: every
    tenth walked the ~6,000 objects of the last ~3,000 writes, by then out of the CPU's caches,
    for 2-8 ms of CPU (a `gc.callbacks` timer under wrk POSTs on 100,000 contacts), which was
    most of the write p99. Frozen right after its first collection, an object is walked once,
    while still in cache: no collection then takes much over a millisecond.

    Frozen objects are still freed when no longer referenced; only a reference cycle among them
    would not be. A request leaves none, reads, writes, errors and new connections alike
    (tests/test_mockserver.py counts them), so what a collection catches in flight is freed by
    reference counting when its request ends."""
    if phase == "stop":
        gc.freeze()


def _progress(message: str) -> None:
    print(f"kantos-mock: {message}", file=sys.stderr, flush=True)


def _serve(ns: argparse.Namespace) -> int:
    from .domain.fixtures import FixtureError, load_fixtures
    from .domain.records import release_memory
    from .http.access import is_loopback, new_token
    from .http.app import create_app
    from .server import DEFAULT_API_KEY, base_url, bind, serve_forever

    token = ns.control_token
    generated = ns.control and token is None and not is_loopback(ns.host)
    if generated:
        token = new_token()
    # Loading makes objects that all live as long as the server: the garbage collector's passes
    # over them while they are made free nothing (about 0.8 s of the start-up on 100,000
    # records). It is off while loading, and what was loaded is frozen as soon as the load ends,
    # so the one pass below walks only what the app adds (at 1,000,000 records that pass took
    # 1.17 s of CPU, 0.12 s with the records frozen first).
    gc.disable()
    try:
        fixtures = load_fixtures(ns.fixtures, progress=_progress)  # large record files report progress
        gc.freeze()
        app = create_app(
            fixtures,
            spec=ns.spec,
            seed=ns.seed,
            control=ns.control,
            state_file=ns.state_file,
            webhook_allow=ns.webhook_allow,
            control_token=token if ns.control else None,
        )
    except FixtureError as exc:
        print(f"kantos-mock: cannot start: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"kantos-mock: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        gc.enable()
    try:
        sock = bind(ns.host, ns.port)
    except OSError as exc:
        print(
            f"kantos-mock: cannot listen on {ns.host}:{ns.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    url = base_url(sock)
    keys = app.state.tenants.default.keys
    key = DEFAULT_API_KEY if DEFAULT_API_KEY in keys else next(iter(keys), "")

    def ready() -> None:
        print(f"kantos-mock {__version__} serving the Kantos API at {url}", flush=True)
        print(f"base URL: {url}", flush=True)
        print(f"API key:  {key}", flush=True)
        print(f"try:      curl -s {url}/api/crm/objects -H 'X-Api-Key: {key}'", flush=True)
        if ns.control and token is None:
            print(f"control:  curl -s -X POST {url}/_mock/reset   (see mockserver/control.yaml)", flush=True)
            print(f"dashboard: {url}/_mock/ui", flush=True)
        elif ns.control:
            shown = token if generated else "the one given with --control-token"
            print(f"control:  needs the token {shown} (header X-Mock-Token)", flush=True)
            example = token if generated else "$TOKEN"
            print(f"          curl -s -X POST {url}/_mock/reset -H 'X-Mock-Token: {example}'", flush=True)
            code = app.state.registry.access.issue_code()
            print(
                f"dashboard: {url}/_mock/login?code={code}   (one-time link: sets the token as a cookie)",
                flush=True,
            )
        if ns.state_file:
            print(f"state:    {ns.state_file} (written after each change)", flush=True)

    # Everything loaded so far lives as long as the server: keep the garbage collector from
    # walking it again and again (with 100,000 records, each full collection paused requests
    # for 100 ms and more).
    gc.collect()
    release_memory()  # what loading freed (the fixture set's own already went back)
    gc.freeze()
    gc.callbacks.append(_freeze_survivors)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve_forever(app, sock, ready)
    finally:  # as it was, should anything run on in this process
        gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()
    print("kantos-mock: stopped", flush=True)
    return 0
