"""What the journal's answer bodies and an open dashboard cost the /api path, in process, side by side."""

# Run: `./dev bench journal` (`--quick` for a smoke run). No sockets: `KantosApi.answer_now` is
# called directly, as `kantos-mock serve`'s protocol calls it for an `/api` request, and each
# figure is the process CPU time per request (less swayed by other processes than wall time),
# the best of several rounds. Three journals, in rounds that each start with the next one:
#   - "answers dropped": the journal as it was before it kept answers (`response` ignored);
#   - "as shipped": every entry keeps its answer's bytes (up to 256 KiB, 40 MiB in all);
#   - "+ dashboard poll": as shipped, plus what an open Requests view asks, `entries(since=...,
#     limit=300, bodies=False)`, every `--poll-every` requests (default 10,000: the view polls once
#     a second, and the mock serves GET one record at 10,000 to 30,000 req/s over sockets).
# Then the cost of one poll that finds 300 new requests (the most a poll renders), in CPU time.
# Target: "as shipped" within 5% of "answers dropped", and "+ dashboard poll" within 5% of
# "as shipped", on every scenario.

from __future__ import annotations

import argparse
import gc
import platform
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson

from mockserver import create_app
from mockserver.http.api import KantosApi
from mockserver.http.journal import Journal

KEY = b"kantos_admin_local_key"
FILTERS = quote(orjson.dumps({"status": "active", "deal_value": {"$gte": 1000}}).decode()).encode()
QUERY = b"object_id=obj_contacts&filters=" + FILTERS + b"&sort=deal_value&order=desc&page=3&per_page=25"


class AnswersDropped(Journal):
    """The journal as it was: an entry keeps no answer."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args[:9])


class AsShipped(Journal):
    """The journal as shipped, behind the same extra call as `AnswersDropped` (a tenth of a
    microsecond: 5% of a GET answered without ASGI, which would otherwise count against the
    baseline)."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args)


def scope(method: str, path: str, query: bytes = b"", body: int | None = None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"x-api-key", KEY), (b"accept", b"*/*")]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % body)]
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": headers,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "state": {},
    }


def requests(kind: str, ids: list[str]) -> Callable[[int], tuple[dict[str, Any], bytes]]:
    def make(i: int) -> tuple[dict[str, Any], bytes]:
        body = b""
        if kind == "GET one record":
            s = scope("GET", "/api/crm/record/" + ids[i % len(ids)])
        elif kind == "page-3 query":
            s = scope("GET", "/api/crm/records/query", QUERY)
        else:
            fields = {"name": f"Bench {i}", "email": f"bench{i}.{time.perf_counter_ns()}@example.com"}
            body = orjson.dumps({"object_id": "obj_contacts", "field_values": fields})
            s = scope("POST", "/api/crm/record", body=len(body))
        return s, body

    return make


def measure(api: KantosApi, journal: Journal, make: Callable[..., Any], n: int, poll_every: int) -> float:
    """CPU time per request over `n` requests (made beforehand, so only the mock is timed)."""
    made = [make(i) for i in range(n)]
    since = 0
    start = time.process_time()
    for i, (s, body) in enumerate(made):
        api.answer_now(s, body)
        if poll_every and i % poll_every == 0:
            journal.entries(since=since, limit=300, bodies=False)
            since = journal.last_id
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--poll-every", type=int, default=10_000)
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    sizes = {"GET one record": 20_000, "page-3 query": 8_000, "POST create": 4_000}
    if args.quick:
        sizes = {k: v // 20 for k, v in sizes.items()}
    print(f"bench journal: {platform.python_implementation()} {platform.python_version()}, {rounds} round(s)")
    print("CPU time per /api request, in process (best of the rounds); journals side by side\n")
    variants = [("answers dropped", AnswersDropped, 0), ("as shipped", AsShipped, 0)]
    variants.append(("+ dashboard poll", AsShipped, args.poll_every))
    best: dict[tuple[str, str], float] = {}
    worst: dict[tuple[str, str], float] = {}

    def run() -> None:
        for kind, n in sizes.items():
            for r in range(rounds):
                # Each round starts with the next variant: the one timed right after the first
                # came out several percent slower, whichever it was.
                for name, cls, poll in variants[r % 3 :] + variants[: r % 3]:
                    app = create_app(validate_responses=False)
                    tenant = app.state.registry.default
                    tenant.journal = cls()
                    ids = [
                        r.id
                        for r in tenant.backend.query_records(
                            "obj_contacts", None, None, None, 1, 100
                        ).records
                    ]
                    make = requests(kind, ids)
                    assert isinstance(app.api, KantosApi)
                    measure(app.api, tenant.journal, make, n // 4, 0)  # warm: indexes, caches
                    gc.collect()
                    us = measure(app.api, tenant.journal, make, n, poll)
                    best[kind, name] = min(best.get((kind, name), us), us)
                    worst[kind, name] = max(worst.get((kind, name), us), us)

    run()
    header = f"{'scenario':<16}" + "".join(f"{name:>20}" for name, _, _ in variants)
    print(header + f"{'shipped/dropped':>17}{'poll/shipped':>14}")
    misses = 0
    for kind in sizes:
        row = [best[kind, name] for name, _, _ in variants]
        kept, polled = row[1] / row[0], row[2] / row[1]
        misses += (kept > 1.05) + (polled > 1.05)
        print(f"{kind:<16}" + "".join(f"{v:>17.2f} us" for v in row) + f"{kept:>17.3f}{polled:>14.3f}")
    journal = Journal()
    for i in range(10_000):
        journal.add(
            i, "GET", f"/api/crm/record/rec_{i}", b"", [(b"x-api-key", KEY)], b"", 200, 0.5, None, b"{}"
        )
    start = time.process_time()
    polls = 200
    for i in range(polls):
        journal.entries(since=9_700 - i % 2, limit=300, bodies=False)
    poll_ms = (time.process_time() - start) / polls * 1000
    share = poll_ms / 10  # % of a core, at one poll a second
    print(
        f"\none poll finding 300 new requests: {poll_ms:.2f} ms of CPU ({share:.2f}% of a core, one a second)"
    )
    spread = max(worst[k] / best[k] - 1 for k in best)
    print(f"noise: the worst round of a variant was up to {spread:.0%} slower than its best")
    print(f"target: both ratios <= 1.05 on every scenario: {'OK' if not misses else f'MISS ({misses})'}")


if __name__ == "__main__":
    main()
