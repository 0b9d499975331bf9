"""Loads a fixture folder and checks all of it; every problem is named by file and path.

Layout (YAML or JSON; `.yaml`, `.yml` or `.json`):
    objects.yaml          objects: [{id?, name, slug?, icon?, fields: [{name, type, ...}]}]
    users.yaml            users: [{id, name, email, admin?}]
    api_keys.yaml         keys: [{key, name?, type, user, plan, per_minute?, per_day?}]
    records/<slug>.yaml   records: [{id, created_at, updated_at?, created_by, field_values}]
    records/<slug>.jsonl  the same records, one JSON object a line (large sets: read as a stream)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from .auth import KEY_TYPES, PLANS, ApiKey, User
from .backend import FixtureSet
from .records import Record
from .schema import (
    EMPTY,
    NOT_UNIQUE_TYPES,
    RESERVED_SLUGS,
    FieldDef,
    FieldType,
    ObjectDef,
    check_value,
    parse_datetime_us,
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
    return loader.load()


#: Records between two progress reports.
PROGRESS_EVERY = 100_000


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[tuple[str, str, str]] = []
        self.file = ""
        self.progress: Callable[[str], None] | None = None

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
        return FixtureSet(list(objects.values()), users, keys, records)

    def _read(self, stem: str, top: str, required: bool = True) -> list[Any]:
        for ext in (".yaml", ".yml", ".json"):
            path = self.root / f"{stem}{ext}"
            if path.is_file():
                return self._read_file(path, top)
        self.file = f"{stem}.yaml"
        if required:
            self.fail("", f"missing: add {stem}.yaml (or .json) with a top-level {top!r} list")
        return []

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

    def _str(self, item: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
        value = item.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "is required")
            return None
        if not isinstance(value, str) or not value:
            self.fail(f"{path}.{key}", f"expected a non-empty string, got {value!r}")
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
        loaded: list[tuple[str, str, ObjectDef, dict[str, Any] | bytes]] = []
        seen: dict[str, str] = {}  # id -> object id, for references and duplicates
        folder = self.root / "records"
        files = (
            sorted(p for p in folder.glob("*") if p.suffix in (".yaml", ".yml", ".json", ".jsonl"))
            if folder.is_dir()
            else []
        )
        for path in files:
            if path.suffix == ".jsonl":
                self._read_jsonl(path, by_slug.get(path.stem), seen, loaded)
                continue
            items = self._read_file(path, "records")
            obj = by_slug.get(path.stem)
            if obj is None:
                self.fail("", f"no object with slug {path.stem!r} in objects.yaml")
                continue
            for i, item in enumerate(items):
                rid = self._str(item, "id", f"records[{i}]")
                if rid is None:
                    continue
                if rid in seen:
                    self.fail(f"records[{i}].id", f"duplicate record id {rid!r}")
                    continue
                seen[rid] = obj.id
                loaded.append((self.file, f"records[{i}]", obj, item))
        return self._check_records(loaded, users, seen)

    def _read_jsonl(
        self,
        path: Path,
        obj: ObjectDef | None,
        seen: dict[str, str],
        loaded: list[tuple[str, str, ObjectDef, dict[str, Any] | bytes]],
    ) -> None:
        """A `.jsonl` records file, read a line at a time. Each line is parsed here for its id (the
        checks need every id first, for references) and kept as its bytes, a fifth of the size
        of the parsed record; `_check_records` parses it again. Blank lines are skipped."""
        self.file = str(path.relative_to(self.root))
        if obj is None:
            self.fail("", f"no object with slug {path.stem!r} in objects.yaml")
            return
        count = 0
        try:
            with path.open("rb") as stream:
                for number, line in enumerate(stream, start=1):
                    if not line.strip():
                        continue
                    where = f"line {number}"
                    try:
                        item = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        self.fail(where, f"not JSON: {exc}")
                        continue
                    if not isinstance(item, dict):
                        self.fail(
                            where, f"expected a JSON object (one record a line), got {type(item).__name__}"
                        )
                        continue
                    rid = self._str(item, "id", where)
                    if rid is None:
                        continue
                    if rid in seen:
                        self.fail(f"{where}.id", f"duplicate record id {rid!r}")
                        continue
                    seen[rid] = obj.id
                    loaded.append((self.file, where, obj, line))
                    count += 1
                    if self.progress is not None and count % PROGRESS_EVERY == 0:
                        self.progress(f"{self.file}: {count:,} records read")
        except OSError as exc:
            self.fail("", f"cannot be read: {exc}")
        if self.progress is not None and count >= PROGRESS_EVERY:
            self.progress(f"{self.file}: {count:,} records read")

    def _check_records(
        self,
        loaded: Sequence[tuple[str, str, ObjectDef, dict[str, Any] | bytes]],
        users: dict[str, User],
        seen: dict[str, str],
    ) -> list[Record]:
        """Check each `(file, path, object, item)`; `seen` maps every record id to its object."""
        records: list[Record] = []
        unique: dict[tuple[str, str, Any], str] = {}

        def record_exists(object_id: str, record_id: str) -> bool:
            return seen.get(record_id) == object_id

        def user_exists(user_id: str) -> bool:
            return user_id in users

        for file, where, obj, item in loaded:
            self.file = file
            # A JSON Lines record is still its line's bytes (checked as JSON when it was read).
            values = orjson.loads(item) if isinstance(item, bytes) else item
            rec = self._record(values, where, obj, users, unique, record_exists, user_exists)
            if rec is not None:
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
        unique: dict[tuple[str, str, Any], str],
        record_exists: Callable[[str, str], bool],
        user_exists: Callable[[str], bool],
    ) -> Record | None:
        ok = True
        stamps: dict[str, int] = {}
        for key in ("created_at", "updated_at"):
            raw = item.get(key, item.get("created_at") if key == "updated_at" else None)
            us = parse_datetime_us(raw) if isinstance(raw, str) else None
            if us is None:
                self.fail(f"{path}.{key}", f"expected a datetime like 2024-01-15T10:30:00Z, got {raw!r}")
                ok = False
            else:
                stamps[key] = us
        if ok and stamps["updated_at"] < stamps["created_at"]:
            self.fail(f"{path}.updated_at", "is before created_at")
            ok = False
        created_by = self._str(item, "created_by", path)
        if created_by is not None and created_by not in users:
            self.fail(f"{path}.created_by", f"unknown user {created_by!r}")
            ok = False
        raw_values = item.get("field_values", {})
        if not isinstance(raw_values, dict):
            self.fail(f"{path}.field_values", "expected a mapping")
            return None
        values: dict[str, Any] = {}
        for slug, raw in raw_values.items():
            f = obj.by_slug.get(slug)
            if f is None:
                self.fail(f"{path}.field_values.{slug}", f"unknown field of {obj.id}")
                ok = False
                continue
            value, message = check_value(f, raw, record_exists, user_exists)
            if message:
                self.fail(f"{path}.field_values.{slug}", message)
                ok = False
            elif value is not EMPTY:
                values[slug] = value
                if f.unique:
                    ukey = (obj.id, slug, value.lower() if f.type == FieldType.EMAIL else value)
                    if ukey in unique:
                        self.fail(
                            f"{path}.field_values.{slug}",
                            f"{value!r} is unique but also used by {unique[ukey]}",
                        )
                        ok = False
                    unique[ukey] = str(item.get("id"))
        for f in obj.fields:
            if f.required and f.slug not in values and f.slug not in raw_values:
                self.fail(f"{path}.field_values.{f.slug}", "is required")
                ok = False
        if not ok or created_by is None:
            return None
        return Record(str(item["id"]), obj.id, values, stamps["created_at"], stamps["updated_at"], created_by)
