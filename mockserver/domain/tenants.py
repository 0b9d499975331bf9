"""Isolated copies of the state, one per `X-Mock-Tenant` value, made on first use."""

from __future__ import annotations

import threading

from .backend import Backend, FixtureSet
from .clock import Clock
from .errors import BadRequest
from .ids import IdSource

DEFAULT = ""
MAX_TENANTS = 1_000
MAX_NAME = 200


class Tenants:
    def __init__(self, fixtures: FixtureSet, seed: int | None = None, clock: Clock | None = None) -> None:
        self.fixtures = fixtures
        self.seed = seed
        self._lock = threading.Lock()
        self._backends: dict[str, Backend] = {DEFAULT: Backend(fixtures, clock or Clock(), IdSource(seed))}

    @property
    def default(self) -> Backend:
        return self._backends[DEFAULT]

    def get(self, name: str | None) -> Backend:
        name = name or DEFAULT
        backend = self._backends.get(name)
        if backend is not None:
            return backend
        if len(name) > MAX_NAME:
            raise BadRequest(
                f"X-Mock-Tenant is at most {MAX_NAME} characters",
                {"param": "X-Mock-Tenant", "header": "X-Mock-Tenant", "reason": "too long"},
            )
        with self._lock:
            if name not in self._backends:
                if len(self._backends) >= MAX_TENANTS:
                    raise BadRequest(
                        f"At most {MAX_TENANTS} tenants; reset or reuse one",
                        {"param": "X-Mock-Tenant", "header": "X-Mock-Tenant", "reason": "too many tenants"},
                    )
                self._backends[name] = Backend(self.fixtures, Clock(), IdSource(self.seed))
            return self._backends[name]

    def names(self) -> list[str]:
        return sorted(self._backends)

    def reset(self, name: str | None) -> None:
        self.get(name).reset()
