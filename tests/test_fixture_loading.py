"""Fixture sets: the bundled one loads; each kind of broken one fails naming file and path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import mockserver
from mockserver import FixtureError, load_fixtures
from mockserver.domain.backend import FixtureSet

BUNDLED = Path(mockserver.__file__).parent / "fixtures"
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=LOADER)


def write(path: Path, data: Any) -> None:
    path.write_text(yaml.dump(data, Dumper=DUMPER, sort_keys=False, allow_unicode=True), encoding="utf-8")


def bundled_count(slug: str) -> int:
    return len(read(BUNDLED / "records" / f"{slug}.yaml")["records"])


# --- the bundled set -------------------------------------------------------------------------


def test_bundled_set_loads_with_every_object_record_user_and_key(fixture_set: FixtureSet) -> None:
    objects = read(BUNDLED / "objects.yaml")["objects"]
    assert [o.id for o in fixture_set.objects] == [o["id"] for o in objects]
    for obj in fixture_set.objects:
        assert sum(r.object_id == obj.id for r in fixture_set.records) == bundled_count(obj.slug)
    assert set(fixture_set.users) == {u["id"] for u in read(BUNDLED / "users.yaml")["users"]}
    assert set(fixture_set.keys) == {k["key"] for k in read(BUNDLED / "api_keys.yaml")["keys"]}


def test_bundled_set_is_big_enough_to_page_through(fixture_set: FixtureSet) -> None:
    assert sum(r.object_id == "obj_contacts" for r in fixture_set.records) > 100


def test_an_unmodified_copy_loads(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED, tmp_path / "fx")
    assert len(load_fixtures(tmp_path / "fx").records) == sum(
        bundled_count(p.stem) for p in (BUNDLED / "records").glob("*.yaml")
    )


# --- broken sets -------------------------------------------------------------------------------


def edit(rel: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    """A breakage: load the YAML file at `rel`, change it in place, write it back."""

    def apply(root: Path) -> None:
        data = read(root / rel)
        change(data)
        write(root / rel, data)

    return apply


def record_with(data: dict[str, Any], slug: str) -> int:
    """Index of the first record (from the fourth on) that has a value for `slug`."""
    return next(i for i, r in enumerate(data["records"]) if i >= 3 and slug in r["field_values"])


def set_value(rel: str, index: int, key: str, value: Any) -> Callable[[Path], None]:
    def change(data: Any) -> None:
        data["records"][index]["field_values"][key] = value

    return edit(rel, change)


def _duplicate_id(data: Any) -> None:
    data["records"][4]["id"] = data["records"][2]["id"]


def _missing_name(data: Any) -> None:
    del data["records"][6]["field_values"]["name"]


def _unknown_user(data: Any) -> None:
    data["records"][7]["created_by"] = "user_ghost"


def _unknown_type(data: Any) -> None:
    data["objects"][0]["fields"][2]["type"] = "telepathy"


def _key_of_unknown_user(data: Any) -> None:
    data["keys"][1]["user"] = "user_ghost"


def _bad_created_at(data: Any) -> None:
    data["records"][2]["created_at"] = "last tuesday"


def _reference_to_wrong_object(data: Any) -> None:
    data["records"][8]["field_values"]["company"] = data["records"][0]["id"]  # a contact, not a company


def _unparseable(root: Path) -> None:
    (root / "records" / "deals.yaml").write_text("records: [unclosed, {\n  - what: :\n", encoding="utf-8")


def _no_objects(root: Path) -> None:
    (root / "objects.yaml").unlink()


def _unknown_field(data: Any) -> None:
    data["records"][5]["field_values"]["nickname"] = "Nick"


BROKEN = [
    pytest.param(set_value("records/contacts.yaml", 3, "email", "not-an-email"), "records/contacts.yaml",
                 "records[3].field_values.email", id="bad-email"),
    pytest.param(edit("records/contacts.yaml", _unknown_field), "records/contacts.yaml",
                 "records[5].field_values.nickname", id="unknown-field"),
    pytest.param(edit("objects.yaml", _unknown_type), "objects.yaml", "objects[0].fields[2].type",
                 id="unknown-type"),
    pytest.param(edit("records/contacts.yaml", _duplicate_id), "records/contacts.yaml", "records[4].id",
                 id="duplicate-id"),
    pytest.param(edit("records/contacts.yaml", _missing_name), "records/contacts.yaml",
                 "records[6].field_values.name", id="missing-required"),
    pytest.param(edit("records/contacts.yaml", _unknown_user), "records/contacts.yaml",
                 "records[7].created_by", id="unknown-created-by"),
    pytest.param(edit("records/deals.yaml", _reference_to_wrong_object), "records/deals.yaml",
                 "records[8].field_values.company", id="reference-to-a-record-of-another-object"),
    pytest.param(edit("records/contacts.yaml", _bad_created_at), "records/contacts.yaml",
                 "records[2].created_at", id="bad-created-at"),
    pytest.param(edit("api_keys.yaml", _key_of_unknown_user), "api_keys.yaml", "keys[1].user",
                 id="key-of-unknown-user"),
    pytest.param(_unparseable, "records/deals.yaml", None, id="unparseable-yaml"),
    pytest.param(_no_objects, "objects.yaml", None, id="missing-objects-yaml"),
]  # fmt: skip


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "fixtures"
    shutil.copytree(BUNDLED, root)
    return root


def records_as_json(root: Path, *keep: str) -> None:
    """Store the record files other than `keep` as JSON: the same data (the loader reads either
    form), parsed much faster, so each broken set loads quickly. The broken file stays YAML."""
    for path in sorted((root / "records").glob("*.yaml")):
        if f"records/{path.name}" not in keep:
            path.with_suffix(".json").write_text(json.dumps(read(path)), encoding="utf-8")
            path.unlink()


@pytest.mark.parametrize(("breakage", "file", "path"), BROKEN)
def test_broken_fixture_set_fails_naming_file_and_path(
    copy: Path, breakage: Callable[[Path], None], file: str, path: str | None
) -> None:
    breakage(copy)
    records_as_json(copy, file)
    with pytest.raises(FixtureError) as info:
        load_fixtures(copy)
    message = str(info.value)
    if path is None:
        assert file in message, message
        assert file in [f for f, _, _ in info.value.problems]
    else:
        assert f"{file}: {path}: " in message, message
        assert (file, path) in [(f, p) for f, p, _ in info.value.problems]
    assert all(text for _, _, text in info.value.problems)


def test_reference_to_a_missing_record_names_file_and_path(copy: Path) -> None:
    data = read(copy / "records" / "contacts.yaml")
    i = record_with(data, "company")
    data["records"][i]["field_values"]["company"] = "rec_missing"
    write(copy / "records" / "contacts.yaml", data)
    records_as_json(copy, "records/contacts.yaml")
    with pytest.raises(FixtureError) as info:
        load_fixtures(copy)
    assert f"records/contacts.yaml: records[{i}].field_values.company: " in str(info.value)


def test_every_problem_is_reported_not_just_the_first(copy: Path) -> None:
    data = read(copy / "records" / "contacts.yaml")
    data["records"][3]["field_values"]["email"] = "bad"
    data["records"][200]["field_values"]["phone"] = "12"
    write(copy / "records" / "contacts.yaml", data)
    edit("objects.yaml", _unknown_type)(copy)
    records_as_json(copy, "records/contacts.yaml")
    with pytest.raises(FixtureError) as info:
        load_fixtures(copy)
    message = str(info.value)
    for where in (
        "records/contacts.yaml: records[3].field_values.email",
        "records/contacts.yaml: records[200].field_values.phone",
        "objects.yaml: objects[0].fields[2].type",
    ):
        assert where in message, message
    assert len(info.value.problems) >= 3


def test_json_fixture_files_are_read_like_yaml(copy: Path, fixture_set: FixtureSet) -> None:
    data = read(copy / "users.yaml")
    (copy / "users.yaml").unlink()
    (copy / "users.json").write_text(json.dumps(data), encoding="utf-8")
    records_as_json(copy)
    loaded = load_fixtures(copy)
    assert set(loaded.users) == {u["id"] for u in data["users"]}
    assert [r.to_json() for r in loaded.records] == [r.to_json() for r in fixture_set.records]


def test_a_missing_folder_is_a_fixture_error(tmp_path: Path) -> None:
    with pytest.raises(FixtureError) as info:
        load_fixtures(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


# --- kantos-mock check-fixtures ----------------------------------------------------------------


def check_fixtures(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mockserver", "check-fixtures", str(directory)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_check_fixtures_exits_0_on_the_bundled_set() -> None:
    result = check_fixtures(BUNDLED)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_fixtures_exits_1_naming_file_and_path(copy: Path) -> None:
    set_value("records/contacts.yaml", 3, "email", "not-an-email")(copy)
    result = check_fixtures(copy)
    assert result.returncode == 1, result.stdout
    assert "records/contacts.yaml: records[3].field_values.email" in result.stderr
