"""Shared fixtures: the app on the bundled fixtures, and an httpx client bound to it in process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from kantos_support import ADMIN_KEY, SyncASGITransport
from starlette.applications import Starlette

from mockserver import create_app
from mockserver.domain.backend import FixtureSet
from mockserver.domain.fixtures import load_fixtures
from mockserver.openapi import Spec


def pytest_configure(config: pytest.Config) -> None:
    # The response self-check is on in the whole suite: every app built here (in process, in a
    # MockServer thread, or in a `kantos-mock serve` subprocess) validates each /api response
    # against openapi.yaml and fails loudly on a mismatch.
    os.environ["KANTOS_MOCK_VALIDATE_RESPONSES"] = "1"


@pytest.fixture(scope="session")
def fixture_set() -> FixtureSet:
    """The bundled fixture set, loaded once (backends never mutate it)."""
    return load_fixtures()


@pytest.fixture(scope="session")
def spec() -> Spec:
    """openapi.yaml, parsed and compiled once (apps never change it)."""
    return Spec.load()


@pytest.fixture
def app(fixture_set: FixtureSet, spec: Spec) -> Starlette:
    """A fresh app per test, so no test sees another's writes."""
    return create_app(fixture_set, spec=spec, seed=1234, validate_responses=True)


@pytest.fixture
def client(app: Starlette) -> Iterator[httpx.Client]:
    """A synchronous in-process client for the app (no socket), with the admin key set."""
    with httpx.Client(
        transport=SyncASGITransport(app), base_url="http://kantos.test", headers={"X-Api-Key": ADMIN_KEY}
    ) as c:
        yield c
