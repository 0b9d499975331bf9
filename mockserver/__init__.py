"""kantos-mockserver: a faithful local fake of the Kantos CRM API, driven by its OpenAPI spec."""

from __future__ import annotations

from .domain.fixtures import FixtureError, load_fixtures
from .http.app import create_app
from .server import MockServer

__version__ = "0.2.0"
__all__ = ["FixtureError", "MockServer", "__version__", "create_app", "load_fixtures"]
