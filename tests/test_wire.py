"""mockserver/wire.py: uvicorn's request cycle, writing each response's head and body at once.

The unit tests drive `OneWriteCycle` with ASGI messages over a transport that records its writes;
the socket tests check whole answers from a real `MockServer` byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from mockserver import MockServer
from mockserver.domain.backend import FixtureSet
from mockserver.wire import OneWriteCycle, OneWriteProtocol

LOG = logging.getLogger("test_wire")


class Recorder:
    """A transport that keeps what is written to it, in order, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def cycle(method: str = "GET", keep_alive: bool = True) -> tuple[OneWriteCycle, Recorder, list[str]]:
    transport = Recorder()
    events: list[str] = []
    scope: dict[str, Any] = {"type": "http", "method": method, "path": "/", "http_version": "1.1"}
    c = OneWriteCycle(
        scope=scope,  # type: ignore[arg-type]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=LOG,
        access_logger=LOG,
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: events.append("response complete"),
    )
    return c, transport, events


def start(length: int | None) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http.response.start", "status": 200, "headers": headers}


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"


def test_head_and_body_go_out_in_one_write() -> None:
    c, t, events = cycle()

    async def run() -> None:
        await c.send(start(11))
        assert t.writes == [], "the head waits for the body"
        await c.send(body(b'{"ok":true}'))

    asyncio.run(run())
    assert t.writes == [HEAD + b'{"ok":true}']
    assert events == ["response complete"] and not t.closed


def test_an_answer_to_head_sends_its_head_alone() -> None:
    c, t, events = cycle(method="HEAD")

    async def run() -> None:
        await c.send(start(11))
        await c.send(body(b""))

    asyncio.run(run())
    assert t.writes == [HEAD]
    assert events == ["response complete"]


def test_a_streamed_body_goes_out_as_it_comes_the_head_with_its_first_part() -> None:
    c, t, _ = cycle()

    async def run() -> None:
        await c.send(start(None))  # no length: uvicorn sends it chunked
        await c.send(body(b"abc", more=True))
        assert len(t.writes) == 1, "the first part is not held back"
        await c.send(body(b"de", more=True))
        await c.send(body(b""))

    asyncio.run(run())
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    assert t.writes == [head + b"3\r\nabc\r\n", b"2\r\nde\r\n", b"0\r\n\r\n"]


def test_a_connection_not_kept_alive_gets_the_whole_answer_before_it_closes() -> None:
    c, t, _ = cycle(keep_alive=False)

    async def run() -> None:
        await c.send(start(11))
        await c.send(body(b'{"ok":true}'))

    asyncio.run(run())
    assert t.writes == [HEAD.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n") + b'{"ok":true}']
    assert t.closed


def test_a_body_longer_than_its_length_still_fails_as_in_uvicorn_and_the_head_is_not_lost() -> None:
    c, t, _ = cycle()

    async def run() -> None:
        await c.send(start(2))
        await c.send(body(b"too long"))

    with pytest.raises(RuntimeError, match="longer than Content-Length"):
        asyncio.run(run())
    assert t.writes == [HEAD.replace(b"11", b"2")]


# --- a real server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mock(fixture_set: FixtureSet) -> Iterator[MockServer]:
    with MockServer(fixture_set, seed=3) as server:
        yield server


def exchange(mock: MockServer, raw: bytes, closes: bool = False) -> bytes:
    """Send raw request bytes; read until the server closes, or until it has been quiet a moment."""
    host, port = mock.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(raw)
        s.settimeout(5 if closes else 0.5)
        got = b""
        while True:
            try:
                part = s.recv(65536)
            except TimeoutError:
                break
            if not part:
                break
            got += part
    return got


def split(data: bytes) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    """HTTP/1.1 answers with content-length, one after another: (status line, headers, body)."""
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers = {k.lower(): v for k, v in (line.split(b": ", 1) for line in lines)}
        n = int(headers.get(b"content-length", b"0"))
        answers.append((status, headers, rest[:n]))
        data = rest[n:]
    return answers


def request(mock: MockServer, method: str, path: str, extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {mock.api_key}\r\n{extra}\r\n".encode()


def test_pipelined_requests_get_whole_answers_in_order(mock: MockServer) -> None:
    raw = (
        request(mock, "GET", "/api/crm/objects")
        + request(mock, "GET", "/api/crm/record/rec_missing")
        + request(mock, "GET", "/api/crm/records/query?object_id=obj_contacts&per_page=1")
    )
    answers = split(exchange(mock, raw))
    assert [a[0] for a in answers] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]
    assert b'"obj_contacts"' in answers[0][2]
    assert b"rec_missing" in answers[1][2]
    assert answers[2][2].startswith(b'{"data":[')


def test_connection_close_gets_the_whole_answer_then_the_close(mock: MockServer) -> None:
    raw = request(mock, "GET", "/api/crm/objects", "Connection: close\r\n")
    answers = split(exchange(mock, raw, closes=True))
    assert len(answers) == 1
    status, headers, body = answers[0]
    assert status == b"HTTP/1.1 200 OK" and headers[b"connection"] == b"close"
    assert len(body) == int(headers[b"content-length"]) and body.endswith(b"}")


def test_a_write_answers_with_its_head_and_body(mock: MockServer) -> None:
    payload = b'{"object_id":"obj_contacts","field_values":{"name":"Wire Test","email":"wire@example.com"}}'
    raw = (
        f"POST /api/crm/record HTTP/1.1\r\nHost: x\r\nX-Api-Key: {mock.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    [(status, headers, body)] = split(exchange(mock, raw))
    assert status == b"HTTP/1.1 201 Created"
    assert headers[b"content-type"] == b"application/json"
    assert b"x-ratelimit-remaining" in headers
    assert b'"name":"Wire Test"' in body


# --- the fast path: `/api` without ASGI ---------------------------------------------------------
#
# Two servers on the same fixtures and seed: one as served (`FastApiProtocol`), one on the ASGI
# path alone (`OneWriteProtocol`). Every exchange must give the same bytes on both, but for the
# `date` header, and the same journal entry.

KEY = "kantos_admin_local_key"


def raw_request(method: str, path: str, *extra: str, body: bytes = b"", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: x", *extra]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def key(k: str = KEY) -> str:
    return f"X-Api-Key: {k}"


JSON = "Content-Type: application/json"
CREATE = b'{"object_id":"obj_contacts","field_values":{"name":"Fast Path","email":"fast@example.com"}}'

#: (what it exercises, the raw request(s), whether the server closes the connection after)
EXCHANGES: list[tuple[str, bytes, bool]] = [
    ("a list", raw_request("GET", "/api/crm/objects", key()), False),
    (
        "a query, percent-encoded",
        raw_request(
            "GET",
            "/api/crm/records/query?object_id=obj_contacts&per_page=2&page=2&sort=name&order=desc"
            "&filters=%7B%22status%22%3A%22Customer%22%7D",
            key(),
        ),
        False,
    ),
    ("a percent-encoded path", raw_request("GET", "/api/crm/%6Fbjects", key()), False),
    ("a 404", raw_request("GET", "/api/crm/record/rec_missing", key()), False),
    ("a 405", raw_request("PUT", "/api/crm/objects", key()), False),
    ("a 400", raw_request("GET", "/api/crm/records/query?object_id=obj_contacts&page=zero", key()), False),
    ("a 401", raw_request("GET", "/api/crm/objects"), False),
    ("a 403", raw_request("GET", "/api/crm/objects", key("kantos_intake_local_key")), False),
    ("a 415", raw_request("POST", "/api/crm/record", key(), "Content-Type: text/plain", body=CREATE), False),
    ("a create", raw_request("POST", "/api/crm/record", key(), JSON, body=CREATE), False),
    ("a bad body", raw_request("POST", "/api/crm/record", key(), JSON, body=b'{"object_id":'), False),
    ("another tenant", raw_request("GET", "/api/crm/objects", key(), "X-Mock-Tenant: wire-fast"), False),
    (
        "a bad tenant (ASGI)",
        raw_request("GET", "/api/crm/objects", key(), "X-Mock-Tenant: " + "t" * 500),
        False,
    ),
    ("HEAD (ASGI)", raw_request("HEAD", "/api/crm/objects", key()), False),
    ("outside /api (ASGI)", raw_request("GET", "/openapi.json"), False),
    (
        "a chunked body (ASGI)",
        raw_request("POST", "/api/crm/record", key(), JSON, "Transfer-Encoding: chunked")
        + b"%x\r\n%b\r\n0\r\n\r\n" % (len(CREATE), CREATE),
        False,
    ),
    (
        "Expect: 100-continue (ASGI)",
        raw_request("POST", "/api/crm/record", key(), JSON, "Expect: 100-continue", body=CREATE),
        False,
    ),
    ("Connection: close", raw_request("GET", "/api/crm/objects", key(), "Connection: close"), True),
    ("HTTP/1.0", raw_request("GET", "/api/crm/objects", key(), version="1.0"), True),
    (
        "pipelined, fast and ASGI mixed",
        raw_request("GET", "/api/crm/objects", key())
        + raw_request("HEAD", "/api/crm/objects", key())
        + raw_request("GET", "/api/crm/record/rec_missing", key())
        + raw_request("POST", "/api/crm/record", key(), JSON, body=CREATE)
        + raw_request("GET", "/openapi.json")
        + raw_request("DELETE", "/api/crm/record/rec_missing", key()),
        False,
    ),
]


def _undated(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.lower().startswith(b"date: "))


@pytest.fixture(scope="module")
def both(fixture_set: FixtureSet) -> Iterator[tuple[MockServer, MockServer]]:
    fast = MockServer(fixture_set, seed=11)
    asgi = MockServer(fixture_set, seed=11, uvicorn_options={"http": OneWriteProtocol})
    with fast, asgi:
        for server in (fast, asgi):
            # The same created_at and rate-limit windows on both, whatever the minute (the other
            # tenant too: its X-RateLimit-Reset moved when the two requests straddled a minute).
            for control in (server, server.tenant("wire-fast")):
                control.clock.freeze("2026-01-02T03:04:05Z")
        yield fast, asgi


@pytest.mark.parametrize("what,raw,closes", EXCHANGES, ids=[e[0] for e in EXCHANGES])
def test_the_fast_path_answers_byte_for_byte_as_the_asgi_path(
    both: tuple[MockServer, MockServer], what: str, raw: bytes, closes: bool
) -> None:
    fast, asgi = both
    answered: list[int] = []
    api = fast.app.fast_api
    assert api is not None
    answer_now = api.answer_now

    def counted(scope: Any, body: bytes) -> Any:
        result = answer_now(scope, body)
        if result is not None:
            answered.append(result[0])
        return result

    api.answer_now = counted  # type: ignore[method-assign]
    try:
        for server in both:
            server.clear_requests()
        got = exchange(fast, raw, closes)
        want = exchange(asgi, raw, closes)
    finally:
        del api.answer_now
    assert got and _undated(got) == _undated(want)
    assert [(r["method"], r["path"], r["status"]) for r in fast.requests()] == [
        (r["method"], r["path"], r["status"]) for r in asgi.requests()
    ]
    if "(ASGI)" in what:
        assert not answered, "this request should have gone the ASGI way"
    elif what.startswith("pipelined"):
        # The HEAD goes the ASGI way, and what arrived behind it waits for it in uvicorn's queue.
        assert answered == [200]
    else:
        assert answered, "this request should have taken the fast path"


def test_a_bug_answers_500_in_the_kantos_shape_is_logged_and_hangs_up_as_on_the_asgi_path(
    both: tuple[MockServer, MockServer], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mockserver.http import api

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setitem(api.HANDLERS, "listObjects", broken)
    raw = raw_request("GET", "/api/crm/objects", key()) + raw_request("GET", "/api/crm/objects", key())
    fast, asgi = both
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        got = exchange(fast, raw, closes=True)
        want = exchange(asgi, raw, closes=True)
    assert _undated(got) == _undated(want)
    [(status, _, body)] = split(got)  # the second answer never came: the server hung up
    assert status == b"HTTP/1.1 500 Internal Server Error"
    assert b'"code":"INTERNAL"' in body
    logged = [r for r in caplog.records if r.exc_info and "a bug in a handler" in str(r.exc_info[1])]
    # Both requests ran (the second had arrived, pipelined) and were logged, on each server.
    assert sorted(r.pathname.rsplit("/", 1)[1] for r in logged) == ["httptools_impl.py"] * 2 + ["wire.py"] * 2


def test_a_fast_request_whose_body_is_still_arriving_at_shutdown_is_answered_then_closed(
    fixture_set: FixtureSet,
) -> None:
    with MockServer(fixture_set, seed=5) as mock:
        host, port = mock.url.removeprefix("http://").split(":")
        raw = raw_request("POST", "/api/crm/record", key(), JSON, body=CREATE)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(raw[:-10])
            deadline = time.monotonic() + 5
            while not mock.requests() and time.monotonic() < deadline:
                time.sleep(0.01)  # (nothing is journaled until the body is whole)
                break
            stopper = threading.Thread(target=mock.stop)
            stopper.start()
            time.sleep(0.3)  # the shutdown has reached the connection
            s.sendall(raw[-10:])
            got = b""
            while part := s.recv(65536):
                got += part
            stopper.join()
    [(status, headers, body)] = split(got)
    assert status == b"HTTP/1.1 201 Created"
    assert headers[b"connection"] == b"close"
    assert b'"name":"Fast Path"' in body


def test_a_bug_outside_the_handlers_answers_uvicorns_500_and_hangs_up(
    both: tuple[MockServer, MockServer], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mockserver.http.journal import Journal

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the journal")

    monkeypatch.setattr(Journal, "add", broken)
    fast, _ = both
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        got = exchange(fast, raw_request("GET", "/api/crm/objects", key()), closes=True)
    [(status, headers, body)] = split(got)
    assert status == b"HTTP/1.1 500 Internal Server Error"
    assert headers[b"connection"] == b"close" and body == b"Internal Server Error"
    assert any(r.exc_info and "a bug in the journal" in str(r.exc_info[1]) for r in caplog.records)


def _closed_within(s: socket.socket, seconds: float) -> bool:
    """Whether the server closes `s` within `seconds` (reading and dropping any answer)."""
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        return False
    return True


def test_keep_alive_closes_a_quiet_connection_and_keeps_a_busy_one(fixture_set: FixtureSet) -> None:
    """One keep-alive timer per idle spell (`FastApiProtocol`), with uvicorn's meaning: a
    connection closes `timeout_keep_alive` after its last answer, however many came before."""
    with MockServer(fixture_set, uvicorn_options={"timeout_keep_alive": 0.3}) as mock:
        host, port = mock.url.removeprefix("http://").split(":")
        get = raw_request("GET", "/api/crm/objects", key())
        with socket.create_connection((host, int(port)), timeout=5) as quiet:
            quiet.sendall(get)
            assert _closed_within(quiet, 3)  # answered, then closed after 0.3 s of quiet
        with socket.create_connection((host, int(port)), timeout=5) as busy:
            answers = b""
            for _ in range(8):  # a request every 0.1 s for 0.8 s: longer than the timeout
                busy.sendall(get)
                time.sleep(0.1)
            busy.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                while part := busy.recv(65536):
                    answers += part
            assert [a[0] for a in split(answers)] == [b"HTTP/1.1 200 OK"] * 8
            assert _closed_within(busy, 3)
