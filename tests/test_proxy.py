"""The validation proxy: in front of the mock it changes nothing and finds nothing; in front of
deliberately broken servers it reports each deviation under its rule; client mistakes are the
client's and still reach the server; `--record` writes a fixture set the mock then serves."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree as ET

import httpx
import pytest
from kit_support import call_app, read_body
from starlette.types import Message, Receive, Scope, Send

from mockserver import create_app
from mockserver.conformance import Options, check
from mockserver.domain.fixtures import load_fixtures
from mockserver.proxy import ValidationProxy, checker
from mockserver.proxy.forward import Forwarder, Wire
from mockserver.server import MockServer, bind

KEY = "kantos_admin_local_key"
H = {"X-Api-Key": KEY}
README = Path(__file__).resolve().parent.parent / "README.md"
QUERY = "/api/crm/records/query"


def q(**params: Any) -> dict[str, str]:
    return {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in params.items()}


# --- in front of the mock ----------------------------------------------------------------------

#: (method, path, query params, JSON body): queries of every kind, and a write of each kind.
BATTERY: list[tuple[str, str, dict[str, str] | None, Any]] = [
    ("GET", "/api/crm/objects", None, None),
    ("GET", "/api/crm/objects/obj_deals", None, None),
    ("GET", QUERY, q(object_id="obj_contacts"), None),
    ("GET", QUERY, q(object_id="obj_contacts", filters={"status": "active"}), None),
    (
        "GET",
        QUERY,
        q(object_id="obj_contacts", filters={"score": {"$gte": 40, "$lt": 90}}, sort="score"),
        None,
    ),
    (
        "GET",
        QUERY,
        q(object_id="obj_contacts", filters={"name": {"$contains": "an"}}, sort="name", order="desc"),
        None,
    ),
    ("GET", QUERY, q(object_id="obj_contacts", filters={"tags": {"$contains": "vip"}}, sort="tags"), None),
    (
        "GET",
        QUERY,
        q(object_id="obj_contacts", filters={"email": {"$ends_with": ".example"}}, per_page=7, page=3),
        None,
    ),
    ("GET", QUERY, q(object_id="obj_contacts", filters={"phone": {"$empty": True}}, sort="phone"), None),
    (
        "GET",
        QUERY,
        q(object_id="obj_contacts", filters={"source": {"$in": ["api", "event"]}}, sort="source"),
        None,
    ),
    (
        "GET",
        QUERY,
        q(object_id="obj_contacts", filters={"status": {"$nin": ["new"]}}, sort="status", per_page=100),
        None,
    ),
    (
        "GET",
        QUERY,
        q(object_id="obj_contacts", filters={"created_at": {"$gte": "2023-01-01"}}, sort="updated_at"),
        None,
    ),
    ("GET", QUERY, q(object_id="obj_contacts", sort="do_not_contact", order="desc", per_page=50), None),
    (
        "GET",
        QUERY,
        q(object_id="obj_deals", filters={"value": {"$gt": 1000}}, sort="close_date", per_page=10),
        None,
    ),
    ("GET", QUERY, q(object_id="obj_deals", sort="stage", order="desc", page=2, per_page=10), None),
    ("GET", QUERY, q(object_id="obj_companies", page=999), None),
    ("GET", QUERY, q(object_id="obj_companies", filters={"id": {"$in": []}}), None),
    (
        "POST",
        "/api/crm/record",
        None,
        {"object_id": "obj_contacts", "field_values": {"name": "Jane", "status": "new"}},
    ),
    ("GET", QUERY, q(object_id="obj_contacts", filters={"name": "Jane"}), None),
    ("GET", "/api/crm/record/does-not-exist", None, None),
]


def _send(client: httpx.Client, base: str, method: str, path: str, params: Any, body: Any) -> httpx.Response:
    return client.request(method, base + path, params=params, json=body, headers=H)


def test_answers_through_the_proxy_are_the_same_bytes_and_show_no_deviation() -> None:
    """Two mocks with the same seed and a frozen clock: one direct, one behind the proxy."""
    with MockServer(seed=5) as direct, MockServer(seed=5) as behind, ValidationProxy(behind.url) as proxy:
        now = datetime.now(UTC).replace(microsecond=0)
        direct.clock.freeze(now)
        behind.clock.freeze(now)
        created = ""
        with httpx.Client() as client:
            steps = list(BATTERY)
            for i, (method, path, params, body) in enumerate(steps):
                a = _send(client, direct.url, method, path, params, body)
                b = _send(client, proxy.url, method, path, params, body)
                assert (b.status_code, b.content) == (a.status_code, a.content), (i, method, path)
                assert _headers(b) == _headers(a), (i, method, path)
                assert 0 <= _remaining(a) - _remaining(b) <= 3
                if method == "POST":
                    created = a.json()["id"]
            for method, body in (
                ("PATCH", {"field_values": {"status": "qualified", "notes": "x"}}),
                ("PATCH", {"field_values": {"notes": None}}),
                ("GET", None),
                ("DELETE", None),
                ("GET", None),
            ):
                path = f"/api/crm/record/{created}"
                a = _send(client, direct.url, method, path, None, body)
                b = _send(client, proxy.url, method, path, None, body)
                assert (b.status_code, b.content) == (a.status_code, a.content), (method, path)
                assert _headers(b) == _headers(a)
        proxy.drain()
        assert proxy.deviations == 0, proxy.render()
        assert proxy.mistakes == 0, proxy.render()
        exercised = {r.id for c in proxy.server_report.checks.values() if c.runs for r in c.rules}
        for rule in (
            "filters.range",
            "sorting.value",
            "paging.total-pages",
            "paging.edges",
            "records.patch-merge",
            "records.null-clears",
            "records.updated-at",
            "records.delete",
            "records.create",
            "errors.shape",
            "rate-limits.headers",
            "spec.schemathesis",
        ):
            assert rule in exercised, rule


def _headers(r: httpx.Response) -> list[tuple[str, str]]:
    """All but Date and X-RateLimit-Remaining: the proxy fetches each object's fields once with the
    client's key, which the upstream counts (three objects: three requests)."""
    return [(k, v) for k, v in r.headers.multi_items() if k.lower() not in ("date", "x-ratelimit-remaining")]


def _remaining(r: httpx.Response) -> int:
    return int(r.headers["x-ratelimit-remaining"])


def test_the_readme_examples_pass_through_with_no_deviation() -> None:
    marker = "# Query records, with filters, sorting and paging"
    text = README.read_text(encoding="utf-8")
    if marker not in text:
        _the_query_guide_passes_through_with_no_deviation()
        return
    block = text.split(marker, 1)[1].split("```", 1)[0]
    commands = [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip().startswith("curl")]
    assert len(commands) == 9
    with MockServer(seed=3) as mock, ValidationProxy(mock.url) as proxy:
        env = {**os.environ, "KEY": KEY, "BASE": proxy.url}
        rec_id = ""
        for command in commands:
            out = subprocess.run(
                ["sh", "-c", command.replace("REC_ID", rec_id) + " -w '\\n%{http_code}'"],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            body, status = out.rsplit("\n", 1)
            assert status.startswith("2"), (command, out)
            if "-X POST" in command:
                rec_id = json.loads(body)["id"]
        proxy.drain()
        assert proxy.deviations == 0 and proxy.mistakes == 0, proxy.render()
        assert proxy.exchanges == 9


def _the_query_guide_passes_through_with_no_deviation() -> None:
    """The docs' query guide (where the README's query examples went): its runnable shell blocks
    under "## Query records", each run as the docs' example runner runs them, against the proxy."""
    guide = (README.parent / "docs" / "guides" / "http.md").read_text(encoding="utf-8")
    section = guide.split("\n## Query records\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"<!-- run[^>]*-->\n```sh\n(.*?)```", section, re.S)
    assert blocks
    with MockServer(seed=3) as mock, ValidationProxy(mock.url) as proxy:
        env = {**os.environ, "KEY": KEY, "BASE": proxy.url}
        for block in blocks:
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True, timeout=60
            )
            assert run.returncode == 0, (block, run.stdout, run.stderr)
        proxy.drain()
        assert proxy.deviations == 0 and proxy.mistakes == 0, proxy.render()
        assert proxy.exchanges >= sum(b.count("curl ") for b in blocks)


def test_the_conformance_kit_passes_through_the_proxy_and_the_proxy_finds_no_deviation() -> None:
    with MockServer(seed=21) as mock, ValidationProxy(mock.url, out=io.StringIO()) as proxy:
        report = check(
            proxy.url,
            KEY,
            quick=True,
            fuzz=False,
            out=io.StringIO(),
            seed=4,
            options=Options(intake_key="kantos_intake_local_key", non_admin_key="kantos_server_local_key"),
        )
        proxy.drain(120)
    assert not report.failing, [c.id for c in report.failing]
    assert proxy.deviations == 0, proxy.render()
    assert proxy.exchanges > 500
    # The kit sends malformed requests on purpose: each is the client's, under its rule.
    client_rules = set(proxy.findings("client"))
    assert {
        "paging.limits",
        "filters.operand-types",
        "formats.every-violation",
        "errors.auth",
    } <= client_rules


class SlowWrites:
    """The mock, answering a PATCH marked X-Slow-Answer 100 ms after applying it, and taking 20 ms
    before applying any other: the second PATCH applied is answered first."""

    def __init__(self, app: Any) -> None:
        self.app, self.state = app, app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "PATCH":
            await self.app(scope, receive, send)
        elif any(k == b"x-slow-answer" for k, _ in scope["headers"]):

            async def later(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await asyncio.sleep(0.1)
                await send(message)

            await self.app(scope, receive, later)
        else:
            await asyncio.sleep(0.02)
            await self.app(scope, receive, send)


def test_concurrent_writes_to_one_record_are_no_deviation() -> None:
    """Two PATCHes of one record at once: either may be applied first, so neither answer is held to
    the version the proxy saw before them."""
    with MockServer(app=SlowWrites(create_app(seed=6))) as mock, ValidationProxy(mock.url) as proxy:  # type: ignore[arg-type]
        rid = mock.backend.query_records("obj_contacts", per_page=1).records[0].id
        clients = [httpx.Client(base_url=proxy.url, headers=h) for h in (H, {**H, "X-Slow-Answer": "1"})]
        clients[0].get(f"/api/crm/record/{rid}")
        barrier = threading.Barrier(2)

        def patch(client: httpx.Client, values: dict[str, Any]) -> None:
            barrier.wait()
            assert client.patch(f"/api/crm/record/{rid}", json={"field_values": values}).status_code == 200

        for i in range(5):
            threads = [
                threading.Thread(target=patch, args=(clients[0], {"notes": f"note {i}"})),
                threading.Thread(target=patch, args=(clients[1], {"score": i})),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        clients[0].get(f"/api/crm/record/{rid}")
        for c in clients:
            c.close()
        proxy.drain()
        assert proxy.deviations == 0, proxy.render()
        assert proxy.server_report.checks["records.patch-merges"].runs == 10


def test_a_large_body_sent_with_expect_100_continue_goes_through() -> None:
    """curl sends `Expect: 100-continue` with bodies over 1 KiB: the answer is the upstream's final one."""
    notes = "n" * 5000
    with MockServer(seed=8) as mock, ValidationProxy(mock.url) as proxy:
        out = subprocess.run(
            ["curl", "-s", "-X", "POST", proxy.url + "/api/crm/record", "-H", f"X-Api-Key: {KEY}",
             "-H", "Content-Type: application/json", "-w", "\n%{http_code}", "--data-binary",
             json.dumps({"object_id": "obj_contacts", "field_values": {"name": "Big", "notes": notes}})],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        proxy.drain()
    body, status = out.rsplit("\n", 1)
    assert status == "201" and json.loads(body)["field_values"]["notes"] == notes
    assert proxy.deviations == 0, proxy.render()


def test_an_interim_100_continue_from_the_upstream_is_not_taken_for_the_answer() -> None:
    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # until the client hangs up
        writer.close()
        await writer.wait_closed()

    async def main() -> tuple[bytes, list[Wire]]:
        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        seen: list[Wire] = []
        async with server:
            fwd = Forwarder(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen.append)
            listening = await fwd.serve(bind("127.0.0.1", 0))
            reader, writer = await asyncio.open_connection("127.0.0.1", listening.sockets[0].getsockname()[1])
            writer.write(b"POST /api/crm/record HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            answer = await asyncio.wait_for(reader.readuntil(b"ok"), 10)
            writer.close()
            await fwd.shutdown(listening)
            return answer, seen

    answer, seen = asyncio.run(main())
    assert answer == b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
    assert [(w[0], w[5], w[6], w[7]) for w in seen] == [("POST", 201, [(b"content-length", b"2")], b"ok")]


async def _through_forwarder(
    upstream: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    client: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
) -> tuple[Any, list[Wire]]:
    """`client` talks to a Forwarder in front of `upstream` (both raw asyncio streams)."""
    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    seen: list[Wire] = []
    async with server:
        fwd = Forwarder(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen.append)
        listening = await fwd.serve(bind("127.0.0.1", 0))
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.sockets[0].getsockname()[1])
        try:
            result = await asyncio.wait_for(client(reader, writer), 30)
        finally:
            writer.close()
            await writer.wait_closed()
            await fwd.shutdown(listening)
        return result, seen


def test_an_answer_streams_through_as_the_upstream_sends_it() -> None:
    """The upstream sends the first chunk and waits until the client has it: a proxy that held the
    answer back would never see the rest."""
    release = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-up: 1\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
        await writer.wait_closed()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(b"GET /api/crm/objects HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await reader.readuntil(b"first\r\n")
        release.set()
        return head + await reader.readuntil(b"0\r\n\r\n")

    answer, seen = asyncio.run(_through_forwarder(upstream, client))
    assert answer == (
        b"HTTP/1.1 200 OK\r\nx-up: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"
    )
    assert [(w[5], w[6], w[7]) for w in seen] == [(200, [(b"x-up", b"1")], b"firstsecond")]


def test_pipelined_requests_and_a_chunked_body_go_through_in_order() -> None:
    """Two requests in one write, the first with a chunked body: the upstream gets each whole, in
    order, on keep-alive connections; the client gets the answers in the order it asked."""
    got: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await serve(reader, writer)
        writer.close()
        await writer.wait_closed()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            body = b""
            if b"transfer-encoding: chunked" in head:
                while (size := int((await reader.readline()).strip(), 16)) > 0:
                    body += (await reader.readexactly(size + 2))[:-2]
                await reader.readline()
            got.append(head.split(b"\r\n", 1)[0] + b" " + body)
            answer = b"answer to " + head.split(b" ", 2)[1]
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(answer), answer))
            await writer.drain()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[bytes]:
        writer.write(
            b"POST /one HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /two HTTP/1.1\r\nhost: x\r\n\r\n"
        )
        answers = []
        for _ in range(2):
            await reader.readuntil(b"\r\n\r\n")
            answers.append(await reader.readexactly(len(b"answer to /one")))
        return answers

    answers, seen = asyncio.run(_through_forwarder(upstream, client))
    assert answers == [b"answer to /one", b"answer to /two"]
    assert got == [b"POST /one HTTP/1.1 abcde", b"GET /two HTTP/1.1 "]
    assert [(w[0], w[1], w[4]) for w in seen] == [("POST", b"/one", b"abcde"), ("GET", b"/two", b"")]


def test_an_answer_before_the_whole_body_closes_that_upstream_connection_instead_of_reusing_it() -> None:
    """The mock answers 413 after the first MiB of a larger body, and waits on that connection for
    the rest. The proxy stops forwarding the body once the answer is complete, so it must not give
    the connection to the next request: the mock would read that request as the missing body (a
    GET that never got its answer, or an "Invalid HTTP request" later: a full local run saw the second)."""
    import socket

    declared, first = 2 * 1024 * 1024, 1024 * 1024 + 64 * 1024
    head = (
        f"POST /api/crm/record HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    get = f"GET /api/crm/objects HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n\r\n".encode()
    with MockServer(seed=9) as mock, ValidationProxy(mock.url, out=io.StringIO()) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(head + b" " * first)
            answer = b""
            while b"PAYLOAD_TOO_LARGE" not in answer:
                answer += s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 413 ")
            s.sendall(b" " * (declared - first))  # the rest of the body, which the proxy drops
        # A new client connection: its request goes upstream on a pooled connection, if any.
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(get)
            answer = b""
            while b"obj_contacts" not in answer:
                part = s.recv(65536)
                assert part, answer
                answer += part
        assert answer.startswith(b"HTTP/1.1 200 OK")


def test_an_upstream_that_does_not_answer_is_a_502_in_the_kantos_shape() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
        with ValidationProxy(gone, out=io.StringIO()) as proxy, httpx.Client(headers=H) as c:
            r = c.get(proxy.url + QUERY, params={"object_id": "obj_contacts"})
            again = c.get(proxy.url + "/api/crm/objects")  # the client's connection still serves
            proxy.drain()
    assert (r.status_code, again.status_code) == (502, 502)
    assert r.json()["code"] == "BAD_GATEWAY" and r.json()["details"] == {"upstream": gone}
    assert proxy.exchanges == 2
    assert any("did not answer" in p for p in proxy.server_report.problems), proxy.render()


@pytest.mark.parametrize("cap", ["MAX_BACKLOG", "MAX_BACKLOG_BYTES"])
def test_exchanges_past_the_backlog_cap_go_through_unchecked_and_are_counted(
    monkeypatch: pytest.MonkeyPatch, cap: str
) -> None:
    monkeypatch.setattr(checker, cap, 0)  # every exchange finds the backlog full
    with (
        MockServer(seed=2) as mock,
        ValidationProxy(mock.url) as proxy,
        httpx.Client(base_url=proxy.url, headers=H) as c,
    ):
        sizes = (5, 500)
        statuses = [c.get(QUERY, params=q(object_id="obj_contacts", per_page=n)).status_code for n in sizes]
    assert statuses == [200, 400]  # forwarded all the same
    assert (proxy.exchanges, proxy.state.unchecked, proxy.mistakes) == (0, 2, 0)
    assert "2 exchange(s) went through unchecked" in proxy.render()


def test_the_checks_yield_the_cpu_while_traffic_flows_and_are_lifted_while_waited_for() -> None:
    with MockServer(seed=2) as mock, ValidationProxy(mock.url) as proxy:
        assert proxy.checker is not None
        chk = proxy.checker
        if not chk._liftable:
            pytest.skip("this process may not lift a priority back (needs CAP_SYS_NICE or RLIMIT_NICE >= 20)")
        pid = chk._proc.pid
        # The priority each batch went to the checks at, and the questions in it.
        sent: list[tuple[list[str], int]] = []
        send = chk._conn.send

        def spy(batch: list[Any]) -> None:
            sent.append(([m[0] for m in batch if len(m) == 2], os.sched_getscheduler(pid)))
            send(batch)

        chk._conn.send = spy  # type: ignore[method-assign]
        with httpx.Client(base_url=proxy.url, headers=H) as c:
            while not any(not questions for questions, _ in sent):  # until exchanges were sent on
                assert c.get("/api/crm/objects").status_code == 200
            flowing = [policy for questions, policy in sent if not questions]
        proxy.drain()
        assert flowing and set(flowing) == {os.SCHED_IDLE}, sent
        # Waiting for the checks lifts them back; and so does the traffic pausing (a liveness
        # check: the limit is far beyond the fraction of a second it takes).
        assert [policy for questions, policy in sent if questions] == [os.SCHED_OTHER], sent
        deadline = time.monotonic() + 30
        while os.sched_getscheduler(pid) != os.SCHED_OTHER and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.sched_getscheduler(pid) == os.SCHED_OTHER
        assert proxy.exchanges >= 1 and proxy.deviations == 0


# --- in front of broken servers -------------------------------------------------------------------

Before = Callable[[Scope, bytes], tuple[Scope, bytes] | tuple[int, Any]]
After = Callable[
    [Scope, bytes, int, list[tuple[bytes, bytes]], bytes], tuple[int, list[tuple[bytes, bytes]], bytes]
]


class Broken:
    """ASGI middleware around the mock: rewrites requests before it, or its answers after."""

    def __init__(self, app: Any, before: Before | None = None, after: After | None = None) -> None:
        self.app, self.before, self.after = app, before, after
        self.state = app.state  # MockServer reads the registry from it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if self.before is not None:
            changed = self.before(scope, body)
            if isinstance(changed[0], int):
                raw = json.dumps(changed[1]).encode() if changed[1] is not None else b""
                await _respond(send, changed[0], [], raw)
                return
            scope, body = changed  # type: ignore[assignment]
        status, headers, raw = await call_app(self.app, scope, body)
        if self.after is not None:
            status, headers, raw = self.after(scope, body, status, headers, raw)
        await _respond(send, status, headers, raw)


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    kept = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
    if body:
        kept.append((b"content-type", b"application/json"))
    kept.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body})


def _is_query(scope: Scope) -> bool:
    return scope["method"] == "GET" and scope["path"] == QUERY


def _items(scope: Scope) -> list[tuple[str, str]]:
    return parse_qsl(scope["query_string"].decode(), keep_blank_values=True)


def _page(fn: Callable[[Scope, dict[str, Any]], None]) -> After:
    def after(scope: Scope, body: bytes, status: int, headers: Any, raw: bytes) -> Any:
        if _is_query(scope) and status == 200:
            doc = json.loads(raw)
            fn(scope, doc)
            raw = json.dumps(doc).encode()
        return status, headers, raw

    return after


def _answer(method: str, status: int, fn: Callable[[dict[str, Any], bytes], dict[str, Any]]) -> After:
    def after(scope: Scope, body: bytes, st: int, headers: Any, raw: bytes) -> Any:
        if scope["method"] == method and st == status and scope["path"].startswith("/api/crm/record"):
            raw = json.dumps(fn(json.loads(raw), body)).encode()
        return st, headers, raw

    return after


def _ignore_filters(scope: Scope, body: bytes) -> Any:
    if _is_query(scope):
        items = [(k, v) for k, v in _items(scope) if k != "filters"]
        scope = {**scope, "query_string": urlencode(items).encode()}
    return scope, body


def _clamp_per_page(scope: Scope, body: bytes) -> Any:
    if _is_query(scope):
        items = [
            (k, str(min(int(v), 100)) if k == "per_page" and v.isdigit() else v) for k, v in _items(scope)
        ]
        scope = {**scope, "query_string": urlencode(items).encode()}
    return scope, body


_deleted: set[str] = set()


def _delete_forgets(scope: Scope, body: bytes) -> Any:
    """DELETE answers 204 but deletes nothing."""
    if scope["method"] == "DELETE" and scope["path"].startswith("/api/crm/record/"):
        return 204, None
    return scope, body


def _other_error_shape(scope: Scope, body: bytes, status: int, headers: Any, raw: bytes) -> Any:
    if status >= 400:
        raw = json.dumps({"message": "something went wrong", "statusCode": status}).encode()
    return status, headers, raw


def _no_rate_headers(scope: Scope, body: bytes, status: int, headers: Any, raw: bytes) -> Any:
    return status, [(k, v) for k, v in headers if not k.lower().startswith(b"x-ratelimit")], raw


def _drifting_read(scope: Scope, body: bytes, status: int, headers: Any, raw: bytes) -> Any:
    """A GET of a record shows a value no write gave it (a cache mixing two records)."""
    if scope["method"] == "GET" and scope["path"].startswith("/api/crm/record/") and status == 200:
        doc = json.loads(raw)
        doc["field_values"]["name"] = doc["field_values"].get("name", "") + " (drifted)"
        raw = json.dumps(doc).encode()
    return status, headers, raw


def _patch_drops(doc: dict[str, Any], body: bytes) -> dict[str, Any]:
    sent = json.loads(body)["field_values"]
    return {**doc, "field_values": {k: v for k, v in doc["field_values"].items() if k in sent}}


def _create_drops(doc: dict[str, Any], body: bytes) -> dict[str, Any]:
    doc["field_values"].pop("email", None)
    return doc


def _patch_keeps_updated_at(doc: dict[str, Any], body: bytes) -> dict[str, Any]:
    doc["updated_at"] = doc["created_at"]
    return doc


def _queries(client: httpx.Client, rid: str) -> None:
    client.get(QUERY, params=q(object_id="obj_contacts", filters={"score": {"$gte": 60}}, sort="score"))
    client.get(QUERY, params=q(object_id="obj_contacts", filters={"status": "active"}, per_page=10))


def _writes(client: httpx.Client, rid: str) -> None:
    client.get(f"/api/crm/record/{rid}")
    client.patch(f"/api/crm/record/{rid}", json={"field_values": {"notes": "called"}})
    client.post(
        "/api/crm/record",
        json={"object_id": "obj_contacts", "field_values": {"name": "N", "email": "n@x.example"}},
    )


def _delete_then_read(client: httpx.Client, rid: str) -> None:
    assert client.delete(f"/api/crm/record/{rid}").status_code == 204
    client.get(f"/api/crm/record/{rid}")
    client.get(QUERY, params=q(object_id="obj_contacts", filters={"id": rid}))
    client.patch(f"/api/crm/record/{rid}", json={"field_values": {"notes": "still here?"}})


def _read_twice(client: httpx.Client, rid: str) -> None:
    client.get(QUERY, params=q(object_id="obj_contacts", filters={"id": rid}))
    client.get(f"/api/crm/record/{rid}")


def _errors(client: httpx.Client, rid: str) -> None:
    client.get("/api/crm/record/rec_missing")


def _big_page(client: httpx.Client, rid: str) -> None:
    client.get(QUERY, params=q(object_id="obj_contacts", per_page=500))


BROKEN = [
    pytest.param(
        dict(before=_ignore_filters), _queries, "filters.range", id="filter-matches-records-it-should-not"
    ),
    pytest.param(dict(before=_ignore_filters), _queries, "filters.eq", id="bare-filter-ignored"),
    pytest.param(
        dict(after=_page(lambda s, d: d["data"].reverse())), _queries, "sorting.value", id="page-out-of-order"
    ),
    pytest.param(
        dict(
            after=_page(
                lambda s, d: d["pagination"].update(
                    total_pages=d["pagination"]["total"] // d["pagination"]["per_page"]
                )
            )
        ),
        _queries,
        "paging.total-pages",
        id="total-pages-rounded-down",
    ),
    pytest.param(
        dict(after=_page(lambda s, d: d["data"].pop())), _queries, "paging.edges", id="page-short-one-record"
    ),
    pytest.param(
        dict(after=_answer("PATCH", 200, _patch_drops)),
        _writes,
        "records.patch-merge",
        id="patch-drops-fields",
    ),
    pytest.param(
        dict(after=_answer("PATCH", 200, _patch_keeps_updated_at)),
        _writes,
        "records.updated-at",
        id="patch-keeps-updated-at",
    ),
    pytest.param(
        dict(after=_answer("POST", 201, _create_drops)), _writes, "records.create", id="create-drops-a-value"
    ),
    pytest.param(dict(after=_other_error_shape), _errors, "errors.shape", id="error-in-another-shape"),
    pytest.param(dict(after=_no_rate_headers), _errors, "rate-limits.headers", id="no-rate-limit-headers"),
    pytest.param(
        dict(before=_delete_forgets), _delete_then_read, "records.delete", id="deleted-record-served-again"
    ),
    pytest.param(
        dict(before=_delete_forgets),
        _delete_then_read,
        "records.read-your-writes",
        id="deleted-record-listed-again",
    ),
    pytest.param(
        dict(after=_drifting_read), _read_twice, "records.updated-at", id="value-changed-without-a-write"
    ),
    pytest.param(dict(before=_clamp_per_page), _big_page, "paging.limits", id="per-page-clamped-not-refused"),
]


@pytest.mark.parametrize(("hooks", "traffic", "rule"), BROKEN)
def test_a_broken_server_is_reported_under_the_rule_it_breaks(
    hooks: dict[str, Any], traffic: Any, rule: str
) -> None:
    app = Broken(create_app(seed=7), **hooks)
    with MockServer(app=app) as mock:  # type: ignore[arg-type]
        rid = mock.backend.query_records("obj_contacts", per_page=1).records[0].id
        log = io.StringIO()
        with (
            ValidationProxy(mock.url, out=log) as proxy,
            httpx.Client(base_url=proxy.url, headers=H) as client,
        ):
            traffic(client, rid)
            proxy.drain()
    found = proxy.findings("server")
    assert rule in found, proxy.render()
    # One line per deviation as it happened, naming the rule and the request.
    assert re.search(
        rf"server deviation \[[^\]]*{re.escape(rule)}[^\]]*\] (GET|POST|PATCH|DELETE) /api/", log.getvalue()
    )
    # The reproducer goes to the upstream, with the key from the environment.
    text = proxy.render()
    assert "curl -sS -i" in text and mock.url in text and "$KANTOS_API_KEY" in text and KEY not in text


# --- the client's side ----------------------------------------------------------------------------------


def test_client_mistakes_are_the_clients_and_still_reach_the_server() -> None:
    with (
        MockServer(seed=2) as mock,
        ValidationProxy(mock.url) as proxy,
        httpx.Client(base_url=proxy.url, headers=H) as c,
    ):
        rid = mock.backend.query_records("obj_contacts", per_page=1).records[0].id
        sent = [
            c.get(QUERY, params=q(object_id="obj_contacts", per_page=500)),
            c.get(QUERY, params=q(object_id="obj_contacts", filters={"lifecycle": "lead"})),
            c.get(QUERY, params=q(object_id="obj_contacts", filters={"score": {"$gt": "10"}})),
            c.get(QUERY, params=q(object_id="obj_contacts", sort="nope")),
            c.post(
                "/api/crm/record",
                json={"object_id": "obj_contacts", "field_values": {"name": "A", "score": "high"}},
            ),
            c.patch(f"/api/crm/record/{rid}", json={"field_values": {"birthday": "31/12/1990"}}),
            c.post(
                "/api/crm/record",
                content=b'{"object_id": "obj_contacts"}',
                headers={"Content-Type": "text/plain"},
            ),
        ]
        proxy.drain()
        assert [r.status_code for r in sent] == [400, 400, 400, 400, 422, 422, 415]
        assert len(mock.requests()) >= len(sent)  # forwarded, every one
    assert proxy.deviations == 0, proxy.render()
    assert set(proxy.findings("client")) == {
        "paging.limits",
        "filters.unknown-field",
        "filters.operand-types",
        "sorting.bad",
        "formats.every-violation",
        "protocol.content-type",
    }
    text = proxy.render()
    assert "your code sent per_page: must be at most 100, got 500" in text
    assert "THE CLIENT'S SIDE" in text and "THE SERVER'S SIDE" not in text


# --- --record, and the command line -----------------------------------------------------------------------


def test_record_writes_a_fixture_set_that_serves_the_records_the_traffic_showed(tmp_path: Path) -> None:
    folder = tmp_path / "recorded"
    with MockServer(seed=9) as mock, ValidationProxy(mock.url, record=folder) as proxy:
        deal = mock.backend.query_records("obj_deals", per_page=1).records[0].id
        with httpx.Client(base_url=proxy.url, headers=H) as c:
            page = c.get(QUERY, params=q(object_id="obj_companies", per_page=5, sort="name")).json()["data"]
            made = c.post(
                "/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": "Rec"}}
            )
            rid = made.json()["id"]
            patched = c.patch(f"/api/crm/record/{rid}", json={"field_values": {"status": "customer"}}).json()
            c.delete(f"/api/crm/record/{page[0]['id']}")
            c.get(f"/api/crm/record/{deal}")
    assert proxy.recorded.startswith("recorded ")
    fs = load_fixtures(folder)
    assert {o.id for o in fs.objects} == {"obj_deals", "obj_contacts", "obj_companies"}  # referenced ones too
    assert {r.id for r in fs.records} == {d["id"] for d in page[1:]} | {rid, deal}
    with MockServer(folder) as served, served.client() as c:
        got = c.get(f"/api/crm/record/{rid}").json()
        assert got["field_values"] == patched["field_values"] and got["updated_at"] == patched["updated_at"]
        assert c.get(f"/api/crm/record/{page[0]['id']}").status_code == 404
        assert c.get(f"/api/crm/record/{page[1]['id']}").json() == page[1]
    out = subprocess.run(
        [sys.executable, "-m", "mockserver", "check-fixtures", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_the_command_reports_at_shutdown_and_fails_on_deviation(tmp_path: Path) -> None:
    report, junit_path = tmp_path / "proxy.json", tmp_path / "proxy.xml"
    with MockServer(seed=1) as mock:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mockserver",
                "proxy",
                "--upstream",
                mock.url,
                "--port",
                "0",
                "--report",
                str(report),
                "--junit",
                str(junit_path),
                "--fail-on-deviation",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            url = ""
            for line in proc.stdout:
                if line.startswith("base URL: "):
                    url = line.split(": ", 1)[1].strip()
                    break
            assert url, proc.stderr.read() if proc.stderr else ""
            r = httpx.get(url + QUERY, params={"object_id": "obj_contacts", "per_page": "500"}, headers=H)
            assert r.status_code == 400
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "client deviation [paging.limits] GET /api/crm/records/query" in err
    assert "1 request(s) of the client the contract refuses" in out
    doc = json.loads(report.read_text())
    assert doc["client"][0]["rules"] == ["paging.limits"] and doc["deviations"] == 0
    assert "$KANTOS_API_KEY" in doc["client"][0]["findings"][0]["curl"]
    root = ET.parse(junit_path).getroot()
    case = next(c for c in root.iter("testcase") if c.get("classname") == "proxy.client")
    assert case.get("name") == "paging.limit.per_page" and case.find("failure") is not None


def test_the_readme_ci_job_fails_when_the_client_strays(tmp_path: Path) -> None:
    """The README's CI step, run as written: the sandbox is the mock, `npm test` two curls, the
    second with per_page=500, so the step ends with the proxy's exit status 1, its reports written
    and the records the first query showed recorded."""
    script = _ci_job().split("        env:", 1)[0]
    script = "\n".join(line.removeprefix("          ") for line in script.splitlines())
    curl = f'curl -s -G "$KANTOS_BASE_URL{QUERY}" -H "X-Api-Key: $KANTOS_API_KEY" -d object_id=obj_contacts'
    suite = f"sh -c '{curl} -d per_page=5; {curl} -d per_page=500'"
    with MockServer(seed=4) as mock:
        port = str(_free_port())  # after the mock took its own
        script = script.replace("8010", port).replace("https://sandbox.kantos.example", mock.url)
        script = script.replace("npm test", suite)
        env = {
            **os.environ,
            "KANTOS_API_KEY": KEY,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        run = subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "client deviation [paging.limits]" in run.stderr
    assert json.loads((tmp_path / "kantos-proxy.json").read_text())["client_mistakes"] == 1
    assert ET.parse(tmp_path / "kantos-proxy.xml").getroot().get("name") == "kantos-proxy"
    recorded = load_fixtures(tmp_path / "kantos-fixtures")
    # The contacts the query showed, and the object their reference field points at.
    assert sorted(o.id for o in recorded.objects) == ["obj_companies", "obj_contacts"]
    assert len(recorded.records) == 5


def _ci_job() -> str:
    """The script of the CI step that runs the proxy, from the README or the docs pages."""
    pages = [README, *sorted((README.parent / "docs").rglob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        start = text.find("- run: |\n          kantos-mock proxy ")
        if start >= 0:
            return text[start:].split("- run: |\n", 1)[1]
    raise AssertionError("no page shows the proxy in a CI job")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
