"""The kit's command line: its options, shared with `kantos-mock conformance`, and `main`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The kit's options; `kantos-mock conformance` takes the same."""
    p.add_argument("--base-url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument(
        "--api-key",
        default=os.environ.get("KANTOS_API_KEY"),
        help="a server API key (default: $KANTOS_API_KEY); an admin user's key also checks schema writes",
    )
    p.add_argument(
        "--quick", action="store_true", help="a smaller battery and a short fuzz phase (< 20 s locally)"
    )
    p.add_argument(
        "--junit", metavar="PATH", help="also write the report as JUnit XML to PATH (one test case per rule)"
    )
    p.add_argument(
        "--html", metavar="PATH", help="also write a self-contained HTML report to PATH (opens offline)"
    )
    p.add_argument("--no-fuzz", action="store_true", help="skip the schemathesis phase")
    p.add_argument("--seed", type=int, help="seed for the generated data and queries (default: random)")
    p.add_argument(
        "--keep-data",
        action="store_true",
        help="leave the scratch records in place, so the reproducers of query findings can be replayed",
    )
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each response (default 30)"
    )
    p.add_argument(
        "--intake-key",
        metavar="KEY",
        help="an intake key of the server: checks that /api/crm/* refuses it (403)",
    )
    p.add_argument(
        "--only",
        metavar="PHASE[,PHASE]",
        help="run only these phases after the setup: filters, sorting, paging, records, writes, formats, "
        "errors, protocol, rate-limits, webhooks, schemathesis",
    )
    p.add_argument(
        "--non-admin-key",
        metavar="KEY",
        help="a server key of a user who is not an admin: checks that schema writes refuse it (403)",
    )
    p.add_argument(
        "--limited-key",
        metavar="KEY",
        help="a key on a small plan: the kit drives it into a 429 and checks Retry-After, that the 429 "
        "uses no quota, and that it changed nothing",
    )
    p.add_argument(
        "--webhooks",
        action="store_true",
        help="check webhook deliveries with a receiver of the kit's own (against the mock it subscribes "
        "through /_mock/webhooks; elsewhere it prints the URL and secret to configure)",
    )
    p.add_argument(
        "--webhook-listen",
        metavar="HOST:PORT",
        help="where the webhook receiver listens (default: a free loopback port)",
    )
    p.add_argument(
        "--webhook-retries",
        action="store_true",
        help="fail the first delivery and check that the retry carries the same event id",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mockserver.conformance",
        description="Check a Kantos-compatible server against the contract; exit 0 only when it conforms.",
    )
    add_arguments(parser)
    ns = parser.parse_args(argv)
    return run_from_args(ns, parser)


def run_from_args(ns: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the kit with parsed options (from `add_arguments`); returns the exit status."""
    from . import PHASES, Options, run

    if not ns.api_key:
        message = "--api-key is required (or set KANTOS_API_KEY)"
        if parser is not None:
            parser.error(message)
        print(f"kantos-mock conformance: error: {message}", file=sys.stderr)
        return 2
    only = None
    if ns.only:
        only = frozenset(p.strip() for p in ns.only.split(",") if p.strip())
        unknown = sorted(only - set(PHASES))
        if unknown:
            message = f"--only: unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}"
            if parser is not None:
                parser.error(message)
            print(f"kantos-mock conformance: error: {message}", file=sys.stderr)
            return 2
    return run(
        ns.base_url,
        ns.api_key,
        quick=ns.quick,
        junit_path=ns.junit,
        fuzz=not ns.no_fuzz,
        seed=ns.seed,
        timeout=ns.timeout,
        keep_data=ns.keep_data,
        options=Options(
            webhooks=ns.webhooks or ns.webhook_retries,
            webhook_listen=ns.webhook_listen,
            webhook_retries=ns.webhook_retries,
            limited_key=ns.limited_key,
            intake_key=ns.intake_key,
            non_admin_key=ns.non_admin_key,
            html_path=ns.html,
            only=only,
        ),
    )
