"""The request journal: what each tenant was sent and what it answered, API keys redacted."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
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
#: Bytes of each body (request and response) an entry keeps; a longer one is cut, and says so.
BODY_CAP = 256 * 1024
#: What one tenant's entries may hold in all: their bodies and query strings, plus `ENTRY_COST`
#: each for the rest (headers, numbers, the tuple). Past it, the oldest entries go first.
BYTES_BUDGET = 40 * 1024 * 1024
#: A generous allowance per entry for what is not counted byte by byte (a few headers).
ENTRY_COST = 1024
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
    body_size: int
    response: bytes
    response_size: int

    def summary(self) -> dict[str, Any]:
        """What a list of requests shows: no headers, query or bodies (`to_json` has them)."""
        return {
            "id": self.id,
            "time": format_timestamp(self.at_us),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "fault": self.fault,
            "client": _client(self.headers),
        }

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
            "body": _body(self.body, self.body_size),
            "body_size": self.body_size,
            "body_truncated": len(self.body) < self.body_size,
            "status": self.status,
            "response_body": _body(self.response, self.response_size),
            "response_size": self.response_size,
            "response_truncated": len(self.response) < self.response_size,
            "duration_ms": round(self.duration_ms, 3),
            "fault": self.fault,
            "client": _client(self.headers),
        }


def _client(headers: tuple[tuple[bytes, bytes], ...]) -> str | None:
    """The `X-Mock-Client` header a request carried (the dashboard sends `dashboard`), if any."""
    for name, value in headers:
        if name.lower() == b"x-mock-client":
            return value.decode("latin-1")
    return None


def _body(raw: bytes, size: int) -> Any:
    if not raw:
        return None
    if len(raw) < size:  # cut: no longer JSON, shown as the text it starts with
        return raw.decode("utf-8", errors="replace") + "…"
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", errors="replace")
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


Stored = tuple[
    int,
    int,
    str,
    str,
    bytes,
    tuple[tuple[bytes, bytes], ...],
    bytes,
    int | None,
    float,
    str | None,
    int,
    bytes,
    int,
    int,
]
"""An entry as stored: `Entry`'s fields, in order, then what it counts against the budget: its
bodies and query string, plus `ENTRY_COST`."""


class Journal:
    """One tenant's requests, oldest first. Appended from the event loop, read from anywhere.

    Entries are stored as plain tuples of strings, bytes and numbers, and made into `Entry`
    objects only when read: the garbage collector stops tracking such a tuple after its first
    pass, so a full journal (10,000 entries that outlive many collections) costs every later
    collection nothing. As objects, they were walked by each one (`./dev bench http`).

    Each entry keeps up to `BODY_CAP` bytes of its request's body and of its answer's (the bytes
    sent, not a copy, when they fit); the oldest entries go when there are `maxlen` of them or
    when what they hold passes `budget` bytes. Nothing here runs for a reader that is not
    reading: a dashboard polls `entries(since=...)`, it is never pushed to."""

    def __init__(self, maxlen: int = MAX_ENTRIES, budget: int = BYTES_BUDGET) -> None:
        self._entries: deque[Stored] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._next_id = 1
        self._maxlen = maxlen
        self._budget = budget
        self._bytes = 0
        #: How many times the journal was emptied: a reader that polls with `since` starts over
        #: when it changes (ids start from 1 again).
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_id(self) -> int:
        """The id of the newest request journaled (0 when none since the last clear)."""
        return self._next_id - 1

    @property
    def size(self) -> int:
        """What the entries count against the budget, in bytes."""
        return self._bytes

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
        response: bytes = b"",
    ) -> None:
        """Journal one request: its headers as sent (redacted when read), its body and the body
        answered (each cut to `BODY_CAP` bytes; an entry says so when cut), the status answered
        (None: no answer was sent), how long it took, the fault rule that fired on it."""
        kept = tuple(headers)  # ASGI servers give (name, value) tuples of bytes: kept as they are
        body_size, response_size = len(body), len(response)
        # Under the cap (the usual case) the entry keeps the very bytes sent: no copy.
        if body_size > BODY_CAP:
            body = body[:BODY_CAP]
        if response_size > BODY_CAP:
            response = response[:BODY_CAP]
        entries = self._entries
        with self._lock:
            number = self._next_id
            self._next_id += 1
            if len(entries) == self._maxlen:  # the deque drops its oldest as this one goes in
                self._bytes -= entries[0][13]
            cost = len(query_string) + len(body) + len(response) + ENTRY_COST
            entries.append(
                (
                    number,
                    at_us,
                    method,
                    path,
                    query_string,
                    kept,
                    body,
                    status,
                    duration_ms,
                    fault,
                    body_size,
                    response,
                    response_size,
                    cost,
                )
            )
            self._bytes += cost
            if self._bytes > self._budget:
                while self._bytes > self._budget and len(entries) > 1:
                    self._bytes -= entries.popleft()[13]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._next_id = 1
            self._bytes = 0
            self.generation += 1

    def entry(self, number: int) -> dict[str, Any] | None:
        """One request in full, or None when it is not (or no longer) in the journal."""
        with self._lock:
            if not self._entries or not self._entries[0][0] <= number <= self._entries[-1][0]:
                return None
            # Ids are consecutive, so the entry's place is its id's distance from the first.
            stored = self._entries[number - self._entries[0][0]]
        return Entry(*stored[:13]).to_json()

    def entries(
        self,
        method: str | None = None,
        path: str | None = None,
        status: str | None = None,
        since: int = 0,
        limit: int | None = None,
        bodies: bool = True,
    ) -> list[dict[str, Any]]:
        """The matching entries, oldest first: only those after id `since`, only the newest
        `limit` of them; `status` is a status (`404`), a class (`4xx`) or `none` (no answer);
        without `bodies`, each entry is its `summary()`."""
        want = method.upper() if method else None
        wanted_status = _status_test(status)
        picked: list[Stored] = []
        with self._lock:
            # Newest first, stopping at `since` or at `limit`: a poller's cost follows what is
            # new, not the journal's length.
            for e in reversed(self._entries):
                if e[0] <= since or (limit is not None and len(picked) >= limit):
                    break
                if (want is None or e[2] == want) and wanted_status(e[7]) and path_matches(path, e[3]):
                    picked.append(e)
        picked.reverse()
        if bodies:
            return [Entry(*e[:13]).to_json() for e in picked]
        return [Entry(*e[:13]).summary() for e in picked]


def _status_test(status: str | None) -> Callable[[int | None], bool]:
    if status is None:
        return lambda s: True
    if status == "none":
        return lambda s: s is None
    if status.endswith("xx"):
        low = int(status[0]) * 100
        return lambda s: s is not None and low <= s < low + 100
    exact = int(status)
    return lambda s: s == exact


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
    chunks: list[bytes] = []

    async def watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
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
            b"".join(chunks),
        )
