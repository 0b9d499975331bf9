"""The forwarding path: asyncio protocols and httptools, the bytes passed through.

No ASGI stack and no task per request: httptools parses the client's request head in callbacks,
the head goes to the upstream rewritten only where it must be (its Host, hop-by-hop headers and
`Expect` left out), and the body streams on as it arrives. The answer's head is the upstream's
status line and headers bar hop-by-hop ones; its body goes back as the upstream sends it, one write
to the client per read from the upstream. Keep-alive connections to the upstream are reused.

Each complete exchange goes to `sink` as a tuple of what was on the wire (`Wire`), before its last
bytes go back to the client (so a client that has its answer can ask for the checks of it); the
checks decode it in their own process. A connection the client pipelines on is served in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

Headers = list[tuple[bytes, bytes]]
#: What the checks get of one exchange: method, path (raw), query (raw), the request's headers
#: (as sent), its body, the answer's status (0: the upstream did not answer), the headers
#: forwarded, the answer's body (b"" beyond KEEP_BODY), when it was sent and answered
#: (time.monotonic()), the upstream's error, and whether another request for the same record
#: overlapped it.
Wire = tuple[str, bytes, bytes, Headers, bytes, int, Headers, bytes, float, float, str, bool]

#: RFC 9110 section 7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Request headers that stay with the proxy: its Host is the upstream's, and `Expect:
#: 100-continue` is answered here (the body goes on whole; the upstream must not send a 100 first).
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"expect"}
#: Bodies are kept for the checks up to this size (a page of 100 records is far below it).
KEEP_BODY = 8 * 1024 * 1024
RECORD_PREFIX = b"/api/crm/record/"


class Forwarder:
    """The state shared by a proxy's connections: the upstream's address, its idle keep-alive
    connections, the exchanges in flight."""

    def __init__(self, upstream: str, sink: Callable[[Wire], None], timeout: float = 60.0) -> None:
        self.upstream = upstream.rstrip("/")
        parts = urlsplit(self.upstream)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        default = (self.https and self.port == 443) or (not self.https and self.port == 80)
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (name if default else f"{name}:{self.port}").encode("idna")
        self.prefix = parts.path.rstrip("/").encode()
        self.sink = sink
        self.timeout = timeout
        self.max_idle = 64
        self.idle: list[_Upstream] = []
        self.clients: set[_Client] = set()
        self.active: set[_Exchange] = set()
        self.inflight: dict[bytes, list[_Exchange]] = {}  # record id -> its requests in flight
        self._ssl = ssl.create_default_context() if self.https else None
        self._sweeper: asyncio.TimerHandle | None = None

    def protocol(self) -> _Client:
        return _Client(self)

    async def serve(self, sock: socket.socket) -> asyncio.Server:
        """Accept connections on `sock` (bound and listening) on the running loop."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self.protocol, sock=sock)
        self._sweeper = loop.call_later(1.0, self._sweep)
        return server

    def _sweep(self) -> None:
        """Once a second: an upstream silent for longer than the timeout is cut off."""
        now = time.monotonic()
        for ex in list(self.active):
            if ex.upstream is not None and now - ex.last > self.timeout:
                ex.timed_out = True
                ex.upstream.transport.abort()
        self._sweeper = asyncio.get_running_loop().call_later(1.0, self._sweep)

    async def shutdown(self, server: asyncio.Server, grace: float = 5.0) -> None:
        """Stop accepting, let the exchanges in flight finish (up to `grace` s), close the rest."""
        server.close()
        deadline = time.monotonic() + grace
        while self.active and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._sweeper is not None:
            self._sweeper.cancel()
        for client in list(self.clients):
            client.transport.close()
        for up in self.idle:
            up.transport.close()
        self.idle.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    # --- upstream connections ---------------------------------------------------------------------

    def attach(self, ex: _Exchange) -> None:
        """Send `ex` on an idle connection, or on a new one once it is open."""
        while self.idle:
            up = self.idle.pop()
            if up.usable():
                up.reused = True
                up.start(ex)
                return
            up.transport.close()
        ex.connecting = asyncio.get_running_loop().create_task(self._connect(ex))

    async def _connect(self, ex: _Exchange) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, up = await loop.create_connection(
                    lambda: _Upstream(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except (OSError, TimeoutError) as exc:
            ex.connecting = None
            ex.fail(f"cannot connect to {self.host}:{self.port}: {exc!r}")
            return
        ex.connecting = None
        if ex.finished:  # the client went away meanwhile
            self.give_back(up)
            return
        up.start(ex)

    def give_back(self, up: _Upstream) -> None:
        if len(self.idle) < self.max_idle and up.usable():
            self.idle.append(up)
        else:
            up.transport.close()


class _Client(asyncio.Protocol):
    """One client connection: its requests in order, the first of them forwarded."""

    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[_Exchange] = collections.deque()
        self.parsing: _Exchange | None = None
        self.closed = False
        self.paused = False  # the client reads slower than the upstream sends
        self._url = b""
        self._headers: Headers = []

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.fwd.clients.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(b"501 Not Implemented", "the proxy does not forward protocol upgrades")
        except httptools.HttpParserError:
            self._refuse(b"400 Bad Request", "the request is not HTTP/1.1")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fwd.clients.discard(self)
        for ex in self.queue:
            ex.abandon()
        self.queue.clear()

    def pause_writing(self) -> None:
        self.paused = True
        if self.queue and self.queue[0].upstream is not None:
            self.queue[0].upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.queue and self.queue[0].upstream is not None:
            self.queue[0].upstream.transport.resume_reading()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        p = self.parser
        ex = _Exchange(self, p.get_method().decode("latin-1"), self._url, self._headers)
        ex.keep_alive = p.should_keep_alive()
        ex.http10 = p.get_http_version() == "1.0"
        self.parsing = ex
        if ex.expects_continue and not self.queue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.queue.append(ex)
        if len(self.queue) == 1:
            ex.start()

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_piece(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.request_complete()
            self.parsing = None

    # ---

    def done(self, ex: _Exchange, close: bool) -> None:
        """`ex` answered in full: close, or go on with the next request."""
        if self.queue and self.queue[0] is ex:
            self.queue.popleft()
        if close or self.closed:
            self.transport.close()
            self.closed = True
            return
        if self.queue:
            nxt = self.queue[0]
            if nxt.expects_continue:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            nxt.start()

    def _refuse(self, status: bytes, message: str) -> None:
        if self.queue:  # mid-exchange: nothing sensible can follow
            self.transport.abort()
            return
        body = json.dumps(
            {"error": f"kantos-mock proxy: {message}", "code": "BAD_REQUEST", "status": int(status[:3])}
        ).encode()
        self.transport.write(
            b"HTTP/1.1 %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%b" % (status, len(body), body)
        )
        self.transport.close()
        self.closed = True


class _Exchange:
    """One request and its answer, from the client's head to the answer's last byte."""

    __slots__ = (
        "answered_at",
        "body",
        "chunked_in",
        "chunked_out",
        "client",
        "close_after",
        "concurrent",
        "connecting",
        "error",
        "expects_continue",
        "finished",
        "head",
        "headers",
        "http10",
        "keep_alive",
        "kept",
        "last",
        "method",
        "out",
        "path",
        "query",
        "request_done",
        "response_body",
        "rid",
        "sent_at",
        "size",
        "started",
        "status",
        "timed_out",
        "upstream",
    )

    def __init__(self, client: _Client, method: str, url: bytes, headers: Headers) -> None:
        self.client = client
        self.method = method
        path, _, query = url.partition(b"?")
        self.path, self.query = path, query
        self.headers = headers
        fwd = client.fwd
        head = [method.encode(), b" ", fwd.prefix, url, b" HTTP/1.1\r\nhost: ", fwd.host_header, b"\r\n"]
        has_length = chunked = expects = False
        for name, value in headers:
            low = name.lower()
            if low in NOT_FORWARDED:
                if low == b"transfer-encoding":
                    chunked = True
                elif low == b"expect":
                    expects = value.lower() == b"100-continue"
                continue
            if low == b"content-length":
                has_length = True
            head += (name, b": ", value, b"\r\n")
        self.chunked_in = chunked and not has_length
        if self.chunked_in:
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        self.head = b"".join(head)
        self.expects_continue = expects
        self.body: list[bytes] = []
        self.request_done = False
        self.upstream: _Upstream | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.started = self.finished = self.timed_out = False
        self.keep_alive = True
        self.http10 = False
        self.sent_at = self.answered_at = self.last = 0.0
        self.status = 0
        self.kept: Headers = []
        self.response_body: list[bytes] = []
        self.size = 0
        self.out: list[bytes] = []
        self.chunked_out = self.close_after = False
        self.error = ""
        self.concurrent = False
        self.rid: bytes | None = path[len(RECORD_PREFIX) :] if path.startswith(RECORD_PREFIX) else None

    # --- the request ------------------------------------------------------------------------------

    def start(self) -> None:
        self.started = True
        self.sent_at = self.last = time.monotonic()
        fwd = self.client.fwd
        fwd.active.add(self)
        if self.rid is not None:
            others = fwd.inflight.setdefault(self.rid, [])
            if others:
                self.concurrent = True
                for other in others:
                    other.concurrent = True
            others.append(self)
        fwd.attach(self)

    def send_on(self, up: _Upstream) -> None:
        """Write the request so far on `up` (a fresh or an idle connection)."""
        self.upstream = up
        write = up.transport.write
        if self.chunked_in:
            write(self.head + b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in self.body if p))
            if self.request_done:
                write(b"0\r\n\r\n")
        else:
            write(self.head + b"".join(self.body) if self.body else self.head)

    def request_piece(self, piece: bytes) -> None:
        self.body.append(piece)
        if self.upstream is not None:
            self.upstream.transport.write(b"%x\r\n%b\r\n" % (len(piece), piece) if self.chunked_in else piece)

    def request_complete(self) -> None:
        self.request_done = True
        if self.upstream is not None and self.chunked_in:
            self.upstream.transport.write(b"0\r\n\r\n")

    # --- the answer -------------------------------------------------------------------------------

    def response_head(self, status: int, reason: bytes, kept: Headers, has_length: bool) -> None:
        """The answer's head: `kept` is its headers bar hop-by-hop ones, `has_length` whether a
        Content-Length is among them."""
        self.status = status
        self.kept = kept
        out = [b"HTTP/1.1 %d %b\r\n" % (status, reason)]
        for name, value in kept:
            out += (name, b": ", value, b"\r\n")
        bodiless = self.method == "HEAD" or status in (204, 304)
        if not has_length and not bodiless:
            if self.http10:
                self.close_after = True  # an HTTP/1.0 client reads to the end of the connection
            else:
                self.chunked_out = True
                out.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive or self.close_after:
            self.close_after = True
            out.append(b"connection: close\r\n")
        out.append(b"\r\n")
        self.out.append(b"".join(out))

    def response_piece(self, piece: bytes) -> None:
        if self.size < KEEP_BODY:
            self.response_body.append(piece)
        self.size += len(piece)
        self.out.append(b"%x\r\n%b\r\n" % (len(piece), piece) if self.chunked_out else piece)

    def flush(self, complete: bool) -> None:
        """After each read from the upstream: pass on what it brought; when the answer is
        complete, hand the exchange to the checks first."""
        if complete:
            if self.chunked_out:
                self.out.append(b"0\r\n\r\n")
            self._finish()
        if self.out:
            data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
            self.out.clear()
            if not self.client.closed:
                self.client.transport.write(data)
        if complete:
            self.client.done(self, self.close_after)

    def fail(self, error: str) -> None:
        """The upstream did not answer (or broke off): a 502 if nothing went back yet."""
        if self.finished:
            return
        self.error = error
        head_sent = self.status != 0
        self.status = 0
        self.kept = []
        self.response_body = []
        self.out.clear()
        self._finish()
        if self.client.closed:
            return
        if head_sent:  # the client has part of an answer: only closing tells it so
            self.client.transport.abort()
            self.client.closed = True
            return
        fwd = self.client.fwd
        body = json.dumps(
            {
                "error": f"kantos-mock proxy: the upstream {fwd.upstream} did not answer: {error}",
                "code": "BAD_GATEWAY",
                "status": 502,
                "details": {"upstream": fwd.upstream},
            }
        ).encode()
        close = not self.keep_alive or not self.request_done
        self.client.transport.write(
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n%b"
            % (len(body), b"connection: close\r\n" if close else b"", body)
        )
        self.client.done(self, close)

    def abandon(self) -> None:
        """The client went away: the upstream connection, mid-answer, cannot be reused."""
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        up = self.upstream
        self.finished = True
        self._leave()
        if up is not None:
            up.exchange = None
            up.transport.close()

    def _finish(self) -> None:
        self.finished = True
        self.answered_at = time.monotonic()
        self._leave()
        fwd = self.client.fwd
        body = b"".join(self.body)
        response = b"".join(self.response_body) if self.size <= KEEP_BODY else b""
        fwd.sink(
            (
                self.method,
                self.path,
                self.query,
                self.headers,
                body,
                self.status,
                self.kept,
                response,
                self.sent_at,
                self.answered_at,
                self.error,
                self.concurrent,
            )
        )

    def _leave(self) -> None:
        fwd = self.client.fwd
        fwd.active.discard(self)
        if self.rid is not None and self.started:
            others = fwd.inflight.get(self.rid)
            if others is not None and self in others:
                others.remove(self)
                if not others:
                    del fwd.inflight[self.rid]


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream, carrying one exchange at a time."""

    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.exchange: _Exchange | None = None
        # One parser for the connection's answers, not one per answer: a connection is given back
        # for reuse only after an answer that ended cleanly, so the next starts where it left off.
        self.parser: Any = httptools.HttpResponseParser(self)
        self.reused = False
        self.dead = False
        self.got = False  # any byte of the answer arrived
        self.interim = False
        self.complete = False
        self.reason = b""
        self.headers: Headers = []
        self.length_known = False  # Content-Length or Transfer-Encoding
        self.content_length = False
        self.close = False  # Connection: close

    def usable(self) -> bool:
        return not self.dead and not self.transport.is_closing()

    def start(self, ex: _Exchange) -> None:
        self.exchange = ex
        self.got = self.interim = self.complete = self.length_known = self.content_length = False
        self.close = False
        self.headers = []
        ex.send_on(self)
        if ex.client.paused:
            self.transport.pause_reading()

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:  # nothing asked: the connection is of no further use
            self.dead = True
            self.transport.close()
            return
        self.got = True
        ex.last = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            self._lost(f"the upstream's answer is not HTTP: {exc}")
            return
        if self.exchange is ex:
            self._flush(ex)

    def eof_received(self) -> bool | None:
        self.dead = True
        ex = self.exchange
        if ex is not None and ex.status and not self.complete and self._close_delimited():
            self.complete = True  # a body delimited by the end of the connection ends here
            self._flush(ex)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        with contextlib.suppress(ValueError):
            self.fwd.idle.remove(self)
        ex = self.exchange
        if ex is None or ex.finished:
            return
        self.exchange = None
        if self.reused and not self.got and not ex.timed_out:
            # A keep-alive connection the upstream had closed meanwhile: again, on a fresh one.
            ex.upstream = None
            self.fwd.attach(ex)
            return
        if ex.timed_out:
            ex.fail(f"no answer within {self.fwd.timeout:g} s")
        else:
            ex.fail(f"the upstream closed the connection {'mid-answer' if self.got else 'before answering'}")

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None and not ex.client.closed:
            ex.client.transport.pause_reading()

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None and not ex.client.closed:
            ex.client.transport.resume_reading()

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        # Hop-by-hop headers are read here and left out of what goes on to the client.
        low = name.lower()
        if low in HOP_BY_HOP:
            if low == b"transfer-encoding":
                self.length_known = True
            elif low == b"connection" and b"close" in value.lower():
                self.close = True
            return
        if low == b"content-length":
            self.length_known = self.content_length = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103): the final one follows
            self.interim = True
            self.headers = []
            self.length_known = self.content_length = self.close = False
            return
        ex = self.exchange
        assert ex is not None
        ex.response_head(status, self.reason, self.headers, self.content_length)
        if ex.method == "HEAD":
            self.complete = True  # no body follows, whatever Content-Length says

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is not None and not self.complete:
            ex.response_piece(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True

    # ---

    def _flush(self, ex: _Exchange) -> None:
        if not self.complete:
            ex.flush(False)
            return
        self.exchange = None
        ex.upstream = None
        # HTTP/1.1, no `Connection: close`, a body of known length, and the whole request sent:
        # the connection may carry the next request. (httptools' should_keep_alive() is False once
        # an answer is complete.) An answer that came before the request's last byte (a 413 after
        # the first MiB) leaves the upstream waiting for the rest, which nobody will now send: the
        # next request would be read as that body, so the connection is closed instead.
        if (
            not self.dead
            and not self.close
            and ex.request_done
            and ex.method != "HEAD"
            and (self.length_known or ex.status in (204, 304))
            and self.parser.get_http_version() == "1.1"
        ):
            self.fwd.give_back(self)
        else:
            self.dead = True
            self.transport.close()
        ex.flush(True)

    def _close_delimited(self) -> bool:
        return not self.length_known

    def _lost(self, error: str) -> None:
        ex, self.exchange = self.exchange, None
        self.dead = True
        self.transport.abort()
        if ex is not None:
            ex.fail(error)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it comes with uvicorn[standard]), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def serve(
    fwd: Forwarder, sock: socket.socket, stop: asyncio.Event, started: Callable[[], None] = lambda: None
) -> None:
    """Forward on `sock` until `stop` is set, then shut down gracefully."""
    server = await fwd.serve(sock)
    started()
    try:
        await stop.wait()
    finally:
        await fwd.shutdown(server)
