"""The pytest plugin as a user meets it: a test file using its fixtures, run in a fresh pytest."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from mockserver import MockServer
from mockserver.domain.backend import FixtureSet

pytest_plugins = ["pytester"]

CREATE_SAME_CONTACT = """
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_writes_start_from_the_fixture_state(kantos_mock, n):
    body = {{"object_id": "obj_contacts", "field_values": {{"name": "Twin", "email": "twin@example.com"}}}}
    r = kantos_mock.client.post("/api/crm/record", json=body)
    # The email is unique: a write left over from another test (or worker) would make this a 409.
    assert r.status_code == 201, r.text
    q = kantos_mock.client.get("/api/crm/records/query", params={{"object_id": "obj_contacts"}})
    assert q.json()["pagination"]["total"] == 221
    assert [e["method"] for e in kantos_mock.requests()] == ["POST", "GET"]
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A fresh pytest in a subprocess, as a user runs it (minus two heavy plugins it does not need)."""
    return pytester.runpytest_subprocess("-p", "no:schemathesis", "-p", "no:hypothesispytest", *args)


@pytest.fixture(autouse=True)
def no_self_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # Injected fault answers are not in openapi.yaml; the suite-wide response self-check would flag them.
    monkeypatch.delenv("KANTOS_MOCK_VALIDATE_RESPONSES", raising=False)


def test_the_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins["kantos_mock"] == "mockserver.pytest_plugin"


def test_each_test_gets_a_mock_in_the_fixture_state(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CREATE_SAME_CONTACT.format(count=5))
    result = run(pytester)
    result.assert_outcomes(passed=5)


def test_the_helpers_seed_read_the_journal_inject_faults_and_move_the_clock(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import httpx
        import pytest

        def test_url_key_and_client(kantos_mock):
            assert kantos_mock.url.startswith("http://127.0.0.1:")
            assert kantos_mock.api_key == "kantos_admin_local_key"
            assert kantos_mock.is_mock
            r = httpx.get(kantos_mock.url + "/api/crm/objects", headers={"X-Api-Key": kantos_mock.api_key})
            assert r.status_code == 200

        def test_seed_and_journal(kantos_mock):
            [ada] = kantos_mock.seed("obj_contacts", [{"name": "Ada Lovelace"}])
            got = kantos_mock.client.get(f"/api/crm/record/{ada['id']}")
            assert got.json()["field_values"]["name"] == "Ada Lovelace"
            [entry] = kantos_mock.assert_requested("GET", "/api/crm/record/*", times=1)
            assert entry["status"] == 200 and entry["headers"]["x-api-key"] == "kantos…"
            with pytest.raises(AssertionError, match="the journal"):
                kantos_mock.assert_requested("DELETE")
            kantos_mock.clear_requests()
            assert kantos_mock.requests() == []

        def test_faults(kantos_mock):
            kantos_mock.fault("GET", "/api/crm/objects", status=503, times=1)
            assert kantos_mock.client.get("/api/crm/objects").status_code == 503
            assert kantos_mock.client.get("/api/crm/objects").status_code == 200
            kantos_mock.fault("POST", "/api/crm/record", drop=True)
            with pytest.raises(httpx.TransportError):
                kantos_mock.client.post("/api/crm/record", json={"object_id": "obj_contacts"})

        def test_faults_do_not_outlive_their_test(kantos_mock):
            assert kantos_mock.client.get("/api/crm/objects").status_code == 200

        def test_clock(kantos_mock):
            kantos_mock.clock.freeze("2024-01-15T10:30:00Z")
            kantos_mock.clock.advance(60)
            [rec] = kantos_mock.seed("obj_contacts", [{"name": "On time"}])
            assert rec["created_at"] == "2024-01-15T10:31:00Z"

        def test_the_clock_is_back_on_the_wall(kantos_mock):
            assert not kantos_mock.clock.frozen
            assert kantos_mock.clock.now().year >= 2025

        def test_state_and_keys(kantos_mock):
            state = kantos_mock.state()
            assert len(state["records"]) == 400
            kantos_mock.set_key("kantos_free_local_key", per_minute=1)
            free = {"X-Api-Key": "kantos_free_local_key"}
            codes = [kantos_mock.client.get("/api/crm/objects", headers=free).status_code for _ in range(2)]
            assert codes == [200, 429]
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=7)


TINY_FIXTURES = {
    "objects.yaml": "objects:\n  - name: Notes\n    fields:\n      - {name: Title, type: text}\n",
    "users.yaml": "users:\n  - {id: user_me, name: Me, email: me@example.com, admin: true}\n",
    "api_keys.yaml": "keys:\n  - {key: tiny_key, type: server, user: user_me, plan: enterprise}\n",
    "records/notes.yaml": (
        "records:\n"
        "  - {id: rec_n1, created_at: '2024-01-01T00:00:00Z', created_by: user_me,\n"
        "     field_values: {title: One}}\n"
    ),
}

USES_TINY_FIXTURES = """
def test_serves_the_chosen_fixture_set(kantos_mock):
    assert kantos_mock.api_key == "tiny_key"
    objects = kantos_mock.client.get("/api/crm/objects").json()["data"]
    assert [o["id"] for o in objects] == ["obj_notes"]
    [note] = kantos_mock.seed("obj_notes", [{"title": "Two"}])
    assert note["created_by"] == "user_me"
"""


@pytest.mark.parametrize("how", ["option", "ini", "fixture-override"])
def test_the_fixture_set_is_chosen_by_option_ini_or_fixture(pytester: pytest.Pytester, how: str) -> None:
    for name, text in TINY_FIXTURES.items():
        path = pytester.path / "tiny" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    pytester.makepyfile(USES_TINY_FIXTURES)
    args: list[str] = []
    if how == "option":
        args = ["--kantos-fixtures", "tiny"]
    elif how == "ini":
        pytester.makeini("[pytest]\nkantos_fixtures = tiny\n")
    else:
        pytester.makeconftest(
            """
            from pathlib import Path
            import pytest

            @pytest.fixture(scope="session")
            def kantos_fixtures():
                return Path(__file__).parent / "tiny"
            """
        )
    result = run(pytester, *args)
    result.assert_outcomes(passed=1)


@pytest.fixture
def real_server(fixture_set: FixtureSet) -> Iterator[MockServer]:
    """Stands in for a real Kantos server: the tests below reach it only through its API."""
    with MockServer(fixture_set) as server:
        yield server


def test_with_a_base_url_the_same_tests_run_against_a_real_server(
    pytester: pytest.Pytester, real_server: MockServer
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_plain_api_use(kantos_mock):
            assert not kantos_mock.is_mock
            assert kantos_mock.client.get("/api/crm/objects").status_code == 200

        def test_seeding_goes_through_the_api(kantos_mock):
            [rec] = kantos_mock.seed("obj_contacts", [{"name": "Via HTTP"}])
            assert kantos_mock.client.get(f"/api/crm/record/{rec['id']}").status_code == 200

        def test_needs_faults(kantos_mock):
            kantos_mock.fault(status=503)

        @pytest.mark.kantos_mock_only
        def test_marked_mock_only(kantos_mock):
            raise AssertionError("never runs against a real server")
        """
    )
    result = run(
        pytester, "-rs", "--kantos-base-url", real_server.url, "--kantos-api-key", "kantos_server_local_key"
    )
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*needs the Kantos mock's control API*real server*"])
    # The seed went over HTTP, with the key given, so the "real" server saw it.
    [post] = real_server.requests(method="POST")
    assert post["headers"]["x-api-key"] == "kantos…"
    assert real_server.requests(method="GET", path="/api/crm/objects")


def test_a_base_url_without_a_key_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KANTOS_API_KEY", raising=False)
    pytester.makepyfile("def test_x(kantos_mock): pass\n")
    result = run(pytester, "--kantos-base-url", "http://127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kantos-base-url needs an API key*"])


def test_parallel_workers_never_see_each_others_writes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CREATE_SAME_CONTACT.format(count=30))
    pytester.makeconftest(
        """
        import os
        import pytest

        @pytest.fixture(autouse=True)
        def note_which_server(kantos_mock, request):
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            (request.config.rootpath / f"server-{worker}.txt").write_text(kantos_mock.url)
        """
    )
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=30)
    notes = {p.name: p.read_text() for p in Path(pytester.path).glob("server-*.txt")}
    assert sorted(notes) == ["server-gw0.txt", "server-gw1.txt"]
    assert len(set(notes.values())) == 2  # one mock per worker
