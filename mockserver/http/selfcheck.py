"""The response self-check: every `/api` response the mock sends is validated against openapi.yaml.

A pure-ASGI middleware, outermost of the app's own middleware, so it sees what clients see: the
gate's 401/403/429, the router's 404 and 405, and every operation's answer. It buffers each
response, hands status, headers and body to `openapi.responses.FastResponseValidator` (jsonschema-rs
says whether a body conforms; only one it doubts is judged, and described, by jsonschema), and

- forwards the response unchanged when it conforms;
- otherwise answers **500** with a body naming the operation, the status and every violation, and
  then raises `ResponseMismatch` out of the app. In process (httpx's or schemathesis' ASGI
  transport) the exception reaches the test that made the request; under uvicorn it is logged
  with its traceback, and the client sees the 500, which `not_a_server_error` reports.

Answers the gate marks as the mock's own (`MOCK_ONLY`: a fault rule's injected status, a bad
`X-Mock-Tenant`) are passed through unjudged: they are test scaffolding, not Kantos behaviour.

It is off by default; `create_app(validate_responses=True)` or `KANTOS_MOCK_VALIDATE_RESPONSES=1`
turns it on (the test suite runs with it on everywhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from weakref import WeakKeyDictionary

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..openapi import Spec
from ..openapi.responses import FastResponseValidator, ResponseMismatch, ResponseValidator
from .api import Answer, KantosApi
from .gate import MOCK_ONLY
from .responses import json_head

ENV_VAR = "KANTOS_MOCK_VALIDATE_RESPONSES"


def self_check_enabled(enabled: bool | None = None) -> bool:
    """`create_app(validate_responses=...)`: None means on when ENV_VAR is 1."""
    return os.environ.get(ENV_VAR) == "1" if enabled is None else enabled


#: One validator per document, shared by every app built on it: compiling one takes ~50-100 ms,
#: and the test suite builds an app per test.
_VALIDATORS: WeakKeyDictionary[Spec, ResponseValidator] = WeakKeyDictionary()


def _validator(spec: Spec) -> ResponseValidator:
    validator = _VALIDATORS.get(spec)
    if validator is None:
        validator = _VALIDATORS[spec] = FastResponseValidator(spec)
    return validator


class ResponseSelfCheck:
    def __init__(self, app: ASGIApp, spec: Spec) -> None:
        self.app = app
        self.validator = _validator(spec)
        #: What `answer_now` checks: the API itself, when this wraps it directly.
        self.api = app if isinstance(app, KantosApi) else None

    def answer_now(self, scope: Scope, raw: bytes) -> Answer | None:
        """`KantosApi.answer_now`, checked as `__call__` checks an answer: the server's fast path
        (`wire.FastApiProtocol`) runs under the self-check too. A mismatch answers the same 500,
        with the `ResponseMismatch` as the failure the server logs before it hangs up."""
        if self.api is None:
            return None
        answer = self.api.answer_now(scope, raw)
        if answer is None:
            return None
        status, head, body, failure = answer
        mismatch = self._mismatch(scope, status, head, body)
        if mismatch is None:
            return answer
        payload = _failure_body(mismatch)
        return 500, json_head(payload), payload, failure or mismatch  # a bug's own exception first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.validator.applies_to(scope["path"]):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []
        mismatch: ResponseMismatch | None = None

        async def buffered(message: Message) -> None:
            nonlocal start, mismatch
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if (scope.get("state") or {}).get(MOCK_ONLY):
                # The mock's own answer, not Kantos behaviour (a fault rule's status, a bad
                # X-Mock-Tenant): the contract does not describe it, so it is not judged by it.
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            mismatch = self._mismatch(scope, int(start["status"]), start.get("headers", []), body)
            if mismatch is None:
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await _send_failure(send, mismatch)

        await self.app(scope, receive, buffered)
        if mismatch is not None:
            raise mismatch

    def _mismatch(
        self, scope: Scope, status: int, head: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> ResponseMismatch | None:
        """What breaks the spec in this answer, or None when it conforms."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head]
        label, violations = self.validator.violations(scope["method"], scope["path"], status, headers, body)
        return ResponseMismatch(label, status, violations) if violations else None


def _failure_body(mismatch: ResponseMismatch) -> bytes:
    return orjson.dumps(
        {
            "error": str(mismatch),
            "code": "INTERNAL",
            "status": 500,
            "details": {
                "reason": "response self-check: the mock's response breaks openapi.yaml",
                "operation": mismatch.label,
                "response_status": mismatch.status,
                "violations": mismatch.violations,
            },
        }
    )


async def _send_failure(send: Send, mismatch: ResponseMismatch) -> None:
    payload = _failure_body(mismatch)
    await send({"type": "http.response.start", "status": 500, "headers": json_head(payload)})
    await send({"type": "http.response.body", "body": payload})
