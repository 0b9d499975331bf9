"""The HTTP path under load: the mock on 100,000 contacts, next to a bare-Starlette floor and json-server.

Run: `./dev bench http` (or `.venv/bin/python bench/http.py`); `--quick` is a 1 s smoke run. One run:
1. generates, deterministically (random.Random(seed)), a fixture folder of 100,000 contacts (the
   bundled objects, users, keys and companies; contacts as `records/contacts.json`) and the same
   rows, flattened, as a `db.json` for json-server;
2. times start-up: from spawning `kantos-mock serve` to the first 200 on `GET /api/crm/objects`,
   median of 3, on the bundled fixtures and on the generated set;
3. starts the servers on 127.0.0.1, then, scenario by scenario, loads each in turn (the others sit
   idle) with a load generator on loopback (wrk from Debian's packages with a Lua script, or the
   asyncio client below when wrk is missing), for a fixed duration after a warm-up, with a fixed
   number of connections, and notes the CPU that the server, the load generator and everything
   else used meanwhile, so a noisy machine shows. Servers:
   - mock: `python -m mockserver serve --fixtures DIR --port P` (uvicorn, one worker);
   - floor: `bench/_floor.py`, bare Starlette returning precomputed JSON (one record; a page of 25)
     under the same uvicorn settings, on uvloop and httptools;
   - json-server 1.x and 0.17 (npm, installed into bench/.cache/) on the same rows, each asked in
     its own syntax for the same filters, sort and page.
   Scenarios: GET one record; two filters, sort desc, page 3; `$contains` on name (a random piece of
   2-6 letters of a name each time); POST create;
   PATCH. Each request differs from the last (record ids, filter values, name fragments, unique
   emails), so no cache can flatter anyone;
4. prints req/s, p50 and p99 per scenario and server, each as a ratio to the floor's matching
   endpoint and to each json-server, then the targets, the start-up times and the machine.

Targets (judged here, never by timed tests): GET one record >= 70% of the floor's req/s; the filtered,
sorted page-3 query on 100,000 records >= 40% of the floor's req/s for a page of 25 and >= 20x
json-server's; a random `$contains` >= 10% of the floor's req/s and >= 50x json-server 1.x's; POST
>= 40% and PATCH >= 60% of the floor's req/s, both with p99 <= 10 ms; start-up < 1 s on the bundled
fixtures and < 5 s on 100,000 records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Run as a script, this file's folder comes first on sys.path, and its name would shadow the standard
# library's `http` for every later import (http.client here, starlette in a child): drop that entry.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "mockserver" / "fixtures"
CACHE = ROOT / "bench" / ".cache"
FLOOR = ROOT / "bench" / "_floor.py"
HOST = "127.0.0.1"
API_KEY = "kantos_admin_local_key"
OBJ = "obj_contacts"
SEED = 20240115
#: json-server's 1.x line has only pre-releases (`npm view json-server versions`); this is the newest.
#: It declares node >= 22.12 but runs on node 20; the bench checks its answers before timing it.
JSON_SERVER_1 = "1.0.0-beta.15"
JSON_SERVER_017 = "0.17.4"

# fmt: off
STAGES = ["new", "contacted", "qualified", "active", "customer", "churned"]
STAGE_WEIGHTS = [20, 18, 15, 20, 20, 7]
SOURCES = ["website", "api", "referral", "event", "import", "partner"]
CATEGORIES = ["Enterprise", "SMB", "Mid-Market", "Startup"]
TAGS = ["vip", "newsletter", "partner", "beta", "churn-risk"]
USERS = ["user_admin", "user_alice", "user_bob", "user_carol"]
FIRST = [
    "James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "William", "Linda", "David", "Elizabeth",
    "Richard", "Barbara", "Joseph", "Susan", "Thomas", "Jessica", "Charles", "Sarah", "Daniel", "Lisa",
    "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Emily", "Olivia", "Liam", "Noah", "Emma",
    "Ava", "Sophia", "Mia", "Lucas", "Ethan", "Aisha", "Priya", "Raj", "Wei", "Mei", "Hiroshi", "Yuki",
    "Carlos", "Sofia", "Mateo", "Valentina", "Ahmed", "Fatima", "Omar", "Leila", "Ivan", "Olga", "Anna",
    "Lars", "Ingrid", "Kwame", "Amara", "Diego",
]
LAST = [
    "Smith", "Garcia", "Martinez", "Brown", "Jones", "Miller", "Davis", "Rodriguez", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams",
    "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Phillips", "Evans", "Turner", "Patel",
    "Shah", "Kumar", "Singh", "Nguyen", "Tran", "Kim", "Park", "Chen", "Wang", "Tanaka", "Suzuki", "Sato",
    "Okafor", "Mensah", "Kowalski", "Novak",
]
# fmt: on
DOMAINS = ["example.com", "mail.example", "acme.example", "globex.example", "initech.example"]


def name_fragments(seed: int, count: int = 4_000) -> list[str]:
    """Random pieces of 2-6 letters of the names `contact` makes, across the space too, some in
    upper case: each `$contains` request asks for a fresh one."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        size = rng.randint(2, 6)
        start = rng.randrange(max(1, len(name) - size + 1))
        piece = name[start : start + size]
        out.append(piece.upper() if rng.random() < 0.2 else piece)
    return out


FRAGMENTS = name_fragments(SEED + 3)
START = 1_546_300_800  # 2019-01-01T00:00:00Z
SPAN = 6 * 365 * 86_400
REQUESTS_PER_FILE = 4_000


# --- data ------------------------------------------------------------------------------------------


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def contact(rng: random.Random, i: int, n: int, companies: list[str]) -> dict[str, Any]:
    """One fixture record. Ids and `created_at` both grow with i, so file order is both orders."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    v: dict[str, Any] = {
        "name": f"{first} {last}",
        "email": f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower(),
    }
    if rng.random() < 0.6:
        v["phone"] = f"+1 555 {rng.randrange(10_000_000):07d}"
    v["status"] = rng.choices(STAGES, STAGE_WEIGHTS)[0]
    if rng.random() < 0.85:
        v["source"] = rng.choice(SOURCES)
    if rng.random() < 0.7:
        v["category"] = rng.choice(CATEGORIES)
    if rng.random() < 0.75:
        v["deal_value"] = round(rng.uniform(100, 50_000), 2)
    if rng.random() < 0.35:
        v["tags"] = rng.sample(TAGS, rng.randint(1, 2))
    if rng.random() < 0.5:
        v["company"] = rng.choice(companies)
    if rng.random() < 0.7:
        v["owner"] = rng.choice(USERS)
    step = max(1, SPAN // n)
    created = START + (i * SPAN) // n + rng.randrange(step)
    if rng.random() < 0.3:
        v["birthday"] = f"{rng.randint(1950, 2002)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if rng.random() < 0.4:
        v["last_contacted_at"] = iso(created + rng.randrange(180 * 86_400))
    if rng.random() < 0.6:
        v["score"] = round(rng.uniform(0, 100), 1)
    if rng.random() < 0.1:
        v["do_not_contact"] = True
    updated = created + (rng.randrange(90 * 86_400) if rng.random() < 0.5 else 0)
    return {
        "id": f"rec_{i:06x}{rng.getrandbits(24):06x}",
        "created_at": iso(created),
        "updated_at": iso(updated),
        "created_by": rng.choice(USERS),
        "field_values": v,
    }


def as_record(r: dict[str, Any]) -> dict[str, Any]:
    """The API's shape of a fixture record (`GET /api/crm/record/{id}`)."""
    return {
        "id": r["id"],
        "object_id": OBJ,
        "field_values": r["field_values"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "created_by": r["created_by"],
    }


def flat(r: dict[str, Any]) -> dict[str, Any]:
    """The same row for json-server: field values at the top level."""
    return {
        "id": r["id"],
        **r["field_values"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "created_by": r["created_by"],
    }


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def threshold(i: int) -> int:
    return 1_000 + (i * 7_919) % 40_000


@dataclass
class Dataset:
    root: Path
    fixtures: Path
    db_json: Path
    bodies: Path
    ids: list[str]
    n: int


def build_dataset(n: int, seed: int, root: Path) -> Dataset:
    fixtures = root / "fixtures"
    (fixtures / "records").mkdir(parents=True)
    for name in ("objects.yaml", "users.yaml"):
        shutil.copy(BUNDLED / name, fixtures / name)
    shutil.copy(BUNDLED / "records" / "companies.yaml", fixtures / "records" / "companies.yaml")
    # The admin key's limits are lifted so no run ends in 429s; the limiter still runs on every request.
    keys = yaml.safe_load((BUNDLED / "api_keys.yaml").read_text(encoding="utf-8"))
    for key in keys["keys"]:
        if key["key"] == API_KEY:
            key["per_minute"], key["per_day"] = 10**9, 10**10
    (fixtures / "api_keys.yaml").write_text(yaml.safe_dump(keys, sort_keys=False), encoding="utf-8")
    companies_doc = yaml.safe_load((BUNDLED / "records" / "companies.yaml").read_text(encoding="utf-8"))
    companies = [c["id"] for c in companies_doc["records"]]

    rng = random.Random(seed)
    records = [contact(rng, i, n, companies) for i in range(n)]
    (fixtures / "records" / "contacts.json").write_bytes(compact({"records": records}))
    db_json = root / "db.json"
    db_json.write_bytes(compact({"contacts": [flat(r) for r in records]}))

    # The floor's bodies: one real record, and the real page 3 of the first query the bench sends.
    bodies = root / "floor"
    bodies.mkdir()
    (bodies / "record.json").write_bytes(compact(as_record(records[n // 2])))
    status, low = STAGES[0], threshold(0)
    hits = [r for r in records if r["field_values"]["status"] == status]
    hits = [r for r in hits if r["field_values"].get("deal_value", -1) >= low]
    hits.sort(key=lambda r: r["id"])
    hits.sort(key=lambda r: r["field_values"]["deal_value"], reverse=True)
    page = {
        "data": [as_record(r) for r in hits[50:75]],
        "pagination": {
            "total": len(hits),
            "page": 3,
            "per_page": 25,
            "total_pages": math.ceil(len(hits) / 25),
        },
    }
    (bodies / "page.json").write_bytes(compact(page))
    return Dataset(root, fixtures, db_json, bodies, [r["id"] for r in records], n)


# --- requests in each server's dialect ---------------------------------------------------------------

#: A request: (method, path, body); "{n}" in a body becomes a token unique to the run and the request.
Req = tuple[str, str, str]

CREATE = {
    "name": "Jane Smith",
    "email": "jane.{n}@example.com",
    "phone": "+1 (555) 987-6543",
    "status": "new",
    "source": "api",
}  # records-api.txt's create body, with a unique email
NOTES = "Spoke on phone, interested in enterprise plan"  # records-api.txt's update body


class Dialect:
    """The mock's API (the floor answers the same paths)."""

    def get_one(self, rid: str) -> Req:
        return ("GET", f"/api/crm/record/{rid}", "")

    def query(self, status: str, low: int) -> Req:
        filters = compact({"status": status, "deal_value": {"$gte": low}}).decode()
        q = urllib.parse.urlencode(
            {
                "object_id": OBJ,
                "filters": filters,
                "sort": "deal_value",
                "order": "desc",
                "page": 3,
                "per_page": 25,
            }
        )
        return ("GET", f"/api/crm/records/query?{q}", "")

    def contains(self, fragment: str) -> Req:
        filters = compact({"name": {"$contains": fragment}}).decode()  # default sort: created_at asc
        q = urllib.parse.urlencode({"object_id": OBJ, "filters": filters, "page": 1, "per_page": 25})
        return ("GET", f"/api/crm/records/query?{q}", "")

    def create(self) -> Req:
        return ("POST", "/api/crm/record", compact({"object_id": OBJ, "field_values": CREATE}).decode())

    def patch(self, rid: str, status: str) -> Req:
        body = {"field_values": {"status": status, "notes": NOTES + " {n}"}}
        return ("PATCH", f"/api/crm/record/{rid}", compact(body).decode())


class JsonServer1(Dialect):
    """json-server 1.x: `field:op=value`, `_sort=-field`, `_page` and `_per_page`."""

    def get_one(self, rid: str) -> Req:
        return ("GET", f"/contacts/{rid}", "")

    def query(self, status: str, low: int) -> Req:
        return (
            "GET",
            f"/contacts?status={status}&deal_value:gte={low}&_sort=-deal_value&_page=3&_per_page=25",
            "",
        )

    def contains(self, fragment: str) -> Req:
        q = f"name:contains={urllib.parse.quote(fragment)}&_sort=created_at&_page=1&_per_page=25"
        return ("GET", f"/contacts?{q}", "")

    def create(self) -> Req:
        return ("POST", "/contacts", compact(CREATE).decode())

    def patch(self, rid: str, status: str) -> Req:
        return ("PATCH", f"/contacts/{rid}", compact({"status": status, "notes": NOTES + " {n}"}).decode())


class JsonServer017(JsonServer1):
    """json-server 0.17: `field_gte=`, `field_like=` (case-insensitive regex), `_sort`/`_order`, `_limit`."""

    def query(self, status: str, low: int) -> Req:
        q = f"status={status}&deal_value_gte={low}&_sort=deal_value&_order=desc&_page=3&_limit=25"
        return ("GET", f"/contacts?{q}", "")

    def contains(self, fragment: str) -> Req:
        q = f"name_like={urllib.parse.quote(fragment)}&_sort=created_at&_order=asc&_page=1&_limit=25"
        return ("GET", f"/contacts?{q}", "")


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    floor_body: str  # which precomputed body the floor's matching endpoint returns
    make: Callable[[Dialect, list[str], int], Req]


def _pick(ids: list[str], i: int) -> str:
    return ids[(i * 7_919 + 13) % len(ids)]


SCENARIOS = [
    Scenario("get", "GET one record", "one record", lambda d, ids, i: d.get_one(_pick(ids, i))),
    Scenario(
        "query",
        "2 filters, sort desc, page 3",
        "page of 25",
        lambda d, ids, i: d.query(STAGES[i % 6], threshold(i // 6)),
    ),
    Scenario(
        "contains",
        "$contains on name",
        "page of 25",
        lambda d, ids, i: d.contains(FRAGMENTS[i % len(FRAGMENTS)]),
    ),
    Scenario("post", "POST create", "one record", lambda d, ids, i: d.create()),
    Scenario("patch", "PATCH", "one record", lambda d, ids, i: d.patch(_pick(ids, i + 5_000), STAGES[i % 6])),
]


def write_requests(path: Path, dialect: Dialect, scenario: Scenario, ids: list[str]) -> list[Req]:
    reqs = [scenario.make(dialect, ids, i) for i in range(REQUESTS_PER_FILE)]
    path.write_text("".join(f"{m}\t{p}\t{b}\n" for m, p, b in reqs), encoding="utf-8")
    return reqs


# --- servers -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KANTOS_MOCK_VALIDATE_RESPONSES", None)  # the test suite's self-check is not the product path
    return env


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"X-Api-Key": API_KEY})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def send(port: int, req: Req, token: str, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    import http.client

    method, path, body = req
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"X-Api-Key": API_KEY}
        payload = body.replace("{n}", token).encode() if body else None
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, path: str, timeout: float) -> float:
    """Seconds until `path` answers 200; raises if the process dies or time runs out."""
    t0 = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before answering")
        try:
            if get(port, path, timeout=2)[0] == 200:
                return time.perf_counter() - t0
        except OSError:
            pass
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"no 200 on {path} within {timeout:g} s")
        time.sleep(0.005)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def mapped_libs(pid: int) -> set[str]:
    """Which of uvloop and httptools have their extension modules mapped into the process."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {lib for lib in ("uvloop", "httptools") if f"/{lib}/" in maps}


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def kantos_mock_command() -> list[str]:
    script = Path(sys.executable).with_name("kantos-mock")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mockserver"]


@dataclass
class ServerSpec:
    name: str
    label: str
    dialect: Dialect
    command: Callable[[int], list[str]]
    ready_path: Callable[[Dataset], str]
    runtime: str = ""  # filled after start: event loop, HTTP parser, versions
    #: Seconds between the two quick answers that end a drain (0: one is enough).
    settle: float = 0.0


@dataclass
class Running:
    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    port: int
    startup_s: float
    log: Path
    ready_path: str

    def drain(self) -> None:
        """Wait until the server answers a light GET quickly, so a backlog left by the last run (slow
        writes still queued when the load generator stopped) is not charged to the next one."""
        deadline, quick = time.monotonic() + 120, 0
        while quick < (2 if self.spec.settle else 1) and time.monotonic() < deadline:
            t0 = time.perf_counter()
            with contextlib.suppress(OSError):
                get(self.port, self.ready_path, timeout=60)
            quick = quick + 1 if time.perf_counter() - t0 < 0.2 else 0
            time.sleep(self.spec.settle if quick else 0)


@contextlib.contextmanager
def running(spec: ServerSpec, data: Dataset, workdir: Path) -> Iterator[Running]:
    port = free_port()
    log = workdir / f"{spec.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            spec.command(port), stdout=out, stderr=subprocess.STDOUT, env=server_env(), cwd=workdir
        )
    try:
        try:
            startup = wait_ready(proc, port, spec.ready_path(data), timeout=300)
        except RuntimeError as exc:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{spec.label} did not start: {exc}\n{tail}") from None
        yield Running(spec, proc, port, startup, log, spec.ready_path(data))
    finally:
        stop(proc)


# --- load generators ---------------------------------------------------------------------------------


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_detail: str = ""
    cpu: CpuUse | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_LUA = r"""-- bench/http.py's wrk script: cycles through a file of requests ("METHOD<TAB>PATH<TAB>BODY"),
-- each thread from its own offset; "{n}" in a body becomes a token unique to the run and request.
local reqs, count, counter, token = {}, 0, 0, ""
local get_headers, body_headers = {}, {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end

function init(args)
  for line in io.lines(args[1]) do
    local m, p, b = line:match("^(%u+)\t([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = {m, p, b}
  end
  count = #reqs
  token = args[2] .. "t" .. tid .. "n"
  counter = tonumber(args[3]) + (tid - 1) * 1009
  get_headers["X-Api-Key"] = args[4]
  body_headers["X-Api-Key"] = args[4]
  body_headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local r = reqs[(counter % count) + 1]
  if r[3] == "" then
    return wrk.format(r[1], r[2], get_headers)
  end
  local body = (r[3]:gsub("{n}", token .. counter))
  return wrk.format(r[1], r[2], body_headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,' ..
    '"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class Wrk:
    def __init__(self, path: str, lua: Path, connections: int, threads: int) -> None:
        self.path, self.lua, self.connections, self.threads = path, lua, connections, threads
        lua.write_text(WRK_LUA, encoding="utf-8")
        probe = subprocess.run([path, "-v"], capture_output=True, text=True)
        self.version = (
            (probe.stdout + probe.stderr).strip().splitlines()[0] if probe.stdout + probe.stderr else path
        )

    def describe(self) -> str:
        return (
            f"{self.version}, {self.threads} thread(s), {self.connections} connections, Lua script varying "
            "every request"
        )

    def run(
        self, port: int, reqs_file: Path, reqs: list[Req], seconds: float, tag: str, offset: int
    ) -> Result:
        cmd = [self.path, f"-t{self.threads}", f"-c{self.connections}", f"-d{max(1, round(seconds))}s"]
        cmd += ["--timeout", "30s", "-s", str(self.lua), f"http://{HOST}:{port}"]
        cmd += ["--", str(reqs_file), tag, str(offset), API_KEY]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 90)
        line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-1000:]}{out.stderr[-1000:]}")
        r = json.loads(line[8:])
        kinds = [f"{r[k]} {k}" for k in ("status", "timeout", "connect", "read", "write") if r[k]]
        errors = sum(int(r[k]) for k in ("status", "timeout", "connect", "read", "write"))
        if not r["requests"]:  # wrk reports 0 ms when nothing completed
            r["p50_us"] = r["p99_us"] = math.nan
        return Result(
            r["requests"],
            r["duration_us"] / 1e6,
            r["p50_us"] / 1e3,
            r["p99_us"] / 1e3,
            errors,
            ", ".join(kinds),
        )


class AsyncioClient:
    """A keep-alive HTTP/1.1 load generator in one asyncio loop (uvloop when installed)."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        try:
            import uvloop

            self.loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
            self.loop_name = "uvloop"
        except ImportError:
            self.loop_factory, self.loop_name = None, "asyncio"

    def describe(self) -> str:
        return (
            f"asyncio client (wrk not used), one process on {self.loop_name}, {self.connections} connections"
        )

    def run(
        self, port: int, reqs_file: Path, reqs: list[Req], seconds: float, tag: str, offset: int
    ) -> Result:
        with asyncio.Runner(loop_factory=self.loop_factory) as runner:
            return runner.run(self._load(port, reqs, seconds, tag, offset))

    async def _load(self, port: int, reqs: list[Req], seconds: float, tag: str, offset: int) -> Result:
        loop = asyncio.get_running_loop()
        counter = itertools.count(offset)
        latencies: list[float] = []
        errors: list[str] = []
        start = loop.time()
        deadline = start + seconds
        prefix = f"Host: {HOST}:{port}\r\nX-Api-Key: {API_KEY}\r\n"

        async def worker() -> None:
            reader: asyncio.StreamReader | None = None
            writer: asyncio.StreamWriter | None = None
            while loop.time() < deadline:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                assert reader is not None
                k = next(counter)
                method, path, body = reqs[k % len(reqs)]
                payload = body.replace("{n}", f"{tag}n{k}").encode() if body else b""
                head = f"{method} {path} HTTP/1.1\r\n{prefix}"
                if payload:
                    head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                t0 = time.perf_counter()
                try:
                    writer.write(head.encode() + b"\r\n" + payload)
                    status, close = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors.append(type(exc).__name__)
                    writer.close()
                    reader = writer = None
                    continue
                latencies.append(time.perf_counter() - t0)
                if status >= 400:
                    errors.append(f"status {status}")
                if close:
                    writer.close()
                    reader = writer = None
            if writer is not None:
                writer.close()

        tasks = [asyncio.create_task(worker()) for _ in range(self.connections)]
        _, pending = await asyncio.wait(tasks, timeout=seconds + 30)
        for task in pending:
            task.cancel()
        elapsed = loop.time() - start
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                errors.append(repr(task.exception()))
        latencies.sort()
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(_counts(errors).items()))
        return Result(
            len(latencies),
            elapsed,
            _percentile(latencies, 50) * 1e3,
            _percentile(latencies, 99) * 1e3,
            len(errors),
            kinds,
        )


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


def _counts(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))]


LoadGenerator = Wrk | AsyncioClient


# --- CPU accounting: was the server alone on its core? ------------------------------------------------


@dataclass
class CpuSample:
    wall: float
    processes: float  # CPU seconds of all processes on the machine: user, nice, system (/proc/stat)
    irq: float  # CPU seconds in interrupts: on loopback, much of the TCP work lands here
    steal: float  # CPU seconds the hypervisor gave to other guests
    server: float  # CPU seconds of the server process
    ours: float  # CPU seconds of this process and its finished children (wrk)


@dataclass
class CpuUse:
    """CPU used during a timed run, in cores (1.0 = one core busy the whole time)."""

    server: float
    load_gen: float
    irq: float
    steal: float
    others: float  # every other process: what the benchmark did not bring

    def __str__(self) -> str:
        text = f"CPU: server {self.server:.0%}, load gen {self.load_gen:.0%}, irq {self.irq:.0%}"
        text += f", other processes {self.others:.0%}"
        return text + (f", steal {self.steal:.0%}" if self.steal >= 0.05 else "")


def cpu_sample(pid: int) -> CpuSample | None:
    try:
        hz = os.sysconf("SC_CLK_TCK")
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(
        time.perf_counter(),
        (user + nice + system) / hz,
        (irq + softirq) / hz,
        steal / hz,
        (int(stat[11]) + int(stat[12])) / hz,
        me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
    )


def cpu_between(a: CpuSample | None, b: CpuSample | None) -> CpuUse | None:
    if a is None or b is None or b.wall <= a.wall:
        return None
    wall = b.wall - a.wall
    server, ours = (b.server - a.server) / wall, (b.ours - a.ours) / wall
    others = max(0.0, (b.processes - a.processes) / wall - server - ours)
    return CpuUse(server, ours, (b.irq - a.irq) / wall, (b.steal - a.steal) / wall, others)


# --- json-server -------------------------------------------------------------------------------------


def json_server_entry(version: str, log: Callable[[str], None]) -> Path | None:
    """The CLI script of json-server `version` under bench/.cache/, installed with npm when missing."""
    prefix = CACHE / f"json-server-{version}"
    package = prefix / "node_modules" / "json-server"
    if not (package / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            log(f"json-server {version}: skipped (node and npm are needed)")
            return None
        log(f"json-server {version}: npm install --prefix {prefix.relative_to(ROOT)} json-server@{version}")
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"json-server@{version}"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            log(f"json-server {version}: skipped, npm install failed: {done.stderr.strip()[-500:]}")
            return None
    meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    bin_field = meta["bin"]
    entry = bin_field if isinstance(bin_field, str) else bin_field["json-server"]
    return package / entry


# --- the run -----------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def machine() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"nproc {usable} ({cpu}); {platform.system()} {platform.release()}",
        f"Python {platform.python_version()}; " + ", ".join(_versions()),
    ]


def _versions() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("uvicorn", "starlette", "uvloop", "httptools", "orjson"):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} missing")
    return out


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def startup_times(fixtures: Path | None, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        port = free_port()
        cmd = [*kantos_mock_command(), "serve", "--port", str(port)]
        if fixtures is not None:
            cmd += ["--fixtures", str(fixtures)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=server_env())
        try:
            times.append(wait_ready(proc, port, "/api/crm/objects", timeout=120))
        except RuntimeError as exc:
            stop(proc)
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise RuntimeError(f"kantos-mock serve did not start: {exc}\n{err}") from None
        stop(proc)
    return times


def precheck(
    run: Running, scenario: Scenario, req: Req, timeout: float = 30
) -> tuple[str, int | None, list[str]]:
    """Send one request as the load will; return a summary, the total matched and the ids returned.
    The first request of a kind may build an index: `timeout` allows for it."""
    status, headers, body = send(run.port, req, f"check{run.spec.name.replace('.', '')}", timeout)
    if status >= 400:
        raise RuntimeError(f"{run.spec.label} answered {status} to {req[0]} {req[1]}: {body[:300]!r}")
    if scenario.key not in ("query", "contains"):
        return f"{status}", None, []
    doc = json.loads(body)
    rows = doc["data"] if isinstance(doc, dict) else doc
    total: int | None = None
    if isinstance(doc, dict) and "pagination" in doc:
        total = doc["pagination"]["total"]
    elif isinstance(doc, dict) and "items" in doc:
        total = doc["items"]  # json-server 1.x
    elif "x-total-count" in headers:
        total = int(headers["x-total-count"])  # json-server 0.17
    return f"{status}, {len(rows)} rows of {total}", total, [r["id"] for r in rows]


@dataclass
class Measured:
    results: dict[tuple[str, str], Result] = field(default_factory=dict)
    servers: list[ServerSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="1 s per scenario and 1 start-up per set (smoke test)"
    )
    ap.add_argument("--records", type=int, default=100_000, help="contacts in the generated set (100,000)")
    ap.add_argument("--duration", type=float, help="seconds of load per scenario (5; 1 with --quick)")
    ap.add_argument("--warmup", type=float, help="seconds of untimed load before each (1; 0.3 with --quick)")
    ap.add_argument("--connections", type=int, default=16, help="concurrent connections (16)")
    ap.add_argument(
        "--only",
        help="comma-separated servers: mock, floor, json-server-1, json-server-0.17 (json-server: both)",
    )
    ap.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "asyncio"],
        default="auto",
        help="wrk when installed (auto), or the built-in asyncio client",
    )
    ap.add_argument("--floor-loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument(
        "--floor-http",
        choices=["httptools", "wire"],
        default="httptools",
        help="the floor's HTTP protocol: uvicorn's own (httptools, the targets' floor), or the mock's "
        "(wire: mockserver/wire.py, one write per response)",
    )
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    duration = args.duration or (1.0 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    startup_reps = 1 if args.quick else 3
    wanted = {"mock", "floor", "json-server-1", "json-server-0.17"}
    if args.only:
        picked = {s.strip() for s in args.only.split(",") if s.strip()}
        if "json-server" in picked:
            picked |= {"json-server-1", "json-server-0.17"}
            picked.discard("json-server")
        unknown = picked - wanted
        if unknown:
            ap.error(f"unknown server(s) in --only: {', '.join(sorted(unknown))}")
        wanted = picked

    load_before = loadavg()
    say(
        f"kantos-mockserver HTTP bench: {args.records:,} contacts, seed {args.seed}; "
        f"load average {load_before}"
    )
    for line in machine():
        say(line)

    with tempfile.TemporaryDirectory(prefix="kantos-bench-http-") as tmp:
        work = Path(tmp)
        wrk_path = shutil.which("wrk")
        gen: LoadGenerator
        if args.load_generator == "wrk" and wrk_path is None:
            ap.error("--load-generator wrk: wrk is not installed (apt-get install wrk)")
        if wrk_path is not None and args.load_generator in ("auto", "wrk"):
            gen = Wrk(wrk_path, work / "bench.lua", args.connections, threads=1)
        else:
            gen = AsyncioClient(args.connections)
            if args.load_generator == "auto":
                say("wrk not found (Debian: apt-get install wrk): using the asyncio client")
        say(f"load generator: {gen.describe()}; {duration:g} s per scenario after {warmup:g} s of warm-up")

        t0 = time.perf_counter()
        data = build_dataset(args.records, args.seed, work / "data")
        size = (data.fixtures / "records" / "contacts.json").stat().st_size / 1e6
        say(
            f"generated {args.records:,} contacts in {time.perf_counter() - t0:.1f} s "
            f"(records/contacts.json {size:.1f} MB, db.json {data.db_json.stat().st_size / 1e6:.1f} MB)"
        )

        startup: dict[str, list[float]] = {}
        if "mock" in wanted:
            say(
                f"start-up: kantos-mock serve until the first 200, {startup_reps} time(s) per fixture set ..."
            )
            startup["bundled"] = startup_times(None, startup_reps)
            startup["generated"] = startup_times(data.fixtures, startup_reps)

        specs = server_specs(wanted, data, args.floor_loop, args.floor_http, say)
        measured = Measured(servers=specs)
        totals: dict[str, dict[str, tuple[int | None, list[str]]]] = {}
        with contextlib.ExitStack() as stack:
            # All up at once, then each scenario runs on each server in turn: the ratios compare runs
            # seconds apart, so a change in the machine's load skews them less. An idle server costs
            # nothing, and the CPU figures show when one was not idle.
            runs: list[Running] = []
            for spec in specs:
                say(f"starting {spec.label} on {HOST} ...")
                run = stack.enter_context(running(spec, data, work))
                libs = mapped_libs(run.proc.pid)
                if spec.name in ("mock", "floor"):
                    loop = "uvloop" if "uvloop" in libs else "asyncio (uvloop not loaded)"
                    parser = "httptools" if "httptools" in libs else "h11 (httptools not loaded)"
                    spec.runtime = f"event loop {loop}, HTTP parser {parser}"
                runtime = f"; {spec.runtime}" if spec.runtime else ""
                say(f"   up in {run.startup_s:.2f} s on port {run.port}{runtime}")
                runs.append(run)
            for k, scenario in enumerate(SCENARIOS):
                say(f"\n== {scenario.title}")
                for n_run, run in enumerate(runs):
                    spec = run.spec
                    reqs_file = work / f"{spec.name}-{scenario.key}.txt"
                    reqs = write_requests(reqs_file, spec.dialect, scenario, data.ids)
                    summary, total, ids = precheck(run, scenario, reqs[0])
                    totals.setdefault(scenario.key, {})[spec.name] = (total, ids)
                    tag = f"s{n_run}k{k}"
                    gen.run(run.port, reqs_file, reqs, warmup, f"{tag}w", 0)
                    run.drain()
                    before = cpu_sample(run.proc.pid)
                    result = gen.run(run.port, reqs_file, reqs, duration, f"{tag}m", REQUESTS_PER_FILE // 2)
                    result.cpu = cpu_between(before, cpu_sample(run.proc.pid))
                    run.drain()
                    measured.results[(scenario.key, spec.name)] = result
                    errs = f"; {result.errors} errors ({result.error_detail})" if result.errors else ""
                    cpu = f"  {result.cpu}" if result.cpu is not None else ""
                    say(
                        f"   {spec.name:<17} {summary:<20} {result.rps:>8,.0f} req/s  "
                        f"p50 {_ms(result.p50_ms):>7} ms  p99 {_ms(result.p99_ms):>7} ms{cpu}{errs}"
                    )
            for run in runs:
                rss = rss_mb(run.proc.pid)
                if rss is not None:
                    run.spec.runtime += f"{'; ' if run.spec.runtime else ''}RSS after the run {rss:.0f} MB"

        report(measured, startup, totals, args.records, load_before)
    return 0


def server_specs(
    wanted: set[str], data: Dataset, floor_loop: str, floor_http: str, log: Callable[[str], None]
) -> list[ServerSpec]:
    specs = []
    if "floor" in wanted:
        specs.append(
            ServerSpec(
                "floor",
                "floor (bare Starlette)" if floor_http == "httptools" else "floor (Starlette, wire)",
                Dialect(),
                lambda port: [
                    sys.executable,
                    "-P",  # keep bench/ off sys.path: bench/http.py would shadow the stdlib's http
                    str(FLOOR),
                    "--port",
                    str(port),
                    "--bodies",
                    str(data.bodies),
                    "--loop",
                    floor_loop,
                    "--http",
                    floor_http,
                ],
                lambda d: "/api/crm/objects",
            )
        )
    if "mock" in wanted:
        specs.append(
            ServerSpec(
                "mock",
                "mock",
                Dialect(),
                lambda port: [
                    sys.executable,
                    "-m",
                    "mockserver",
                    "serve",
                    "--fixtures",
                    str(data.fixtures),
                    "--port",
                    str(port),
                ],
                lambda d: "/api/crm/objects",
            )
        )
    node = shutil.which("node")
    for name, version, dialect in (
        ("json-server-1", JSON_SERVER_1, JsonServer1()),
        ("json-server-0.17", JSON_SERVER_017, JsonServer017()),
    ):
        if name not in wanted:
            continue
        entry = json_server_entry(version, log)
        if entry is None or node is None:
            continue
        db = data.root / f"db-{name}.json"  # each writes its own copy
        shutil.copy(data.db_json, db)
        extra = ["--quiet"] if version.startswith("0.") else []  # 0.17 logs every request otherwise
        node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()

        def command(port: int, entry: Path = entry, db: Path = db, extra: list[str] = extra) -> list[str]:
            return [node, str(entry), str(db), "--port", str(port), "--host", HOST, *extra]

        specs.append(
            ServerSpec(
                name,
                f"json-server {version}",
                dialect,
                command,
                lambda d: f"/contacts/{d.ids[0]}",
                runtime=f"node {node_version}",
                # 1.x watches its file and re-reads all of it a moment after each of its own writes.
                settle=0.0 if version.startswith("0.") else 0.3,
            )
        )
    return specs


# --- the report --------------------------------------------------------------------------------------


def _label(name: str) -> str:
    return {
        "json-server-1": f"json-server {JSON_SERVER_1}",
        "json-server-0.17": f"json-server {JSON_SERVER_017}",
    }.get(name, name)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "-"
    r = a / b
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:.0f}"


def _ms(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def report(
    m: Measured,
    startup: dict[str, list[float]],
    totals: dict[str, dict[str, tuple[int | None, list[str]]]],
    n: int,
    load_before: str,
) -> None:
    names = [s.name for s in m.servers]
    refs = [r for r in ("floor", "json-server-1", "json-server-0.17") if r in names]
    short = {"floor": "floor", "json-server-1": "js1", "json-server-0.17": "js0.17"}
    group = 2 + max(7 * len(refs), 14)  # width of one group of ratio cells
    others = ", ".join(f"{short[r]} ({_label(r)})" for r in refs if r != "floor")
    say()
    say(f"Results on {n:,} contacts: req/s (higher is better), p50 and p99 latency (lower is better),")
    if refs:
        say(
            "each also as a ratio: this row's figure / the same figure, in the same scenario, of "
            + " and of ".join(
                (["the floor (its matching endpoint)"] if "floor" in refs else [])
                + ([others] if others else [])
            )
        )
    head = f"{'scenario':<30} {'server':<17} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'errors':>6}"
    top = " " * len(head)
    if refs:
        for what in ("req/s", "p50", "p99"):
            top += f"{what + ' ratio to':>{group}}"
            head += f"{''.join(f'{short[r]:>7}' for r in refs):>{group}}"
    say(top.rstrip())
    say(head)
    say("-" * len(head))
    for scenario in SCENARIOS:
        label = scenario.title
        for spec in m.servers:
            r = m.results.get((scenario.key, spec.name))
            if r is None:
                continue
            line = f"{label:<30} {spec.name:<17} {r.rps:>8,.0f} {_ms(r.p50_ms):>7} {_ms(r.p99_ms):>8}"
            line += f" {r.errors:>6}"
            for attr in ("rps", "p50_ms", "p99_ms") if refs else ():
                cells = ""
                for ref in refs:
                    other = m.results.get((scenario.key, ref))
                    cells += f"{_ratio(getattr(r, attr), getattr(other, attr) if other else None):>7}"
                line += f"{cells:>{group}}"
            say(line)
            label = ""
        say()
    say(
        "floor: GET one record, POST and PATCH answer its precomputed record; both queries its "
        "precomputed page of 25"
    )

    # Same answers: the queries are the same questions in each server's syntax.
    for key in ("query", "contains"):
        seen = totals.get(key, {})
        base = seen.get("mock")
        if base is None:
            continue
        for name, (total, ids) in seen.items():
            if name in ("mock", "floor"):
                continue
            same = (
                "same total and page ids" if (total, ids) == base else f"differs: total {total} vs {base[0]}"
            )
            say(f"check: first {key} request, {name} vs the mock: {same}")

    say()
    say("Targets (the benchmark judges them; no timed test does):")

    def rps(scn: str, server: str) -> float | None:
        r = m.results.get((scn, server))
        return r.rps if r else None

    def target(text: str, value: float | None, goal: float, unit: str, higher: bool = True) -> None:
        if value is None:
            say(f"  {text:<72} n/a (not measured in this run)")
            return
        ok = value >= goal if higher else value < goal
        shown = f"{value:.0%}" if unit == "%" else f"{value:.1f}{unit}"
        say(f"  {text:<72} {shown:>8}  {'OK' if ok else 'MISS'}")

    def frac(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    target(
        "GET one record: mock >= 70% of the floor's req/s",
        frac(rps("get", "mock"), rps("get", "floor")),
        0.7,
        "%",
    )
    target(
        f"page-3 query on {n:,}: mock >= 40% of the floor's req/s (page of 25)",
        frac(rps("query", "mock"), rps("query", "floor")),
        0.4,
        "%",
    )
    for js in ("json-server-1", "json-server-0.17"):
        target(
            f"page-3 query on {n:,}: mock >= 20x {js}'s req/s",
            frac(rps("query", "mock"), rps("query", js)),
            20,
            "x",
        )
    target(
        f"random $contains on {n:,}: mock >= 10% of the floor's req/s (page of 25)",
        frac(rps("contains", "mock"), rps("contains", "floor")),
        0.1,
        "%",
    )
    target(
        f"random $contains on {n:,}: mock >= 50x json-server-1's req/s",
        frac(rps("contains", "mock"), rps("contains", "json-server-1")),
        50,
        "x",
    )
    for key, share in (("post", 0.4), ("patch", 0.6)):
        target(
            f"{key.upper()}: mock >= {share:.0%} of the floor's req/s",
            frac(rps(key, "mock"), rps(key, "floor")),
            share,
            "%",
        )
        result = m.results.get((key, "mock"))
        p99 = result.p99_ms if result else None
        target(f"{key.upper()}: mock p99 <= 10 ms", p99, 10.0, " ms", higher=False)
    for key, text, goal in (("bundled", "bundled fixtures", 1.0), ("generated", f"{n:,} contacts", 5.0)):
        times = startup.get(key)
        target(
            f"start-up on the {text} < {goal:g} s (median)",
            statistics.median(times) if times else None,
            goal,
            " s",
            higher=False,
        )

    if startup:
        say()
        say("Start-up: spawning `kantos-mock serve` to the first 200 on GET /api/crm/objects")
        for key, text in (
            ("bundled", "bundled fixtures"),
            ("generated", f"{n:,} contacts (+ the bundled companies)"),
        ):
            times = startup[key]
            each = ", ".join(f"{t:.2f}" for t in times)
            say(f"  {text:<40} median {statistics.median(times):.2f} s  (runs: {each})")

    say()
    say("Servers:")
    for spec in m.servers:
        say(f"  {spec.label:<26} {spec.runtime}")
    say(f"Machine: load average before the run {load_before}, after {loadavg()}")
    foreign = [(r.cpu.others, r.cpu.steal, key) for key, r in m.results.items() if r.cpu is not None]
    if foreign:
        worst, _, (scn, server) = max(foreign)
        mean = statistics.mean(o for o, _, _ in foreign)
        steal = max(s for _, s, _ in foreign)
        say(
            f"  CPU taken by processes other than the server and the load generator during the timed "
            f"runs: mean {mean:.0%} of a core, at most {worst:.0%} ({server}, {scn}); hypervisor steal at "
            f"most {steal:.0%}"
        )
    for line in machine():
        say(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
