"""Running the conformance kit from a test and reading its verdict by check (its JUnit XML, its output)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from kantos_support import ADMIN_KEY
from starlette.types import ASGIApp, Message, Receive

from mockserver.conformance import Options, run
from mockserver.conformance.rules import rules_for


class Kit:
    """One quick run of the kit (no fuzz phase) with `Options(**options)`.

    `only`: run just these steps of the behaviour suite (after its setup), so a test of one area
    does not pay for the whole battery; the run-wide scans still read every exchange.
    """

    def __init__(
        self,
        url: str,
        tmp: Path,
        key: str = ADMIN_KEY,
        seed: int = 5,
        only: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        out = io.StringIO()
        junit = tmp / f"kit-{seed}.xml"
        self.status = run(
            url,
            key,
            quick=True,
            fuzz=False,
            junit_path=str(junit),
            out=out,
            seed=seed,
            options=Options(only=frozenset(only) if only is not None else None, **options),
        )
        self.output = out.getvalue()
        self.junit = ET.parse(junit).getroot()

    def case(self, check_id: str) -> ET.Element:
        """The JUnit test case of the rule `check_id` tests."""
        (rule,) = rules_for(check_id)
        return next(c for c in self.junit.iter("testcase") if c.get("name") == rule.id)

    def checked(self, check_id: str) -> bool:
        """The check's rule ran and passed."""
        case = self.case(check_id)
        return case.find("skipped") is None and case.find("failure") is None

    def failure(self, check_id: str) -> str:
        """The failure text of the check's rule (empty when it did not fail)."""
        failure = self.case(check_id).find("failure")
        return (failure.text or "") if failure is not None else ""

    def failing(self) -> list[str]:
        return sorted(c.get("name", "") for c in self.junit.iter("testcase") if c.find("failure") is not None)

    def reproducers(self, check_id: str) -> list[str]:
        return [
            line.strip()[2:] for line in self.failure(check_id).splitlines() if line.strip().startswith("$ ")
        ]


# --- deliberately broken servers: ASGI middleware around the mock ---------------------------------

Headers = list[tuple[bytes, bytes]]


async def read_body(receive: Receive) -> bytes:
    """The whole request body, however many messages it came in."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def call_app(app: ASGIApp, scope: dict[str, Any], body: bytes = b"") -> tuple[int, Headers, bytes]:
    """Send one request with `body` through `app` and collect its whole response."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, headers, chunks = 500, [], []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)
