"""The conformance kit: it passes against the mock, and names each deviation of a broken server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree as ET

import httpx
import pytest
from kit_support import call_app, read_body
from starlette.types import ASGIApp, Receive, Scope, Send

from mockserver import create_app
from mockserver.conformance import Options, check, run
from mockserver.conformance import client as client_module
from mockserver.conformance.rules import rules_for
from mockserver.server import MockServer

ADMIN_KEY = "kantos_admin_local_key"
SERVER_KEY = "kantos_server_local_key"


# --- running the kit ----------------------------------------------------------------------------


class KitRun:
    """One run of the kit: its exit status, its printed output and its JUnit XML."""

    def __init__(self, url: str, key: str, tmp: Path, **options: Any) -> None:
        out = io.StringIO()
        junit = tmp / "kit.xml"
        started = time.monotonic()
        self.status = run(url, key, junit_path=str(junit), out=out, seed=5, **options)
        self.elapsed = time.monotonic() - started
        self.output = out.getvalue()
        self.junit = ET.parse(junit).getroot()

    def failures(self) -> dict[str, str]:
        """Failing JUnit test cases (one per contract rule): rule id -> failure text."""
        out = {}
        for case in self.junit.iter("testcase"):
            failure = case.find("failure")
            if failure is not None:
                out[case.get("name", "")] = failure.text or ""
        return out


# --- deliberately broken servers, built around the mock ----------------------------------------


class Rewrite:
    """ASGI middleware that changes requests before the mock sees them, or its responses after."""

    def __init__(
        self,
        app: ASGIApp,
        request: Callable[[Rewrite, Scope, bytes], Awaitable[Any]] | None = None,
        response: Callable[[Scope, int, Any], tuple[int, Any]] | None = None,
    ) -> None:
        self.app = app
        self.on_request = request
        self.on_response = response

    async def call(self, scope: Scope, body: bytes = b"") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request through the mock and collect its whole response."""
        return await call_app(self.app, scope, body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if self.on_request is not None:
            changed = await self.on_request(self, scope, body)
            if isinstance(changed[0], int):  # answer directly
                await _respond(send, changed[0], [], json.dumps(changed[1]).encode())
                return
            scope, body = changed
        status, headers, raw = await self.call(scope, body)
        if self.on_response is not None and raw[:1] == b"{":
            status, doc = self.on_response(scope, status, json.loads(raw))
            raw = json.dumps(doc).encode()
        await _respond(send, status, headers, raw)


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    kept = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
    kept += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body})


def _query(scope: Scope) -> list[tuple[str, str]]:
    return parse_qsl(scope["query_string"].decode(), keep_blank_values=True)


def _with_query(scope: Scope, items: list[tuple[str, str]]) -> Scope:
    return {**scope, "query_string": urlencode(items).encode()}


async def clamp_per_page(mw: Rewrite, scope: Scope, body: bytes) -> Any:
    items = [(k, "100" if k == "per_page" and v.isdigit() and int(v) > 100 else v) for k, v in _query(scope)]
    return _with_query(scope, items), body


async def ne_drops_empty(mw: Rewrite, scope: Scope, body: bytes) -> Any:
    items = []
    for k, v in _query(scope):
        if k == "filters":
            try:
                filters = json.loads(v)
            except ValueError:
                filters = None
            if isinstance(filters, dict):
                for cond in filters.values():
                    if isinstance(cond, dict) and "$ne" in cond:
                        cond["$empty"] = False
                v = json.dumps(filters)
        items.append((k, v))
    return _with_query(scope, items), body


async def malformed_filters_crash(mw: Rewrite, scope: Scope, body: bytes) -> Any:
    for k, v in _query(scope):
        if k == "filters":
            try:
                json.loads(v)
            except ValueError:
                return 500, {
                    "error": "Internal Server Error",
                    "code": "INTERNAL",
                    "status": 500,
                    "details": {},
                }
    return scope, body


async def patch_replaces(mw: Rewrite, scope: Scope, body: bytes) -> Any:
    """PATCH as a replace: every field not sent is cleared (required ones kept, so it still succeeds)."""
    if scope["method"] != "PATCH":
        return scope, body
    status, _, raw = await mw.call({**scope, "method": "GET", "query_string": b""})
    patch = json.loads(body or b"{}")
    if status != 200 or not isinstance(patch.get("field_values"), dict):
        return scope, body
    old = json.loads(raw)
    _, _, obj_raw = await mw.call({**scope, "method": "GET", "path": f"/api/crm/objects/{old['object_id']}"})
    required = {f["slug"] for f in json.loads(obj_raw)["fields"] if f["required"]}
    for slug in old["field_values"]:
        if slug not in patch["field_values"] and slug not in required:
            patch["field_values"][slug] = None
    return scope, json.dumps(patch).encode()


def floor_total_pages(scope: Scope, status: int, doc: Any) -> tuple[int, Any]:
    pagination = doc.get("pagination") if status == 200 else None
    if isinstance(pagination, dict):
        pagination["total_pages"] = pagination["total"] // pagination["per_page"]
    return status, doc


def contains_case_sensitive(scope: Scope, status: int, doc: Any) -> tuple[int, Any]:
    """$contains matches only in the operand's own case: the records it misses are dropped."""
    params = dict(_query(scope))
    try:
        filters = json.loads(params.get("filters", "{}"))
    except ValueError:
        return status, doc
    if status != 200 or not isinstance(filters, dict):
        return status, doc
    for slug, cond in filters.items():
        needle = cond.get("$contains") if isinstance(cond, dict) else None
        if not isinstance(needle, str):
            continue
        kept = []
        for record in doc["data"]:
            value = record.get(slug, record["field_values"].get(slug))
            if (isinstance(value, str) and needle in value) or (isinstance(value, list) and needle in value):
                kept.append(record)
        doc["pagination"]["total"] -= len(doc["data"]) - len(kept)
        doc["data"] = kept
    return status, doc


def other_error_shape(scope: Scope, status: int, doc: Any) -> tuple[int, Any]:
    if status >= 400 and "error" in doc:
        return status, {"message": doc["error"], "statusCode": status}
    return status, doc


MIDDLEWARE: dict[str, dict[str, Any]] = {
    "per_page_clamped": {"request": clamp_per_page},
    "ne_drops_empty": {"request": ne_drops_empty},
    "malformed_filters_500": {"request": malformed_filters_crash},
    "patch_replaces": {"request": patch_replaces},
    "total_pages_floor": {"response": floor_total_pages},
    "error_body_reshaped": {"response": other_error_shape},
    "contains_case_sensitive": {"response": contains_case_sensitive},
}

# Engine deviations run in a subprocess: the kit's oracle imports the same engine module, so
# patching it in this process would change the reference too.
ENGINE_PATCHES: dict[str, str] = {
    "empty_values_first": """
        def order_page(store, matches, sort, desc, offset, limit):
            idx = store.index(sort)
            wanted = None if matches is None else set(matches)
            ids = [r for r in idx.iter_order(desc) if wanted is None or r in wanted]
            ordered = [r for r in ids if r not in idx.keys] + [r for r in ids if r in idx.keys]
            return ordered[offset : offset + limit]
        q.order_page = order_page
    """,
    "ties_in_insertion_order": """
        def order_page(store, matches, sort, desc, offset, limit):
            idx = store.index(sort)
            wanted = None if matches is None else set(matches)
            ids = [r for r in store.records if wanted is None or r in wanted]
            with_value = sorted((r for r in ids if r in idx.keys), key=idx.keys.__getitem__, reverse=desc)
            return (with_value + [r for r in ids if r not in idx.keys])[offset : offset + limit]
        q.order_page = order_page
    """,
}

SERVE = """
import sys
import mockserver.domain.query as q
{patch}
from mockserver.server import MockServer
with MockServer(seed=3) as mock:
    print(mock.url, flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with MockServer(seed=11) as mock:
        yield mock.url


@pytest.fixture(scope="module")
def engine_servers() -> Iterator[dict[str, str]]:
    """The engine-patched mocks, started together (each is a subprocess on a free port)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", SERVE.format(patch=textwrap.dedent(patch))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        for name, patch in ENGINE_PATCHES.items()
    }
    try:
        urls = {}
        for name, proc in procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("http://"), f"{name} did not start"
            urls[name] = line
        yield urls
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def broken_url(request: pytest.FixtureRequest, engine_servers: dict[str, str]) -> Iterator[str]:
    name: str = request.param
    if name in engine_servers:
        yield engine_servers[name]
        return
    app = create_app(seed=3)
    app.add_middleware(Rewrite, **MIDDLEWARE[name])
    with MockServer(app=app) as mock:
        yield mock.url


# --- the kit against the mock itself ------------------------------------------------------------


def test_kit_passes_against_the_mock(mock_url: str, tmp_path: Path) -> None:
    kit = KitRun(mock_url, ADMIN_KEY, tmp_path, fuzz=False)
    assert kit.status == 0, kit.output
    assert kit.failures() == {}
    assert "no deviations found" in kit.output
    assert int(kit.junit.get("tests", "0")) > 50
    assert "stays on the server" in kit.output  # the scratch object cannot be deleted: said so


def test_kit_works_in_an_existing_object_when_the_key_cannot_create_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MockServer(seed=12) as mock:
        # The run sends more requests than the server key's plan allows in a minute: started at a
        # minute's start, it meets a 429 and waits as Retry-After says, on the mock's clock.
        now = mock.clock.now()
        mock.clock.set(now.replace(second=0, microsecond=100_000) + timedelta(minutes=1))
        monkeypatch.setattr(client_module, "time", SimpleNamespace(sleep=mock.clock.advance))

        def count(object_id: str) -> int:
            r = httpx.get(
                f"{mock.url}/api/crm/records/query",
                params={"object_id": object_id, "per_page": 1},
                headers={"X-Api-Key": ADMIN_KEY},
            )
            return int(r.json()["pagination"]["total"])

        objects = httpx.get(f"{mock.url}/api/crm/objects", headers={"X-Api-Key": ADMIN_KEY}).json()["data"]
        before = {o["id"]: count(o["id"]) for o in objects}
        kit = KitRun(mock.url, SERVER_KEY, tmp_path, fuzz=False, quick=True)
        assert kit.status == 0, kit.output
        assert "the key may not create objects (403): using an existing object" in kit.output
        assert "working in the existing object obj_" in kit.output
        assert {o: count(o) for o in before} == before  # every scratch record removed again


def test_kit_refuses_to_judge_with_a_key_the_server_rejects(mock_url: str, tmp_path: Path) -> None:
    kit = KitRun(mock_url, "kantos_intake_local_key", tmp_path, fuzz=False, quick=True)
    assert kit.status == 2, kit.output
    assert "the server refused the API key" in kit.output


def test_quick_run_with_the_fuzz_phase_passes_against_the_mock(mock_url: str, tmp_path: Path) -> None:
    kit = KitRun(mock_url, ADMIN_KEY, tmp_path, quick=True)
    assert kit.status == 0, kit.output
    case = next(c for c in kit.junit.iter("testcase") if c.get("name") == "spec.schemathesis")
    assert case.find("skipped") is None and case.find("failure") is None, kit.output


def test_kit_reports_an_unreachable_server_as_incomplete(tmp_path: Path) -> None:
    kit = KitRun("http://127.0.0.1:9", ADMIN_KEY, tmp_path, fuzz=False, quick=True)
    assert kit.status == 2
    assert "cannot reach the server" in kit.output


# --- the kit against broken servers -------------------------------------------------------------

BROKEN = [
    pytest.param(
        "empty_values_first", "sorting.empty-last", "order=", {"sorting"}, id="empty-values-sorted-first"
    ),
    pytest.param(
        "contains_case_sensitive", "filters.contains", "$contains", {"filters"}, id="case-sensitive-contains"
    ),
    pytest.param("ne_drops_empty", "filters.ne", "$ne", {"filters"}, id="ne-drops-empty-values"),
    pytest.param("per_page_clamped", "paging.limits", "per_page=101", {"paging"}, id="per-page-clamped"),
    pytest.param(
        "total_pages_floor", "paging.total-pages", "per_page=", {"paging"}, id="total-pages-rounded-down"
    ),
    pytest.param("ties_in_insertion_order", "sorting.ties", "sort=", {"sorting"}, id="no-stable-tie-break"),
    pytest.param("patch_replaces", "records.patch-merge", "-X PATCH", None, id="patch-replaces"),
    pytest.param("error_body_reshaped", "errors.shape", "curl", None, id="error-body-in-another-shape"),
    pytest.param(
        "malformed_filters_500", "filters.malformed", "filters=", {"errors"}, id="500-on-malformed-filters"
    ),
]


@pytest.mark.parametrize(("broken_url", "rule", "in_curl", "phases"), BROKEN, indirect=["broken_url"])
def test_kit_reports_the_deviation_with_a_reproducer(
    broken_url: str, rule: str, in_curl: str, phases: set[str] | None, tmp_path: Path
) -> None:
    """A quick run finds it: of the phases that check the rule when `phases` names them, else of all."""
    only = Options(only=frozenset(phases)) if phases is not None else None
    kit = KitRun(broken_url, ADMIN_KEY, tmp_path, fuzz=False, quick=True, options=only)
    assert kit.status == 1, kit.output
    failures = kit.failures()
    assert rule in failures, f"{rule} not among {sorted(failures)}\n{kit.output}"
    text = failures[rule]
    assert "expected: " in text and "received: " in text
    curls = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ curl ")]
    assert curls and any(in_curl in c for c in curls), text
    assert broken_url in curls[0] and '"X-Api-Key: $KANTOS_API_KEY"' in curls[0]


def test_options_rules_narrows_the_filters_phase_to_those_rules(mock_url: str) -> None:
    options = Options(only=frozenset({"filters"}), rules=frozenset({"filters.range", "filters.ne"}))
    report = check(mock_url, ADMIN_KEY, quick=True, fuzz=False, out=io.StringIO(), seed=5, options=options)
    sent = {c.id for c in report.checks.values() if c.area == "filters" and c.runs}
    assert sent and report.exit_status() == 0, report.render()
    assert {r.id for c in sent for r in rules_for(c)} == {"filters.range", "filters.ne"}


def test_options_rules_refuses_a_rule_the_contract_does_not_have() -> None:
    with pytest.raises(ValueError, match=r"^no such rule of the contract: filters\.nope$"):
        Options(rules=frozenset({"filters.nope", "filters.ne"}))
