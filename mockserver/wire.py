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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


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
