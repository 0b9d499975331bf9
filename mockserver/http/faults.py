"""Fault rules: added latency, a chosen answer or a dropped connection, for matching requests."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.errors import BadRequest
from .journal import path_matches

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Scope key of a coroutine function that drops the client's connection (see `ConnectionDrops`).
DROP = "mockserver.drop"
_NO_BODY = (204, 205, 304)


@dataclass(slots=True)
class FaultRule:
    id: str
    method: str | None = None
    path: str | None = None
    latency_ms: float = 0.0
    status: int | None = None
    body: Any = None
    has_body: bool = False
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    times: int | None = None
    probability: float = 1.0
    remaining: int | None = None
    hits: int = 0

    @classmethod
    def parse(cls, rule_id: str, spec: dict[str, Any]) -> FaultRule:
        """A rule from its JSON form (already of the control spec's shape); raises BadRequest."""
        method = spec.get("method")
        if method is not None:
            method = method.upper()
            if method not in METHODS:
                raise BadRequest.field("method", f"expected one of {list(METHODS)}, got {spec['method']!r}")
        path = spec.get("path")
        if path is not None and not path.startswith(("/", "*")):
            raise BadRequest.field("path", f"a path starts with '/' (or '*'), got {path!r}")
        status, drop = spec.get("status"), bool(spec.get("drop", False))
        latency = float(spec.get("latency_ms", 0))
        for answer in ("body", "text", "headers"):
            if answer in spec and status is None:
                raise BadRequest.field(answer, f"{answer!r} goes with a status: add 'status'")
        if status is None and not drop and not latency:
            raise BadRequest.field(
                "(body)",
                "a rule needs an action: latency_ms, status (with body, text or headers) or drop: true",
            )
        if status is not None and drop:
            raise BadRequest.field(
                "drop", "a rule either answers with a status or drops the connection, not both"
            )
        if "body" in spec and "text" in spec:
            raise BadRequest.field("text", "give the answer as 'body' (JSON) or 'text', not both")
        times = spec.get("times")
        return cls(
            id=rule_id,
            method=method,
            path=path,
            latency_ms=latency,
            status=status,
            body=spec.get("body"),
            has_body="body" in spec,
            text=spec.get("text"),
            headers=dict(spec.get("headers") or {}),
            drop=drop,
            times=times,
            probability=float(spec.get("probability", 1.0)),
            remaining=times,
        )

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return (self.method is None or self.method == method) and path_matches(self.path, path)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "drop": self.drop,
            "times": self.times,
            "probability": self.probability,
            "remaining": self.remaining,
            "hits": self.hits,
        }
        if self.has_body:
            out["body"] = self.body
        if self.text is not None:
            out["text"] = self.text
        if self.headers:
            out["headers"] = self.headers
        return out

    def response(self) -> Response:
        assert self.status is not None
        if self.status in _NO_BODY:
            return Response(status_code=self.status, headers=self.headers)
        if self.text is not None:
            return Response(self.text, self.status, self.headers, media_type="text/plain; charset=utf-8")
        if self.has_body:
            content = orjson.dumps(self.body)
        elif self.status >= 400:
            content = orjson.dumps(
                {
                    "error": f"Fault injected by the mock's control API (rule {self.id})",
                    "code": "FAULT_INJECTED",
                    "status": self.status,
                    "details": {"fault_id": self.id},
                }
            )
        else:
            content = b""
        return Response(content, self.status, self.headers, media_type="application/json")


class Faults:
    """One tenant's rules, tried in the order added; the first that fires decides."""

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next = 1
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self._rules)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        with self._lock:
            rule = FaultRule.parse(f"flt_{self._next}", spec)
            self._next += 1
            self._rules.append(rule)
            return rule

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            kept = [r for r in self._rules if r.id != rule_id]
            found = len(kept) != len(self._rules)
            self._rules = kept
            return found

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def reset(self) -> None:
        with self._lock:
            self._rules = []
            self._next = 1
            self._rng = random.Random(self._seed)

    def fire(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires on this request, counted; None when none does."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None


async def act(rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> bool:
    """Carry out a rule that fired; True when it answered (or dropped) the request itself."""
    if rule.latency_ms:
        await asyncio.sleep(rule.latency_ms / 1000)
    if rule.drop:
        drop = scope.get(DROP)
        if drop is None:
            # In process (no socket to close): the client's call raises instead.
            raise ConnectionResetError(f"kantos-mock: connection dropped by fault rule {rule.id}")
        await drop()
        return True
    if rule.status is not None:
        await rule.response()(scope, receive, send)
        return True
    return False


class ConnectionDrops:
    """Outermost ASGI wrapper for a real server: gives fault rules a way to close the socket.

    ASGI has no message for "hang up", so this reaches the connection's transport through the
    server's own `send` (uvicorn's request cycle, with the httptools and the h11 protocol).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[DROP] = partial(_hang_up, send, receive)
        try:
            await self.app(scope, receive, send)
        finally:
            # `send` is bound to uvicorn's request cycle, which holds the scope: left in place, the
            # entry would make every request a reference cycle, and the garbage collector would
            # run hundreds of times a second to free them (`./dev bench http`).
            del scope[DROP]


async def _hang_up(send: Send, receive: Receive) -> None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("kantos-mock: cannot reach the connection to drop it")
    transport.abort()
    # Wait until the server has seen the connection go, so it does not log a request that
    # "returned without starting a response" or try to answer 500 on a closed socket.
    try:
        async with asyncio.timeout(1.0):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass
