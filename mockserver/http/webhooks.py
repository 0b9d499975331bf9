"""Sends due webhook deliveries from a background thread, so no receiver slows the API."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ..domain.tenants import Tenants
from ..domain.webhooks import Delivery, Webhooks

#: How often the sender looks for deliveries made due by the mock clock moving.
POLL_SECONDS = 0.05


class WebhookSender:
    """Polls every tenant's schedule and posts what is due, a few receivers at a time."""

    def __init__(self, tenants: Tenants, timeout: float = 30.0, workers: int = 8) -> None:
        self.tenants = tenants
        self.timeout = timeout
        self.workers = workers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None

    def attach(self, webhooks: Webhooks) -> None:
        """Start sending (once) and be woken by this tenant's new events."""
        webhooks.wake = self._wake.set
        with self._lock:
            if self._thread is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False)
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kantos-webhook")
                self._thread = threading.Thread(target=self._run, name="kantos-webhooks", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop sending; a later `attach` starts again."""
        with self._lock:
            thread, pool, client = self._thread, self._pool, self._client
            self._thread = self._pool = self._client = None
            self._stop.set()
            self._wake.set()
            if thread is not None:
                thread.join(timeout=2)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            if client is not None:
                client.close()
            self._stop.clear()

    def _run(self) -> None:
        pool = self._pool
        while not self._stop.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            for name in self.tenants.names():
                webhooks = self.tenants.get(name).webhooks
                for delivery in webhooks.due():
                    assert pool is not None
                    pool.submit(self._send, webhooks, delivery)

    def _send(self, webhooks: Webhooks, delivery: Delivery) -> None:
        client = self._client
        if client is None:  # stopped meanwhile
            webhooks.record(delivery, None, "the mock stopped before sending", 0.0)
            return
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "kantos-mockserver-webhooks",
            "X-Kantos-Event": delivery.event,
            "X-Kantos-Event-Id": delivery.event_id,
            "X-Kantos-Signature": delivery.signature,
            "X-Kantos-Delivery-Attempt": str(len(delivery.attempts) + 1),
        }
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = client.post(delivery.subscription.url, content=delivery.body, headers=headers)
            status = response.status_code
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        webhooks.record(delivery, status, error, (time.perf_counter() - started) * 1000)
