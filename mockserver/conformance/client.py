"""The kit's HTTP client: records every exchange so any finding can print it as a curl command."""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

#: The reproducers read the key from this variable, so reports never carry the key itself.
KEY_VARIABLE = "KANTOS_API_KEY"
#: The variables the reproducers read the other keys from, by the `auth` name requests give them.
OTHER_KEY_VARIABLES = {"intake": "KANTOS_INTAKE_KEY", "non-admin": "KANTOS_NON_ADMIN_KEY"}
#: Bodies longer than this are written by a python3 one-liner in reproducers, not inline.
LONG_BODY = 2048
WRONG_KEY = "conformance-kit-not-a-key"
_MISSING: Any = object()


class Unreachable(Exception):
    """The server did not answer at all (connection refused, DNS, TLS, timeout)."""


@dataclass(slots=True)
class Exchange:
    """One request as sent and the response as received."""

    method: str
    path: str
    params: list[tuple[str, str]]
    body: bytes | None
    content_type: str | None
    auth: str  # "key" | "none" | "wrong", or one of OTHER_KEY_VARIABLES
    chunked: bool = False  # the body was sent with Transfer-Encoding: chunked, no Content-Length
    status: int = 0  # 0: no response (transport error)
    headers: dict[str, str] = field(default_factory=dict)  # lowercased names
    text: str = ""
    error: str = ""
    _json: Any = _MISSING

    @property
    def json(self) -> Any:
        """The decoded body, or None when it is not JSON."""
        if self._json is _MISSING:
            try:
                self._json = json.loads(self.text) if self.text else None
            except ValueError:
                self._json = None
        return self._json

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def url(self, base_url: str) -> str:
        query = urlencode(self.params)
        return base_url + self.path + ("?" + query if query else "")

    def curl(self, base_url: str, *, headers: bool = True, var: tuple[str, str] | None = None) -> str:
        """A shell command that sends the same request; the key comes from $KANTOS_API_KEY.

        `var` = (record id, NAME): the id in the path becomes `$NAME`, for replaying a sequence.
        """
        parts = ["curl", "-sS", "-i"] if headers else ["curl", "-sS"]
        as_form = self.method == "GET" and bool(self.params)
        if as_form:
            parts.append("-G")
        elif self.method == "HEAD":
            parts.append("-I")  # curl -X HEAD would wait for a body that never comes
        elif self.method != "GET":
            parts += ["-X", self.method]
        url = base_url + self.path if as_form else self.url(base_url)
        if var is not None and var[0] in url and all(c not in url for c in '"$`\\'):
            parts.append('"' + url.replace(var[0], "$" + var[1]) + '"')
        else:
            parts.append(shlex.quote(url))
        if self.auth == "key":
            parts += ["-H", f'"X-Api-Key: ${KEY_VARIABLE}"']
        elif self.auth == "wrong":
            parts += ["-H", shlex.quote(f"X-Api-Key: {WRONG_KEY}")]
        elif self.auth in OTHER_KEY_VARIABLES:
            parts += ["-H", f'"X-Api-Key: ${OTHER_KEY_VARIABLES[self.auth]}"']
        if self.content_type is not None:
            parts += ["-H", shlex.quote(f"Content-Type: {self.content_type}")]
        elif self.body is not None:
            parts += ["-H", "'Content-Type:'"]  # no type at all (curl would send a form's)
        if self.chunked:
            parts += ["-H", shlex.quote("Transfer-Encoding: chunked")]
        if as_form:
            for name, value in self.params:
                parts += ["--data-urlencode", shlex.quote(f"{name}={value}")]
        if self.body is not None and len(self.body) > LONG_BODY:
            return f"{_writer(self.body)} | {' '.join(parts)} --data-binary @-"
        if self.body is not None:
            parts += ["--data-raw", shlex.quote(self.body.decode("utf-8", "replace"))]
        return " ".join(parts)

    def summary(self, limit: int = 300) -> str:
        """`<status> <body>`, the body shortened to `limit` characters."""
        if not self.status:
            return f"no response: {self.error}"
        text = self.text if len(self.text) <= limit else self.text[:limit] + " …"
        return f"{self.status} {text}".rstrip()


#: For each byte value, a pattern matching a run of it (compiled once, on first use).
_RUNS: dict[int, re.Pattern[bytes]] = {}


def _writer(body: bytes) -> str:
    """A python3 one-liner that writes `body` (long: a prefix, one byte repeated, a suffix)."""
    best = (0, 0)  # (start, length) of the first longest run of one byte
    i = 0
    while i < len(body):
        run = _RUNS.get(body[i])
        if run is None:
            run = _RUNS[body[i]] = re.compile(re.escape(body[i : i + 1]) + b"+")
        match = run.match(body, i)
        assert match is not None  # body[i] itself at least
        j = match.end()  # the run's end, found in C: the long bodies are mostly one long run
        if j - i > best[1]:
            best = (i, j - i)
        i = j
    start, length = best
    head, byte, tail = body[:start], body[start : start + 1], body[start + length :]
    code = f"import sys; sys.stdout.buffer.write({head!r} + {byte!r} * {length} + {tail!r})"
    return f"python3 -c {shlex.quote(code)}"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Client:
    """Sends requests to one server with one key; keeps every exchange in `log`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        notify: Callable[[str], None] | None = None,
        max_rate_wait: float = 65.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.log: list[Exchange] = []
        #: Ids of every record a POST created (whatever the check meant), for the cleanup.
        self.created: list[str] = []
        self.deleted: set[str] = set()
        #: Other keys of the server under test, by the `auth` name requests give them.
        self.other_keys: dict[str, str] = {}
        self.rate_waits = 0.0
        self._notify = notify or (lambda message: None)
        self._max_rate_wait = max_rate_wait
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, follow_redirects=False, limits=_limits(self.base_url)
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | dict[str, Any] | None = None,
        json_body: Any = _MISSING,
        raw_body: bytes | None = None,
        content_type: str | None = None,
        auth: str = "key",
        chunked: bool = False,
    ) -> Exchange:
        """Send one request; `auth` names the key ("key", "none", "wrong", or a key in `other_keys`)."""
        items = _query_items(params)
        body: bytes | None = raw_body
        if json_body is not _MISSING:
            body = dumps(json_body).encode()
            content_type = content_type or "application/json"
        ex = Exchange(method, path, items, body, content_type, auth, chunked)
        headers: dict[str, str] = {}
        if auth == "key":
            headers["X-Api-Key"] = self.api_key
        elif auth == "wrong":
            headers["X-Api-Key"] = WRONG_KEY
        elif auth in self.other_keys:
            headers["X-Api-Key"] = self.other_keys[auth]
        if content_type is not None:
            headers["Content-Type"] = content_type
        for _ in range(4):
            self._send(ex, headers)
            if ex.status != 429 or not self._wait_for_limit(ex):
                break
            ex = Exchange(method, path, items, body, content_type, auth, chunked)
        self._track(ex)
        return ex

    def get(self, path: str, params: list[tuple[str, str]] | dict[str, Any] | None = None) -> Exchange:
        return self.request("GET", path, params=params)

    def query(self, params: dict[str, Any]) -> Exchange:
        return self.request("GET", "/api/crm/records/query", params=params)

    def _send(self, ex: Exchange, headers: dict[str, str]) -> None:
        try:
            content: bytes | Iterator[bytes] | None = ex.body
            if ex.chunked and ex.body is not None:
                content = _chunks(ex.body)  # an iterator: httpx sends it chunked, with no Content-Length
            response = self._http.request(
                ex.method, ex.path, params=list(ex.params) or None, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            ex.error = f"{type(exc).__name__}: {exc}"
            self.log.append(ex)
            if not any(e.status for e in self.log):
                raise Unreachable(f"{self.base_url}: {ex.error}") from exc
            return
        ex.status = response.status_code
        ex.headers = {k.lower(): v for k, v in response.headers.items()}
        ex.text = response.text
        self.log.append(ex)

    def _wait_for_limit(self, ex: Exchange) -> bool:
        """On a 429, wait as told (bounded) so the run can go on; False: give up."""
        try:
            wait = float(ex.header("retry-after") or "1")
        except ValueError:
            wait = 1.0
        if wait > self._max_rate_wait:
            return False
        self._notify(f"rate limited (429): waiting {wait:.0f} s as Retry-After says")
        self.rate_waits += wait
        time.sleep(max(wait, 0.0))
        return True

    def _track(self, ex: Exchange) -> None:
        if ex.method == "POST" and ex.path == "/api/crm/record" and ex.status == 201:
            rid = ex.json.get("id") if isinstance(ex.json, dict) else None
            if isinstance(rid, str):
                self.created.append(rid)
        if ex.method == "DELETE" and ex.path.startswith("/api/crm/record/") and ex.status in (200, 204):
            self.deleted.add(ex.path.rsplit("/", 1)[1])


def _chunks(body: bytes, size: int = 65_536) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _limits(base_url: str) -> httpx.Limits:
    """No keep-alive on loopback: a server that writes headers and body separately without
    TCP_NODELAY stalls every reused connection for the peer's delayed ACK (~40 ms), while a new
    local connection costs a fraction of a millisecond. Remote servers keep their connections."""
    return httpx.Limits(max_keepalive_connections=0) if is_loopback(base_url) else httpx.Limits()


def is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _query_items(params: list[tuple[str, str]] | dict[str, Any] | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, list):
        return params
    out: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            out.append((name, dumps(value)))
        else:
            out.append((name, str(value)))
    return out
