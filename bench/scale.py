"""The cost curve: the mock on 10,000, 100,000 and 1,000,000 contacts, in process and over HTTP.

Run: `./dev bench scale` (or `.venv/bin/python bench/scale.py`); `--sizes 10000,100000` picks the
sizes (the 1,000,000 step takes minutes: generating, loading twice, building indexes), `--quick` is
a smoke run on small sizes. For each size, one run:
1. writes a fixture folder with bench/http.py's contact generator (the same records `./dev bench
   http` serves), the contacts as JSON Lines (`records/contacts.jsonl`);
2. in process: `load_fixtures` + `Backend` (the start-up's work), RSS loaded and with every index
   the operations use built (the text index on name included), then p50s of `get_record`, the
   page-3 query (status and a `deal_value` floor, sorted by `deal_value` desc), a random
   `$contains` on name (2-6 letters, page 1 with its total) and `create_record`; beside each, the
   same work in in-memory SQLite on the same rows (primary key, indexes, COUNT + LIMIT/OFFSET, LIKE,
   INSERT), timed in the same loop;
3. over HTTP: `kantos-mock serve --fixtures DIR` from spawn to the first 200 (start-up), then wrk
   (bench/http.py's runner: 16 connections, each request different) on GET one record, the page-3
   query, the random `$contains` and POST, each right next to the bare-Starlette floor
   (bench/_floor.py) on the same endpoint; then GET, the page-3 query and `$contains` again over
   1 connection (their p50 is the answer's own time: with 16 connections it is mostly time queued
   behind the other 15, so the HTTP targets are judged on 1 connection); the server's RSS after
   the run, with its indexes built.
It prints a table per size and one across sizes, judges the targets, and writes the curve as a PNG
(`--plot`, default docs/images/bench-scale.png, which the docs site shows).

Targets at 1,000,000 contacts: start-up from a fixture folder <= 20 s; RSS <= 1.5 GB with every
index built; GET and page-3 query p50 within 1.5x of their 100,000 figures; random `$contains` p50
<= 5 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/query.py: bench/http.py would shadow the standard library's `http` (see there).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import contextlib
import gc
import importlib.util
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import orjson
import yaml

from mockserver.domain.backend import Backend
from mockserver.domain.clock import Clock
from mockserver.domain.fixtures import load_fixtures
from mockserver.domain.ids import IdSource
from mockserver.domain.schema import parse_datetime_us

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000)


def _load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


#: bench/http.py: the generator, the requests in the mock's dialect, wrk, the servers.
H = _load("kantos_bench_http", "http.py")
SCENARIOS = {s.key: s for s in H.SCENARIOS if s.key in ("get", "query", "contains", "post")}
LABELS = {"get": "GET one record", "query": "page-3 query", "contains": "random $contains", "post": "POST"}
#: Run again over 1 connection: the reads the HTTP targets judge (over 16 connections a p50 is
#: mostly time queued behind the other 15: at 1,000,000 contacts a `$contains` served 1,309 req/s,
#: 0.76 ms each on average, and its 16-connection p50 was 11 ms).
SINGLE = ("get", "query", "contains")


# --- the data ------------------------------------------------------------------------------------


@dataclass
class Data:
    dataset: Any  # bench/http.py's Dataset (no db.json: json-server is not run here)


def write_fixtures(n: int, seed: int, root: Path) -> Data:
    """A fixture folder of `n` contacts as JSON Lines, written as they are made (1,000,000 records
    would be about 1.5 GB as Python objects); the floor's bodies beside it."""
    fixtures = root / "fixtures"
    (fixtures / "records").mkdir(parents=True)
    for name in ("objects.yaml", "users.yaml"):
        shutil.copy(H.BUNDLED / name, fixtures / name)
    shutil.copy(H.BUNDLED / "records" / "companies.yaml", fixtures / "records" / "companies.yaml")
    keys = yaml.safe_load((H.BUNDLED / "api_keys.yaml").read_text(encoding="utf-8"))
    for key in keys["keys"]:
        if key["key"] == H.API_KEY:  # no 429s; the limiter still runs on every request
            key["per_minute"], key["per_day"] = 10**9, 10**10
    (fixtures / "api_keys.yaml").write_text(yaml.safe_dump(keys, sort_keys=False), encoding="utf-8")
    companies_doc = yaml.safe_load((H.BUNDLED / "records" / "companies.yaml").read_text(encoding="utf-8"))
    companies = [c["id"] for c in companies_doc["records"]]
    rng = random.Random(seed)
    ids: list[str] = []
    middle: dict[str, Any] = {}
    with (fixtures / "records" / "contacts.jsonl").open("wb") as out:
        for i in range(n):
            r = H.contact(rng, i, n, companies)
            out.write(orjson.dumps(r) + b"\n")
            ids.append(r["id"])
            if i == n // 2:
                middle = r
    bodies = root / "floor"
    bodies.mkdir()
    record = H.as_record(middle)
    (bodies / "record.json").write_bytes(H.compact(record))
    page = {"data": [record] * 25, "pagination": {"total": n // 10, "page": 3, "per_page": 25}}
    page["pagination"]["total_pages"] = -(-page["pagination"]["total"] // 25)
    (bodies / "page.json").write_bytes(H.compact(page))
    return Data(H.Dataset(root, fixtures, root / "no-db.json", bodies, ids, n))


# --- in process ----------------------------------------------------------------------------------


def rss_self() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p50_ms(fn: Callable[[int], Any], reps: int, offset: int) -> float:
    times = []
    for i in range(offset, offset + reps):
        t0 = time.perf_counter_ns()
        fn(i)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(times)


@dataclass
class InProcess:
    load_s: float
    load_cpu_s: float  # the same load's CPU time: the machine's other work does not count
    rss_loaded: float
    rss_indexed: float
    mock: dict[str, float] = field(default_factory=dict)
    sqlite: dict[str, float] = field(default_factory=dict)


def sqlite_rows(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute(
        "CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT, status TEXT, deal_value REAL, "
        "created_at INTEGER, body TEXT)"
    )
    db.execute("BEGIN")
    with path.open("rb") as lines:
        rows = (
            (
                r["id"],
                r["field_values"]["name"],
                r["field_values"]["status"],
                r["field_values"].get("deal_value"),
                parse_datetime_us(r["created_at"]),
                line.decode(),
            )
            for line in lines
            for r in (orjson.loads(line),)
        )
        db.executemany("INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    db.execute("CREATE INDEX contacts_status ON contacts (status, deal_value, id)")
    db.execute("CREATE INDEX contacts_created ON contacts (created_at, id)")
    db.execute("ANALYZE")
    return db


def in_process(data: Data, reps: int, seed: int, say: Callable[[str], None]) -> InProcess:
    ds = data.dataset
    gc.collect()
    gc.disable()  # as `kantos-mock serve` loads
    t0, cpu0 = time.perf_counter(), time.process_time()
    fixtures = load_fixtures(ds.fixtures)
    backend = Backend(
        fixtures, clock=Clock(datetime(2025, 1, 1, tzinfo=UTC), frozen=True), ids=IdSource(seed)
    )
    load_s, load_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    del fixtures
    gc.enable()
    gc.collect()
    gc.freeze()
    rss_loaded = rss_self()
    fragments = H.name_fragments(seed + 7)
    emails = iter(range(10**9))

    def get(i: int) -> Any:
        return backend.get_record(H._pick(ds.ids, i))

    def query(i: int) -> Any:
        filters = {"status": H.STAGES[i % 6], "deal_value": {"$gte": H.threshold(i // 6)}}
        return backend.query_records(H.OBJ, filters, "deal_value", "desc", 3, 25)

    def contains(i: int) -> Any:
        return backend.query_records(
            H.OBJ, {"name": {"$contains": fragments[i % len(fragments)]}}, None, None, 1, 25
        )

    def post(i: int) -> Any:
        values = {**H.CREATE, "email": f"scale.{next(emails)}@example.com"}
        return backend.create_record(H.OBJ, values, "user_admin")

    ops = {"get": get, "query": query, "contains": contains, "post": post}
    t1 = time.perf_counter()
    for key in ("get", "query", "contains"):  # first use builds the indexes
        ops[key](10**6)
    gc.collect()
    rss_indexed = rss_self()
    say(
        f"  in process: loaded in {load_s:.1f} s ({load_cpu_s:.1f} s of CPU), RSS {rss_loaded:.0f} MB; "
        f"indexes built in "
        f"{time.perf_counter() - t1:.1f} s, RSS {rss_indexed:.0f} MB"
    )
    result = InProcess(load_s, load_cpu_s, rss_loaded, rss_indexed)

    t2 = time.perf_counter()
    db = sqlite_rows(ds.fixtures / "records" / "contacts.jsonl")
    say(f"  SQLite baseline loaded in {time.perf_counter() - t2:.1f} s")
    sql_n = iter(range(10**9))
    sql_ops: dict[str, Callable[[int], Any]] = {
        "get": lambda i: db.execute(
            "SELECT body FROM contacts WHERE id = ?", (H._pick(ds.ids, i),)
        ).fetchone(),
        "query": lambda i: sql_page(
            db,
            "status = ? AND deal_value >= ?",
            (H.STAGES[i % 6], H.threshold(i // 6)),
            "deal_value DESC, id",
            3,
        ),
        "contains": lambda i: sql_page(
            db, "name LIKE ?", (f"%{fragments[i % len(fragments)]}%",), "created_at, id", 1
        ),
        "post": lambda i: db.execute(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?)",
            (f"rec_scale{next(sql_n):012d}", "Jane Smith", "new", None, 0, "{}"),
        ),
    }
    for k, key in enumerate(ops):
        # SQLite's LIKE scans every row: at 1,000,000 fewer repetitions keep the run bounded.
        sql_reps = max(10, min(reps, reps * 20_000 // ds.n)) if key == "contains" else reps
        result.mock[key] = p50_ms(ops[key], reps, k * 10_000)
        result.sqlite[key] = p50_ms(sql_ops[key], sql_reps, k * 10_000)
    db.close()
    gc.unfreeze()
    return result


def sql_page(db: sqlite3.Connection, where: str, args: tuple[Any, ...], order: str, page: int) -> Any:
    total = db.execute(f"SELECT COUNT(*) FROM contacts WHERE {where}", args).fetchone()[0]
    rows = db.execute(
        f"SELECT body FROM contacts WHERE {where} ORDER BY {order} LIMIT 25 OFFSET ?",
        (*args, (page - 1) * 25),
    ).fetchall()
    return total, rows


# --- over HTTP -----------------------------------------------------------------------------------


@dataclass
class OverHttp:
    startup_s: float
    rss: float | None
    mock: dict[str, Any] = field(default_factory=dict)  # key -> bench/http.py's Result
    floor: dict[str, Any] = field(default_factory=dict)
    single: dict[str, Any] = field(default_factory=dict)  # the mock over 1 connection: SINGLE's keys


def over_http(
    data: Data,
    gen: Any,
    gen1: Any,
    floor: Any,
    duration: float,
    warmup: float,
    work: Path,
    say: Callable[[str], None],
) -> OverHttp:
    ds = data.dataset
    spec = H.server_specs({"mock"}, ds, "uvloop", "httptools", say)[0]
    with H.running(spec, ds, work) as run:
        out = OverHttp(run.startup_s, None)
        say(f"  over HTTP: kantos-mock serve answered in {run.startup_s:.1f} s")
        for k, (key, scenario) in enumerate(SCENARIOS.items()):
            for name, server, into in (("mock", run, out.mock), ("floor", floor, out.floor)):
                reqs_file = work / f"{name}-{key}-{ds.n}.txt"
                reqs = H.write_requests(reqs_file, H.Dialect(), scenario, ds.ids)
                # (at 1,000,000 contacts the first $contains builds the text index: 30 s and more
                # on a busy machine)
                H.precheck(server, scenario, reqs[0], timeout=600)
                tag = f"n{ds.n}k{k}{name[0]}"
                gen.run(server.port, reqs_file, reqs, warmup, f"{tag}w", 0)
                server.drain()
                into[key] = gen.run(
                    server.port, reqs_file, reqs, duration, f"{tag}m", H.REQUESTS_PER_FILE // 2
                )
                server.drain()
            m, f = out.mock[key], out.floor[key]
            say(
                f"    {LABELS[key]:<18} mock {m.rps:>7,.0f} req/s p50 {m.p50_ms:6.2f} ms  |  floor "
                f"{f.rps:>7,.0f} req/s p50 {f.p50_ms:6.2f} ms  ({m.rps / f.rps:.0%} of the floor)"
            )
        for k, key in enumerate(SINGLE):
            reqs_file = work / f"mock-{key}-{ds.n}.txt"
            reqs = H.write_requests(reqs_file, H.Dialect(), SCENARIOS[key], ds.ids)
            tag = f"n{ds.n}k{k}s"
            gen1.run(run.port, reqs_file, reqs, warmup, f"{tag}w", 0)
            out.single[key] = one = gen1.run(run.port, reqs_file, reqs, duration, f"{tag}m", 0)
            run.drain()
            say(f"    1 connection: {LABELS[key]:<18} mock {one.rps:>7,.0f} req/s p50 {one.p50_ms:6.2f} ms")
        out.rss = H.rss_mb(run.proc.pid)
    return out


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Size:
    n: int
    local: InProcess
    http: OverHttp


def report(sizes: list[Size], say: Callable[[str], None]) -> int:
    say("")
    say("Across sizes (p50s; in process next to SQLite; over HTTP next to the floor, each in the same run)")
    head = f"{'':<36}" + "".join(f"{s.n:>22,}" for s in sizes)
    say(head)
    say("-" * len(head))

    def row(label: str, cell: Callable[[Size], str]) -> None:
        say(f"{label:<36}" + "".join(f"{cell(s):>22}" for s in sizes))

    row("start-up, in process (load) s", lambda s: f"{s.local.load_s:.1f}")
    row("  of which CPU time s", lambda s: f"{s.local.load_cpu_s:.1f}")
    row("start-up, serve to first answer s", lambda s: f"{s.http.startup_s:.1f}")
    row("RSS in process, loaded MB", lambda s: f"{s.local.rss_loaded:.0f}")
    row("RSS in process, indexed MB", lambda s: f"{s.local.rss_indexed:.0f}")
    row("RSS of serve after the run MB", lambda s: f"{s.http.rss or float('nan'):.0f}")
    for key in SCENARIOS:
        row(
            f"{LABELS[key]}, in process ms",
            lambda s, k=key: f"{s.local.mock[k]:.3f} / {s.local.sqlite[k]:.3f}",
        )
    for key in SCENARIOS:
        row(
            f"{LABELS[key]}, HTTP ms",
            lambda s, k=key: f"{s.http.mock[k].p50_ms:.2f} / {s.http.floor[k].p50_ms:.2f}",
        )
    for key in SINGLE:
        row(f"{LABELS[key]}, HTTP 1 connection ms", lambda s, k=key: f"{s.http.single[k].p50_ms:.2f}")
    for key in SCENARIOS:
        row(
            f"{LABELS[key]}, HTTP % of floor req/s",
            lambda s, k=key: f"{s.http.mock[k].rps / s.http.floor[k].rps:.0%}",
        )
    say("(in process: mock / SQLite; HTTP: mock / floor)")

    by_n = {s.n: s for s in sizes}
    big, mid = by_n.get(1_000_000), by_n.get(100_000)
    say("")
    say("Targets at 1,000,000 contacts:")
    if big is None:
        say("  n/a: 1,000,000 was not among --sizes")
        return 0
    misses = 0

    def target(text: str, value: float, ok: bool) -> None:
        nonlocal misses
        misses += not ok
        say(f"  {text:<64} {value:>9.2f}  {'OK' if ok else 'MISS'}")

    target(
        "start-up from a fixture folder (serve to first answer) <= 20 s",
        big.http.startup_s,
        big.http.startup_s <= 20,
    )
    rss = max(big.http.rss or 0.0, big.local.rss_indexed)
    target("RSS with every index built (the larger of serve, in process) <= 1,536 MB", rss, rss <= 1536)
    if mid is not None:
        for key in ("get", "query"):
            local = big.local.mock[key] / mid.local.mock[key]
            http = big.http.single[key].p50_ms / mid.http.single[key].p50_ms
            target(f"{LABELS[key]} p50, in process: x of the 100,000 figure <= 1.5", local, local <= 1.5)
            target(f"{LABELS[key]} p50, HTTP 1 connection: x of the 100,000 figure <= 1.5", http, http <= 1.5)
            busy = big.http.mock[key].p50_ms / mid.http.mock[key].p50_ms
            say(f"  {'(the same over 16 connections, not judged: queueing)':<64} {busy:>9.2f}")
    target(
        "random $contains p50 in process <= 5 ms", big.local.mock["contains"], big.local.mock["contains"] <= 5
    )
    one = big.http.single["contains"].p50_ms
    target("random $contains p50 over HTTP, 1 connection <= 5 ms", one, one <= 5)
    say(f"  {'(over 16 connections, not judged: queueing)':<64} {big.http.mock['contains'].p50_ms:>9.2f}")
    say(f"targets missed: {misses}")
    return misses


def plot(sizes: list[Size], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [s.n for s in sizes]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    panels: list[tuple[str, str, list[tuple[str, list[float], str]]]] = [
        (
            "start-up",
            "s",
            [
                ("serve, to first answer", [s.http.startup_s for s in sizes], "o-"),
                ("load in process", [s.local.load_s for s in sizes], "s--"),
            ],
        ),
        (
            "RSS",
            "MB",
            [
                ("serve, after the run", [s.http.rss or float("nan") for s in sizes], "o-"),
                ("in process, indexed", [s.local.rss_indexed for s in sizes], "s--"),
                ("in process, loaded", [s.local.rss_loaded for s in sizes], "^:"),
            ],
        ),
    ]
    for key in SCENARIOS:
        panels.append(
            (
                f"{LABELS[key]} p50",
                "ms",
                [
                    ("mock over HTTP", [s.http.mock[key].p50_ms for s in sizes], "o-"),
                    *(
                        [("mock over HTTP, 1 connection", [s.http.single[key].p50_ms for s in sizes], "d-")]
                        if key in SINGLE
                        else []
                    ),
                    ("floor over HTTP", [s.http.floor[key].p50_ms for s in sizes], "o:"),
                    ("mock in process", [s.local.mock[key] for s in sizes], "s--"),
                    ("SQLite in process", [s.local.sqlite[key] for s in sizes], "^:"),
                ],
            )
        )
    for ax, (title, unit, lines) in zip(axes.flat, panels, strict=True):
        for label, values, style in lines:
            ax.plot(ns, values, style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_xlabel("contacts")
        ax.set_xticks(ns, [f"{n:,}" for n in ns])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("kantos-mockserver: cost by number of contacts (bench/scale.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", help="comma-separated contact counts (default 10000,100000,1000000)")
    ap.add_argument("--quick", action="store_true", help="2,000 and 10,000 contacts, short runs (smoke test)")
    ap.add_argument("--reps", type=int, help="in-process repetitions per operation (200; 20 with --quick)")
    ap.add_argument("--duration", type=float, help="seconds of load per HTTP scenario (3; 1 with --quick)")
    ap.add_argument(
        "--plot",
        default=str(ROOT / "docs" / "images" / "bench-scale.png"),
        help="where to write the PNG ('' for none)",
    )
    ap.add_argument("--seed", type=int, default=H.SEED)
    args = ap.parse_args(argv)
    try:
        sizes = (
            [int(x) for x in args.sizes.split(",")]
            if args.sizes
            else list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
        )
    except ValueError:
        ap.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    reps = args.reps or (20 if args.quick else 200)
    duration = args.duration or (1.0 if args.quick else 3.0)
    warmup = 0.3 if args.quick else 1.0

    def say(text: str = "") -> None:
        print(text, flush=True)

    say(
        f"kantos-mockserver scale bench: sizes {', '.join(f'{n:,}' for n in sizes)}; seed {args.seed}; "
        f"load average {H.loadavg()}"
    )
    for line in H.machine():
        say(line)
    wrk = shutil.which("wrk")
    results: list[Size] = []
    with tempfile.TemporaryDirectory(prefix="kantos-bench-scale-") as tmp:
        work = Path(tmp)
        gen = H.Wrk(wrk, work / "bench.lua", 16, threads=1) if wrk else H.AsyncioClient(16)
        gen1 = H.Wrk(wrk, work / "bench1.lua", 1, threads=1) if wrk else H.AsyncioClient(1)
        say(f"load generator: {gen.describe()}; {duration:g} s per scenario after {warmup:g} s of warm-up")
        floor_data = write_fixtures(100, args.seed, work / "floor-data")
        floor_spec = H.server_specs({"floor"}, floor_data.dataset, "uvloop", "httptools", say)[0]
        with H.running(floor_spec, floor_data.dataset, work) as floor:
            for n in sizes:
                say(f"\n== {n:,} contacts")
                t0 = time.perf_counter()
                data = write_fixtures(n, args.seed, work / f"data-{n}")
                size_mb = (data.dataset.fixtures / "records" / "contacts.jsonl").stat().st_size / 1e6
                took = time.perf_counter() - t0
                say(f"  generated records/contacts.jsonl ({size_mb:.0f} MB) in {took:.1f} s")
                local = in_process(data, reps, args.seed, say)
                gc.collect()
                for key in SCENARIOS:
                    mock, sql = local.mock[key], local.sqlite[key]
                    say(f"    {LABELS[key]:<18} mock {mock:8.3f} ms  |  SQLite {sql:8.3f} ms")
                http = over_http(data, gen, gen1, floor, duration, warmup, work, say)
                results.append(Size(n, local, http))
                with contextlib.suppress(OSError):
                    shutil.rmtree(work / f"data-{n}")
    misses = report(results, say)
    say(f"Machine: load average after the run {H.loadavg()}")
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(results, Path(args.plot))
        say(f"plot written to {args.plot}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())

# ruff: noqa: E402
