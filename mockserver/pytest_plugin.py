"""The pytest plugin (entry point `pytest11`): one mock per session, a clean handle for each test."""

# Each pytest process (each xdist worker) starts its own MockServer on a free loopback port, so
# parallel workers never share state; every test starts from the fixture state, which a reset
# restores in time proportional to what the previous test changed. With --kantos-base-url the
# same tests run against a real server, and the ones that need the control API skip. Heavy
# imports wait for the first fixture, so having the package installed costs other test runs
# nothing.

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from .domain.backend import FixtureSet
    from .server import ClockControl, MockControl, MockServer

MARKER = "kantos_mock_only"
SKIP_REASON = "needs the Kantos mock's control API; --kantos-base-url points the tests at a real server"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kantos", "Kantos mock (kantos-mockserver)")
    group.addoption(
        "--kantos-fixtures",
        metavar="DIR",
        default=None,
        help="fixture folder the kantos_mock fixture serves (default: the kantos_fixtures ini "
        "value, else the bundled set)",
    )
    group.addoption("--kantos-seed", metavar="N", type=int, default=None, help="seed for the mock's ids")
    group.addoption(
        "--kantos-base-url",
        metavar="URL",
        default=None,
        help="run the tests against a real Kantos server at URL instead of the mock; tests that "
        "need the control API skip",
    )
    group.addoption(
        "--kantos-api-key",
        metavar="KEY",
        default=None,
        help="API key for --kantos-base-url (default: $KANTOS_API_KEY)",
    )
    parser.addini(
        "kantos_fixtures",
        "fixture folder for the Kantos mock, relative to the ini file",
        type="paths",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: the test needs the Kantos mock's control API (skipped with --kantos-base-url)"
    )
    if config.getoption("kantos_base_url") and not _real_server_key(config):
        raise pytest.UsageError(
            "--kantos-base-url needs an API key: pass --kantos-api-key or set KANTOS_API_KEY"
        )


def _real_server_key(config: pytest.Config) -> str | None:
    key: str | None = config.getoption("kantos_api_key") or os.environ.get("KANTOS_API_KEY")
    return key


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(MARKER) is not None and item.config.getoption("kantos_base_url"):
        pytest.skip(SKIP_REASON)


def pytest_report_header(config: pytest.Config) -> str | None:
    url = config.getoption("kantos_base_url")
    if url:
        return f"kantos: real server at {url} (control-API tests skip)"
    fixtures = config.getoption("kantos_fixtures")
    return f"kantos: mock on fixtures {fixtures}" if fixtures else None


# --- fixtures users may override (session scope) ---------------------------------------------


@pytest.fixture(scope="session")
def kantos_fixtures(pytestconfig: pytest.Config) -> str | Path | FixtureSet | None:
    """The fixture set the mock serves: a folder, a loaded `FixtureSet`, or None for the bundled
    one. Override it in a conftest.py (session scope) to serve your own."""
    option = pytestconfig.getoption("kantos_fixtures")
    if option:
        return Path(option)
    ini: list[Path] = pytestconfig.getini("kantos_fixtures")
    return ini[0] if ini else None


@pytest.fixture(scope="session")
def kantos_seed(pytestconfig: pytest.Config) -> int | None:
    """Seed for the mock's ids (same seed, same ids in every run); None for random ids."""
    seed: int | None = pytestconfig.getoption("kantos_seed")
    return seed


@pytest.fixture(scope="session")
def kantos_base_url(pytestconfig: pytest.Config) -> str | None:
    """A real server's base URL (`--kantos-base-url`), or None to run against the mock."""
    url: str | None = pytestconfig.getoption("kantos_base_url")
    return url.rstrip("/") if url else None


@pytest.fixture(scope="session")
def kantos_server(
    kantos_fixtures: str | Path | FixtureSet | None, kantos_seed: int | None, kantos_base_url: str | None
) -> Iterator[MockServer | None]:
    """The session's mock (one per xdist worker), or None when the tests target a real server."""
    if kantos_base_url:
        yield None
        return
    from .server import MockServer

    with MockServer(kantos_fixtures, seed=kantos_seed) as server:
        yield server


@pytest.fixture(scope="session")
def kantos_api_key(pytestconfig: pytest.Config, kantos_server: MockServer | None) -> str:
    """The API key tests use: `--kantos-api-key`; else the mock's admin key, or for a real server
    $KANTOS_API_KEY."""
    option: str | None = pytestconfig.getoption("kantos_api_key")
    if option:
        return option
    if kantos_server is not None:
        return kantos_server.api_key
    key = _real_server_key(pytestconfig)
    assert key is not None  # pytest_configure refuses --kantos-base-url without one
    return key


@pytest.fixture(scope="session")
def _kantos_transport() -> Iterator[httpx.HTTPTransport]:
    """One connection pool for the session: a test's client costs microseconds, not an SSL context."""
    import httpx

    transport = httpx.HTTPTransport()
    yield transport
    transport.close()


@pytest.fixture
def kantos_mock(
    kantos_server: MockServer | None,
    kantos_base_url: str | None,
    kantos_api_key: str,
    _kantos_transport: httpx.HTTPTransport,
) -> Iterator[KantosMock]:
    """The mock for one test, in the fixture state: `.url`, `.api_key`, `.client`, and helpers
    to seed records, read the journal, inject faults and move the clock."""
    url = kantos_base_url or (kantos_server.url if kantos_server is not None else "")
    handle = KantosMock(url, kantos_api_key, kantos_server, _kantos_transport)
    try:
        yield handle
    finally:
        handle.client.close()


# --- the per-test handle ----------------------------------------------------------------------


class KantosMock:
    """What a test gets from `kantos_mock`. Construction resets the mock (when there is one).

    ```python
    def test_creates_a_contact(kantos_mock):
        answer = kantos_mock.client.post(
            "/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": "Jo"}}
        )
        assert answer.status_code == 201
        kantos_mock.assert_requested("POST", "/api/crm/record", times=1)
    ```

    The methods that need the control API (journal, faults, clock, state, keys) skip the test
    when `--kantos-base-url` points the tests at a real server; `seed` and `client` work on both.

    Attributes:
        url: the base URL the tests talk to (the mock's, or `--kantos-base-url`).
        api_key: the key `client` sends (see the `kantos_api_key` fixture).
        client: an `httpx.Client` with `base_url` and the `X-Api-Key` header set.
        server: the session's `MockServer`; None against a real server.
    """

    def __init__(
        self, url: str, api_key: str, server: MockServer | None, transport: httpx.BaseTransport
    ) -> None:
        import httpx

        self.url = url
        self.api_key = api_key
        #: The session's `MockServer`; None against a real server.
        self.server = server
        if server is not None:
            server.reset()
        #: An httpx client with `base_url` and the `X-Api-Key` header set.
        self.client = httpx.Client(
            base_url=url, headers={"X-Api-Key": api_key}, transport=_shared(transport), timeout=30
        )

    @property
    def is_mock(self) -> bool:
        """False when `--kantos-base-url` points the tests at a real server."""
        return self.server is not None

    def _control(self) -> MockControl:
        if self.server is None:
            pytest.skip(SKIP_REASON)
        return self.server

    # --- works against a real server too ---------------------------------------------------

    def seed(self, object_id: str, field_values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create records of `object_id`, one per `field_values` dict; returns them as created.
        On the mock this skips HTTP (and the journal); on a real server it POSTs each one."""
        if self.server is not None:
            return self.server.seed(object_id, field_values, api_key=self.api_key)
        made = []
        for values in field_values:
            r = self.client.post("/api/crm/record", json={"object_id": object_id, "field_values": values})
            if r.status_code != 201:
                raise AssertionError(f"seeding {object_id} failed: {r.status_code} {r.text}")
            made.append(r.json())
        return made

    # --- the mock only (skip the test against a real server) -------------------------------

    def reset(self) -> None:
        """Back to the fixture state (each test starts there anyway)."""
        self._control().reset()

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The requests the mock got in this test, oldest first; `path` takes `*` wildcards."""
        return self._control().requests(method, path)

    def assert_requested(
        self, method: str | None = None, path: str | None = None, times: int | None = None
    ) -> list[dict[str, Any]]:
        """The matching requests; fails, listing the journal, when none (or not `times`) match."""
        return self._control().assert_requested(method, path, times)

    def clear_requests(self) -> None:
        """Empty the journal."""
        self._control().clear_requests()

    def fault(self, method: str | None = None, path: str | None = None, **rule: Any) -> dict[str, Any]:
        """Add a fault rule: `status=` (with `body=`, `text=`, `headers=`), `latency_ms=`,
        `drop=True`; `times=`, `probability=`. See `MockServer.fault`."""
        return self._control().fault(method, path, **rule)

    def clear_faults(self) -> None:
        """Remove every fault rule (each test starts without any anyway)."""
        self._control().clear_faults()

    @property
    def clock(self) -> ClockControl:
        """`freeze()`, `unfreeze()`, `set(when)`, `advance(seconds)`, `now()`."""
        return self._control().clock

    def state(self) -> dict[str, Any]:
        """The mock's whole state, as `GET /_mock/state`."""
        return self._control().state()

    def load_state(self, state: dict[str, Any]) -> dict[str, int]:
        """Replace the mock's state (from `state()` or a state file); undone by the next reset."""
        return self._control().load_state(state)

    def set_key(self, key: str, **limits: Any) -> dict[str, Any]:
        """Change a key's `plan=`, `per_minute=` or `per_day=` for this test."""
        return self._control().set_key(key, **limits)


@functools.cache
def _shared_class() -> type[httpx.BaseTransport]:
    import httpx

    class Shared(httpx.BaseTransport):
        """The session's transport behind each test's client; closing the client leaves it open."""

        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return self.inner.handle_request(request)

        def close(self) -> None:
            pass

    return Shared


def _shared(inner: httpx.BaseTransport) -> httpx.BaseTransport:
    return _shared_class()(inner)  # type: ignore[call-arg]
