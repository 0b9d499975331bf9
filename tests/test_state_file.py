"""`--state-file`: the state loads from the file at start and is written, atomically, after each change."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mockserver import create_app
from mockserver.domain import state as state_module
from mockserver.domain.backend import FixtureSet
from mockserver.domain.state import write_atomic

ADMIN = {"X-Api-Key": "kantos_admin_local_key"}


class InProcess(httpx.BaseTransport):
    """The app behind a synchronous httpx client, no socket (httpx.ASGITransport is async-only)."""

    def __init__(self, app: Starlette) -> None:
        self.loop = asyncio.new_event_loop()
        self.transport = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            response = await self.transport.handle_async_request(request)
            content = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.close()


def client_for(app: Starlette) -> httpx.Client:
    return httpx.Client(transport=InProcess(app), base_url="http://mock", headers=ADMIN)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state.json"


@pytest.fixture
def make_client(fixture_set: FixtureSet, state_file: Path) -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def make(**options: Any) -> httpx.Client:
        client = client_for(create_app(fixture_set, state_file=state_file, **options))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def saved(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def new_contact(client: httpx.Client, name: str = "Persisted Person") -> dict[str, Any]:
    r = client.post("/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": name}})
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def test_a_missing_file_is_created_at_start_with_the_fixture_state(
    make_client: Any, state_file: Path
) -> None:
    make_client()
    data = saved(state_file)
    assert {o["id"] for o in data["objects"]} == {"obj_contacts", "obj_companies", "obj_deals"}
    assert len(data["records"]) == 400


def test_each_change_is_written_before_it_is_answered(make_client: Any, state_file: Path) -> None:
    client = make_client()
    rec = new_contact(client)
    assert rec["id"] in {r["id"] for r in saved(state_file)["records"]}
    client.patch(f"/api/crm/record/{rec['id']}", json={"field_values": {"name": "Renamed"}})
    [written] = [r for r in saved(state_file)["records"] if r["id"] == rec["id"]]
    assert written["field_values"]["name"] == "Renamed"
    client.delete(f"/api/crm/record/{rec['id']}")
    assert rec["id"] not in {r["id"] for r in saved(state_file)["records"]}


def test_the_state_survives_a_restart(make_client: Any) -> None:
    first = make_client()
    first.post("/_mock/clock", json={"freeze": True, "set": "2024-05-01T09:00:00Z"})
    first.post("/api/crm/objects", json={"name": "Projects", "fields": [{"name": "Title", "type": "text"}]})
    rec = new_contact(first)
    second = make_client()
    assert second.get(f"/api/crm/record/{rec['id']}").json() == rec
    assert second.get("/api/crm/objects/obj_projects").status_code == 200
    assert second.get("/_mock/clock").json() == {"now": "2024-05-01T09:00:00Z", "frozen": True}


def test_reset_writes_the_fixture_state_back(make_client: Any, state_file: Path) -> None:
    client = make_client()
    rec = new_contact(client)
    client.post("/_mock/reset")
    assert rec["id"] not in {r["id"] for r in saved(state_file)["records"]}
    # A restart then starts from the fixture set again.
    assert make_client().get(f"/api/crm/record/{rec['id']}").status_code == 404


def test_failed_requests_and_reads_do_not_write(make_client: Any, state_file: Path) -> None:
    client = make_client()
    before = state_file.stat().st_mtime_ns, state_file.read_bytes()
    bad = client.post("/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"email": "x"}})
    assert bad.status_code == 422
    client.get("/api/crm/objects")
    assert (state_file.stat().st_mtime_ns, state_file.read_bytes()) == before


def test_other_tenants_are_not_persisted(make_client: Any, state_file: Path) -> None:
    client = make_client()
    before = state_file.read_bytes()
    r = client.post(
        "/api/crm/record",
        json={"object_id": "obj_contacts", "field_values": {"name": "Elsewhere"}},
        headers={"X-Mock-Tenant": "scratch"},
    )
    assert r.status_code == 201
    assert state_file.read_bytes() == before


def test_changes_made_from_python_are_written_too(fixture_set: FixtureSet, state_file: Path) -> None:
    from mockserver import MockServer

    with MockServer(fixture_set, state_file=state_file) as mock:
        [rec] = mock.seed("obj_contacts", [{"name": "From Python"}])
        assert rec["id"] in {r["id"] for r in saved(state_file)["records"]}
        mock.reset()
        assert rec["id"] not in {r["id"] for r in saved(state_file)["records"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "cannot read the state file"),
        (b'{"objects": [], "records": [{"id": "rec_1", "object_id": "obj_x"}]}', "not a valid state"),
    ],
    ids=["not-json", "invalid-state"],
)
def test_a_broken_state_file_stops_start_up_and_is_left_alone(
    fixture_set: FixtureSet, state_file: Path, content: bytes, message: str
) -> None:
    state_file.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        create_app(fixture_set, state_file=state_file)
    assert state_file.read_bytes() == content


def test_a_crash_mid_write_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b'{"v": 1}')

    def crash(fd: int) -> None:
        raise OSError("disk pulled out mid-write")

    monkeypatch.setattr(state_module.os, "fsync", crash)
    with pytest.raises(OSError, match="mid-write"):
        write_atomic(target, b'{"v": 2, "and much more": "' + b"x" * 100_000 + b'"}')
    assert target.read_bytes() == b'{"v": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind


# --- the command line ------------------------------------------------------------------------


class Serve:
    """`python -m mockserver serve` in a subprocess, on a free port."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KANTOS_MOCK_VALIDATE_RESPONSES"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mockserver", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.url = ""
        for line in self.proc.stdout:
            if line.startswith("base URL:"):
                self.url = line.split(":", 1)[1].strip()
            if line.startswith("API key:"):
                break
        assert self.url, self.proc.stderr.read() if self.proc.stderr else "no output"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.communicate(timeout=10)


@pytest.mark.slow
def test_serve_with_a_state_file_keeps_answered_writes_across_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "kantos-state.json"
    first = Serve("--state-file", str(path))
    try:
        r = httpx.post(
            first.url + "/api/crm/record",
            json={"object_id": "obj_contacts", "field_values": {"name": "Survivor"}},
            headers=ADMIN,
        )
        assert r.status_code == 201
    finally:
        first.stop(signal.SIGKILL)  # no clean shutdown: only what was written counts
    second = Serve("--state-file", str(path), "--no-control")
    try:
        got = httpx.get(f"{second.url}/api/crm/record/{r.json()['id']}", headers=ADMIN)
        assert got.json() == r.json()
        assert httpx.post(second.url + "/_mock/reset").status_code == 404
    finally:
        second.stop()
