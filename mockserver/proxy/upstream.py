"""A small HTTP/1.1 client for forwarding: keep-alive connections, streamed bodies, httptools.

Keep-alive connections to one upstream, bodies streamed both ways, the response parsed by
httptools (uvicorn's parser).

httpx costs ~5 ms a request on a loaded machine (anyio and its pool); forwarding a page of 25
records must add well under 1 ms, so the proxy speaks HTTP itself. It never decodes a body: what the
upstream sends (gzip included) is what the client gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

Headers = list[tuple[bytes, bytes]]


class UpstreamError(Exception):
    """The upstream could not be reached, or broke off its answer."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class Response:
    """The status and headers, then the body as it arrives (`chunks()`), each piece once."""

    def __init__(self, upstream: Upstream, conn: _Conn, head_only: bool) -> None:
        self._upstream, self._conn, self._head_only = upstream, conn, head_only
        self.status = 0
        self.headers: Headers = []
        self._pieces: list[bytes] = []
        self._headers_done = False
        self._done = False
        self._interim = False
        self._parser = httptools.HttpResponseParser(self)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103): the final one follows
            self.headers.clear()
            self._interim = True
            return
        self._headers_done = True
        self.status = status
        if self._head_only:
            self._done = True

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True

    async def _feed(self, timeout: float) -> bool:
        """Read and parse one piece; False at end of stream."""
        async with asyncio.timeout(timeout):  # no task per read, unlike wait_for
            data = await self._conn.reader.read(65_536)
        if not data:
            with contextlib.suppress(httptools.HttpParserError):
                self._parser.feed_data(b"")  # a body delimited by the end of the connection ends here
            return False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            raise UpstreamError(f"the upstream's answer is not HTTP: {exc}") from exc
        return True

    async def start(self, timeout: float) -> None:
        while not self._headers_done:
            if not await self._feed(timeout):
                raise UpstreamError("the upstream closed the connection before answering")

    async def chunks(self, timeout: float) -> AsyncIterator[bytes]:
        try:
            while True:
                while self._pieces:
                    yield self._pieces.pop(0)
                if self._done:
                    break
                if not await self._feed(timeout):
                    while self._pieces:
                        yield self._pieces.pop(0)
                    self._done = self._done or not self._head_only
                    self._parser = None  # type: ignore[assignment]
                    self._conn.close()
                    return
        finally:
            self.release()

    def release(self) -> None:
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        if self._done and not self._head_only and self._parser is not None and self._reusable():
            self._upstream.give_back(conn)
        else:
            conn.close()

    def _reusable(self) -> bool:
        """HTTP/1.1, no `Connection: close`, a body of known length: the connection may carry the
        next request. (httptools' should_keep_alive() is False once a response is complete.)"""
        if self._parser.get_http_version() != "1.1":
            return False
        names = {k.lower(): v.lower() for k, v in self.headers}
        if b"close" in names.get(b"connection", b""):
            return False
        return b"content-length" in names or b"transfer-encoding" in names or self.status in (204, 304)


class Upstream:
    """Keep-alive connections to one server; `send` writes a request and reads the answer's head."""

    def __init__(self, url: str, timeout: float = 60.0, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        default = (self.https and self.port == 443) or (not self.https and self.port == 80)
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (name if default else f"{name}:{self.port}").encode("idna")
        self.prefix = parts.path.rstrip("/").encode()
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._ssl = ssl.create_default_context() if self.https else None

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self._ssl, server_hostname=self.host if self._ssl else None
                ),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    def give_back(self, conn: _Conn) -> None:
        if len(self._idle) < self.max_idle and conn.usable():
            self._idle.append(conn)
        else:
            conn.close()

    async def send(
        self, method: str, target: bytes, headers: Headers, body: AsyncIterator[bytes] | None, chunked: bool
    ) -> Response:
        """`target`: path and query as the client sent them. `chunked`: the client sent no
        Content-Length, so the body goes on chunked."""
        head = [method.encode(), b" ", self.prefix, target, b" HTTP/1.1\r\nhost: ", self.host_header, b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        if chunked:
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        request_head = b"".join(head)
        sent: list[bytes] = []  # the body so far, to send again on a fresh connection
        body_done = body is None
        while True:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._connect()
            if reused and not conn.usable():
                conn.close()
                continue
            try:
                conn.writer.write(request_head)
                for piece in sent:
                    conn.writer.write(_frame(piece, chunked))
                if body is not None and not body_done:
                    async for piece in body:
                        sent.append(piece)
                        conn.writer.write(_frame(piece, chunked))
                        await conn.writer.drain()
                    body_done = True
                if chunked:
                    conn.writer.write(b"0\r\n\r\n")
                await conn.writer.drain()
                response = Response(self, conn, head_only=method == "HEAD")
                await response.start(self.timeout)
                return response
            except (OSError, UpstreamError, TimeoutError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if not reused:  # a fresh connection failed: the upstream's fault, not a stale one
                    raise UpstreamError(str(exc) or repr(exc)) from exc

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()


def _frame(piece: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece
