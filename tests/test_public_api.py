"""`mockserver.__all__` is the public API, and `__version__` is the package's version."""

from __future__ import annotations

import importlib
import importlib.metadata
import tomllib
import types
from pathlib import Path

import pytest

import mockserver

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: What PRODUCT.md and README.md promise users of `import mockserver`.
PROMISED = {"create_app", "MockServer", "__version__"}


def test_all_holds_the_promised_entry_points() -> None:
    assert set(mockserver.__all__) >= PROMISED


def test_all_has_no_duplicates() -> None:
    assert len(mockserver.__all__) == len(set(mockserver.__all__))


@pytest.mark.parametrize("name", mockserver.__all__)
def test_every_name_in_all_is_importable(name: str) -> None:
    module = importlib.import_module("mockserver")
    assert hasattr(module, name), name
    namespace: dict[str, object] = {}
    exec(f"from mockserver import {name}", namespace)
    assert namespace[name] is getattr(mockserver, name)


@pytest.mark.parametrize("name", mockserver.__all__)
def test_no_private_name_is_exported(name: str) -> None:
    assert name == "__version__" or not name.startswith("_"), name


def test_every_public_attribute_is_in_all() -> None:
    public = {
        name
        for name, value in vars(mockserver).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public <= set(mockserver.__all__), sorted(public - set(mockserver.__all__))


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from mockserver import *", namespace)
    assert {k for k in namespace if k != "__builtins__"} == set(mockserver.__all__)


def test_exported_callables_and_classes_are_documented() -> None:
    for name in mockserver.__all__:
        value = getattr(mockserver, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"mockserver.{name} has no docstring"


def test_version_matches_pyproject() -> None:
    with PYPROJECT.open("rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    assert mockserver.__version__ == version


def test_version_matches_the_installed_distribution() -> None:
    assert importlib.metadata.version("kantos-mockserver") == mockserver.__version__


def test_create_app_and_mock_server_are_the_real_things() -> None:
    from mockserver.http.app import create_app
    from mockserver.server import MockServer

    assert mockserver.create_app is create_app
    assert mockserver.MockServer is MockServer
