"""Reset cost with 100,000 records: after 10 and 10,000 writes, and a clean mock per pytest test."""

# Run: `./dev bench reset` (or `.venv/bin/python bench/reset.py`). Targets: a reset after 10
# writes under 1 ms; the `kantos_mock` fixture handing a clean mock to a test under 5 ms.

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockserver import MockServer, create_app
from mockserver.domain.backend import Backend, FixtureSet
from mockserver.domain.fixtures import load_fixtures
from mockserver.domain.records import Record
from mockserver.http.gate import TenantRegistry
from mockserver.pytest_plugin import KantosMock

RECORDS = 100_000
STAGES = ["new", "contacted", "qualified", "active", "customer", "churned"]
#: The bench's fixture set, for the conftest of the pytest run below (same process).
FIXTURE_SET: FixtureSet | None = None


def build_fixture_set(total: int = RECORDS) -> FixtureSet:
    """The bundled objects, users and keys, with contacts added until there are `total` records."""
    bundled = load_fixtures()
    records = list(bundled.records)
    created = 1_700_000_000 * 1_000_000
    for i in range(total - len(records)):
        values = {"name": f"Bench Person {i}", "email": f"bench{i}@example.com", "status": STAGES[i % 6]}
        records.append(
            Record(f"rec_bench{i:07d}", "obj_contacts", values, created + i, created + i, "user_admin")
        )
    return FixtureSet(bundled.objects, bundled.users, bundled.keys, records)


def write(backend: Backend, count: int, start: int) -> None:
    """`count` writes, in a realistic mix: 4 creates, 3 updates and 3 deletes in every 10."""
    made: list[str] = []
    for i in range(count):
        kind = i % 10
        if kind < 4 or not made:
            rec = backend.create_record(
                "obj_contacts",
                {"name": f"Written {start + i}", "email": f"w{start + i}@example.com"},
                "user_admin",
            )
            made.append(rec.id)
        elif kind < 7:
            backend.update_record(made[-1], {"status": "active", "name": f"Updated {start + i}"})
        else:
            backend.delete_record(f"rec_bench{(start + i) % 90_000:07d}")


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def summary(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return f"median {statistics.median(samples):8.3f} ms   p95 {p95:8.3f} ms   (n={len(samples)})"


def verdict(value: float, target: float) -> str:
    return f"target < {target:g} ms: {'OK' if value < target else 'MISSED'}"


def bench_resets(fixtures: FixtureSet, rounds: int) -> tuple[list[float], list[float]]:
    registry: TenantRegistry = create_app(fixtures, seed=1).state.registry
    backend = registry.default.backend
    # Indexes exist once a test has sorted or filtered: undoing writes must keep them current.
    backend.query_records("obj_contacts", {"status": "active"}, "name", "asc", 1, 25)
    small: list[float] = []
    for r in range(rounds):
        write(backend, 10, r * 10)
        small.append(timed(lambda: registry.reset("")))
    large: list[float] = []
    for r in range(5):
        write(backend, 10_000, r * 10_000)
        assert backend.changes == 10_000
        large.append(timed(lambda: registry.reset("")))
    assert backend.changes == 0 and len(backend.by_id) == RECORDS
    return small, large


def bench_socket_reset(server: MockServer, rounds: int) -> list[float]:
    samples = []
    with server.client() as client:
        for r in range(rounds):
            server._run(partial(write, server.backend, 10, 500_000 + r * 10))  # on the server's loop
            samples.append(timed(lambda: client.post("/_mock/reset").raise_for_status()))
    return samples


def bench_fixture_body(server: MockServer, rounds: int) -> list[float]:
    """What the `kantos_mock` fixture does per test (reset, a client on the session's pool),
    after a test that made 10 writes over HTTP."""
    samples = []
    transport = httpx.HTTPTransport()
    body = {"object_id": "obj_contacts", "field_values": {"name": "From a test"}}
    for _ in range(rounds):
        with server.client() as client:
            for _ in range(10):
                client.post("/api/crm/record", json=body).raise_for_status()

        def hand_out() -> None:
            handle = KantosMock(server.url, server.api_key, server, transport)
            handle.client.close()

        samples.append(timed(hand_out))
    transport.close()
    return samples


def bench_pytest_setup(tests: int) -> tuple[list[float], float]:
    """A real pytest session with the plugin: each test makes 10 writes; the setup phase of the
    next one (what pytest reports as its setup duration) hands it a clean mock."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conftest.py").write_text(
            textwrap.dedent(
                """
                import __main__
                import pytest

                @pytest.fixture(scope="session")
                def kantos_fixtures():
                    return __main__.FIXTURE_SET  # the bench's 100,000-record set, already in memory
                """
            )
        )
        (root / "test_writes.py").write_text(
            textwrap.dedent(
                f"""
                import pytest

                @pytest.mark.parametrize("n", range({tests}))
                def test_ten_writes(kantos_mock, n):
                    total = kantos_mock.client.get(
                        "/api/crm/records/query", params={{"object_id": "obj_contacts", "per_page": 1}}
                    ).json()["pagination"]["total"]
                    assert total == {RECORDS - 180}
                    for i in range(10):
                        body = {{"object_id": "obj_contacts", "field_values": {{"name": f"T{{n}}-{{i}}"}}}}
                        assert kantos_mock.client.post("/api/crm/record", json=body).status_code == 201
                """
            )
        )

        class Setups:
            def __init__(self) -> None:
                self.ms: list[float] = []

            def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
                if report.when == "setup":
                    self.ms.append(report.duration * 1000)

        setups = Setups()
        started = time.perf_counter()
        code = pytest.main(
            [
                str(root),
                *("-p", "no:terminal", "-p", "no:cacheprovider", "-o", "addopts="),
                *("-W", "ignore::pytest.PytestAssertRewriteWarning"),
            ],
            plugins=[setups],
        )
        elapsed = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"the pytest run failed ({code}); run it with the terminal reporter to see why")
        return setups.ms, elapsed


def main() -> None:
    global FIXTURE_SET
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300, help="repetitions of the small measurements")
    args = parser.parse_args()

    print(f"kantos-mock reset benchmark: Python {platform.python_version()} on {platform.machine()}")
    started = time.perf_counter()
    FIXTURE_SET = build_fixture_set()
    print(
        f"fixture set: {len(FIXTURE_SET.records):,} records ({time.perf_counter() - started:.2f} s to build)"
    )
    started = time.perf_counter()
    Backend(FIXTURE_SET)
    deep = (time.perf_counter() - started) * 1000
    print(f"for scale, a fresh copy of the whole state (what a deep-copy reset would cost): {deep:,.0f} ms\n")

    small, large = bench_resets(FIXTURE_SET, args.rounds)
    print(f"reset after 10 writes        {summary(small)}   {verdict(statistics.median(small), 1)}")
    print(f"reset after 10,000 writes    {summary(large)}")

    with MockServer(FIXTURE_SET, seed=1) as server:
        sock = bench_socket_reset(server, args.rounds)
        print(f"POST /_mock/reset over HTTP after 10 writes   {summary(sock)}")
        body = bench_fixture_body(server, args.rounds)
        target = verdict(statistics.median(body), 5)
        print(f"clean mock per test (kantos_mock fixture body)   {summary(body)}   {target}")

    setups, elapsed = bench_pytest_setup(args.rounds)
    per_test = setups[1:]  # the first setup also starts the session's server
    print(
        f"clean mock per test (pytest setup phase, {len(setups)} tests)   {summary(per_test)}   "
        f"{verdict(statistics.median(per_test), 5)}"
    )
    print(f"  (first test's setup, starting the session server on 100,000 records: {setups[0]:,.0f} ms;")
    print(f"   whole pytest run: {elapsed:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
