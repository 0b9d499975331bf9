"""The kit's webhook checks: they pass against the mock, and catch deliveries tampered with."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kantos_support import SERVER_KEY
from kit_support import Kit

import mockserver.domain.webhooks as webhooks_domain
from mockserver.conformance.webhooks import Receiver, parse_listen, signature_of
from mockserver.server import MockServer

WEBHOOK_CHECKS = (
    "webhooks.events",
    "webhooks.body",
    "webhooks.signature",
    "webhooks.event-id",
    "webhooks.retry",
)
#: The kit's steps these tests run (the whole battery runs in test_conformance_kit.py and below).
ONLY = ("webhooks",)


@pytest.fixture(params=[3, 5, 8], ids=lambda seed: f"seed-{seed}")
def seed(request: pytest.FixtureRequest) -> int:
    """The tampered deliveries are caught whatever the seed of the kit's data."""
    return int(request.param)


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with MockServer(seed=21) as server:
        yield server


def test_the_whole_kit_with_webhooks_and_a_limited_key_passes_against_the_mock(
    mock: MockServer, tmp_path: Path
) -> None:
    mock.set_key(SERVER_KEY, per_minute=20)
    kit = Kit(mock.url, tmp_path, webhooks=True, webhook_retries=True, limited_key=SERVER_KEY)
    assert kit.status == 0, kit.output
    for check in (*WEBHOOK_CHECKS, "rate-limits.window", "rate-limits.429", "rate-limits.429-no-quota"):
        assert kit.checked(check), f"{check} not checked\n{kit.output}"
    assert kit.checked("rate-limits.429-changes-nothing")
    assert "subscribed through /_mock/webhooks" in kit.output
    assert mock.backend.webhooks.subscriptions == {}  # unsubscribed at the end
    ours = [d for d in mock.backend.webhooks.log() if d["url"].endswith("/kantos-webhooks")]
    assert sorted(len(d["attempts"]) for d in ours) == [1, 1, 2]  # the created event failed once, retried


def test_without_retries_the_retry_rule_is_left_unchecked(mock: MockServer, tmp_path: Path) -> None:
    kit = Kit(mock.url, tmp_path, only=ONLY, webhooks=True)
    assert kit.status == 0, kit.output
    assert kit.checked("webhooks.signature")
    assert kit.case("webhooks.retry").find("skipped") is not None


def _signed_with_spaces(payload: dict[str, Any], secret: str) -> str:
    message = json.dumps(payload).encode()  # the default separators: ", " and ": "
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _signed_over_utf8(payload: dict[str, Any], secret: str) -> str:
    message = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("signer", "hint"),
    [
        pytest.param(_signed_with_spaces, "", id="json-with-spaces"),
        pytest.param(_signed_over_utf8, "non-ASCII characters unescaped", id="non-ascii-unescaped"),
    ],
)
def test_a_wrong_signature_is_reported_under_the_signature_rule(
    mock: MockServer, tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch, signer: Any, hint: str
) -> None:
    # The kit computes signatures with its own code, so patching the mock's signer breaks only the mock.
    monkeypatch.setattr(webhooks_domain, "sign", signer)
    kit = Kit(mock.url, tmp_path, only=ONLY, seed=seed, webhooks=True)
    assert kit.status == 1, kit.output
    assert kit.failing() == ["webhooks.signature"], kit.output
    text = kit.failure("webhooks.signature")
    assert "expected: signature and X-Kantos-Signature sha256=" in text
    assert 'received: signature "sha256=' in text and "X-Kantos-Signature sha256=" in text
    assert hint in text
    # The reproducer is the write that causes the event.
    assert any(
        c.startswith("curl") and "-X POST" in c and "/api/crm/record" in c
        for c in kit.reproducers("webhooks.signature")
    )


def test_a_retry_with_another_event_id_is_reported_under_the_retry_rule(
    mock: MockServer, tmp_path: Path, seed: int
) -> None:
    webhooks = mock.backend.webhooks
    original = webhooks.record

    def record(delivery: Any, status: int | None, error: str | None, duration_ms: float) -> None:
        original(delivery, status, error, duration_ms)
        if delivery.next_at is not None:  # failed, a retry is due: sent as a new event by mistake
            delivery.event_id = webhooks.ids.new("evt_")

    webhooks.record = record  # type: ignore[method-assign]
    kit = Kit(mock.url, tmp_path, only=ONLY, seed=seed, webhooks=True, webhook_retries=True)
    assert kit.status == 1, kit.output
    assert kit.failing() == ["webhooks.retry"], kit.output
    text = kit.failure("webhooks.retry")
    assert "expected: a retry of delivery #1 (answered 500), X-Kantos-Event-Id evt_" in text
    assert "received: #4 with X-Kantos-Event-Id evt_" in text
    assert any("-X POST" in c for c in kit.reproducers("webhooks.retry"))


def test_data_missing_a_field_is_reported_under_the_body_rule(
    mock: MockServer, tmp_path: Path, seed: int
) -> None:
    webhooks = mock.backend.webhooks
    original = webhooks.emit
    dropped: list[str] = []

    def emit(event: str, record: Callable[[], dict[str, Any]]) -> None:
        def tampered() -> dict[str, Any]:  # the mock makes the payload only when someone subscribed
            made = record()
            values = dict(made["field_values"])
            dropped.append(next(iter(values)))
            del values[dropped[-1]]
            return {**made, "field_values": values}

        original(event, tampered)

    webhooks.emit = emit  # type: ignore[method-assign]
    kit = Kit(mock.url, tmp_path, only=ONLY, seed=seed, webhooks=True)
    assert kit.status == 1, kit.output
    assert kit.failing() == ["webhooks.body"], kit.output
    text = kit.failure("webhooks.body")
    assert f"received: field_values lacks {dropped[-1]}" in text
    assert 'expected: {"event", "timestamp", "data", "signature"}, data {"id":"rec_' in text
    # The update's finding replays the create first, then the PATCH on the created id.
    assert "REC_ID=$(curl" in text and '-X PATCH "' in text


def test_no_delivery_at_all_is_reported_under_the_events_rule(tmp_path: Path) -> None:
    with MockServer(seed=22) as mock:
        mock.backend.webhooks.emit = lambda event, record: None  # type: ignore[method-assign]
        kit = Kit(mock.url, tmp_path, only=ONLY, webhooks=True)
    assert kit.status == 1, kit.output
    assert kit.failing() == ["webhooks.events"], kit.output
    text = kit.failure("webhooks.events")
    assert "expected: a record.created delivery for rec_" in text
    assert "received: no delivery for this record" in text
    assert "kantos-webhooks got no delivery at all" in text


# --- the receiver on its own --------------------------------------------------------------------


def test_the_receiver_records_deliveries_and_fails_the_next_one_when_told() -> None:
    receiver = Receiver()
    receiver.start()
    try:
        url = receiver.url(loopback=True)
        receiver.fail_next()
        first = httpx.post(url, content=b'{"a":1}', headers={"X-Kantos-Event-Id": "evt_1"})
        second = httpx.post(url, content=b'{"a":2}', headers={"X-Kantos-Event-Id": "evt_1"})
        assert (first.status_code, second.status_code) == (500, 200)
        got = receiver.snapshot()
        assert [(d.number, d.answered, d.event_id, d.json) for d in got] == [
            (1, 500, "evt_1", {"a": 1}),
            (2, 200, "evt_1", {"a": 2}),
        ]
        # Chunked bodies (no Content-Length) are read too.
        chunked = httpx.post(url, content=iter([b'{"b":', b"3}"]))
        assert chunked.status_code == 200
        assert receiver.snapshot()[-1].json == {"b": 3}
    finally:
        receiver.stop()


def test_the_receiver_waits_for_deliveries_with_a_bound() -> None:
    receiver = Receiver()
    receiver.start()
    try:
        assert not receiver.wait_for(lambda ds: bool(ds), 0.1)
        threading.Timer(0.05, lambda: httpx.post(receiver.url(loopback=True), content=b"{}")).start()
        assert receiver.wait_for(lambda ds: bool(ds), 5)
    finally:
        receiver.stop()


def test_listen_addresses_are_parsed_with_clear_errors() -> None:
    assert parse_listen(None) == ("127.0.0.1", 0)
    assert parse_listen("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:9001") == ("::1", 9001)
    for bad in ("9000", "host:", "host:99999", "host:port"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_listen(bad)


def test_the_kit_signs_as_the_docs_show() -> None:
    payload = {"event": "record.created", "timestamp": "2024-01-15T10:30:00Z", "data": {"name": "Zoë"}}
    assert signature_of({**payload, "signature": "x"}, "s3cret") == webhooks_domain.sign(payload, "s3cret")
    assert signature_of(payload, "s3cret", ascii_only=False) != webhooks_domain.sign(payload, "s3cret")


def test_against_a_server_without_the_control_api_the_kit_prints_where_to_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server the kit cannot subscribe to: the subscription is made beforehand, as in a dashboard,
    # with a fixed receiver address and secret.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/kantos-webhooks"
    monkeypatch.setenv("KANTOS_WEBHOOK_SECRET", "whsec_configured_once")
    with MockServer(seed=23, control=False) as mock:
        webhooks = mock.backend.webhooks
        webhooks.subscribe(url, None, "whsec_configured_once")
        sender = mock.app.state.registry.webhook_sender
        assert sender is not None
        sender.attach(webhooks)
        kit = Kit(mock.url, tmp_path, only=ONLY, webhooks=True, webhook_listen=f"127.0.0.1:{port}")
    assert kit.status == 0, kit.output
    assert f"receiver at {url}; the server under test must send" in kit.output
    assert "signed with the secret $KANTOS_WEBHOOK_SECRET" in kit.output  # never printed itself
    for check in WEBHOOK_CHECKS[:-1]:
        assert kit.checked(check), f"{check} not checked\n{kit.output}"
