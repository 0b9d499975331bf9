"""Serving the app over a real socket: in the foreground (CLI) or in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

DEFAULT_API_KEY = "kantos_admin_local_key"


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so `port=0` gets a free port with no race."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "loop": "auto",
        "http": "auto",
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve_forever(app: Starlette, sock: socket.socket, on_ready: Callable[[], None], **config: Any) -> None:
    """Run in the foreground until Ctrl-C or SIGTERM (uvicorn handles both and exits cleanly)."""
    server = uvicorn.Server(uvicorn_config(app, **config))

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        if server.started:
            on_ready()
        await task

    asyncio.run(main())


class MockServer:
    """The mock on a real socket in a background thread.

    ```python
    with MockServer() as mock:
        httpx.get(mock.url + "/api/crm/objects", headers={"X-Api-Key": mock.api_key})
    ```
    """

    def __init__(
        self,
        fixtures: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        api_key: str = DEFAULT_API_KEY,
        app: Starlette | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        from .http.app import create_app

        self.app = app if app is not None else create_app(fixtures, seed=seed)
        self.host, self.port = host, port
        self.api_key = api_key
        self.start_timeout = start_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self.url = ""

    def start(self) -> MockServer:
        if self._thread is not None:
            return self
        self._sock = bind(self.host, self.port)
        self.url = base_url(self._sock)
        self._server = uvicorn.Server(uvicorn_config(self.app))
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
                self.stop()
                raise RuntimeError(f"kantos-mock did not start on {self.url}: {self._error!r}")
            time.sleep(0.002)
        return self

    def reset(self) -> None:
        """Back to the fixture state, for every tenant."""
        tenants = self.app.state.tenants
        for name in tenants.names():
            tenants.reset(name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
