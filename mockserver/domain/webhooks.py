"""Webhook subscriptions, signed events and their delivery schedule, on the mock's clock.

The domain decides *what* is sent and *when* (first attempt at once, retries 1, 5 and 30
minutes of mock time after each failure); `http/webhooks.py` does the sending.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .clock import Clock, format_timestamp
from .errors import BadRequest
from .ids import IdSource

EVENTS = ("record.created", "record.updated", "record.deleted")
#: Delay before each retry, in seconds of mock time [docs].
RETRY_DELAYS = (60, 5 * 60, 30 * 60)


def sign(payload: dict[str, Any], secret: str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 over the compact JSON of the payload without `signature`."""
    message = json.dumps(payload, separators=(",", ":")).encode()
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class Subscription:
    id: str
    url: str
    events: list[str]
    secret: str
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "secret": self.secret,
            "created_at": format_timestamp(self.created_at),
        }


@dataclass(slots=True)
class Attempt:
    at: int  # mock time, µs
    status: int | None = None
    error: str | None = None
    duration_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "at": format_timestamp(self.at),
            "status": self.status,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
        }


@dataclass(slots=True)
class Delivery:
    id: str
    event_id: str
    event: str
    subscription: Subscription
    body: bytes
    signature: str
    attempts: list[Attempt] = field(default_factory=list)
    next_at: int | None = 0  # mock time of the next attempt; None once delivered or given up
    in_flight: bool = False

    @property
    def state(self) -> str:
        if self.next_at is not None:
            return "pending"
        return "delivered" if self.attempts and self.attempts[-1].error is None else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event": self.event,
            "subscription_id": self.subscription.id,
            "url": self.subscription.url,
            "state": self.state,
            "attempts": [a.to_json() for a in self.attempts],
            "next_attempt_at": format_timestamp(self.next_at) if self.next_at is not None else None,
        }


class Webhooks:
    """One tenant's subscriptions and deliveries. Thread-safe: the sender runs elsewhere."""

    def __init__(self, clock: Clock, ids: IdSource) -> None:
        self.clock = clock
        self.ids = ids
        self.lock = threading.Lock()
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        #: Called with no argument whenever something may have become due (set by the sender).
        self.wake: Any = None

    def reset(self) -> None:
        with self.lock:
            self.subscriptions.clear()
            self.deliveries.clear()

    def subscribe(
        self, url: str, events: list[str] | None, secret: str, allow_hosts: Collection[str] = ()
    ) -> Subscription:
        """Add a subscription; the URL must be on loopback, or its host in `allow_hosts`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest.field("url", f"expected an http or https URL, got {url!r}")
        host = parts.hostname
        if not is_loopback_host(host) and host not in allow_hosts:
            raise BadRequest.field(
                "url",
                f"the mock delivers webhooks to loopback addresses only; {host!r} is not one "
                "(start the mock with --webhook-allow HOST to allow it)",
            )
        chosen = list(events) if events else list(EVENTS)
        unknown = [e for e in chosen if e not in EVENTS]
        if unknown:
            raise BadRequest.field("events", f"unknown events {unknown}; use {list(EVENTS)}")
        if not secret:
            raise BadRequest.field("secret", "a non-empty secret is required to sign deliveries")
        sub = Subscription(self.ids.new("whk_"), url, chosen, secret, self.clock.now_us())
        with self.lock:
            self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, sub_id: str) -> bool:
        with self.lock:
            return self.subscriptions.pop(sub_id, None) is not None

    def emit(self, event: str, record: Callable[[], dict[str, Any]]) -> None:
        """Queue one delivery per subscription that wants this event. `record` makes the record's
        JSON, called only when someone subscribed (each write calls this)."""
        if not self.subscriptions:  # the usual case, told without the lock
            return
        with self.lock:
            subs = [s for s in self.subscriptions.values() if event in s.events]
            if not subs:
                return
            data = record()
            now = self.clock.now_us()
            event_id = self.ids.new("evt_")
            for sub in subs:
                payload: dict[str, Any] = {"event": event, "timestamp": format_timestamp(now), "data": data}
                signature = sign(payload, sub.secret)
                payload["signature"] = signature
                body = json.dumps(payload, separators=(",", ":")).encode()
                self.deliveries.append(
                    Delivery(self.ids.new("dlv_"), event_id, event, sub, body, signature, next_at=now)
                )
        if self.wake is not None:
            self.wake()

    def due(self) -> list[Delivery]:
        """Deliveries whose next attempt is due on the mock clock; marks them in flight."""
        now = self.clock.now_us()
        with self.lock:
            ready = [
                d for d in self.deliveries if d.next_at is not None and d.next_at <= now and not d.in_flight
            ]
            for d in ready:
                d.in_flight = True
            return ready

    def record(self, delivery: Delivery, status: int | None, error: str | None, duration_ms: float) -> None:
        """Log an attempt; schedule the next retry after a failure, or give up after the last."""
        now = self.clock.now_us()
        ok = error is None and status is not None and 200 <= status < 300
        if not ok and error is None:
            error = f"HTTP {status}"
        with self.lock:
            delivery.attempts.append(Attempt(now, status, None if ok else error, duration_ms))
            retries_done = len(delivery.attempts) - 1
            if ok or retries_done >= len(RETRY_DELAYS):
                delivery.next_at = None
            else:
                delivery.next_at = now + RETRY_DELAYS[retries_done] * 1_000_000
            delivery.in_flight = False

    def log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d.to_json() for d in self.deliveries]
