"""mockserver/wire.py: uvicorn's request cycle, writing each response's head and body at once.

The unit tests drive `OneWriteCycle` with ASGI messages over a transport that records its writes;
the socket tests check whole answers from a real `MockServer` byte for byte."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from mockserver import MockServer
from mockserver.domain.backend import FixtureSet
from mockserver.wire import OneWriteCycle

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
