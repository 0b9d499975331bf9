"""Webhook deliveries to a real receiver: signatures, stable event ids, retries on the mock clock."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from mockserver.domain.backend import Backend, FixtureSet
from mockserver.domain.clock import Clock
from mockserver.domain.errors import BadRequest
from mockserver.domain.ids import IdSource
from mockserver.domain.tenants import Tenants
from mockserver.domain.webhooks import RETRY_DELAYS
from mockserver.http.webhooks import WebhookSender

SECRET = "whsec_test"


def verify(raw: bytes, header_signature: str, secret: str) -> bool:
    """What a receiver does, as the Kantos docs show: HMAC-SHA256 over the compact JSON of the
    payload without its `signature`, compared with the body's and the header's signature."""
    payload = json.loads(raw)
    signature = payload.pop("signature")
    message = json.dumps(payload, separators=(",", ":")).encode()
    expected = "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature) and hmac.compare_digest(expected, header_signature)


@dataclass
class Receiver:
    """A loopback HTTP server that records each POST and answers with the next scripted status."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay: float = 0.0
    #: While cleared, the receiver holds each request open (up to `delay` seconds).
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def wait_for(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} deliveries, got {len(self.received)}")
            time.sleep(0.01)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if rec.delay:
                rec.release.wait(rec.delay)
            rec.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tenants(fixture_set: FixtureSet) -> Tenants:
    return Tenants(fixture_set, seed=5, clock=Clock(frozen=True))


@pytest.fixture
def sender(tenants: Tenants) -> Iterator[WebhookSender]:
    s = WebhookSender(tenants, timeout=0.5)
    yield s
    s.stop()


def subscribe(backend: Backend, sender: WebhookSender, url: str, events: list[str] | None = None) -> None:
    backend.webhooks.subscribe(url, events, SECRET)
    sender.attach(backend.webhooks)


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_created_record_is_delivered_signed_as_the_docs_show(
    tenants: Tenants, sender: WebhookSender, receiver: Receiver
) -> None:
    backend = tenants.default
    subscribe(backend, sender, receiver.url)
    rec = backend.create_record("obj_contacts", {"name": "Zoë Hook"}, "user_admin")
    receiver.wait_for(1)
    headers, raw = receiver.received[0]
    assert verify(raw, headers["x-kantos-signature"], SECRET)
    payload = json.loads(raw)
    assert payload["event"] == "record.created"
    assert payload["data"]["id"] == rec.id
    assert payload["data"]["field_values"]["name"] == "Zoë Hook"
    assert headers["x-kantos-event-id"].startswith("evt_")


def test_a_wrong_secret_does_not_verify(tenants: Tenants, sender: WebhookSender, receiver: Receiver) -> None:
    backend = tenants.default
    subscribe(backend, sender, receiver.url)
    backend.create_record("obj_contacts", {"name": "Tamper"}, "user_admin")
    receiver.wait_for(1)
    headers, raw = receiver.received[0]
    assert not verify(raw, headers["x-kantos-signature"], "another secret")


def test_update_and_delete_send_their_events_to_subscribers_of_them_only(
    tenants: Tenants, sender: WebhookSender, receiver: Receiver
) -> None:
    backend = tenants.default
    subscribe(backend, sender, receiver.url, ["record.deleted"])
    rec = backend.create_record("obj_contacts", {"name": "Only Delete"}, "user_admin")
    backend.update_record(rec.id, {"notes": "x"})
    backend.delete_record(rec.id)
    receiver.wait_for(1)
    time.sleep(0.2)  # give a wrongly sent create/update time to arrive
    events = [json.loads(raw)["event"] for _, raw in receiver.received]
    assert events == ["record.deleted"]


def test_failures_are_retried_after_1_5_and_30_minutes_of_mock_time_with_a_stable_event_id(
    tenants: Tenants, sender: WebhookSender, receiver: Receiver
) -> None:
    backend = tenants.default
    receiver.statuses = [500, 503, 404, 200]
    subscribe(backend, sender, receiver.url)
    backend.create_record("obj_contacts", {"name": "Retry Me"}, "user_admin")
    receiver.wait_for(1)
    for attempt, delay in enumerate(RETRY_DELAYS, start=2):
        # Not due yet: one second short of the retry delay sends nothing.
        wait_until(lambda n=attempt - 1: len(backend.webhooks.log()[0]["attempts"]) == n)  # type: ignore[misc]
        backend.clock.advance(delay - 1)
        time.sleep(0.15)
        assert len(receiver.received) == attempt - 1
        backend.clock.advance(1)
        receiver.wait_for(attempt)
    wait_until(lambda: backend.webhooks.log()[0]["state"] == "delivered")
    ids = {headers["x-kantos-event-id"] for headers, _ in receiver.received}
    assert len(ids) == 1
    bodies = {raw for _, raw in receiver.received}
    assert len(bodies) == 1  # the very same signed payload each time
    log = backend.webhooks.log()[0]
    assert [a["status"] for a in log["attempts"]] == [500, 503, 404, 200]


def test_gives_up_after_the_last_retry(tenants: Tenants, sender: WebhookSender, receiver: Receiver) -> None:
    backend = tenants.default
    receiver.statuses = [500] * 10
    subscribe(backend, sender, receiver.url)
    backend.create_record("obj_contacts", {"name": "Never OK"}, "user_admin")
    for attempt, delay in enumerate((0, *RETRY_DELAYS), start=1):
        backend.clock.advance(delay)
        receiver.wait_for(attempt)
        wait_until(lambda n=attempt: len(backend.webhooks.log()[0]["attempts"]) == n)  # type: ignore[misc]
    assert backend.webhooks.log()[0]["state"] == "failed"
    backend.clock.advance(24 * 3600)
    time.sleep(0.15)
    assert len(receiver.received) == 1 + len(RETRY_DELAYS)


def test_a_slow_receiver_is_a_timeout_failure_and_never_slows_writes(
    tenants: Tenants, sender: WebhookSender, receiver: Receiver
) -> None:
    backend = tenants.default
    receiver.delay = 2.0  # held open longer than the sender's 0.5 s timeout
    subscribe(backend, sender, receiver.url)
    for i in range(5):
        backend.create_record("obj_contacts", {"name": f"Slow {i}"}, "user_admin")
    # Every write returned while the receiver still holds its first request open.
    assert not any(d["attempts"] for d in backend.webhooks.log())
    wait_until(lambda: all(d["attempts"] for d in backend.webhooks.log()), timeout=5)
    assert all("no answer" in (d["attempts"][0]["error"] or "") for d in backend.webhooks.log())
    receiver.release.set()


def test_reset_forgets_subscriptions(tenants: Tenants, sender: WebhookSender, receiver: Receiver) -> None:
    backend = tenants.default
    subscribe(backend, sender, receiver.url)
    backend.reset()
    backend.create_record("obj_contacts", {"name": "After Reset"}, "user_admin")
    time.sleep(0.15)
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.8/hook", "http://example.com/hook", "ftp://127.0.0.1/x", "not a url"],
    ids=["private-address", "public-host", "ftp-scheme", "no-scheme"],
)
def test_subscriptions_only_target_loopback_http(fixture_set: FixtureSet, url: str) -> None:
    backend = Backend(fixture_set, Clock(), IdSource(1))
    with pytest.raises(BadRequest) as info:
        backend.webhooks.subscribe(url, None, SECRET)
    assert info.value.details["field"] == "url"


def test_unknown_event_names_are_refused(fixture_set: FixtureSet) -> None:
    backend = Backend(fixture_set, Clock(), IdSource(1))
    with pytest.raises(BadRequest) as info:
        backend.webhooks.subscribe("http://127.0.0.1:9/x", ["record.exploded"], SECRET)
    assert "record.exploded" in info.value.message


def test_control_api_subscribes_and_logs_deliveries_over_http(receiver: Receiver) -> None:
    from mockserver import MockServer

    receiver.statuses = [500, 200]
    with MockServer(seed=3) as mock:
        control = httpx.Client(base_url=mock.url)
        api = httpx.Client(base_url=mock.url, headers={"X-Api-Key": mock.api_key})
        sub = control.post(
            "/_mock/webhooks", json={"url": receiver.url, "events": ["record.created"], "secret": SECRET}
        )
        assert sub.status_code == 201, sub.text
        assert control.get("/_mock/webhooks").json()["data"] == [sub.json()]
        created = api.post(
            "/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": "Hi"}}
        )
        assert created.status_code == 201
        receiver.wait_for(1)
        control.post("/_mock/clock", json={"advance": RETRY_DELAYS[0]}).raise_for_status()
        receiver.wait_for(2)
        wait_until(
            lambda: control.get("/_mock/webhooks/deliveries").json()["data"][0]["state"] == "delivered"
        )
        (delivery,) = control.get("/_mock/webhooks/deliveries", params={"event": "record.created"}).json()[
            "data"
        ]
        assert [a["status"] for a in delivery["attempts"]] == [500, 200]
        assert delivery["subscription_id"] == sub.json()["id"]
        headers, raw = receiver.received[1]
        assert verify(raw, headers["x-kantos-signature"], SECRET)
        assert json.loads(raw)["data"]["id"] == created.json()["id"]
        assert control.delete(f"/_mock/webhooks/{sub.json()['id']}").status_code == 204
        assert control.delete(f"/_mock/webhooks/{sub.json()['id']}").status_code == 404
        refused = control.post("/_mock/webhooks", json={"url": "http://192.168.1.9/x", "secret": SECRET})
        assert refused.status_code == 400
        assert refused.json()["details"]["field"] == "url"
        control.close()
        api.close()
