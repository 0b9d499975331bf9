"""Serving the app over a real socket (CLI, `MockServer` thread) and driving it from Python."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette

from .domain.auth import authenticate
from .domain.backend import Backend, FixtureSet
from .domain.clock import from_us
from .domain.tenants import DEFAULT
from .http.control import invoke
from .http.faults import ConnectionDrops
from .http.gate import TenantRegistry
from .wire import FastApiProtocol, OneWriteProtocol

DEFAULT_API_KEY = "kantos_admin_local_key"
T = TypeVar("T")
_UNSET: Any = object()


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so `port=0` gets a free port with no race."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, Nagle's algorithm and delayed ACKs add
    # ~40 ms to each keep-alive request whose response goes out in two writes.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def uvicorn_config(app: Starlette, **overrides: Any) -> uvicorn.Config:
    api = getattr(app, "fast_api", None)
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "loop": "auto",
        # uvicorn's httptools protocol, one write per response; `/api` answered without ASGI
        # when nothing else needs to see it (`wire.FastApiProtocol`).
        "http": OneWriteProtocol if api is None else partial(FastApiProtocol, api=api),
        "interface": "asgi3",
        "timeout_graceful_shutdown": 2,
    }
    options.update(overrides)
    # ConnectionDrops lets a fault rule hang up on the client, which ASGI alone cannot do.
    return uvicorn.Config(ConnectionDrops(app), **options)


def serve_forever(app: Starlette, sock: socket.socket, on_ready: Callable[[], None], **config: Any) -> None:
    """Run in the foreground until Ctrl-C or SIGTERM; both end in KeyboardInterrupt after a clean
    shutdown (uvicorn shuts down, then re-raises the signal to the handler it found)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    uv_config = uvicorn_config(app, **config)
    server = uvicorn.Server(uv_config)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        if server.started:
            on_ready()
        await task

    # uvicorn applies its `loop` setting (uvloop when installed) only in Server.run().
    with asyncio.Runner(loop_factory=uv_config.get_loop_factory()) as runner:
        runner.run(main())


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _Server(uvicorn.Server):
    """uvicorn's server, remembering its event loop so other threads can hand it work."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)


def _iso(when: datetime | str) -> str:
    if isinstance(when, str):
        return when
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # naive means UTC, as everywhere in the mock
    return when.isoformat()


class ClockControl:
    """One tenant's clock: what `POST /_mock/clock` does, from Python. No test needs to sleep."""

    def __init__(self, control: MockControl) -> None:
        self._control = control

    def _post(self, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._control._invoke("setClock", body=body)
        return result

    def now(self) -> datetime:
        """The mock's time (UTC, aware)."""
        return self._control._run(lambda: from_us(self._control.backend.clock.now_us()))

    @property
    def frozen(self) -> bool:
        """True while time stands still (after `freeze()`, until `unfreeze()` or a reset)."""
        return self._control.backend.clock.frozen

    def freeze(self, at: datetime | str | None = None) -> datetime:
        """Stop time (at `at`, or where it stands). Returns the frozen time."""
        body: dict[str, Any] = {"freeze": True}
        if at is not None:
            body["set"] = _iso(at)
        self._post(**body)
        return self.now()

    def unfreeze(self) -> None:
        """Let time run on from where it stands."""
        self._post(freeze=False)

    def set(self, when: datetime | str) -> None:
        """Jump to `when` (a datetime, naive meaning UTC, or an ISO 8601 string)."""
        self._post(set=_iso(when))

    def advance(self, by: float | timedelta) -> datetime:
        """Move time forward (or back, if negative) by seconds or a timedelta. Returns the new time."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else by
        self._post(advance=seconds)
        return self.now()


class MockControl:
    """Drives one tenant of a running mock in process: the control API's operations, with its checks.

    Get one from `MockServer.tenant(name)`; `MockServer` itself is the one of the default tenant.
    """

    def __init__(self, registry: TenantRegistry, tenant: str = DEFAULT) -> None:
        self.registry = registry
        self.tenant_name = tenant

    # Work is handed to the server's event loop when it runs, so it never races a request.
    def _run(self, fn: Callable[[], T]) -> T:
        return fn()

    def _invoke(self, operation_id: str, **kwargs: Any) -> Any:
        return self._run(lambda: invoke(self.registry, self.tenant_name, operation_id, **kwargs))

    @property
    def backend(self) -> Backend:
        """The tenant's `domain.Backend` (for direct inspection; prefer the methods here)."""
        return self.registry.get(self.tenant_name).backend

    @property
    def clock(self) -> ClockControl:
        """The tenant's clock: freeze, set or advance the mock's time."""
        return ClockControl(self)

    def reset(self) -> int:
        """Back to the fixture state: records, schema, keys, clock, journal, faults. Returns the
        number of changes undone."""
        result: dict[str, Any] = self._invoke("resetMock")
        return int(result["changes_undone"])

    # --- journal --------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The journal, oldest first; `path` may use `*` wildcards (`/api/crm/record/*`)."""
        result: dict[str, Any] = self._invoke("listRequests", query={"method": method, "path": path})
        return list(result["data"])

    def clear_requests(self) -> None:
        """Empty the journal."""
        self._invoke("clearRequests")

    def assert_requested(
        self, method: str | None = None, path: str | None = None, times: int | None = None
    ) -> list[dict[str, Any]]:
        """The matching journal entries; AssertionError (listing the journal) when there is none,
        or not exactly `times`."""
        found = self.requests(method, path)
        if (times is None and not found) or (times is not None and len(found) != times):
            want = f"{times} request(s)" if times is not None else "a request"
            seen = (
                "\n".join(f"  {e['method']} {e['path']} -> {e['status']}" for e in self.requests())
                or "  (none)"
            )
            raise AssertionError(
                f"expected {want} matching {method or '*'} {path or '*'}, found {len(found)}; "
                f"the journal:\n{seen}"
            )
        return found

    # --- faults ---------------------------------------------------------------------------

    def fault(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        status: int | None = None,
        body: Any = _UNSET,
        text: str | None = None,
        headers: dict[str, str] | None = None,
        latency_ms: float | None = None,
        drop: bool = False,
        times: int | None = None,
        probability: float | None = None,
    ) -> dict[str, Any]:
        """Add a fault rule (see `POST /_mock/faults`); returns it with its id."""
        rule: dict[str, Any] = {}
        for name, value in (
            ("method", method),
            ("path", path),
            ("status", status),
            ("text", text),
            ("headers", headers),
            ("latency_ms", latency_ms),
            ("times", times),
            ("probability", probability),
        ):
            if value is not None:
                rule[name] = value
        if body is not _UNSET:
            rule["body"] = body
        if drop:
            rule["drop"] = True
        result: dict[str, Any] = self._invoke("addFault", body=rule)
        return result

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules, in the order they are tried, each with its id."""
        result: dict[str, Any] = self._invoke("listFaults")
        return list(result["data"])

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._invoke("clearFaults")

    # --- records, state, keys ---------------------------------------------------------------

    def seed(
        self, object_id: str, field_values: Iterable[dict[str, Any]], api_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Create records as `POST /api/crm/record` would (same checks, created by the user of
        `api_key`, default the admin key), without HTTP. Returns them as the API would. Stops at
        the first invalid one, raising its error; the ones before it stay."""

        def create() -> list[dict[str, Any]]:
            tenant = self.registry.get(self.tenant_name)
            keys = tenant.backend.keys
            user = authenticate(keys, api_key or _pick_key(keys)).user.id
            made = [
                tenant.backend.create_record(object_id, dict(values), user).to_json()
                for values in field_values
            ]
            self.registry.changed(tenant)
            return made

        return self._run(create)

    def state(self) -> dict[str, Any]:
        """The whole state (objects, fields, records, clock), as `GET /_mock/state`."""
        result: dict[str, Any] = self._invoke("exportState")
        return result

    def load_state(self, state: dict[str, Any]) -> dict[str, int]:
        """Replace the state, as `PUT /_mock/state`; a bad state raises and changes nothing."""
        result: dict[str, int] = self._invoke("importState", body=state)
        return result

    def keys(self) -> list[dict[str, Any]]:
        """The API keys, with type, user, plan and limits, as `GET /_mock/keys`."""
        result: dict[str, Any] = self._invoke("listKeys")
        return list(result["data"])

    def set_key(
        self, key: str, *, plan: str | None = None, per_minute: int | None = None, per_day: int | None = None
    ) -> dict[str, Any]:
        """Change a key's plan or limits until the next reset."""
        body = {
            k: v
            for k, v in (("plan", plan), ("per_minute", per_minute), ("per_day", per_day))
            if v is not None
        }
        result: dict[str, Any] = self._invoke("patchKey", path={"key": key}, body=body)
        return result


def _pick_key(keys: dict[str, Any]) -> str:
    if DEFAULT_API_KEY in keys:
        return DEFAULT_API_KEY
    servers = [k for k, v in keys.items() if v.type == "server"]
    return (servers or list(keys) or [DEFAULT_API_KEY])[0]


class _TenantControl(MockControl):
    def __init__(self, server: MockServer, tenant: str) -> None:
        super().__init__(server.registry, tenant)
        self._server = server

    def _run(self, fn: Callable[[], T]) -> T:
        return self._server._run(fn)


class MockServer(MockControl):
    """The mock on a real socket, in a background thread.

    ```python
    with MockServer() as mock:
        httpx.get(mock.url + "/api/crm/objects", headers={"X-Api-Key": mock.api_key})
        mock.fault("GET", "/api/crm/objects", status=503, times=1)
        mock.clock.advance(60)
        assert mock.requests(method="GET")
    ```
    The methods it inherits from `MockControl` act on the default tenant; `tenant(name)` gives
    the same for the tenant an `X-Mock-Tenant: name` header selects. Start-up failures (a bad
    fixture set, a port in use, a server that does not come up in `start_timeout` seconds)
    raise; they never hang.

    Args:
        fixtures: a fixture folder, a loaded `FixtureSet`, or None for the bundled set.
        host: the interface to bind.
        port: the port to bind; 0 (the default) picks a free one, read it from `url`.
        seed: seed for record ids, so every run creates the same ids; None for random ids.
        api_key: the key `client()` sends; default the documented admin key when the fixture
            set has it, else its first server key.
        app: serve this app (from `create_app`) instead of making one; `fixtures`, `seed`,
            `control` and `state_file` are then ignored.
        control: serve the control API under `/_mock` (the methods here work either way).
        state_file: load the state from this file when it exists; write it there after each change.
        start_timeout: seconds `start()` waits for the server to accept connections.
        uvicorn_options: more `uvicorn.Config` options.

    Attributes:
        url: `http://127.0.0.1:<port>` once started (no trailing slash); "" before.
        api_key: the key `client()` sends.
        app: the ASGI app served (`create_app`'s).
    """

    def __init__(
        self,
        fixtures: str | Path | FixtureSet | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        api_key: str | None = None,
        app: Starlette | None = None,
        control: bool = True,
        state_file: str | Path | None = None,
        start_timeout: float = 10.0,
        uvicorn_options: dict[str, Any] | None = None,
    ) -> None:
        from .http.app import create_app

        self.app = (
            app
            if app is not None
            else create_app(fixtures, seed=seed, control=control, state_file=state_file)
        )
        super().__init__(self.app.state.registry)
        self.host, self.port = host, port
        keys = self.registry.default.backend.keys
        #: The key `client()` and the examples use: `api_key`, else the documented admin key when the
        #: fixture set has it, else its first server key.
        self.api_key = api_key or _pick_key(keys)
        self.start_timeout = start_timeout
        self.uvicorn_options = dict(uvicorn_options or {})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self.url = ""

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._thread is not None

    def start(self) -> MockServer:
        """Bind the socket and serve in a background thread; returns once connections are accepted.
        Does nothing when already started. `with MockServer() as mock:` starts and stops it.

        Raises:
            OSError: the port cannot be bound.
            RuntimeError: the server did not come up within `start_timeout` seconds.
        """
        if self._thread is not None:
            return self
        self._error = None
        self._sock = bind(self.host, self.port)
        self.url = base_url(self._sock)
        self._server = _Server(uvicorn_config(self.app, **self.uvicorn_options))
        server, sock = self._server, self._sock

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # surfaced by start(); a thread cannot raise
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"kantos-mock {self.url}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                alive = self._thread.is_alive()
                self.stop()
                reason = f"{self.start_timeout:g} s passed" if alive else f"{self._error!r}"
                raise RuntimeError(f"kantos-mock did not start on {self.url}: {reason}") from self._error
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (webhook deliveries stop too). `start()` may follow."""
        sender = self.app.state.registry.webhook_sender
        if sender is not None:
            sender.stop()
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=5)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def _run(self, fn: Callable[[], T]) -> T:
        server, thread = self._server, self._thread
        loop = server.loop if server is not None else None
        if loop is None or thread is None or threading.current_thread() is thread or not loop.is_running():
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return done.result(timeout=30)

    def reset(self) -> int:
        """Back to the fixture state, for every tenant. Returns the changes undone in the default one."""
        undone = self.backend.changes

        def reset_all() -> None:
            self.registry.reset_all()
            self.registry.changed(self.registry.default)

        self._run(reset_all)
        return int(undone)

    def tenant(self, name: str) -> MockControl:
        """Control of the tenant that an `X-Mock-Tenant: <name>` header selects (made on first use)."""
        self._run(lambda: self.registry.get(name))
        return _TenantControl(self, name)

    def client(self, tenant: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server, with the API key (and tenant) set."""
        headers = {"X-Api-Key": self.api_key, **kwargs.pop("headers", {})}
        if tenant:
            headers["X-Mock-Tenant"] = tenant
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
