"""JSON Lines record files (`records/<slug>.jsonl`): read as YAML's are, streamed, errors by line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest
import yaml

import mockserver
from mockserver import FixtureError, load_fixtures
from mockserver.domain import fixtures as fixtures_module

BUNDLED = Path(mockserver.__file__).parent / "fixtures"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def bundled_records(slug: str) -> list[dict[str, Any]]:
    with (BUNDLED / "records" / f"{slug}.yaml").open(encoding="utf-8") as fh:
        records: list[dict[str, Any]] = yaml.load(fh, Loader=LOADER)["records"]
    return records


def as_jsonl(root: Path, slug: str, lines: list[bytes] | None = None) -> Path:
    """Replace records/<slug>.yaml with records/<slug>.jsonl (these lines, else its records)."""
    yaml_path = root / "records" / f"{slug}.yaml"
    if lines is None:
        lines = [orjson.dumps(r) for r in bundled_records(slug)]
    yaml_path.unlink()
    path = root / "records" / f"{slug}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "fx"
    shutil.copytree(BUNDLED, root)
    return root


def problems_of(root: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(FixtureError) as info:
        load_fixtures(root)
    return info.value.problems


def test_jsonl_records_load_as_their_yaml_does(copy: Path) -> None:
    bundled = load_fixtures(BUNDLED)
    for slug in ("contacts", "companies", "deals"):
        as_jsonl(copy, slug)
    loaded = load_fixtures(copy)
    assert [r.json for r in loaded.records] == [r.json for r in bundled.records]


def test_blank_lines_are_skipped_and_yaml_and_jsonl_files_mix(copy: Path) -> None:
    lines = [orjson.dumps(r) for r in bundled_records("contacts")]
    as_jsonl(copy, "contacts", [lines[0], b"", b"   ", *lines[1:]])
    loaded = load_fixtures(copy)
    assert sum(r.object_id == "obj_contacts" for r in loaded.records) == len(lines)
    assert sum(r.object_id == "obj_deals" for r in loaded.records) == len(bundled_records("deals"))


def test_problems_name_the_file_and_the_line(copy: Path) -> None:
    records = bundled_records("contacts")
    bad_email = {**records[2], "field_values": {**records[2]["field_values"], "email": "not an email"}}
    lines = [
        orjson.dumps(records[0]),
        b'{"id": "rec_x", "created_at": ',  # line 2: cut short
        b"[1, 2]",  # line 3: not an object
        orjson.dumps(bad_email),  # line 4
        orjson.dumps(records[0]),  # line 5: the id of line 1 again
        orjson.dumps({**records[3], "created_by": "user_nobody"}),  # line 6
    ]
    as_jsonl(copy, "contacts", lines)
    file = "records/contacts.jsonl"
    # (deals.yaml's references to the contacts left out are problems too, of that file)
    found = {(f, path): message for f, path, message in problems_of(copy) if f == file}
    assert "not JSON" in found[file, "line 2"]
    assert "expected a JSON object" in found[file, "line 3"] and "list" in found[file, "line 3"]
    assert "email" in found[file, "line 4.field_values.email"]
    assert "duplicate record id" in found[file, "line 5.id"]
    assert "user_nobody" in found[file, "line 6.created_by"]
    assert len(found) == 5


def test_a_reference_to_a_record_of_a_later_jsonl_file_resolves(copy: Path) -> None:
    # deals reference companies and contacts: as JSON Lines too, every id is known before any check.
    for slug in ("deals", "contacts", "companies"):
        as_jsonl(copy, slug)
    assert sum(r.object_id == "obj_deals" for r in load_fixtures(copy).records) == len(
        bundled_records("deals")
    )


def test_a_jsonl_file_of_an_unknown_object_is_named(copy: Path) -> None:
    (copy / "records" / "widgets.jsonl").write_bytes(b'{"id": "rec_w"}\n')
    assert ("records/widgets.jsonl", "", "no object with slug 'widgets' in objects.yaml") in problems_of(copy)


def test_progress_is_reported_while_large_files_load(copy: Path) -> None:
    as_jsonl(copy, "contacts")
    messages: list[str] = []
    with patch.object(fixtures_module, "PROGRESS_EVERY", 50):
        loaded = load_fixtures(copy, progress=messages.append)
    contacts = len(bundled_records("contacts"))
    read = [m for m in messages if m.startswith("records/contacts.jsonl: ")]
    assert read[0] == "records/contacts.jsonl: 50 records read"
    assert read[-1] == f"records/contacts.jsonl: {contacts:,} records read"
    checked = [m for m in messages if "records checked" in m]
    assert checked and checked[-1].endswith(f"of {len(loaded.records):,} records checked")


def test_serve_reports_progress_on_stderr(copy: Path) -> None:
    """`kantos-mock serve` on a folder it cannot load still says how far it got, on stderr."""
    lines = [orjson.dumps(r) for r in bundled_records("contacts")]
    # The check phase's progress comes after reading; a bad port stops serve after loading.
    as_jsonl(copy, "contacts", lines)
    code = (
        "import sys; from unittest.mock import patch; from mockserver import cli; "
        "from mockserver.domain import fixtures; "
        "patch.object(fixtures, 'PROGRESS_EVERY', 100).start(); "
        "sys.exit(cli.main(['serve', '--fixtures', sys.argv[1], '--port', '-1']))"
    )
    run = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, timeout=60)
    assert "kantos-mock: records/contacts.jsonl: 100 records read" in run.stderr, run.stderr
    assert run.stdout == "" or "records read" not in run.stdout
