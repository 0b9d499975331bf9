"""The Inspector, which checks the exchanges the proxy forwarded.

It runs in the checking process (`checker.py`), one exchange at a time in arrival order (later
answers are judged against what earlier ones showed); `forward.py` hands each exchange over as the
bytes it saw (`Wire`), and `Captured.from_wire` decodes them here, off the forwarding path.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote

import httpx
import orjson

from ..conformance.answers import AnswerChecks
from ..conformance.client import Exchange
from ..conformance.oracle import OracleInputError, object_def
from ..conformance.report import Finding, Report
from ..conformance.shapes import error_shape_problem
from ..domain.schema import ObjectDef
from ..openapi import Spec
from ..openapi.responses import FastResponseValidator
from .clientside import Request, RequestChecks
from .forward import Wire

SPEC_CHECK = ("spec.response", "spec", "answers match openapi.yaml: status, headers, body")


@dataclass(slots=True)
class Captured:
    """One exchange as it passed through, with the times it started and ended."""

    method: str
    path: str
    query: bytes
    headers: dict[str, str]  # the request's, lowercased names
    body: bytes
    status: int
    response_headers: list[tuple[str, str]]
    response_body: bytes
    sent_at: float
    answered_at: float
    error: str = ""
    #: Another request for the same record was in flight meanwhile: the server may have applied it
    #: before or after this one, so this answer is not compared with what came before it.
    concurrent: bool = False

    @classmethod
    def from_wire(cls, w: Wire) -> Captured:
        method, raw_path, query, headers, body, status, kept, response, sent, answered, error, concurrent = w
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        return cls(
            method,
            path,
            query,
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers},
            body,
            status,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in kept],
            response,
            sent,
            answered,
            error,
            concurrent,
        )


class Inspector:
    """Checks the exchanges the proxy forwards, in order; fetches field definitions as needed."""

    def __init__(
        self,
        upstream: str,
        spec: Spec,
        out: TextIO | None = None,
        recorder: Any = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.out = out if out is not None else sys.stderr
        #: The upstream's deviations from the contract, and the client's requests the contract refuses.
        self.server = Report(self.upstream, out=self.out)
        self.client = Report(self.upstream, out=self.out)
        self.answers = AnswerChecks(self.server)
        self.requests = RequestChecks(spec)
        self.responses = FastResponseValidator(spec)
        self.recorder = recorder
        self.objects: dict[tuple[str, str], ObjectDef | None] = {}
        self.record_objects: dict[str, str] = {}  # record id -> object id, from answers
        self.exchanges = 0
        self._logged: dict[tuple[int, str], int] = {}
        #: For fetching field definitions; set by the process that runs the checks.
        self.http: httpx.AsyncClient | None = None

    # --- one exchange ------------------------------------------------------------------------------

    async def inspect(self, c: Captured) -> None:
        self.exchanges += 1
        if c.error:
            self.server.problem(f"{c.method} {c.path}: the upstream did not answer: {c.error}")
        items = parse_qsl(c.query.decode("latin-1"), keep_blank_values=True)
        ex = Exchange(
            c.method,
            c.path,
            items,
            c.body if c.body or c.method in ("POST", "PATCH", "PUT") else None,
            c.headers.get("content-type"),
            "key" if "x-api-key" in c.headers else "none",
            chunked="content-length" not in c.headers and "transfer-encoding" in c.headers,
            status=c.status,
            headers={k.lower(): v for k, v in c.response_headers},
            text=c.response_body.decode("utf-8", "replace"),
            error=c.error,
        )
        # orjson, several times faster than Exchange.json's decoder; what orjson refuses (NaN, huge
        # integers, bytes that are not UTF-8) is left to Exchange.json.
        if c.response_body:
            with contextlib.suppress(orjson.JSONDecodeError):
                ex._json = orjson.loads(c.response_body)
        if not c.path.startswith("/api/") or not c.status:
            return
        tenant = c.headers.get("x-mock-tenant", "")
        req = self.requests.read(c.method, c.path, items, c.headers, c.body)
        obj: ObjectDef | None = None
        if req.operation is not None and req.mistake is None:
            obj = await self._object_for(req, ex, tenant, c.headers)
            if obj is not None and req.needs_fields:
                self.requests.check_fields(req, obj)
        self._client_side(req, ex)
        self._server_side(req, ex, c, obj, tenant)
        self._log_new(ex)
        if self.recorder is not None:  # the fixture set needs the objects of the records it holds
            for oid in _object_ids(ex.json):
                await self.object(tenant, oid, c.headers)

    def _client_side(self, req: Request, ex: Exchange) -> None:
        m = req.mistake
        if m is None:
            return
        self.client.fail(
            m.check_id,
            m.area,
            m.title,
            Finding(
                f"a request the contract accepts (this one is a {m.status})",
                f"your code sent {m.message}; the server answered {ex.status}",
                ex,
            ),
        )
        if 200 <= ex.status < 300:  # the server took what the contract refuses
            self.server.fail(
                m.check_id,
                m.area,
                m.title,
                Finding(f"{m.status}: {m.message}", ex.summary(200), ex),
            )

    def _server_side(
        self, req: Request, ex: Exchange, c: Captured, obj: ObjectDef | None, tenant: str
    ) -> None:
        self.server.ran(*SPEC_CHECK)
        if c.method != "HEAD" and self.responses.applies_to(c.path):
            _, violations = self.responses.violations(
                c.method, c.path, c.status, c.response_headers, c.response_body
            )
            # Error bodies are judged by errors.shape, which names the same problem more plainly.
            if violations and not (c.status >= 400 and error_shape_problem(ex) is not None):
                self.server.fail(
                    *SPEC_CHECK, Finding("an answer openapi.yaml declares", "; ".join(violations), ex)
                )
        asked = req.asked() if req.mistake is None else None
        body = req.body if req.mistake is None else None
        self.answers.check(ex, c.sent_at, c.answered_at, obj, asked, body, concurrent=c.concurrent)
        doc = ex.json
        op = req.operation.operation_id if req.operation is not None else ""
        if op in ("getObject", "createObject") and c.status in (200, 201) and isinstance(doc, dict):
            self._remember_object(tenant, doc)
        elif op == "createField" and c.status == 201:
            self.objects.pop(
                (tenant, req.path_params.get("object_id", "")), None
            )  # fetched again when needed
        if isinstance(doc, dict) and isinstance(doc.get("id"), str) and isinstance(doc.get("object_id"), str):
            self.record_objects[doc["id"]] = doc["object_id"]
        if self.recorder is not None:
            self.recorder.saw(tenant, op, ex, req)

    # --- field definitions ----------------------------------------------------------------------------

    async def _object_for(
        self, req: Request, ex: Exchange, tenant: str, headers: dict[str, str]
    ) -> ObjectDef | None:
        oid = req.object_id
        if oid is None and req.operation is not None and req.operation.operation_id == "updateRecord":
            doc = ex.json
            rid = req.path_params.get("record_id", "")
            oid = doc.get("object_id") if isinstance(doc, dict) else None
            oid = oid if isinstance(oid, str) else self.record_objects.get(rid)
        if oid is None:
            return None
        return await self.object(tenant, oid, headers)

    async def object(self, tenant: str, oid: str, headers: dict[str, str]) -> ObjectDef | None:
        """The object's definition: from an answer seen, else fetched once with the client's key."""
        key = (tenant, oid)
        if key not in self.objects and self.http is not None:
            self.objects[key] = None  # asked once, even when the upstream does not answer
            fetch = {k: v for k, v in headers.items() if k in ("x-api-key", "x-mock-tenant")}
            try:
                r = await self.http.get(f"{self.upstream}/api/crm/objects/{oid}", headers=fetch)
                if r.status_code == 200:
                    self._remember_object(tenant, r.json())
            except (httpx.HTTPError, ValueError) as exc:
                self.server.note(f"could not fetch the fields of {oid}: {exc!r}")
            if self.recorder is not None and self.objects.get(key) is not None:
                for target in self.recorder.missing_targets(tenant):
                    await self.object(tenant, target, headers)
        return self.objects.get(key)

    def _remember_object(self, tenant: str, doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            return
        try:
            obj, _ = object_def(doc)
        except (OracleInputError, ValueError, TypeError):
            return
        self.objects[(tenant, obj.id)] = obj
        if self.recorder is not None:
            self.recorder.object_doc(tenant, doc)

    # --- the log --------------------------------------------------------------------------------------

    def _log_new(self, ex: Exchange) -> None:
        for side, report in (("server", self.server), ("client", self.client)):
            for check in report.checks.values():
                key = (id(report), check.id)
                seen = self._logged.get(key, 0)
                for f in check.findings[seen:]:
                    rule = ", ".join(r.id for r in check.rules) or check.id
                    query = "&".join(f"{k}={v}" for k, v in ex.params)
                    print(
                        f"kantos-mock proxy: {side} deviation [{rule}] {ex.method} {ex.path}"
                        f"{'?' + query if query else ''} -> {ex.status}: {_one_line(f.received)}",
                        file=self.out,
                        flush=True,
                    )
                self._logged[key] = len(check.findings)

    @property
    def deviations(self) -> int:
        return self.server.finding_count

    @property
    def mistakes(self) -> int:
        return self.client.finding_count


def _object_ids(doc: Any) -> set[str]:
    data = doc.get("data") if isinstance(doc, dict) else None
    docs: list[Any] = data if isinstance(data, list) else [doc]
    return {d["object_id"] for d in docs if isinstance(d, dict) and isinstance(d.get("object_id"), str)}


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
