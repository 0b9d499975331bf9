"""The latency the validation proxy adds in front of the mock, side by side with going direct.

Run: `./dev bench proxy` (or `.venv/bin/python -P bench/proxy.py`); `--quick` is a short smoke run.
One run starts `kantos-mock serve` (bundled fixtures) and `kantos-mock proxy --upstream` in front
of it, each its own process as in a CI job, then:
1. latency: one keep-alive connection each, requests strictly one at a time, alternating direct and
   through the proxy (so a noisy neighbour hits both alike): a query answering a page of 25
   contacts, each request a different filter and page; p50 and p99 of each, and what the proxy adds;
2. throughput: wrk (when installed) with a few connections for a few seconds on the same page of
   25, in rounds of one direct run then one through the proxy (`--rounds`, default 3), each
   round's ratio printed, judged by the median ratio (so a neighbour's burst that hits one round
   does not decide the verdict);
3. the checks the proxy ran meanwhile (its report at shutdown: the exchanges it checked, and those
   it let through unchecked because its backlog was full), beside the requests sent through it, and
   the machine's load average before and after, so a loaded machine shows.

The mock serves the bundled fixtures with the admin key's rate limits lifted (the limiter still
runs on every request), so no run ends in 429s.

Targets (judged here, never by timed tests): the proxy adds <= 1 ms to the p50 of a page of 25, and
its req/s is >= 50% of going direct.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import yaml

KEY = "kantos_admin_local_key"
PAGE = "/api/crm/records/query?" + urlencode({"object_id": "obj_contacts", "per_page": 25, "sort": "name"})


BUNDLED = Path(__file__).resolve().parent.parent / "fixtures"


def fixtures(root: Path) -> Path:
    """The bundled fixtures, with the admin key's rate limits lifted."""
    out = root / "fixtures"
    shutil.copytree(BUNDLED, out)
    keys = yaml.safe_load((out / "api_keys.yaml").read_text(encoding="utf-8"))
    for key in keys["keys"]:
        if key["key"] == KEY:
            key["per_minute"], key["per_day"] = 10**9, 10**10
    (out / "api_keys.yaml").write_text(yaml.safe_dump(keys, sort_keys=False), encoding="utf-8")
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/crm/objects", headers={"X-Api-Key": KEY})
            if c.getresponse().status == 200:
                c.close()
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing answered on port {port}")


def query(i: int) -> str:
    """A different page of 25 each time: a score threshold and a page that both vary."""
    filters = json.dumps({"score": {"$gte": i % 10}})
    return "/api/crm/records/query?" + urlencode(
        {"object_id": "obj_contacts", "filters": filters, "sort": "name", "page": 1 + i % 2, "per_page": 25}
    )


def latencies(ports: tuple[int, int], n: int) -> tuple[list[float], list[float], int]:
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports]
    out: tuple[list[float], list[float]] = ([], [])
    records = 0
    for i in range(n + n // 10):
        for side in (i % 2, 1 - i % 2):  # alternate which goes first
            path = query(i)
            t = time.perf_counter()
            conns[side].request("GET", path, headers={"X-Api-Key": KEY})
            r = conns[side].getresponse()
            body = r.read()
            elapsed = time.perf_counter() - t
            if r.status != 200:
                raise SystemExit(f"{r.status} {body[:200]!r}")
            if i >= n // 10:  # the first tenth warms up
                out[side].append(elapsed * 1000)
                records = max(records, len(json.loads(body)["data"]))
    for c in conns:
        c.close()
    return out[0], out[1], records


def wrk(port: int, seconds: int, connections: int) -> tuple[float, int] | None:
    """Requests a second, and requests sent."""
    if shutil.which("wrk") is None:
        return None
    run = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-H",
            f"X-Api-Key: {KEY}",
            f"http://127.0.0.1:{port}{PAGE}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"Requests/sec:\s+([0-9.]+)", run.stdout)
    sent = re.search(r"(\d+) requests in", run.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", run.stdout)
    if errors:
        raise SystemExit(f"wrk saw errors: {run.stdout}")
    return (float(m.group(1)), int(sent.group(1)) if sent else 0) if m else None


def children(pid: int) -> list[int] | None:
    """The child processes of `pid` (Linux /proc), None where that cannot be read."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return None


def running(pid: int) -> bool:
    """`pid` is running or waiting for a CPU (not asleep waiting for work)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
    except OSError:
        return False


def settle(pid: int, limit: float = 180.0) -> float:
    """Wait (up to `limit` s) until the proxy's checks have caught up: its checking process found
    asleep, waiting for work, ten times in a row. So each wrk run starts with no backlog, and no
    direct run shares the CPUs with the checks of an earlier proxy run. Returns the seconds waited."""
    start = time.monotonic()
    checker = children(pid)
    if not checker:
        return 0.0
    idle = 0
    while idle < 10 and time.monotonic() - start < limit:
        idle = 0 if running(checker[0]) else idle + 1
        time.sleep(0.02)
    return time.monotonic() - start


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--requests", type=int, help="latency samples per side (default 3000; quick 200)")
    ap.add_argument("--seconds", type=int, help="each wrk run (default 5; quick 1)")
    ap.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    ap.add_argument("--rounds", type=int, help="wrk rounds, each direct then proxy (default 3; quick 1)")
    args = ap.parse_args()
    n = args.requests or (200 if args.quick else 3000)
    seconds = args.seconds or (1 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 3)
    load_before = os.getloadavg()
    mock_port, proxy_port = free_port(), free_port()
    py = [sys.executable, "-m", "mockserver"]
    tmp = tempfile.TemporaryDirectory(prefix="kantos-bench-proxy-")
    served = fixtures(Path(tmp.name))
    mock = subprocess.Popen(
        [*py, "serve", "--fixtures", str(served), "--port", str(mock_port), "--seed", "1"],
        stdout=subprocess.DEVNULL,
    )
    proxy = subprocess.Popen(
        [*py, "proxy", "--upstream", f"http://127.0.0.1:{mock_port}", "--port", str(proxy_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_up(mock_port)
        wait_up(proxy_port)
        direct, through, records = latencies((mock_port, proxy_port), n)
        sent_through = len(through) + n // 10 + 1  # wait_up's request and the warm-up count too
        rates: dict[str, list[float]] = {"direct": [], "proxy": []}
        waited = 0.0
        for _ in range(rounds):
            for name, port in (("direct", mock_port), ("proxy", proxy_port)):
                waited += settle(proxy.pid)
                result = wrk(port, seconds, args.connections)
                if result is not None:
                    rates[name].append(result[0])
                    if name == "proxy":
                        sent_through += result[1]
    finally:
        proxy.send_signal(signal.SIGINT)
        out, err = proxy.communicate(timeout=300)
        mock.send_signal(signal.SIGINT)
        mock.wait(timeout=30)
        tmp.cleanup()
    load_after = os.getloadavg()
    checked = re.search(r"; (\d+) exchange\(s\)", out)
    unchecked = re.search(r"(\d+) exchange\(s\) went through unchecked", out)
    deviations = re.search(r"proxy: (\d+) deviation", out)

    print(f"validation proxy overhead: a page of {records} records, {n} requests per side, one at a time")
    print(f"{'':<10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, values in (("direct", direct), ("proxy", through)):
        print(f"{name:<10}{pct(values, 50):>10.3f}{pct(values, 99):>10.3f}{statistics.fmean(values):>10.3f}")
    added = pct(through, 50) - pct(direct, 50)
    print(f"{'added':<10}{added:>10.3f}{pct(through, 99) - pct(direct, 99):>10.3f}")
    verdicts = [f"p50 added {added:.3f} ms (target <= 1 ms): {'MET' if added <= 1.0 else 'NOT MET'}"]
    if rates["direct"] and len(rates["proxy"]) == len(rates["direct"]):
        print(f"req/s with wrk ({args.connections} connections, {seconds} s each), round by round:")
        ratios = []
        for i, (d, p) in enumerate(zip(rates["direct"], rates["proxy"], strict=True), 1):
            ratios.append(p / d)
            print(f"  round {i}: direct {d:.0f}, proxy {p:.0f}: {100 * p / d:.0f}% of direct")
        ratio = statistics.median(ratios)
        print(f"  median of {len(ratios)} round(s): {100 * ratio:.0f}% of direct")
        print(f"  (before each run the checks of the earlier ones caught up: {waited:.1f} s waited in all)")
        verdicts.append(
            f"req/s {100 * ratio:.0f}% of direct, median of {len(ratios)} round(s) (target >= 50%): "
            f"{'MET' if ratio >= 0.5 else 'NOT MET'}"
        )
    else:
        print("req/s: wrk is not installed; skipped")
    print(
        f"the proxy checked {checked.group(1) if checked else '?'} exchange(s) and let "
        f"{unchecked.group(1) if unchecked else 0} through unchecked (its backlog full) of about "
        f"{sent_through} sent through it (wrk leaves out those in flight when it stops); "
        f"{deviations.group(1) if deviations else '?'} deviation(s)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f} (each server is one process; the load generator and the proxy's "
        "checks share the same CPUs)"
    )
    for v in verdicts:
        print(v)
    if proxy.returncode not in (0, None):
        print(err, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
