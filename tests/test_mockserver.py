"""MockServer: a real server on a free loopback port in a thread, driven from Python."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockserver import FixtureError, MockServer, create_app
from mockserver.domain.backend import FixtureSet
from mockserver.domain.errors import BadRequest, Unauthorized, ValidationFailed
from mockserver.server import _Server

CONTACTS = {"object_id": "obj_contacts"}


@pytest.fixture
def no_self_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # Injected fault answers are not in openapi.yaml; the suite-wide response self-check would flag them.
    monkeypatch.delenv("KANTOS_MOCK_VALIDATE_RESPONSES", raising=False)


@pytest.fixture
def mock(fixture_set: FixtureSet, no_self_check: None) -> Iterator[MockServer]:
    with MockServer(fixture_set, seed=11) as server:
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serves_the_api_on_a_free_loopback_port_until_stopped(fixture_set: FixtureSet) -> None:
    server = MockServer(fixture_set).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.api_key == "kantos_admin_local_key"
        r = httpx.get(server.url + "/api/crm/objects", headers={"X-Api-Key": server.api_key})
        assert r.status_code == 200
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/api/crm/objects")


def test_two_servers_run_side_by_side_with_separate_state(fixture_set: FixtureSet) -> None:
    with MockServer(fixture_set) as a, MockServer(fixture_set) as b, a.client() as ca, b.client() as cb:
        assert a.url != b.url
        created = ca.post("/api/crm/record", json={**CONTACTS, "field_values": {"name": "Only in A"}})
        assert created.status_code == 201
        assert cb.get(f"/api/crm/record/{created.json()['id']}").status_code == 404


def test_a_port_in_use_raises_at_once(fixture_set: FixtureSet) -> None:
    with MockServer(fixture_set) as first:
        port = int(first.url.rsplit(":", 1)[1])
        # "At once": the bind error is raised, not waited out until the start timeout.
        second = MockServer(fixture_set, port=port, start_timeout=600)
        with pytest.raises(OSError, match=r"(?i)address|in use"):
            second.start()


def test_a_bad_fixture_set_raises_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "objects.yaml").write_text("objects: [{name: Things, fields: [{name: X, type: colour}]}]\n")
    with pytest.raises(FixtureError, match=r"objects\.yaml"):
        MockServer(tmp_path)


def test_a_server_that_fails_to_start_raises(
    fixture_set: FixtureSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Any, sockets: Any = None) -> None:
        raise RuntimeError("no luck")

    monkeypatch.setattr(_Server, "startup", broken)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start"):
        MockServer(fixture_set, start_timeout=5).start()
    assert time.monotonic() - started < 5


def test_a_server_that_never_comes_up_times_out_instead_of_hanging(
    fixture_set: FixtureSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stuck(self: Any, sockets: Any = None) -> None:
        while not self.should_exit:
            await asyncio.sleep(0.01)

    monkeypatch.setattr(_Server, "startup", stuck)
    server = MockServer(fixture_set, start_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"0\.3 s passed"):
        server.start()
    assert time.monotonic() - started < 3
    assert not server.running


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_drop_fault_closes_the_connection_without_an_answer(fixture_set: FixtureSet, http: str) -> None:
    with MockServer(fixture_set, uvicorn_options={"http": http}) as server, server.client() as client:
        server.fault("GET", "/api/crm/objects", drop=True, times=1)
        with pytest.raises(httpx.TransportError):
            client.get("/api/crm/objects")
        assert client.get("/api/crm/objects").status_code == 200
        assert [e["status"] for e in server.requests()] == [None, 200]


def test_a_drop_fault_on_a_request_with_a_body(mock: MockServer) -> None:
    mock.fault("POST", "/api/crm/record", drop=True)
    with mock.client() as client, pytest.raises(httpx.TransportError):
        client.post("/api/crm/record", json={**CONTACTS, "field_values": {"name": "Lost"}})
    [entry] = mock.requests()
    assert entry["body"]["field_values"] == {"name": "Lost"}


def test_status_and_latency_faults_over_a_socket(mock: MockServer) -> None:
    mock.fault("GET", "/api/crm/objects", status=503, latency_ms=100, times=1)
    with mock.client() as client:
        started = time.perf_counter()
        assert client.get("/api/crm/objects").status_code == 503
        assert time.perf_counter() - started >= 0.1
        assert client.get("/api/crm/objects").status_code == 200
    assert [f["hits"] for f in mock.faults()] == [1]


def test_the_journal_from_python_filters_and_asserts(mock: MockServer) -> None:
    with mock.client() as client:
        client.get("/api/crm/objects")
        client.get("/api/crm/records/query", params={**CONTACTS, "per_page": 5})
    assert [e["path"] for e in mock.requests(method="GET", path="/api/crm/records/*")] == [
        "/api/crm/records/query"
    ]
    [entry] = mock.assert_requested("GET", "/api/crm/records/query", times=1)
    assert entry["query"]["per_page"] == "5"
    with pytest.raises(AssertionError, match="GET /api/crm/objects -> 200"):
        mock.assert_requested("POST", "/api/crm/record")
    mock.clear_requests()
    assert mock.requests() == []


def test_seed_creates_records_with_the_apis_checks(mock: MockServer) -> None:
    made = mock.seed("obj_contacts", [{"name": "Ada"}, {"name": "Alan", "email": "alan@example.com"}])
    assert [r["field_values"]["name"] for r in made] == ["Ada", "Alan"]
    assert made[0]["created_by"] == "user_admin"
    with mock.client() as client:
        assert client.get(f"/api/crm/record/{made[1]['id']}").json() == made[1]
    with pytest.raises(ValidationFailed, match="email"):
        mock.seed("obj_contacts", [{"name": "Bad", "email": "nope"}])
    with pytest.raises(Unauthorized):
        mock.seed("obj_contacts", [{"name": "Nobody"}], api_key="not_a_key")
    assert [e["method"] for e in mock.requests()] == ["GET"]  # seeding is not a request


def test_the_clock_from_python(mock: MockServer) -> None:
    frozen = mock.clock.freeze(datetime(2024, 1, 15, 10, 30))  # naive means UTC
    assert frozen == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert mock.clock.frozen
    assert mock.clock.advance(90) == datetime(2024, 1, 15, 10, 31, 30, tzinfo=UTC)
    [rec] = mock.seed("obj_contacts", [{"name": "Timed"}])
    assert rec["created_at"] == "2024-01-15T10:31:30Z"
    mock.clock.set("2025-06-01T00:00:00+02:00")
    assert mock.clock.now() == datetime(2025, 5, 31, 22, tzinfo=UTC)
    mock.clock.unfreeze()
    assert not mock.clock.frozen
    with pytest.raises(BadRequest, match="set"):
        mock.clock.set("next tuesday")


def test_python_calls_are_checked_like_control_requests(mock: MockServer) -> None:
    with pytest.raises(BadRequest, match="needs an action"):
        mock.fault("GET", "/api/crm/objects")
    with pytest.raises(BadRequest, match="probability"):
        mock.fault(status=500, probability=2)
    assert mock.faults() == []


def test_reset_restores_every_tenant(mock: MockServer) -> None:
    mock.seed("obj_contacts", [{"name": "Default"}])
    mock.tenant("w1").seed("obj_contacts", [{"name": "W1"}])
    mock.tenant("w1").fault(status=500)
    mock.reset()
    for control in (mock, mock.tenant("w1")):
        assert control.backend.changes == 0
        assert control.faults() == []


def test_tenant_control_acts_on_the_tenant_a_header_selects(mock: MockServer) -> None:
    w1 = mock.tenant("w1")
    w1.fault("GET", "/api/crm/objects", status=418)
    with mock.client(tenant="w1") as c1, mock.client() as c0:
        assert c1.get("/api/crm/objects").status_code == 418
        assert c0.get("/api/crm/objects").status_code == 200
    assert len(w1.requests()) == 1
    assert len(mock.requests()) == 1
    assert w1.reset() == 0


def test_state_export_and_import_from_python(mock: MockServer) -> None:
    [rec] = mock.seed("obj_contacts", [{"name": "Kept"}])
    saved = mock.state()
    mock.reset()
    assert mock.load_state(saved)["records"] == len(saved["records"])
    with mock.client() as client:
        assert client.get(f"/api/crm/record/{rec['id']}").status_code == 200


def test_key_limits_from_python(mock: MockServer) -> None:
    key = mock.set_key("kantos_free_local_key", per_minute=1)
    assert key["per_minute"] == 1
    with mock.client(headers={"X-Api-Key": "kantos_free_local_key"}) as client:
        assert [client.get("/api/crm/objects").status_code for _ in range(2)] == [200, 429]
    mock.clock.advance(60)
    with mock.client(headers={"X-Api-Key": "kantos_free_local_key"}) as client:
        assert client.get("/api/crm/objects").status_code == 200


def test_control_from_another_thread_does_not_race_requests(mock: MockServer) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        with mock.client() as client:
            while not stop.is_set():
                r = client.get("/api/crm/records/query", params={**CONTACTS, "sort": "name"})
                if r.status_code != 200:
                    errors.append(AssertionError(r.text))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(50):
            mock.seed("obj_contacts", [{"name": f"Racer {i}"}])
            if i % 10 == 0:
                mock.reset()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


def test_the_port_can_be_chosen(fixture_set: FixtureSet) -> None:
    port = free_port()
    with MockServer(fixture_set, port=port) as server:
        assert server.url == f"http://127.0.0.1:{port}"


def test_an_app_can_be_passed_in(fixture_set: FixtureSet) -> None:
    app = create_app(fixture_set, control=False)
    with MockServer(app=app) as server, server.client() as client:
        assert client.post("/_mock/reset").status_code == 404
        assert client.get("/api/crm/objects").status_code == 200


def test_requests_over_a_socket_leave_no_reference_cycles(mock: MockServer) -> None:
    """Each request's objects are freed by reference counting as soon as it is answered. A
    reference cycle per request (the scope once held a `send` bound to uvicorn's request cycle,
    which holds the scope) made the garbage collector run hundreds of times a second under load.
    The client is http.client on one keep-alive connection: httpx leaves cycles of its own."""
    url = httpx.URL(mock.url)
    conn = http.client.HTTPConnection(url.host, url.port)
    paths = [
        "/api/crm/objects",
        "/api/crm/record/rec_missing",
        "/api/crm/records/query?object_id=obj_contacts",
    ]

    def get(path: str) -> int:
        conn.request("GET", path, headers={"X-Api-Key": mock.api_key})
        response = conn.getresponse()
        response.read()
        return response.status

    try:
        get(paths[0])  # the connection and first-use work
        gc.collect()
        gc.disable()
        try:
            statuses = {get(paths[i % 3]) for i in range(300)}
            unreachable = gc.collect()
        finally:
            gc.enable()
    finally:
        conn.close()
    assert statuses == {200, 404}
    # A cycle per request is several objects each: thousands in all. Allow the odd one elsewhere.
    assert unreachable < 100, f"{unreachable} objects were left in reference cycles by 300 requests"


def test_writes_errors_and_new_connections_leave_no_reference_cycles(mock: MockServer) -> None:
    """`kantos-mock serve` freezes what survives each collection (cli._freeze_survivors): that
    is safe only while nothing a request makes needs the collector to be freed. So every kind of
    exchange is counted here: creates, updates, deletes, each kind of error, and a connection
    per request."""
    url = httpx.URL(mock.url)
    key = {"X-Api-Key": mock.api_key}
    body = {**key, "Content-Type": "application/json"}

    Conn = http.client.HTTPConnection

    def call(conn: Conn, method: str, path: str, payload: str | None, h: dict[str, str]) -> int:
        conn.request(method, path, body=payload, headers=h)
        response = conn.getresponse()
        response.read()
        return response.status

    def kinds(conn: Conn, i: int) -> list[int]:
        email = f"cycle{i}@example.com"
        values = {"name": f"Cycle {i}", "email": email}
        created = json.dumps({"object_id": "obj_contacts", "field_values": values})
        statuses = [call(conn, "POST", "/api/crm/record", created, body)]
        conn.request("GET", f"/api/crm/records/query?object_id=obj_contacts&email={email}", headers=key)
        rid = json.loads(conn.getresponse().read())["data"][0]["id"]
        bad_type = '{"object_id":"obj_contacts","field_values":{"name":5}}'
        statuses += [
            call(conn, "PATCH", f"/api/crm/record/{rid}", '{"field_values":{"notes":"n"}}', body),
            call(conn, "POST", "/api/crm/record", bad_type, body),
            call(conn, "POST", "/api/crm/record", "{", body),
            call(conn, "GET", "/api/crm/records/query?object_id=obj_contacts&per_page=500", None, key),
            call(conn, "GET", "/api/crm/objects", None, {}),
            call(conn, "DELETE", f"/api/crm/record/{rid}", None, key),
        ]
        return statuses

    def fresh(i: int) -> list[int]:
        conn = http.client.HTTPConnection(url.host, url.port)
        try:
            return [call(conn, "GET", f"/api/crm/record/rec_{i}", None, key)]
        finally:
            conn.close()

    conn = http.client.HTTPConnection(url.host, url.port)
    try:
        kinds(conn, 0)  # first-use work
        fresh(0)
        gc.collect()
        gc.disable()
        try:
            statuses = {s for i in range(1, 41) for s in kinds(conn, i) + fresh(i)}
            unreachable = gc.collect()
        finally:
            gc.enable()
    finally:
        conn.close()
    assert statuses == {201, 200, 422, 400, 401, 204, 404}
    assert unreachable < 100, f"{unreachable} objects were left in reference cycles by 320 exchanges"
