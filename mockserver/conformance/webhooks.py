"""Webhook conformance (`--webhooks`): a receiver of the kit's own, and what one record's life sends to it."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..domain.schema import FieldType
from .client import Exchange, dumps
from .mockclock import ServerClock
from .oracle import is_empty
from .report import Finding
from .suite import Suite

EVENTS = ("record.created", "record.updated", "record.deleted")
BODY_KEYS = ("event", "timestamp", "data", "signature")
#: Set it to keep the receiver's secret from run to run (a real server's subscription is configured once).
SECRET_VARIABLE = "KANTOS_WEBHOOK_SECRET"
PATH = "/kantos-webhooks"
#: Seconds to wait for deliveries: the mock sends at once; a real server may queue them.
WAIT_MOCK, WAIT_SERVER = 3.0, 20.0
#: The first retry comes a minute after a failure [docs]: moved on the mock's clock, else waited for.
RETRY_AFTER, RETRY_WAIT = 61.0, 75.0
MAX_BODY = 16 * 1024 * 1024

EVENTS_CHECK = (
    "webhooks.events",
    "webhooks",
    "a create, an update and a delete each send one delivery: record.created, record.updated, record.deleted",
)
BODY_CHECK = (
    "webhooks.body",
    "webhooks",
    'a delivery\'s body is {"event", "timestamp", "data", "signature"}, data the record as the API '
    "returned it",
)
SIGNATURE_CHECK = (
    "webhooks.signature",
    "webhooks",
    'signature is "sha256=" + HMAC-SHA256 over the compact JSON of the body without it; '
    "X-Kantos-Signature is the same",
)
EVENT_ID_CHECK = ("webhooks.event-id", "webhooks", "each delivery carries X-Kantos-Event-Id, one per event")
RETRY_CHECK = (
    "webhooks.retry",
    "webhooks",
    "a failed delivery is retried with the same X-Kantos-Event-Id",
)


@dataclass(slots=True)
class Delivery:
    """One POST the receiver got, and the status it answered."""

    headers: dict[str, str]  # lowercased names
    body: bytes
    answered: int
    number: int  # 1 for the first delivery of the run

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def doc(self) -> dict[str, Any]:
        body = self.json
        return body if isinstance(body, dict) else {}

    @property
    def event(self) -> Any:
        return self.doc.get("event")

    @property
    def record_id(self) -> Any:
        data = self.doc.get("data")
        return data.get("id") if isinstance(data, dict) else None

    @property
    def event_id(self) -> str | None:
        return self.headers.get("x-kantos-event-id")

    def describe(self, limit: int = 400) -> list[str]:
        """Detail lines for a finding: the headers that matter and the body."""
        text = self.body.decode("utf-8", "replace")
        text = text if len(text) <= limit else text[:limit] + " …"
        shown = [
            f"{name}: {self.headers[name]}"
            for name in ("x-kantos-event-id", "x-kantos-signature", "content-type")
            if name in self.headers
        ]
        answer = f" (the receiver answered {self.answered})" if self.answered != 200 else ""
        return [f"delivery #{self.number}{answer}: " + "; ".join(shown), f"body: {text}"]


class Receiver:
    """A small threaded HTTP server that records every POST; it can fail the next delivery."""

    def __init__(self, listen: str | None = None) -> None:
        host, port = parse_listen(listen)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._fail = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    body = _read_body(self)
                except ValueError:
                    self.send_error(400)
                    return
                status = receiver._record({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the report says what arrived

        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="kit-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def url(self, loopback: bool = False) -> str:
        """Where to send deliveries; `loopback` for a server on this machine."""
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = ("::1" if host == "::" else "127.0.0.1") if loopback else socket.gethostname()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{PATH}"

    def fail_next(self, count: int = 1) -> None:
        """Answer the next `count` deliveries with a 500."""
        with self._lock:
            self._fail = count

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def wait_for(self, done: Callable[[list[Delivery]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done(self.snapshot()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            status = 200
            if self._fail:
                self._fail -= 1
                status = 500
            self.deliveries.append(Delivery(headers, body, status, len(self.deliveries) + 1))
            return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def parse_listen(listen: str | None) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) into its parts; a free loopback port when None."""
    if not listen:
        return "127.0.0.1", 0
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--webhook-listen expects HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return handler.rfile.read(length) if length > 0 else b""


def signature_of(payload: dict[str, Any], secret: str, ascii_only: bool = True) -> str:
    """What the docs say a receiver computes: HMAC-SHA256 over the compact JSON of the payload
    without `signature` (Python's `json.dumps(..., separators=(",", ":"))`, so non-ASCII escaped)."""
    unsigned = {k: v for k, v in payload.items() if k != "signature"}
    message = json.dumps(unsigned, separators=(",", ":"), ensure_ascii=ascii_only).encode()
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _is_instant(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def _differences(expected: dict[str, Any], received: Any) -> list[str]:
    if not isinstance(received, dict):
        return [f"data is {dumps(received)[:120]}, not an object"]
    out = []
    for key in expected:
        if key not in received:
            out.append(f"data lacks {key}")
        elif key == "field_values" and isinstance(expected[key], dict) and isinstance(received[key], dict):
            want, got = expected[key], received[key]
            lost = sorted(k for k in want if k not in got)
            extra = sorted(k for k in got if k not in want)
            other = sorted(k for k in want if k in got and got[k] != want[k])
            if lost:
                out.append(f"field_values lacks {', '.join(lost)}")
            if extra:
                out.append(f"field_values has {', '.join(extra)}, which the record has not")
            if other:
                out.append(f"field_values differs in {', '.join(other)}")
        elif received[key] != expected[key]:
            out.append(f"{key} is {dumps(received[key])[:80]}, the API returned {dumps(expected[key])[:80]}")
    out += [f"data has {key}, which the record has not" for key in received if key not in expected]
    return out


@dataclass(slots=True)
class _Write:
    """A write the kit made, the event it must send, and the record that event carries."""

    event: str
    ex: Exchange
    record: dict[str, Any]
    steps: list[Exchange]


class WebhookChecks(Suite):
    """`--webhooks`: create, update and delete a record, and check each delivery it causes."""

    def run_webhooks(self) -> None:
        listen = self.options.webhook_listen
        try:
            receiver = Receiver(listen)
        except (OSError, ValueError) as exc:
            self.report.problem(f"webhooks: the receiver cannot listen on {listen}: {exc}")
            return
        receiver.start()
        chosen = os.environ.get(SECRET_VARIABLE)
        secret = chosen or "whsec_kit_" + secrets.token_hex(16)
        subscription: str | None = None
        try:
            clock = ServerClock.of(self.client)
            listed = self.client.get("/_mock/webhooks")
            if listed.status == 200 and isinstance(listed.json, dict) and "data" in listed.json:
                url = receiver.url(loopback=True)
                ex = self.client.request("POST", "/_mock/webhooks", json_body={"url": url, "secret": secret})
                subscription = ex.json.get("id") if isinstance(ex.json, dict) else None
                if ex.status != 201 or not isinstance(subscription, str):
                    self.report.problem(f"webhooks: the mock refused the subscription: {ex.summary(200)}")
                    return
                self.report.progress(f"webhooks: receiver at {url}, subscribed through /_mock/webhooks")
            else:
                shown = f"${SECRET_VARIABLE}" if chosen else secret
                self.report.progress(
                    f"webhooks: receiver at {receiver.url()}; the server under test must send "
                    f"record.created, record.updated and record.deleted there, signed with the secret {shown}"
                )
            self._webhook_checks(receiver, secret, clock)
        finally:
            if subscription is not None:
                self.client.request("DELETE", f"/_mock/webhooks/{subscription}")
            receiver.stop()

    def _webhook_checks(self, receiver: Receiver, secret: str, clock: ServerClock) -> None:
        obj = self.obj
        text = next(
            (f for f in obj.fields if f.type in (FieldType.TEXT, FieldType.LONG_TEXT) and not f.unique), None
        ) or next((f for f in obj.fields if f.type == FieldType.TEXT), None)
        values = {k: v for k, v in self.setup.values_for(self.scratch, 971).items() if not is_empty(v)}
        tag = f"{self.setup.marker}-{secrets.token_hex(3)}"
        if text is not None:  # non-ASCII, so the signature's JSON must escape it as the docs' code does
            values[text.slug] = f"Kit webhook {tag} — Zoë ✓"
        retries = self.options.webhook_retries
        if retries:
            receiver.fail_next()
        created = self.client.request(
            "POST", "/api/crm/record", json_body={"object_id": obj.id, "field_values": values}
        )
        body = created.json if isinstance(created.json, dict) else {}
        rid = body.get("id")
        if created.status != 201 or not isinstance(rid, str):
            self.report.problem(
                f"webhooks: could not create a record to cause events: {created.summary(200)}"
            )
            return
        change = {text.slug: f"Kit webhook {tag} — updated ✓"} if text is not None else {}
        path = f"/api/crm/record/{rid}"
        updated = self.client.request("PATCH", path, json_body={"field_values": change})
        last = updated.json if updated.status == 200 and isinstance(updated.json, dict) else body
        deleted = self.client.request("DELETE", path)
        writes = [_Write("record.created", created, body, [])]
        if updated.status == 200:
            writes.append(_Write("record.updated", updated, last, [created]))
        else:
            self.report.note(
                f"webhooks: the PATCH failed ({updated.summary(120)}); no record.updated expected"
            )
        if deleted.status in (200, 204):
            before = [created, updated] if updated.status == 200 else [created]
            writes.append(_Write("record.deleted", deleted, last, before))
        else:
            self.report.note(
                f"webhooks: the DELETE failed ({deleted.summary(120)}); no record.deleted expected"
            )
        wait = WAIT_MOCK if clock.mock else WAIT_SERVER
        wanted = {w.event for w in writes}

        def arrived(ds: list[Delivery]) -> bool:
            return wanted <= {d.event for d in ds if d.record_id == rid}

        receiver.wait_for(arrived, wait)
        failed = next((d for d in receiver.snapshot() if d.answered != 200), None) if retries else None
        if failed is not None:
            if clock.mock:
                self.report.progress(f"webhooks: moving the mock's clock {RETRY_AFTER:.0f} s for the retry")
                clock.advance(RETRY_AFTER)
            else:
                self.report.progress(f"webhooks: waiting up to {RETRY_WAIT:.0f} s for the retry")
            number, event_id = failed.number, failed.event_id

            def retried(ds: list[Delivery]) -> bool:
                return any(d.number > number and d.event_id == event_id for d in ds)

            receiver.wait_for(retried, wait if clock.mock else RETRY_WAIT)
        deliveries = receiver.snapshot()
        ours = [d for d in deliveries if d.record_id == rid]
        strays = [d for d in deliveries if d.record_id is None]  # unreadable: cannot tell whose they are
        hint = "" if deliveries else f"the receiver at {receiver.url()} got no delivery at all"
        self._check_events(writes, ours, failed, wait, rid, hint)
        by_event = {w.event: w for w in writes}
        for d in ours + strays:
            write = by_event.get(d.event) if isinstance(d.event, str) else None
            self._check_body(d, write or writes[0], write)
            self._check_signature(d, write or writes[0], secret)
        self._check_event_ids(ours + strays, writes)
        if retries:
            self._check_retry(failed, deliveries, writes[0], clock)

    # --- the checks ----------------------------------------------------------------------------

    def _finding(
        self, expected: str, received: str, write: _Write, d: Delivery | None, *more: str
    ) -> Finding:
        detail = [*more, *(d.describe() if d is not None else [])]
        rid = write.record.get("id")
        return Finding(
            expected,
            received,
            write.ex,
            f"{write.event} delivery" + (f" #{d.number}" if d is not None else ""),
            detail,
            steps=write.steps,
            record_id=rid if isinstance(rid, str) and write.steps else None,
        )

    def _check_events(
        self,
        writes: list[_Write],
        ours: list[Delivery],
        failed: Delivery | None,
        wait: float,
        rid: str,
        hint: str,
    ) -> None:
        self.report.ran(*EVENTS_CHECK)
        for w in writes:
            mine = [d for d in ours if d.event == w.event]
            if not mine:
                seen = ", ".join(f"#{d.number} {d.event}" for d in ours) or "no delivery for this record"
                self.report.fail(
                    *EVENTS_CHECK,
                    self._finding(
                        f"a {w.event} delivery for {rid} within {wait:.0f} s of the {w.ex.method}",
                        seen,
                        w,
                        None,
                        *([hint] if hint else []),
                    ),
                )
                continue
            ids = list(dict.fromkeys(d.event_id for d in mine))
            # A retry that changed its event id is webhooks.retry's finding, not a second event.
            if len(ids) > 1 and not (failed is not None and failed.event == w.event):
                self.report.fail(
                    *EVENTS_CHECK,
                    self._finding(
                        f"one {w.event} event for one {w.ex.method} (a retry keeps its event id)",
                        f"{len(ids)} {w.event} deliveries with event ids {', '.join(map(str, ids))}",
                        w,
                        mine[1],
                    ),
                )
        for d in ours:
            if d.event not in EVENTS:
                self.report.fail(
                    *EVENTS_CHECK,
                    self._finding(
                        f"event one of {', '.join(EVENTS)}", f"event {dumps(d.event)}", writes[0], d
                    ),
                )

    def _check_body(self, d: Delivery, write: _Write, expected: _Write | None) -> None:
        self.report.ran(*BODY_CHECK)
        body = d.json
        problems: list[str] = []
        if not isinstance(body, dict):
            problems.append("the body is not a JSON object")
        else:
            if sorted(body) != sorted(BODY_KEYS):
                problems.append(f"members {', '.join(sorted(body))}")
            if body.get("event") not in EVENTS:
                problems.append(f"event {dumps(body.get('event'))}")
            if not _is_instant(body.get("timestamp")):
                problems.append(f"timestamp {dumps(body.get('timestamp'))} is not an ISO 8601 instant")
            if not isinstance(body.get("signature"), str):
                problems.append("no signature string")
            if expected is not None:
                problems += _differences(expected.record, body.get("data"))
        if problems:
            want = f'{{"event", "timestamp", "data", "signature"}}, data {dumps(write.record)[:300]}'
            self.report.fail(*BODY_CHECK, self._finding(want, "; ".join(problems), write, d))

    def _check_signature(self, d: Delivery, write: _Write, secret: str) -> None:
        body = d.json
        if not isinstance(body, dict):
            return  # webhooks.body says so; there is nothing to verify
        self.report.ran(*SIGNATURE_CHECK)
        want = signature_of(body, secret)
        got, header = body.get("signature"), d.headers.get("x-kantos-signature")
        problems, more = [], []
        if got != want:
            problems.append(f"signature {dumps(got)}")
            if got == signature_of(body, secret, ascii_only=False):
                more.append(
                    "it is the HMAC of the JSON with non-ASCII characters unescaped: the docs' compact "
                    'JSON (json.dumps(..., separators=(",", ":"))) escapes them as \\uXXXX'
                )
        if header != want:
            problems.append(
                "no X-Kantos-Signature header" if header is None else f"X-Kantos-Signature {header}"
            )
        if problems:
            self.report.fail(
                *SIGNATURE_CHECK,
                self._finding(
                    f"signature and X-Kantos-Signature {want} (HMAC-SHA256 with the receiver's secret)",
                    "; ".join(problems),
                    write,
                    d,
                    *more,
                ),
            )

    def _check_event_ids(self, deliveries: list[Delivery], writes: list[_Write]) -> None:
        by_event = {w.event: w for w in writes}
        owner: dict[str, str] = {}
        for d in deliveries:
            self.report.ran(*EVENT_ID_CHECK)
            write = by_event.get(d.event) if isinstance(d.event, str) else None
            if not d.event_id:
                self.report.fail(
                    *EVENT_ID_CHECK,
                    self._finding("an X-Kantos-Event-Id header", "none", write or writes[0], d),
                )
                continue
            other = owner.setdefault(d.event_id, str(d.event))
            if other != d.event:
                self.report.fail(
                    *EVENT_ID_CHECK,
                    self._finding(
                        "an event id of its own for each event",
                        f"X-Kantos-Event-Id {d.event_id}, also the id of the {other} event",
                        write or writes[0],
                        d,
                    ),
                )

    def _check_retry(
        self, failed: Delivery | None, deliveries: list[Delivery], created: _Write, clock: ServerClock
    ) -> None:
        if failed is None:
            return  # no delivery came at all: webhooks.events says so
        self.report.ran(*RETRY_CHECK)
        later = [d for d in deliveries if d.number > failed.number and d.event == failed.event]
        if any(d.event_id == failed.event_id for d in later):
            return
        waited = f"{RETRY_AFTER:.0f} s on the mock's clock" if clock.mock else f"{RETRY_WAIT:.0f} s"
        seen = (
            ", ".join(f"#{d.number} with X-Kantos-Event-Id {d.event_id}" for d in later)
            or f"no other {failed.event} delivery within {waited}"
        )
        self.report.fail(
            *RETRY_CHECK,
            self._finding(
                f"a retry of delivery #{failed.number} (answered 500), X-Kantos-Event-Id {failed.event_id}",
                seen,
                created,
                later[0] if later else failed,
            ),
        )
