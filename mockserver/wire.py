"""uvicorn's httptools protocol, writing each response to the socket once instead of twice.

uvicorn writes a response's status line and headers when the app sends `http.response.start`,
and its body when the app sends `http.response.body`: two `send()` calls on the socket. On
loopback a `send()` is most of a small answer's cost, since the kernel delivers the bytes to the
reader inside that call: under wrk, the two writes were about a third of the mock's CPU for a
PATCH (`py-spy`; `strace -c` counted 2 writes a request). Here the head is held until the body
comes and both go out in one write. A body sent in several messages (streaming) goes out as it
comes, the head with the first part.

Only the request cycle's `send` changes; everything else is uvicorn's. `tests/test_wire.py`
checks the bytes on the wire for every kind of answer, and that each takes one write.

`FastApiProtocol`, the protocol the mock is served with, goes one step further: it answers the
usual `/api` request itself, without ASGI, and keeps one keep-alive timer per idle spell.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from .http.gate import is_api_path

if TYPE_CHECKING:
    from .http.api import AnswersNow


class _HeldHead:
    """Stands in for the transport while uvicorn writes a response's head, and keeps it."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class _HeadFirst:
    """Stands in for the transport while uvicorn writes a body: its first write carries the head."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: asyncio.Transport, head: bytes) -> None:
        self.transport, self.head = transport, head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        self.transport.write(head + data if head else data)

    def flush(self) -> None:
        if self.head:
            self.write(b"")

    def close(self) -> None:  # a response on a connection that is not kept alive
        self.flush()
        self.transport.close()


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle; a response's head waits for its body (see the module's docstring)."""

    held_head: bytes = b""

    async def send(self, message: Any) -> None:
        transport = self.transport
        if message["type"] == "http.response.start" and not self.response_started:
            hold = _HeldHead()
            self.transport = hold  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            self.held_head = hold.data
            return
        if not self.held_head:
            await super().send(message)
            return
        first = _HeadFirst(transport, self.held_head)
        self.held_head = b""
        self.transport = first  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
            first.flush()  # a HEAD answer, or one uvicorn refused to write: the head still goes


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose request cycles are `OneWriteCycle`s."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # uvicorn made the cycle and scheduled its task, which has not run yet: the task looks
        # `send` up on the cycle when the app first calls it.
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = OneWriteCycle


#: Requests the fast path takes: the methods the Kantos API has, with a body it keeps whole.
FAST_METHODS = frozenset({b"GET", b"POST", b"PATCH", b"PUT", b"DELETE"})
FAST_BODY_LIMIT = 64 * 1024  # uvicorn's HIGH_WATER_LIMIT: past it, the ASGI path reads with flow control


class FastApiProtocol(OneWriteProtocol):
    """`OneWriteProtocol`, answering the usual `/api` request without ASGI.

    Under load most of a request's cost outside the mock's own code is the ASGI machinery: a
    request cycle, a task and an event per request, the scope passed through four wrappers,
    and uvicorn checking each header the app sends. The mock's API answers synchronously
    unless a fault rule or the state file makes it wait, so for a request to `/api` this
    protocol reads the body (at most 64 KiB, by Content-Length), asks `KantosApi.answer_now`,
    and writes uvicorn's own head (status line, its default headers, `connection: close` when
    the connection ends) and the body in one write. The request goes the ASGI way, through
    `OneWriteProtocol`, whenever this path would differ in the least: HEAD and OPTIONS,
    `Expect: 100-continue`, a chunked or larger body, a pipelined request behind one still
    running, writes paused by a slow reader, uvicorn's concurrency limit, or an answer
    `answer_now` declines (faults, a held answer, a bad `X-Mock-Tenant`).
    `tests/test_wire.py` compares the bytes of both ways, request by request."""

    def __init__(self, *args: Any, api: AnswersNow, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = api
        self.fast_body: list[bytes] | None = None  # a fast request's body so far; None: none
        self.fast_keep_alive = True
        self.fast_closing = False  # a shutdown came while a fast request's body was arriving

    def on_headers_complete(self) -> None:
        if self._start_fast():
            return
        super().on_headers_complete()

    def _start_fast(self) -> bool:
        parser = self.parser
        method = parser.get_method()
        cycle = self.cycle
        if (
            method not in FAST_METHODS
            or self.expect_100_continue
            or self.limit_concurrency is not None
            or self.pipeline
            or (cycle is not None and not cycle.response_complete)
            or self.flow.write_paused
            or parser.should_upgrade()
        ):
            return False
        for name, value in self.headers:
            if name == b"transfer-encoding" or (
                name == b"content-length" and not (value.isdigit() and int(value) <= FAST_BODY_LIMIT)
            ):
                return False
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        if self.root_path or not is_api_path(path):
            return False
        scope = self.scope
        scope["method"] = method.decode("ascii")
        http_version = parser.get_http_version()
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = parsed.query or b""
        self.fast_keep_alive = http_version != "1.0" and parser.should_keep_alive()
        self.fast_body = []
        return True

    def on_body(self, body: bytes) -> None:
        if self.fast_body is not None:
            self.fast_body.append(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        chunks = self.fast_body
        if chunks is None:
            super().on_message_complete()
            return
        self.fast_body = None
        body = b"".join(chunks)
        try:
            answer = self.api.answer_now(self.scope, body)  # type: ignore[arg-type]
        except Exception as exc:  # a bug outside the handlers, which answer_now turns into 500s
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            self._answer_500()
            return
        if answer is None:
            self._to_asgi(body)
            return
        status, headers, content, failure = answer
        scope = self.scope
        if self.access_log:  # as `RequestResponseCycle.send` logs it
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                status,
            )
        keep_alive = self.fast_keep_alive and not self.fast_closing
        if failure is not None:
            # As uvicorn ends a request whose app raised after answering: logged, and hung up.
            self.logger.error("Exception in ASGI application\n", exc_info=failure)
        close = not keep_alive or failure is not None
        self._write(status, headers, content, announce_close=not keep_alive, close=close)

    def _write(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, announce_close: bool, close: bool
    ) -> None:
        """One answer in one write, with uvicorn's head: its status line and default headers, then
        `headers`, and `connection: close` when announced; then hang up when told to."""
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        if announce_close:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        head.append(body)
        self.transport.write(b"".join(head))
        if close:
            self.transport.close()
        self.on_response_complete()

    # --- keep-alive: one timer per idle spell, not one per response ----------------------------
    #
    # uvicorn cancels the keep-alive timer when data comes and arms a new one after each response:
    # 2 µs of uvloop timer work a request, a tenth of a GET's whole cost here. Instead each
    # response notes when the connection went idle, and one timer, armed when none is, checks when
    # it fires: idle long enough closes, idle for less sleeps the rest, busy waits for the next
    # response to arm it again. Connections close after the same `timeout_keep_alive` of quiet.

    idle_since: float | None = None  # when the last response completed; None while a request runs

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None  # data came: busy (the timer stays, and finds it so)

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        idle = self.idle_since
        if idle is None or self.transport.is_closing():
            return
        left = idle + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self.timeout_keep_alive_handler)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def _answer_500(self) -> None:
        """uvicorn's own answer to an app that failed before answering, and the hang-up."""
        text = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]
        self._write(500, text, b"Internal Server Error", announce_close=True, close=True)

    def _to_asgi(self, body: bytes) -> None:
        """Hand a request read for the fast path to the ASGI app, as `on_headers_complete`,
        `on_body` and `on_message_complete` would have, its body already whole."""
        cycle = OneWriteCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=self.fast_keep_alive and not self.fast_closing,
            on_response=self.on_response_complete,
        )
        cycle.body += body
        cycle.more_body = False
        cycle.message_event.set()
        self.cycle = cycle
        self._start_asgi_task(cycle, self.app)

    def shutdown(self) -> None:
        if self.fast_body is not None:  # mid-request: answer it, then close
            self.fast_closing = True
            return
        super().shutdown()
