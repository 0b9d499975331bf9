"""Loads a fixture folder and checks all of it; every problem is named by file and path.

Layout (YAML or JSON; `.yaml`, `.yml` or `.json`):
    objects.yaml          objects: [{id?, name, slug?, icon?, fields: [{name, type, ...}]}]
    users.yaml            users: [{id, name, email, admin?}]
    api_keys.yaml         keys: [{key, name?, type, user, plan, per_minute?, per_day?}]
    records/<slug>.yaml   records: [{id, created_at, updated_at?, created_by, field_values}]
    records/<slug>.csv    a header of field slugs (and id, created_at, updated_at, created_by),
                          then one record a row; problems are named by row and column
    records/<slug>.jsonl  the same records, one JSON object a line (large sets: read as a stream)
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from .auth import KEY_TYPES, PLANS, ApiKey, User
from .backend import FixtureSet
from .clock import format_timestamp
from .records import BULK, Record, release_memory
from .schema import (
    EMPTY,
    NOT_UNIQUE_TYPES,
    NUMERIC_TYPES,
    RESERVED_SLUGS,
    TEXT_MAX_CHARS,
    FieldDef,
    FieldType,
    ObjectDef,
    check_value,
    is_email,
    is_http_url,
    is_phone,
    parse_date,
    parse_datetime_us,
    parse_utc_seconds,
    slugify,
)

#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else PyYAML's.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FixtureError(Exception):
    """A fixture set cannot be loaded. `problems` lists `(file, path, message)`."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [
            f"{file}: {path}: {message}" if path else f"{file}: {message}" for file, path, message in problems
        ]
        super().__init__(f"{len(problems)} problem(s) in the fixture set:\n  " + "\n  ".join(lines))


def bundled_fixtures_dir() -> Path:
    return Path(str(resources.files("mockserver") / "fixtures"))


def load_fixtures(
    directory: str | Path | None = None, progress: Callable[[str], None] | None = None
) -> FixtureSet:
    """Read and check a fixture folder (default: the bundled one). Raises FixtureError.
    `progress` is told, in words, how far large record files have got."""
    loader = _Loader(Path(directory) if directory is not None else bundled_fixtures_dir())
    loader.progress = progress
    fixtures = loader.load()
    del loader
    if len(fixtures.records) >= BULK:
        release_memory()
    return fixtures


#: A record read: checked already, or `(file, path, object, item)` to check (its line's bytes for
#: JSON Lines). A bare record, not a tuple: a million tuples, freed after loading, left their
#: memory in the allocator's pools, among the records' (RSS).
Admitted = Record | tuple[str, str, ObjectDef, dict[str, Any] | bytes]

#: Records between two progress reports.
PROGRESS_EVERY = 100_000


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[tuple[str, str, str]] = []
        self.file = ""
        self.progress: Callable[[str], None] | None = None
        #: object id -> unique field slug -> normalised value -> record id, as `Backend.unique`.
        self.unique: dict[str, dict[str, dict[Any, str]]] = {}
        #: Objects a record of which waits for the full checks: later ones of theirs wait too,
        #: so unique values are claimed in file order (see `_admit`).
        self.waiting: set[str] = set()
        self.fast: dict[str, _FastChecks] = {}

    def fail(self, path: str, message: str) -> None:
        self.problems.append((self.file, path, message))

    def load(self) -> FixtureSet:
        if not self.root.is_dir():
            raise FixtureError([(str(self.root), "", "not a folder")])
        objects = self._objects()
        users = self._users()
        keys = self._keys(users)
        records = self._records(objects, users)
        if self.problems:
            raise FixtureError(self.problems)
        # `_FastChecks` made a map for each unique field; as the full checks do, keep the used ones.
        unique = {
            o: used for o, taken in self.unique.items() if (used := {s: t for s, t in taken.items() if t})
        }
        return FixtureSet(list(objects.values()), users, keys, records, unique)

    def _read(self, stem: str, top: str, required: bool = True) -> list[Any]:
        for ext in (".yaml", ".yml", ".json"):
            path = self.root / f"{stem}{ext}"
            if path.is_file():
                return self._read_file(path, top)
        self.file = f"{stem}.yaml"
        if required:
            self.fail("", f"missing: add {stem}.yaml (or .json) with a top-level {top!r} list")
        return []

    def _read_csv(
        self, path: Path, obj: ObjectDef, users: dict[str, User]
    ) -> list[tuple[str, dict[str, Any]]]:
        """A records CSV as `(row N, item)` pairs in the YAML form; cell problems are recorded."""
        self.file = str(path.relative_to(self.root))
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            self.fail("", f"cannot be read as UTF-8: {exc}")
            return []
        admins = [u.id for u in users.values() if u.admin]
        rows, problems = read_records_csv(text, obj, next(iter(admins or list(users)), None))
        for where, message in problems:
            self.fail(where, message)
        return rows

    def _read_file(self, path: Path, top: str) -> list[Any]:
        self.file = str(path.relative_to(self.root))
        try:
            text = path.read_text(encoding="utf-8")
            data = orjson.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=YAML_LOADER)
        except (OSError, UnicodeDecodeError, ValueError, orjson.JSONDecodeError, yaml.YAMLError) as exc:
            self.fail("", f"cannot be parsed: {exc}")
            return []
        if not isinstance(data, dict) or not isinstance(data.get(top), list):
            self.fail(top, f"expected a mapping with a {top!r} list at the top")
            return []
        items = data[top]
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{top}[{i}]", "expected a mapping")
        return [item if isinstance(item, dict) else {} for item in items]

    @staticmethod
    def _at(path: str, key: str, value: bool = False) -> str:
        """Where `key` of the item at `path` is: `records[3].field_values.email`, or for a CSV row
        `row 4, column email`."""
        if path.startswith(CSV_ROW):
            return f"{path}, column {key}"
        return f"{path}.field_values.{key}" if value else f"{path}.{key}"

    def _str(self, item: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
        value = item.get(key)
        if value is None:
            if required:
                self.fail(self._at(path, key), "is required")
            return None
        if not isinstance(value, str) or not value:
            self.fail(self._at(path, key), f"expected a non-empty string, got {value!r}")
            return None
        return value

    def _objects(self) -> dict[str, ObjectDef]:
        objects: dict[str, ObjectDef] = {}
        raw = self._read("objects", "objects")
        for i, item in enumerate(raw):
            path = f"objects[{i}]"
            name = self._str(item, "name", path)
            if name is None:
                continue
            slug = self._str(item, "slug", path, required=False) or slugify(name)
            oid = self._str(item, "id", path, required=False) or f"obj_{slug}"
            if oid in objects:
                self.fail(f"{path}.id", f"duplicate object id {oid!r}")
                continue
            icon = item.get("icon")
            objects[oid] = ObjectDef(oid, name, slug, icon if isinstance(icon, str) else None)
        # Fields second, so references may point at any object of the file.
        for i, item in enumerate(raw):
            oid = item.get("id") or f"obj_{item.get('slug') or slugify(str(item.get('name', '')))}"
            obj = objects.get(oid)
            fields = item.get("fields", [])
            if obj is None:
                continue
            if not isinstance(fields, list):
                self.fail(f"objects[{i}].fields", "expected a list")
                continue
            for j, spec in enumerate(fields):
                f = self._field(spec, f"objects[{i}].fields[{j}]", obj, objects, position=j)
                if f is not None:
                    obj.add_field(f)
        return objects

    def _field(
        self, spec: Any, path: str, obj: ObjectDef, objects: dict[str, ObjectDef], position: int
    ) -> FieldDef | None:
        if not isinstance(spec, dict):
            self.fail(path, "expected a mapping")
            return None
        name = self._str(spec, "name", path)
        if name is None:
            return None
        slug = self._str(spec, "slug", path, required=False) or slugify(name)
        if slug in RESERVED_SLUGS:
            self.fail(f"{path}.slug", f"{slug!r} is reserved")
            return None
        if slug in obj.by_slug:
            self.fail(f"{path}.slug", f"duplicate field slug {slug!r} in {obj.id}")
            return None
        try:
            ftype = FieldType(str(spec.get("type")))
        except ValueError:
            self.fail(
                f"{path}.type",
                f"unknown type {spec.get('type')!r}; use one of {[t.value for t in FieldType]}",
            )
            return None
        options = spec.get("options")
        if options is not None and not isinstance(options, dict):
            self.fail(f"{path}.options", "expected a mapping")
            return None
        opts = options or {}
        need = {
            FieldType.STATUS: "stages",
            FieldType.DROPDOWN: "choices",
            FieldType.MULTI_SELECT: "choices",
        }
        key = need.get(ftype)
        if key is not None:
            choices = opts.get(key)
            if (
                not isinstance(choices, list)
                or not choices
                or not all(isinstance(c, str) and c for c in choices)
            ):
                self.fail(f"{path}.options.{key}", "expected a non-empty list of strings")
                return None
        if ftype == FieldType.REFERENCE and opts.get("object_id") not in objects:
            self.fail(
                f"{path}.options.object_id",
                f"expected an object id of this set, got {opts.get('object_id')!r}",
            )
            return None
        unique = bool(spec.get("unique", False))
        if unique and ftype in NOT_UNIQUE_TYPES:
            self.fail(f"{path}.unique", f"a {ftype} field cannot be unique")
        fid = self._str(spec, "id", path, required=False) or f"fld_{obj.slug}_{slug}"
        f = FieldDef(fid, name, slug, ftype, bool(spec.get("required", False)), unique, position, options)
        if "default_value" in spec and spec["default_value"] is not None:
            value, message = check_value(f, spec["default_value"], lambda o, r: True, lambda u: True)
            if message:
                self.fail(f"{path}.default_value", message)
            elif value is not EMPTY:
                f.default_value, f.has_default = value, True
        return f

    def _users(self) -> dict[str, User]:
        users: dict[str, User] = {}
        for i, item in enumerate(self._read("users", "users")):
            path = f"users[{i}]"
            uid = self._str(item, "id", path)
            if uid is None:
                continue
            if not uid.startswith("user_"):
                self.fail(f"{path}.id", f"user ids start with 'user_', got {uid!r}")
            if uid in users:
                self.fail(f"{path}.id", f"duplicate user id {uid!r}")
            users[uid] = User(
                uid,
                self._str(item, "name", path) or uid,
                item.get("email") or "",
                bool(item.get("admin", False)),
            )
        return users

    def _keys(self, users: dict[str, User]) -> dict[str, ApiKey]:
        keys: dict[str, ApiKey] = {}
        for i, item in enumerate(self._read("api_keys", "keys")):
            path = f"keys[{i}]"
            key = self._str(item, "key", path)
            ktype = self._str(item, "type", path)
            uid = self._str(item, "user", path)
            plan = self._str(item, "plan", path)
            if key is None or ktype is None or uid is None or plan is None:
                continue
            if key in keys:
                self.fail(f"{path}.key", "duplicate key")
            if ktype not in KEY_TYPES:
                self.fail(f"{path}.type", f"expected one of {list(KEY_TYPES)}, got {ktype!r}")
            if uid not in users:
                self.fail(f"{path}.user", f"unknown user {uid!r}")
                continue
            if plan not in PLANS:
                self.fail(f"{path}.plan", f"expected one of {list(PLANS)}, got {plan!r}")
                continue
            per_minute, per_day = PLANS[plan]
            limits = {"per_minute": per_minute, "per_day": per_day}
            for name in limits:
                if name in item:
                    value = item[name]
                    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                        self.fail(f"{path}.{name}", f"expected a positive integer, got {value!r}")
                    else:
                        limits[name] = value
            keys[key] = ApiKey(
                key,
                str(item.get("name") or key),
                ktype,
                users[uid],
                plan,
                limits["per_minute"],
                limits["per_day"],
            )
        return keys

    def _records(self, objects: dict[str, ObjectDef], users: dict[str, User]) -> list[Record]:
        by_slug = {o.slug: o for o in objects.values()}
        loaded: list[Admitted] = []
        seen: dict[str, str] = {}  # id -> object id, for references and duplicates
        folder = self.root / "records"
        files = (
            sorted(p for p in folder.glob("*") if p.suffix in (".yaml", ".yml", ".json", ".csv", ".jsonl"))
            if folder.is_dir()
            else []
        )
        for path in files:
            if path.suffix == ".jsonl":
                self._read_jsonl(path, by_slug.get(path.stem), seen, loaded, users)
                continue
            obj = by_slug.get(path.stem)
            if path.suffix == ".csv":
                rows = self._read_csv(path, obj, users) if obj is not None else []
            else:
                rows = [(f"records[{i}]", item) for i, item in enumerate(self._read_file(path, "records"))]
            if obj is None:
                self.file = str(path.relative_to(self.root))
                self.fail("", f"no object with slug {path.stem!r} in objects.yaml")
                continue
            for where, item in rows:
                self._admit(item, where, obj, item, seen, loaded, users)
        return self._check_records(loaded, users, seen)

    def _admit(
        self,
        item: dict[str, Any],
        where: str,
        obj: ObjectDef,
        kept: dict[str, Any] | bytes,
        seen: dict[str, str],
        loaded: list[Admitted],
        users: dict[str, User],
    ) -> bool:
        """Take a record for checking once its id is known and not taken. Most records are
        checked at once by `_valid_record`; the others wait as `kept`, since the full checks
        need every id first (references). Once a record of an object waits, the later ones of
        that object wait too, so that unique values are still claimed in file order."""
        rid = self._str(item, "id", where)
        if rid is None:
            return False
        if rid in seen:
            self.fail(self._at(where, "id"), f"duplicate record id {rid!r}")
            return False
        seen[rid] = obj.id
        if obj.id not in self.waiting:
            rec = self._valid_record(item, rid, obj, users, seen)
            if rec is not None:
                loaded.append(rec)
                return True
            self.waiting.add(obj.id)
        loaded.append((self.file, where, obj, kept))
        return True

    def _valid_record(
        self, item: dict[str, Any], rid: str, obj: ObjectDef, users: dict[str, User], seen: dict[str, str]
    ) -> Record | None:
        """The record, when it passes every check with each value stored as it is given (no
        empty value, no reference to an id not read yet); else None, and nothing is changed.
        The same as `_record` finding no problem, in a fraction of the time."""
        created_raw = item.get("created_at")
        updated_raw = item.get("updated_at", created_raw)
        created_by = item.get("created_by")
        values = item.get("field_values", {})
        if type(created_raw) is not str or type(updated_raw) is not str or type(values) is not dict:
            return None
        if type(created_by) is not str or created_by not in users:
            return None
        created_us = parse_utc_seconds(created_raw)
        created_text = created_raw
        if created_us is None:  # another form, or not valid
            created_us = parse_datetime_us(created_raw)
            if created_us is None:
                return None
            created_text = format_timestamp(created_us)
        if updated_raw == created_raw:  # (or no updated_at)
            updated_us, updated_text = created_us, created_text
        else:
            updated_text = updated_raw
            parsed = parse_utc_seconds(updated_raw)
            if parsed is None:
                parsed = parse_datetime_us(updated_raw)
                if parsed is None:
                    return None
                updated_text = format_timestamp(parsed)
            updated_us = parsed
            if updated_us < created_us:
                return None
            if updated_us == created_us:  # one int for both (32 bytes)
                updated_us = created_us
        fast = self.fast.get(obj.id)
        if fast is None or fast.seen is not seen:
            fast = self.fast[obj.id] = _FastChecks(obj, users, seen, self.unique.setdefault(obj.id, {}))
        checks = fast.checks
        try:
            for slug, value in values.items():
                check = checks.get(slug)
                if check is None or not check(value):
                    return None
        except TypeError:  # a check that is a lookup or a match, given a list, a dict or a number
            return None
        if not fast.required <= values.keys():
            return None
        if fast.unique:
            claims: list[tuple[dict[Any, str], Any]] = []
            for slug, fold, taken in fast.unique:
                value = values.get(slug)
                if value is not None:
                    key = value.lower() if fold else value
                    if key in taken:
                        return None
                    claims.append((taken, key))
            for taken, key in claims:
                taken[key] = rid
        return Record.loaded(
            rid, obj.id, values, created_us, updated_us, users[created_by].id, created_text, updated_text
        )

    def _read_jsonl(
        self,
        path: Path,
        obj: ObjectDef | None,
        seen: dict[str, str],
        loaded: list[Admitted],
        users: dict[str, User],
    ) -> None:
        """A `.jsonl` records file, read a line at a time. Most records are checked as they are
        read (`_admit`); one that waits for the full checks is kept as its line's bytes, a fifth
        of the size of the parsed record, and `_check_records` parses it again. Blank lines are
        skipped."""
        self.file = str(path.relative_to(self.root))
        if obj is None:
            self.fail("", f"no object with slug {path.stem!r} in objects.yaml")
            return
        count = 0
        waiting = self.waiting
        try:
            with path.open("rb") as stream:
                for number, line in enumerate(stream, start=1):
                    try:
                        item = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        if line.strip():
                            self.fail(f"line {number}", f"not JSON: {exc}")
                        continue
                    rid = item.get("id") if type(item) is dict else None
                    if type(rid) is str and rid and rid not in seen and obj.id not in waiting:
                        # `_admit`, inlined: most lines of a large file take this way
                        seen[rid] = obj.id
                        rec = self._valid_record(item, rid, obj, users, seen)
                        if rec is None:
                            waiting.add(obj.id)
                            loaded.append((self.file, f"line {number}", obj, line))
                        else:
                            loaded.append(rec)
                        count += 1
                        if self.progress is not None and count % PROGRESS_EVERY == 0:
                            self.progress(f"{self.file}: {count:,} records read")
                        continue
                    where = f"line {number}"
                    if not isinstance(item, dict):
                        self.fail(
                            where, f"expected a JSON object (one record a line), got {type(item).__name__}"
                        )
                        continue
                    if not self._admit(item, where, obj, line, seen, loaded, users):
                        continue
                    count += 1
                    if self.progress is not None and count % PROGRESS_EVERY == 0:
                        self.progress(f"{self.file}: {count:,} records read")
        except OSError as exc:
            self.fail("", f"cannot be read: {exc}")
        if self.progress is not None and count >= PROGRESS_EVERY:
            self.progress(f"{self.file}: {count:,} records read")

    def _check_records(
        self,
        loaded: Sequence[Admitted],
        users: dict[str, User],
        seen: dict[str, str],
    ) -> list[Record]:
        """Check each `(file, path, object, item)` (a `Record` passed its checks when it was
        read); `seen` maps every record id to its object."""
        records: list[Record] = []

        def record_exists(object_id: str, record_id: str) -> bool:
            return seen.get(record_id) == object_id

        def user_exists(user_id: str) -> bool:
            return user_id in users

        for entry in loaded:
            if isinstance(entry, Record):
                records.append(entry)
            else:
                file, where, obj, item = entry
                self.file = file
                # A JSON Lines record is still its line's bytes (checked as JSON when it was read).
                values = orjson.loads(item) if isinstance(item, bytes) else item
                rid = values.get("id")
                rec = (
                    self._valid_record(values, rid, obj, users, seen) if isinstance(rid, str) else None
                ) or self._record(values, where, obj, users, record_exists, user_exists)
                if rec is None:
                    continue
                records.append(rec)
            if self.progress is not None and len(records) % PROGRESS_EVERY == 0:
                self.progress(f"{len(records):,} of {len(loaded):,} records checked")
        return records

    def _record(
        self,
        item: dict[str, Any],
        path: str,
        obj: ObjectDef,
        users: dict[str, User],
        record_exists: Callable[[str, str], bool],
        user_exists: Callable[[str], bool],
    ) -> Record | None:
        ok = True
        stamps: dict[str, int] = {}
        for key in ("created_at", "updated_at"):
            raw = item.get(key, item.get("created_at") if key == "updated_at" else None)
            us = parse_datetime_us(raw) if isinstance(raw, str) else None
            if us is None:
                self.fail(self._at(path, key), f"expected a datetime like 2024-01-15T10:30:00Z, got {raw!r}")
                ok = False
            else:
                stamps[key] = us
        if ok and stamps["updated_at"] < stamps["created_at"]:
            self.fail(self._at(path, "updated_at"), "is before created_at")
            ok = False
        created_by = self._str(item, "created_by", path)
        if created_by is not None and created_by not in users:
            self.fail(self._at(path, "created_by"), f"unknown user {created_by!r}")
            ok = False
        elif created_by is not None:  # one string for every record of a user
            created_by = users[created_by].id
        raw_values = item.get("field_values", {})
        if not isinstance(raw_values, dict):
            self.fail(f"{path}.field_values", "expected a mapping")
            return None
        values: dict[str, Any] = {}
        for slug, raw in raw_values.items():
            f = obj.by_slug.get(slug)
            if f is None:
                self.fail(self._at(path, slug, value=True), f"unknown field of {obj.id}")
                ok = False
                continue
            value, message = check_value(f, raw, record_exists, user_exists)
            if message:
                self.fail(self._at(path, slug, value=True), message)
                ok = False
            elif value is not EMPTY:
                values[slug] = value
                if f.unique:
                    taken = self.unique.setdefault(obj.id, {}).setdefault(slug, {})
                    ukey = value.lower() if f.type == FieldType.EMAIL else value
                    if ukey in taken:
                        self.fail(
                            self._at(path, slug, value=True),
                            f"{value!r} is unique but also used by {taken[ukey]}",
                        )
                        ok = False
                    taken[ukey] = str(item.get("id"))
        for f in obj.fields:
            if f.required and f.slug not in values and f.slug not in raw_values:
                self.fail(self._at(path, f.slug, value=True), "is required")
                ok = False
        if not ok or created_by is None:
            return None
        created, updated = stamps["created_at"], stamps["updated_at"]
        return Record.loaded(
            str(item["id"]),
            obj.id,
            values,
            created,
            updated,
            created_by,
            format_timestamp(created),
            format_timestamp(updated),
        )


class _FastChecks:
    """What `_Loader._valid_record` checks an object's records with. `checks`: for each field,
    whether a value is valid, not empty, and stored as it is given (what `check_value` would
    return is the value itself); a reference's looks its id up in `seen`, the ids read so far.
    False sends a record to the full checks, which say what is wrong, and so does a TypeError:
    where a lookup or a pattern decides alone, the check is that bound method, called without a
    function of ours around it, and a value of the wrong type raises."""

    def __init__(
        self, obj: ObjectDef, users: dict[str, User], seen: dict[str, str], unique: dict[str, dict[Any, str]]
    ) -> None:
        self.seen = seen
        self.checks = {f.slug: _fast_check(f, users, seen) for f in obj.fields}
        self.required = frozenset(f.slug for f in obj.fields if f.required)
        #: (slug, whether its values are folded to lower case, its map of values taken) of each
        #: unique field
        self.unique = [
            (f.slug, f.type == FieldType.EMAIL, unique.setdefault(f.slug, {})) for f in obj.fields if f.unique
        ]


def _fast_check(f: FieldDef, users: dict[str, User], seen: dict[str, str]) -> Callable[[Any], Any]:
    t = f.type
    if t is FieldType.TEXT:
        return lambda v: type(v) is str and 0 < len(v) <= TEXT_MAX_CHARS
    if t is FieldType.LONG_TEXT:
        return lambda v: type(v) is str and v != ""
    if t is FieldType.STATUS or t is FieldType.DROPDOWN:
        return f.choice_position.__contains__  # its keys are strings: another type is not in it
    if t is FieldType.NUMBER or t is FieldType.CURRENCY:
        return _is_stored_number
    if t is FieldType.BOOLEAN:
        return lambda v: type(v) is bool
    if t is FieldType.USER:
        return users.__contains__
    if t is FieldType.REFERENCE:
        target = f.target_object
        return lambda v: type(v) is str and seen.get(v) == target
    if t is FieldType.MULTI_SELECT:
        options = frozenset(f.choices)

        def multi(v: Any) -> bool:
            return (
                type(v) is list
                and len(v) > 0
                and all(type(x) is str and x in options for x in v)
                and len(set(v)) == len(v)
            )

        return multi
    if t is FieldType.DATE:
        return lambda v: type(v) is str and parse_date(v) is not None
    if t is FieldType.DATETIME:
        return lambda v: type(v) is str and parse_datetime_us(v) is not None
    # A string subclass is no fixture value (YAML and JSON make `str`); another type raises.
    return {
        FieldType.EMAIL: is_email,
        FieldType.PHONE: is_phone,
        FieldType.URL: is_http_url,
        FieldType.IMAGE: is_http_url,
    }[t]


def _is_stored_number(v: Any) -> bool:
    kind = type(v)
    if kind is float:
        return math.isfinite(v)
    return kind is int and -(2**63) <= v < 2**64


# --- CSV record files ---------------------------------------------------------------------------
# One module reads and writes them, so the loader, `pull --format csv` and the control API's CSV
# export cannot drift apart.

#: How a CSV location starts: `row 4, column email` (the header is row 1, as a spreadsheet shows it).
CSV_ROW = "row "
#: Columns a records CSV may have besides the field slugs.
CSV_SYSTEM_COLUMNS = ("id", "created_at", "updated_at", "created_by")
#: Without a `created_at` column, row N was created N-2 seconds after this, so the file's order is
#: the records' default order.
CSV_EPOCH_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
_CSV_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_CSV_INTEGER = re.compile(r"-?[0-9]+")


def read_records_csv(
    text: str, obj: ObjectDef, default_user: str | None
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
    """The rows of a records CSV (already decoded, BOM removed) as record items in the YAML form,
    each with its location (`row N`), and the problems as `(location, message)`.

    Cells are read by the field's type: an empty cell is empty; numbers use `.` as the decimal
    point; booleans are `true`/`false`; multi_select is `a;b` or a JSON array. Without an `id`
    column row N gets `rec_<slug>_<N-1>`; without `created_by`, `default_user`.
    """
    problems: list[tuple[str, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [], [(f"{CSV_ROW}1", f"is not valid CSV: {exc}")]
    if not header or header == [""]:
        return [], [(f"{CSV_ROW}1", "expected a header of field slugs (and id, created_at, ...)")]
    columns: list[tuple[str, FieldDef | None]] = []
    for name in header:
        where = f"{CSV_ROW}1, column {name}"
        if name in CSV_SYSTEM_COLUMNS:
            columns.append((name, None))
        elif name in obj.by_slug:
            columns.append((name, obj.by_slug[name]))
        else:
            problems.append(
                (
                    where,
                    f"unknown column: expected a field slug of {obj.id} or one of {list(CSV_SYSTEM_COLUMNS)}",
                )
            )
            continue
        if [c for c, _ in columns].count(name) > 1:
            problems.append((where, "appears twice in the header"))
    if problems:
        return [], problems
    rows: list[tuple[str, dict[str, Any]]] = []
    row = 1
    try:
        for cells in reader:
            row += 1
            if not cells:  # a blank line
                continue
            where = f"{CSV_ROW}{row}"
            if len(cells) != len(columns):
                problems.append((where, f"has {len(cells)} cells, the header {len(columns)}"))
                continue
            item: dict[str, Any] = {
                "id": f"rec_{obj.slug}_{row - 1}",
                "created_at": format_timestamp(CSV_EPOCH_US + (row - 2) * 1_000_000),
            }
            if default_user is not None:
                item["created_by"] = default_user
            values: dict[str, Any] = {}
            for (name, f), cell in zip(columns, cells, strict=True):
                if f is None:
                    if cell:
                        item[name] = cell
                    continue
                value, message = csv_cell_value(f, cell)
                if message is not None:
                    problems.append((f"{where}, column {name}", message))
                elif value is not None:
                    values[name] = value
            item["field_values"] = values
            rows.append((where, item))
    except csv.Error as exc:
        problems.append((f"{CSV_ROW}{row + 1}", f"is not valid CSV: {exc}"))
    return rows, problems


def csv_cell_value(f: FieldDef, cell: str) -> tuple[Any, str | None]:
    """A cell as the JSON value of its field's type (None: empty), or (None, message). Only the
    cell's form is checked here; the value itself is checked like any fixture value."""
    if cell == "":
        return None, None
    if f.type in NUMERIC_TYPES:
        if not _CSV_NUMBER.fullmatch(cell):
            return None, f"expected a number with '.' as the decimal point (such as 1234.5), got {cell!r}"
        return (int(cell) if _CSV_INTEGER.fullmatch(cell) else float(cell)), None
    if f.type is FieldType.BOOLEAN:
        low = cell.strip().lower()
        if low not in ("true", "false"):
            return None, f"expected true or false, got {cell!r}"
        return low == "true", None
    if f.type is FieldType.MULTI_SELECT:
        if cell.lstrip().startswith("["):
            try:
                items = orjson.loads(cell)
            except orjson.JSONDecodeError:
                items = None
            if not isinstance(items, list):
                return None, f"expected options separated by ';' or a JSON array, got {cell!r}"
            return items, None
        return [part.strip() for part in cell.split(";")], None
    return cell, None


def records_csv(obj: ObjectDef, records: Iterable[Mapping[str, Any]]) -> str:
    """Records (in their JSON form: `id`, `created_at`, `updated_at`, `created_by`, `field_values`)
    as a records CSV that `read_records_csv` reads back to the same values."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_SYSTEM_COLUMNS, *(f.slug for f in obj.fields)])
    for rec in records:
        values = rec.get("field_values") or {}
        writer.writerow(
            [
                *(str(rec.get(c) or "") for c in CSV_SYSTEM_COLUMNS),
                *(csv_cell(f, values.get(f.slug)) for f in obj.fields),
            ]
        )
    return out.getvalue()


def csv_cell(f: FieldDef, value: Any) -> str:
    """A value as `csv_cell_value` reads it back."""
    if value is None or value == [] or value == "":
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        plain = all(isinstance(v, str) and v and ";" not in v and v == v.strip() for v in value) and not str(
            value[0]
        ).startswith("[")
        return ";".join(value) if plain else orjson.dumps(value).decode()
    return str(value)


# --- writing a fixture set ----------------------------------------------------------------------

#: libyaml's safe dumper when PyYAML was built with it, else PyYAML's.
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: The file formats a fixture set's records may be written in.
RECORD_FORMATS = ("yaml", "csv")


def dump_yaml(data: Any, comment: str = "") -> str:
    """YAML as the fixture files are written: keys in the given order, Unicode as it is."""
    text = yaml.dump(
        data,
        Dumper=YAML_DUMPER,
        sort_keys=False,
        allow_unicode=True,
        width=1_000_000,
        default_flow_style=False,
    )
    head = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
    return head + text


def fixture_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A record's JSON (as the API serves it) in the form of `records/<slug>.yaml`."""
    return {
        "id": rec["id"],
        "created_at": rec["created_at"],
        "updated_at": rec.get("updated_at", rec["created_at"]),
        "created_by": rec["created_by"],
        "field_values": {k: v for k, v in (rec.get("field_values") or {}).items() if v not in (None, "", [])},
    }


def write_fixture_set(
    directory: str | Path,
    objects: list[dict[str, Any]],
    users: list[dict[str, Any]],
    keys: list[dict[str, Any]],
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    record_format: str = "yaml",
    comment: str = "",
) -> list[Path]:
    """Write a fixture folder: `objects` as `objects.yaml` holds them, `records` by object id in
    their JSON form, as `records/<slug>.yaml` or `.csv`. Record files of other slugs or formats
    already there are removed, so the folder holds one fixture set. Returns the files written."""
    if record_format not in RECORD_FORMATS:
        raise ValueError(f"record_format: expected one of {list(RECORD_FORMATS)}, got {record_format!r}")
    root = Path(directory)
    folder = root / "records"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        if old.suffix in (".yaml", ".yml", ".json", ".csv", ".jsonl") and old.is_file():
            old.unlink()
    written = []
    for name, top, items in (
        ("objects", "objects", objects),
        ("users", "users", users),
        ("api_keys", "keys", keys),
    ):
        path = root / f"{name}.yaml"
        path.write_text(dump_yaml({top: items}, comment), encoding="utf-8")
        written.append(path)
    loader = _Loader(root)
    defs = loader._objects()  # the schema just written, to read each field's type
    if loader.problems:
        raise FixtureError(loader.problems)
    for oid, recs in records.items():
        obj = defs[oid]
        if record_format == "csv":
            path = folder / f"{obj.slug}.csv"
            path.write_text(records_csv(obj, recs), encoding="utf-8", newline="")
        else:
            path = folder / f"{obj.slug}.yaml"
            path.write_text(
                dump_yaml({"records": [fixture_record(r) for r in recs]}, comment), encoding="utf-8"
            )
        written.append(path)
    return written
