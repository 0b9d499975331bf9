"""Loading checks most records in one pass (`_Loader._valid_record`) and the rest with the full
checks (`_Loader._record`). The one pass must change nothing: the same records, the same JSON,
the same unique values and the same problems as the full checks alone, whatever the forms of the
values (odd timestamps, empty values, references read before or after their record)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any
from unittest.mock import patch

import orjson
import pytest
import yaml

import mockserver
from mockserver import FixtureError, load_fixtures
from mockserver.domain.backend import Backend, FixtureSet
from mockserver.domain.errors import Conflict
from mockserver.domain.fixtures import _Loader
from mockserver.domain.records import Record

BUNDLED = Path(mockserver.__file__).parent / "fixtures"

OBJECTS = {
    "objects": [
        {
            "name": "People",
            "fields": [
                {"name": "Name", "type": "text", "required": True},
                {"name": "Email", "type": "email", "unique": True},
                {"name": "Code", "type": "text", "unique": True},
                {"name": "Stage", "type": "status", "options": {"stages": ["new", "won", "lost"]}},
                {"name": "Tags", "type": "multi_select", "options": {"choices": ["a", "b", "c"]}},
                {"name": "Manager", "type": "reference", "options": {"object_id": "obj_people"}},
                {"name": "Owner", "type": "user"},
                {"name": "Born", "type": "date"},
                {"name": "Seen", "type": "datetime"},
                {"name": "Score", "type": "number"},
                {"name": "Vip", "type": "boolean"},
                {"name": "Site", "type": "url"},
                {"name": "Phone", "type": "phone"},
                {"name": "Notes", "type": "long_text"},
            ],
        }
    ]
}

#: Valid times in other forms than `format_timestamp`'s, then invalid ones.
VALID_TIMES = ["2024-01-15T10:30:00.250Z", "2024-01-15T12:30:00+02:00", "2024-01-15T10:30Z"]
TIMES = [*VALID_TIMES, "2024-02-30T10:30:00Z", "2024-01-15 10:30:00Z", "1999-12-31T23:59:59Z"]


def person(rng: random.Random, i: int, n: int, odd: bool, valid: bool) -> dict[str, Any]:
    """A record; with `odd`, some of its values take the forms the one pass leaves to the full
    checks (with `valid`, only valid ones)."""
    values: dict[str, Any] = {
        "name": f"Person {i}",
        "email": f"P{i}@Example.com",
        "stage": rng.choice(["new", "won", "lost"]),
        "score": rng.choice([1, 2.5, -3, 2**64 - 1, 0.1]),
        "vip": rng.random() < 0.5,
        "tags": rng.sample(["a", "b", "c"], rng.randint(1, 3)),
        "owner": rng.choice(["user_alice", "user_bob"]),
        "born": f"19{rng.randint(10, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        "seen": "2024-03-01T08:00:00Z",
        "site": "https://example.com/x",
        "phone": "+1 555 0100",
        "notes": "line one\nline two",
        "manager": f"rec_p{rng.randrange(n):04d}",  # before or after this one
    }
    item: dict[str, Any] = {
        "id": f"rec_p{i:04d}",
        "created_at": "2024-01-01T00:00:00Z",
        "created_by": "user_admin",
        "field_values": values,
    }
    if rng.random() < 0.7:
        item["updated_at"] = "2024-06-01T00:00:00Z"
    if not odd:
        return item
    for _ in range(rng.randint(1, 2)):
        change = rng.randrange(6 if valid else 10)
        if change == 0:
            item["created_at"] = rng.choice(VALID_TIMES if valid else TIMES)
        elif change == 1:
            item["updated_at"] = rng.choice(VALID_TIMES if valid else TIMES)
        elif change == 2:
            values[rng.choice(["notes", "site", "phone", "email"])] = rng.choice(["", None])
        elif change == 3:
            values["tags"] = [] if valid else rng.choice([["a", "a"], ["z"], "a"])
        elif change == 4:
            values["seen"] = rng.choice(VALID_TIMES if valid else TIMES)
        elif change == 5:
            values["score"] = rng.choice([2**70, 1e308] if valid else [True, "1"])
        elif change == 6:
            values["manager"] = rng.choice(["rec_nobody", "", 7])
        elif change == 7:
            values["code"] = f"C{rng.randrange(5)}"  # unique: clashes
        elif change == 8:
            values.pop("name", None)  # required
        else:
            item["created_by"] = rng.choice(["user_nobody", 3, None])
    return item


def write_set(root: Path, items: list[dict[str, Any]], form: str) -> Path:
    shutil.copytree(BUNDLED, root)
    shutil.rmtree(root / "records")
    (root / "records").mkdir()
    (root / "objects.yaml").write_text(yaml.safe_dump(OBJECTS), encoding="utf-8")
    if form == "jsonl":
        # The standard library's encoder: it writes integers past 64 bits, as a file may hold them.
        lines = b"".join(json.dumps(item).encode() + b"\n" for item in items)
        (root / "records" / "people.jsonl").write_bytes(lines)
    else:
        text = yaml.safe_dump({"records": items}, allow_unicode=True)
        (root / "records" / "people.yaml").write_text(text, encoding="utf-8")
    return root


def load_both(root: Path) -> tuple[FixtureSet | list[tuple[str, str, str]], Any]:
    """The set (or its problems) as loaded, and as the full checks alone load it."""

    def outcome() -> FixtureSet | list[tuple[str, str, str]]:
        try:
            return load_fixtures(root)
        except FixtureError as exc:
            return exc.problems

    fast = outcome()
    with patch.object(_Loader, "_valid_record", lambda *args: None):
        full = outcome()
    return fast, full


@pytest.mark.parametrize("form", ["jsonl", "yaml"])
@pytest.mark.parametrize("seed", range(8))
def test_the_one_pass_loads_what_the_full_checks_load(tmp_path: Path, form: str, seed: int) -> None:
    rng = random.Random(seed)
    n = 120
    valid = seed % 2 == 0  # even seeds: a valid set (some values in other forms); odd: problems
    items = [person(rng, i, n, rng.random() < 0.25, valid) for i in range(n)]
    fast, full = load_both(write_set(tmp_path / "fx", items, form))
    if not valid:
        assert isinstance(full, list) and full
        assert fast == full
        return
    assert isinstance(fast, FixtureSet) and isinstance(full, FixtureSet)
    assert [r.json for r in fast.records] == [r.json for r in full.records]
    assert [(r.id, r.created_at, r.updated_at, r.created_by) for r in fast.records] == [
        (r.id, r.created_at, r.updated_at, r.created_by) for r in full.records
    ]
    assert fast.unique == full.unique


def test_valid_sets_are_loaded_and_checked_in_one_pass(tmp_path: Path) -> None:
    """Records whose references all point back are checked as they are read; a forward reference
    sends its record, and that object's later records, to the full checks, with the same result."""
    rng = random.Random(7)
    items = [person(rng, i, 50, False, True) for i in range(50)]
    for i, item in enumerate(items):
        item["field_values"]["manager"] = f"rec_p{max(0, i - 1):04d}"
    items[30]["field_values"]["manager"] = "rec_p0049"
    calls: list[str] = []
    real = _Loader._record

    def counting(self: _Loader, item: dict[str, Any], *args: Any) -> Record | None:
        calls.append(item["id"])
        return real(self, item, *args)

    root = write_set(tmp_path / "fx", items, "jsonl")
    with patch.object(_Loader, "_record", counting):
        loaded = load_fixtures(root)
    assert calls == []  # the second pass found every waiting record valid in one pass too
    assert [r.id for r in loaded.records] == [item["id"] for item in items]
    fast, full = load_both(root)
    assert isinstance(fast, FixtureSet) and isinstance(full, FixtureSet)
    assert [r.json for r in fast.records] == [r.json for r in full.records]


def test_loaded_records_decode_their_values(tmp_path: Path) -> None:
    loaded = load_fixtures(BUNDLED)
    for rec in loaded.records[:50]:
        doc = orjson.loads(rec.json)
        assert rec.values == doc["field_values"]
        assert rec.to_json() == doc


def test_tenants_share_the_fixture_unique_values_until_they_write() -> None:
    fixtures = load_fixtures(BUNDLED)
    assert fixtures.unique is not None
    before = {slug: dict(m) for slug, m in fixtures.unique["obj_contacts"].items()}
    a, b = Backend(fixtures), Backend(fixtures)
    taken = next(iter(before["email"]))
    holder = before["email"][taken]
    # A frees an email by deleting its holder, and takes a new one; B and the set see neither.
    a.delete_record(holder)
    a.create_record("obj_contacts", {"name": "Reuse", "email": taken}, "user_admin")
    fresh = a.create_record("obj_contacts", {"name": "New", "email": "fresh.one@example.com"}, "user_admin")
    with pytest.raises(Conflict):
        b.create_record("obj_contacts", {"name": "Clash", "email": taken}, "user_admin")
    b.create_record("obj_contacts", {"name": "Same", "email": "fresh.one@example.com"}, "user_admin")
    assert {slug: dict(m) for slug, m in fixtures.unique["obj_contacts"].items()} == before
    # Reset puts A back to the fixture set: the email is its first holder's again.
    a.reset()
    with pytest.raises(Conflict):
        a.create_record("obj_contacts", {"name": "Clash", "email": taken}, "user_admin")
    assert fresh.id not in a.by_id
    c = Backend(fixtures)
    with pytest.raises(Conflict):
        c.create_record("obj_contacts", {"name": "Clash", "email": taken}, "user_admin")
