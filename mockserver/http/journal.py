"""The request journal: what each tenant was sent and what it answered, API keys redacted."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.clock import Clock, format_timestamp

#: Entries kept per tenant; older ones are dropped first.
MAX_ENTRIES = 10_000
#: Bytes of a request body read ahead for the journal (the API refuses more than 1 MiB anyway).
MAX_BODY = 1024 * 1024 + 1
#: A body that is not JSON is kept as text, cut to this many characters.
MAX_TEXT = 10_000
SECRET_HEADERS = frozenset({"x-api-key", "authorization"})


def redact(secret: str) -> str:
    """The first six characters and an ellipsis: enough to tell keys apart, not to use one."""
    return secret[:6] + "…" if len(secret) > 8 else "…"


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z", re.DOTALL)


def path_matches(pattern: str | None, path: str) -> bool:
    """An exact path, or `*` standing for any run of characters (`/` included)."""
    if pattern is None:
        return True
    if "*" not in pattern:
        return pattern == path
    return _pattern(pattern).match(path) is not None


@dataclass(slots=True)
class Entry:
    """One request, stored raw; rendered (and redacted) only when read."""

    id: int
    at_us: int
    method: str
    path: str
    query_string: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    status: int | None
    duration_ms: float
    fault: str | None

    def to_json(self) -> dict[str, Any]:
        query: dict[str, str | list[str]] = {}
        for name, value in parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True):
            prev = query.get(name)
            if prev is None:
                query[name] = value
            elif isinstance(prev, list):
                prev.append(value)
            else:
                query[name] = [prev, value]
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = redact(value) if name in SECRET_HEADERS else value
        return {
            "id": self.id,
            "time": format_timestamp(self.at_us),
            "method": self.method,
            "path": self.path,
            "query": query,
            "headers": headers,
            "body": _body(self.body),
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "fault": self.fault,
        }


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", errors="replace")
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


#: An entry as stored: `Entry`'s fields, in order, in a plain tuple of immutable values.
Stored = tuple[
    int, int, str, str, bytes, tuple[tuple[bytes, bytes], ...], bytes, int | None, float, str | None
]


class Journal:
    """One tenant's requests, oldest first. Appended from the event loop, read from anywhere.

    Entries are stored as plain tuples of strings, bytes and numbers, and made into `Entry`
    objects only when read: the garbage collector stops tracking such a tuple after its first
    pass, so a full journal (10,000 entries that outlive many collections) costs every later
    collection nothing. As objects, they were walked by each one (`./dev bench http`)."""

    def __init__(self, maxlen: int = MAX_ENTRIES) -> None:
        self._entries: deque[Stored] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._entries)

    def add(
        self,
        at_us: int,
        method: str,
        path: str,
        query_string: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        status: int | None,
        duration_ms: float,
        fault: str | None,
    ) -> None:
        """Journal one request: its headers as sent (redacted when read), its body (up to 1 MiB),
        the status answered (None: no answer was sent), how long it took, the fault rule that
        fired on it."""
        kept = tuple(headers)  # ASGI servers give (name, value) tuples of bytes: kept as they are
        with self._lock:
            number = self._next_id
            self._next_id += 1
            self._entries.append(
                (number, at_us, method, path, query_string, kept, body, status, duration_ms, fault)
            )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._next_id = 1

    def entries(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        want = method.upper() if method else None
        with self._lock:
            stored = list(self._entries)
        return [
            Entry(*e).to_json() for e in stored if (want is None or e[2] == want) and path_matches(path, e[3])
        ]


async def prefetch_body(receive: Receive, limit: int = MAX_BODY) -> tuple[bytes, Receive]:
    """Read up to `limit` bytes of the body now (for the journal) and hand back a `receive`
    that replays them before passing on whatever is left."""
    chunks: list[bytes] = []
    size = 0
    more = True
    first: Message | None = None
    while more and size < limit:
        message = await receive()
        if message["type"] != "http.request":
            first = message  # a disconnect: replay it as is
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        if first is not None and not chunks:
            return first
        return {"type": "http.request", "body": body, "more_body": more}

    return body, replay


async def journaled(
    journal: Journal, clock: Clock, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run `app` and journal the request with the status it got (None if no answer was sent)."""
    started = time.perf_counter()
    at_us = clock.now_us()
    body, receive = await prefetch_body(receive)
    status: int | None = None

    async def watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, watch)
    finally:
        state = scope.get("state") or {}
        journal.add(
            at_us,
            scope["method"],
            scope["path"],
            scope.get("query_string", b""),
            scope.get("headers", []),
            body[: MAX_BODY - 1],
            status,
            (time.perf_counter() - started) * 1000,
            state.get("fault"),
        )
