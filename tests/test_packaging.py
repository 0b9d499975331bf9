"""The wheel and the sdist build, pass `twine check --strict`, and ship what users need."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import mockserver

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mockserver"


@dataclass
class Dists:
    wheel: Path
    sdist: Path
    seconds: float


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    # --no-isolation: an isolated build would install the build backend (hatchling and its readme
    # hook) from a package index; the dev extras install them here instead, so this runs offline.
    # The sdist is built first and the wheel from it, so a file missing from the sdist fails too.
    build = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return Dists(wheel, sdist, time.monotonic() - started)


def wheel_names(dists: Dists) -> set[str]:
    with zipfile.ZipFile(dists.wheel) as wheel:
        return set(wheel.namelist())


def package_files(folder: Path) -> set[str]:
    """The files of a package folder as the wheel names them (caches left out)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def metadata(dists: Dists) -> email.message.EmailMessage:
    with zipfile.ZipFile(dists.wheel) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(wheel.read(name), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_both_pass_twine_check_strict(dists: Dists) -> None:
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.wheel), str(dists.sdist)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2, check.stdout
    print(f"wheel and sdist built in {dists.seconds:.1f} s")


def test_the_version_is_the_packages(dists: Dists) -> None:
    assert dists.wheel.name.startswith(f"kantos_mockserver-{mockserver.__version__}-")
    assert dists.sdist.name == f"kantos_mockserver-{mockserver.__version__}.tar.gz"
    assert metadata(dists)["Version"] == mockserver.__version__


def test_the_wheel_ships_the_dashboard_fixtures_specs_and_kit_config(dists: Dists) -> None:
    names = wheel_names(dists)
    dashboard, fixtures = package_files(PACKAGE / "dashboard"), package_files(PACKAGE / "fixtures")
    assert "mockserver/dashboard/index.html" in dashboard
    assert any(name.startswith("mockserver/fixtures/records/") for name in fixtures)
    specs = {"mockserver/openapi.yaml", "mockserver/control.yaml", "mockserver/conformance/schemathesis.toml"}
    assert not (dashboard | fixtures | specs) - names, sorted((dashboard | fixtures | specs) - names)


def test_the_wheel_carries_the_licence(dists: Dists) -> None:
    names = wheel_names(dists)
    assert any(re.fullmatch(r"kantos_mockserver-[^/]+\.dist-info/licenses/LICENSE", n) for n in names), names
    meta = metadata(dists)
    assert meta["License-Expression"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_the_sdist_has_licence_readme_and_changelog(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = set(sdist.getnames())
    top = f"kantos_mockserver-{mockserver.__version__}"
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
        assert f"{top}/{name}" in names, name


def test_the_description_is_the_readme_without_paths_an_index_cannot_follow(dists: Dists) -> None:
    description = metadata(dists).get_content()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert metadata(dists)["Description-Content-Type"] == "text/markdown"
    assert description.splitlines()[0] == readme.splitlines()[0]
    relative = re.findall(r"\]\((?![a-z]+:|#)([^)]*)\)", description)
    assert not relative, f"links and images an index cannot follow: {relative}"
    # Not vacuous: the README's own text stays, link text included.
    for text in re.findall(r"(?<!!)\[([^\]]+)\]\((?![a-z]+:|#)[^)]*\)", readme):
        assert text in description


def test_the_changelog_has_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    heading = rf"^## \[{re.escape(mockserver.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$"
    assert re.search(heading, changelog, re.MULTILINE), heading
