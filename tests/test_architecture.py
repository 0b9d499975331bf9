"""The layer rules of ARCHITECTURE.md, checked on every module's imports (parsed, not imported)."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import mockserver

PACKAGE_DIR = Path(mockserver.__file__).parent
STDLIB = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "mockserver.domain.query"
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]

    @property
    def layer(self) -> str:
        parts = self.name.split(".")
        if len(parts) > 1 and parts[1] in ("domain", "openapi", "http"):
            return parts[1]
        return "entry"


def _modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(Module(".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return found


MODULES = _modules()
MODULE_NAMES = {m.name for m in MODULES}


def imports_of(module: Module) -> set[str]:
    """Every module `module` imports, anywhere in its body (functions and TYPE_CHECKING too)."""
    out: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.add(target)
            # `from . import query` imports the submodule itself.
            out.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULE_NAMES)
    out.discard("__future__")
    return out


def top(name: str) -> str:
    return name.split(".")[0]


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def by_layer(layer: str) -> list[Module]:
    return [m for m in MODULES if m.layer == layer]


def module_params(layer: str | None = None) -> list[object]:
    return [pytest.param(m, id=m.name) for m in MODULES if layer is None or m.layer == layer]


# --- sanity: the scan sees what it should ------------------------------------------------------


def test_every_layer_has_modules() -> None:
    for layer in ("domain", "openapi", "http", "entry"):
        assert by_layer(layer), layer


def test_import_scan_resolves_relative_and_absolute_imports() -> None:
    api = next(m for m in MODULES if m.name == "mockserver.http.api")
    found = imports_of(api)
    assert any(within(i, "starlette") for i in found)
    assert any(within(i, "mockserver.domain") for i in found)
    backend = next(m for m in MODULES if m.name == "mockserver.domain.backend")
    assert "mockserver.domain.query" in imports_of(backend)


# --- forbidden imports ------------------------------------------------------------------------

FORBIDDEN = {
    "domain": ("starlette", "uvicorn", "httpx", "pytest", "jsonschema", "referencing",
               "mockserver.http", "mockserver.openapi"),
    "openapi": ("starlette", "uvicorn", "httpx", "pytest", "mockserver.http"),
    "http": ("uvicorn", "pytest"),
}  # fmt: skip


@pytest.mark.parametrize("module", module_params("domain") + module_params("openapi") + module_params("http"))
def test_module_imports_nothing_its_layer_forbids(module: Module) -> None:
    bad = sorted(i for i in imports_of(module) for banned in FORBIDDEN[module.layer] if within(i, banned))
    assert not bad, f"{module.name} ({module.layer}) imports {bad}"


# --- the "may import" table of ARCHITECTURE.md ------------------------------------------------


def allowed(module: Module, name: str) -> bool:
    if top(name) in STDLIB:
        return True
    layer = module.layer
    if layer == "domain":
        if within(name, "mockserver.domain") or top(name) == "sortedcontainers":
            return True
        return (top(name) in ("yaml", "orjson") and module.name == "mockserver.domain.fixtures") or (
            top(name) == "orjson" and module.name == "mockserver.domain.records"
        )
    if layer == "openapi":
        if within(name, "mockserver.openapi") or within(name, "mockserver.domain.errors"):
            return True
        return top(name) in ("jsonschema", "jsonschema_rs", "referencing", "yaml", "orjson")
    if layer == "http":
        if any(within(name, p) for p in ("mockserver.domain", "mockserver.openapi", "mockserver.http")):
            return True
        return top(name) in ("starlette", "orjson") or (
            top(name) == "httpx" and module.name == "mockserver.http.webhooks"
        )
    return True  # entry points: everything above; pytest is checked separately


@pytest.mark.parametrize("module", module_params("domain") + module_params("openapi") + module_params("http"))
def test_module_imports_only_what_its_layer_may(module: Module) -> None:
    bad = sorted(i for i in imports_of(module) if not allowed(module, i))
    assert not bad, (
        f"{module.name} ({module.layer} layer) imports {bad}, which ARCHITECTURE.md does not allow"
    )


@pytest.mark.parametrize("module", module_params())
def test_only_the_pytest_plugin_imports_pytest(module: Module) -> None:
    if module.name == "mockserver.pytest_plugin":
        return
    assert not any(top(i) in ("pytest", "_pytest") for i in imports_of(module)), module.name


@pytest.mark.parametrize("module", module_params())
def test_only_entry_points_import_uvicorn(module: Module) -> None:
    if module.layer == "entry":
        return
    assert not any(top(i) == "uvicorn" for i in imports_of(module)), module.name


@pytest.mark.parametrize("module", module_params())
def test_only_the_anonymiser_imports_faker(module: Module) -> None:
    # Faker is an optional extra (`pull`): nothing else may need it to import.
    if module.name == "mockserver.anonymise":
        return
    assert not any(top(i) == "faker" for i in imports_of(module)), module.name


def test_no_lower_layer_imports_an_entry_point() -> None:
    entry = {m.name for m in by_layer("entry")} - {"mockserver"}
    for module in MODULES:
        if module.layer != "entry":
            bad = sorted(i for i in imports_of(module) if any(within(i, e) for e in entry))
            assert not bad, f"{module.name} imports entry points {bad}"


# --- docstrings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("module", module_params())
def test_every_module_has_a_one_line_docstring_summary(module: Module) -> None:
    doc = ast.get_docstring(module.tree)
    assert doc, f"{module.path} has no module docstring"
    lines = doc.splitlines()
    assert lines[0].strip(), f"{module.path}: the docstring must start with its one-line summary"
    assert len(lines) == 1 or not lines[1].strip(), f"{module.path}: the summary must be a single line"
