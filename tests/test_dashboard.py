"""The dashboard's server side: its files, the journal it reads (answers, caps, polls), the control token."""

from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
from kantos_support import ADMIN_KEY, SyncASGITransport
from starlette.applications import Starlette
from test_cli import Lines

from mockserver import create_app
from mockserver.domain.backend import FixtureSet
from mockserver.http.access import is_loopback
from mockserver.http.dashboard import dashboard_files
from mockserver.http.journal import BODY_CAP, BYTES_BUDGET, Journal
from mockserver.openapi import Spec

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "mockserver" / "dashboard"
CONSOLE_SCRIPT = Path(sys.executable).with_name("kantos-mock")
TOKEN = "t0ken-for-tests"


def tenant(name: str) -> dict[str, str]:
    return {"X-Mock-Tenant": name}


def client_for(app: Starlette, **headers: str) -> httpx.Client:
    return httpx.Client(
        transport=SyncASGITransport(app),
        base_url="http://kantos.test",
        headers={"X-Api-Key": ADMIN_KEY, **headers},
    )


# --- the files -------------------------------------------------------------------------------


def test_mock_root_redirects_to_the_dashboard(client: httpx.Client) -> None:
    for path in ("/_mock", "/_mock/"):
        r = client.get(path)
        assert (r.status_code, r.headers["location"]) == (307, "/_mock/ui")


def test_the_dashboard_page_loads_only_its_own_files(client: httpx.Client) -> None:
    r = client.get("/_mock/ui")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    # The browser may fetch nothing but the mock itself.
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for src in re.findall(r'(?:src|href)="([^"#]+)"', r.text):
        assert src.startswith(("/_mock/ui/", "data:")), src
        if src.startswith("/"):
            assert client.get(src).status_code == 200, src


def test_every_module_the_dashboard_imports_is_served() -> None:
    files = dashboard_files()
    assert {"index.html", "app.js", "lib.js", "style.css"} <= set(files)
    for name, (content, _) in files.items():
        text = content.decode("utf-8")
        assert "http://" not in text.replace("http://127.0.0.1:9000", ""), name  # nothing from elsewhere
        assert "https://" not in text, name
        for target in re.findall(r'from "(\.[^"]+)"', text):
            resolved = (Path("/" + name).parent / target).resolve().as_posix().lstrip("/")
            assert resolved in files, f"{name} imports {target}, which is not shipped"


def test_the_served_files_are_the_package_files(client: httpx.Client) -> None:
    on_disk = {p.relative_to(DASHBOARD_DIR).as_posix() for p in DASHBOARD_DIR.rglob("*") if p.is_file()}
    assert on_disk == set(dashboard_files())
    for name in on_disk:
        assert client.get(f"/_mock/ui/{name}").content == (DASHBOARD_DIR / name).read_bytes()


def test_an_unknown_dashboard_file_is_a_kantos_404(client: httpx.Client) -> None:
    r = client.get("/_mock/ui/nope.js")
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"


def test_no_control_turns_the_dashboard_off_too(fixture_set: FixtureSet, spec: Spec) -> None:
    app = create_app(fixture_set, spec=spec, control=False)
    with client_for(app) as c:
        for path in ("/_mock", "/_mock/", "/_mock/ui", "/_mock/ui/app.js", "/_mock/login"):
            assert c.get(path).status_code == 404, path


# --- the journal: answers, caps ----------------------------------------------------------------


def test_the_journal_keeps_the_body_each_request_was_answered_with(client: httpx.Client) -> None:
    answer = client.get("/api/crm/records/query", params={"object_id": "obj_contacts", "per_page": 3})
    client.get("/api/crm/record/rec_nope")
    client.get("/elsewhere")
    first, missing, elsewhere = client.get("/_mock/requests").json()["data"]
    assert first["response_body"] == answer.json()
    assert first["response_size"] == len(answer.content)
    assert first["response_truncated"] is False
    assert missing["status"] == 404
    assert missing["response_body"]["details"]["id"] == "rec_nope"
    assert elsewhere["response_body"]["code"] == "NOT_FOUND"


def test_a_fault_answer_is_journaled_with_its_body(client: httpx.Client) -> None:
    client.post("/_mock/faults", json={"path": "/api/crm/objects", "status": 503, "text": "down", "times": 1})
    client.get("/api/crm/objects")
    [entry] = client.get("/_mock/requests").json()["data"]
    assert (entry["status"], entry["response_body"], entry["fault"]) == (503, "down", "flt_1")


def test_a_204_is_journaled_with_no_body(client: httpx.Client) -> None:
    rec = client.post(
        "/api/crm/record", json={"object_id": "obj_companies", "field_values": {"name": "Gone"}}
    ).json()
    client.delete(f"/api/crm/record/{rec['id']}")
    entry = client.get("/_mock/requests").json()["data"][-1]
    assert (entry["status"], entry["response_body"], entry["response_size"]) == (204, None, 0)


def test_bodies_over_the_cap_are_cut_and_the_entry_says_so(client: httpx.Client) -> None:
    big = {"object_id": "obj_contacts", "field_values": {"name": "x" * (BODY_CAP + 1000)}}
    sent = client.post("/api/crm/record", json=big)
    assert sent.status_code == 422
    client.post(
        "/_mock/faults", json={"path": "/api/crm/objects", "status": 500, "text": "y" * (BODY_CAP * 2)}
    )
    client.get("/api/crm/objects")
    request, answer = client.get("/_mock/requests").json()["data"]
    assert request["body_truncated"] is True
    assert request["body_size"] == len(sent.request.content)
    assert request["body"].startswith('{"object_id":"obj_contacts"') and request["body"].endswith("…")
    assert len(request["body"]) == BODY_CAP + 1
    assert request["response_truncated"] is False
    assert answer["response_truncated"] is True
    assert answer["response_size"] == BODY_CAP * 2
    assert answer["response_body"] == "y" * BODY_CAP + "…"


def test_the_journal_stays_under_64_mb_however_large_the_bodies() -> None:
    journal = Journal()
    headers = [(b"host", b"127.0.0.1:8000"), (b"x-api-key", b"kantos_admin_local_key")]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):  # 300 MiB of request bodies and 300 MiB of answers, each 1 MiB
            body = bytes([i % 256]) * (1 << 20)
            answer = bytes([(i + 1) % 256]) * (1 << 20)
            journal.add(i, "POST", "/api/crm/record", b"a=1", headers, body, 201, 1.0, None, answer)
            del body, answer
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert journal.size <= BYTES_BUDGET
    assert held < 64 * 1024 * 1024, f"{held / 2**20:.1f} MiB"
    kept = journal.entries(bodies=False)
    assert kept[-1]["id"] == 300  # the newest stay, the oldest went
    assert 50 < len(kept) < 100
    assert journal.entry(300)["body_truncated"] is True  # type: ignore[index]


def test_the_journal_drops_its_oldest_past_its_length() -> None:
    journal = Journal(maxlen=3)
    for i in range(5):
        journal.add(i, "GET", f"/p{i}", b"", [], b"", 200, 0.1, None)
    assert [e["path"] for e in journal.entries()] == ["/p2", "/p3", "/p4"]
    assert journal.entry(1) is None and journal.entry(3) is not None


# --- the journal: what a poller asks -----------------------------------------------------------


def test_since_and_limit_give_what_is_new_oldest_first(client: httpx.Client) -> None:
    for i in range(5):
        client.get(f"/api/crm/record/rec_{i}")
    page = client.get("/_mock/requests", params={"since": 2, "limit": 2, "bodies": "false"}).json()
    assert [e["id"] for e in page["data"]] == [4, 5]
    assert (page["last_id"], page["generation"]) == (5, 0)
    assert set(page["data"][0]) == {
        "id",
        "time",
        "method",
        "path",
        "status",
        "duration_ms",
        "fault",
        "client",
    }
    assert client.get("/_mock/requests", params={"since": 5}).json()["data"] == []


def test_an_emptied_journal_starts_a_new_generation(client: httpx.Client) -> None:
    client.get("/api/crm/objects")
    client.delete("/_mock/requests")
    client.get("/api/crm/objects")
    page = client.get("/_mock/requests").json()
    assert (page["last_id"], page["generation"]) == (1, 1)
    client.post("/_mock/reset")
    assert client.get("/_mock/requests").json()["generation"] == 2


@pytest.mark.parametrize(
    ("status", "expected"),
    [("404", [404]), ("4xx", [401, 404]), ("2xx", [200]), ("none", [])],
    ids=["exact", "class-4xx", "class-2xx", "none"],
)
def test_status_filters_the_journal(client: httpx.Client, status: str, expected: list[int]) -> None:
    client.get("/api/crm/objects")
    client.get("/api/crm/objects", headers={"X-Api-Key": "wrong"})
    client.get("/api/crm/record/rec_nope")
    got = [e["status"] for e in client.get("/_mock/requests", params={"status": status}).json()["data"]]
    assert got == expected


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "4x"}, "status"),
        ({"since": "-1"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"bodies": "no"}, "bodies"),
    ],
    ids=["status", "since", "limit", "bodies"],
)
def test_bad_journal_parameters_are_400_naming_them(
    client: httpx.Client, params: dict[str, str], param: str
) -> None:
    r = client.get("/_mock/requests", params=params)
    assert r.status_code == 400
    assert r.json()["details"]["param"] == param


def test_one_request_in_full_and_404_for_one_not_kept(client: httpx.Client) -> None:
    client.get("/api/crm/objects", headers={"X-Mock-Client": "dashboard"})
    entry = client.get("/_mock/requests/1").json()
    assert entry["path"] == "/api/crm/objects" and entry["client"] == "dashboard"
    assert entry["headers"]["x-api-key"] == "kantos…"
    for missing in ("2", "0", "abc", "9" * 30):
        r = client.get(f"/_mock/requests/{missing}")
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", missing


def test_tenants_are_listed_once_used(client: httpx.Client) -> None:
    assert client.get("/_mock/tenants").json()["data"] == [{"name": "", "default": True}]
    client.get("/api/crm/objects", headers=tenant("w1"))
    assert client.get("/_mock/tenants").json()["data"] == [
        {"name": "", "default": True},
        {"name": "w1", "default": False},
    ]


def test_keys_show_what_is_left_of_their_windows(client: httpx.Client) -> None:
    client.post("/_mock/clock", json={"freeze": True, "set": "2024-01-15T10:30:20Z"})
    client.patch("/_mock/keys/kantos_server_local_key", json={"per_minute": 5})
    for _ in range(3):
        client.get("/api/crm/objects", headers={"X-Api-Key": "kantos_server_local_key"})

    def windows() -> dict[str, Any]:
        keys = {k["key"]: k for k in client.get("/_mock/keys").json()["data"]}
        return keys["kantos_server_local_key"]["windows"]  # type: ignore[no-any-return]

    assert windows()["minute"] == {"used": 3, "remaining": 2, "reset": 1705314660}
    assert windows()["day"]["used"] == 3
    client.post("/_mock/clock", json={"advance": 60})
    assert windows()["minute"]["remaining"] == 5
    assert windows()["day"]["remaining"] == 100_000 - 3


# --- the control token ---------------------------------------------------------------------------


@pytest.fixture
def guarded(fixture_set: FixtureSet, spec: Spec) -> Starlette:
    return create_app(fixture_set, spec=spec, control_token=TOKEN)


@pytest.mark.parametrize(
    "path", ["/_mock/requests", "/_mock/ui", "/_mock/ui/app.js", "/_mock/", "/_mock/clock"]
)
def test_with_a_token_set_the_control_api_and_dashboard_are_401_without_it(
    guarded: Starlette, path: str
) -> None:
    with client_for(guarded) as c:
        r = c.get(path)
        assert r.status_code == 401
        assert set(r.json()) == {"error", "code", "status", "details"}
        assert r.json()["code"] == "UNAUTHORIZED" and "X-Mock-Token" in r.json()["error"]
        assert c.get(path, headers={"X-Mock-Token": "nope"}).status_code == 401
        assert c.get(path, headers={"X-Mock-Token": TOKEN}).status_code in (200, 307)
        c.cookies.set("kantos_mock_token", TOKEN)
        assert c.get(path).status_code in (200, 307)


def test_a_refused_control_call_changes_nothing(guarded: Starlette) -> None:
    with client_for(guarded) as c:
        assert c.post("/_mock/clock", json={"advance": 3600}, headers=tenant("t")).status_code == 401
        assert c.get("/_mock/tenants", headers={"X-Mock-Token": TOKEN}).json()["data"] == [
            {"name": "", "default": True}
        ]


def test_with_a_token_set_the_api_is_unchanged(guarded: Starlette) -> None:
    with client_for(guarded) as c:
        assert c.get("/api/crm/objects").status_code == 200
        assert c.get("/openapi.json").status_code == 200


def test_the_one_time_link_sets_the_cookie_once(guarded: Starlette) -> None:
    code = guarded.state.registry.access.issue_code()
    with client_for(guarded) as c:
        r = c.get("/_mock/login", params={"code": code})
        assert (r.status_code, r.headers["location"]) == (303, "/_mock/ui")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"kantos_mock_token={TOKEN};")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/_mock" in cookie
        assert c.get("/_mock/ui").status_code == 200  # the cookie the link set
    with client_for(guarded) as again:
        assert again.get("/_mock/login", params={"code": code}).status_code == 401
        assert again.get("/_mock/login").status_code == 401
        assert again.get("/_mock/ui").status_code == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.5", False), ("myhost", False)],
)  # fmt: skip
def test_which_binds_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.slow
def test_serve_on_every_interface_prints_a_token_and_a_one_time_link() -> None:
    """Bound to 0.0.0.0 (reached here through 127.0.0.1: nothing leaves the machine)."""
    command = [str(CONSOLE_SCRIPT), "serve", "--host", "0.0.0.0", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            lines = Lines(proc)
            port = lines.wait_for(re.compile(r"http://0\.0\.0\.0:(\d+)")).group(1)
            token = lines.wait_for(re.compile(r"needs the token (\S+) \(header X-Mock-Token\)")).group(1)
            code = lines.wait_for(re.compile(r"/_mock/login\?code=(\S+)")).group(1)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=5) as c:
                assert c.get("/_mock/requests").status_code == 401
                assert c.get("/_mock/ui").status_code == 401
                assert c.get("/_mock/requests", headers={"X-Mock-Token": token}).status_code == 200
                assert c.get("/api/crm/objects", headers={"X-Api-Key": ADMIN_KEY}).status_code == 200
                assert c.get("/_mock/login", params={"code": code}).status_code == 303
                assert c.get("/_mock/ui").status_code == 200
                assert c.get("/_mock/login", params={"code": code}).status_code == 401
        finally:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.slow
def test_serve_with_a_given_token_does_not_print_it() -> None:
    command = [str(CONSOLE_SCRIPT), "serve", "--host", "0.0.0.0", "--port", "0", "--control-token", TOKEN]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            lines = Lines(proc)
            port = lines.wait_for(re.compile(r"http://0\.0\.0\.0:(\d+)")).group(1)
            lines.wait_for(re.compile(r"/_mock/login\?code=\S+"))
            assert TOKEN not in lines.text
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
                assert c.get("/_mock/clock").status_code == 401
                assert c.get("/_mock/clock", headers={"X-Mock-Token": TOKEN}).status_code == 200
        finally:
            proc.kill()
            proc.wait(timeout=5)
