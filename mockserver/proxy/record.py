"""`--record DIR`: what the traffic showed, written as a fixture folder `serve --fixtures` loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..conformance.client import Exchange
from ..domain.fixtures import FixtureError, load_fixtures
from ..domain.schema import parse_datetime_us
from .clientside import Request

#: The key the recorded set ships for local use (the bundled set's documented admin key).
LOCAL_KEY = "kantos_admin_local_key"
LOCAL_ADMIN = "user_recorded_admin"
FIELD_KEYS = ("id", "name", "slug", "type", "required", "unique", "options", "default_value")


class Recorder:
    """Objects and fields from the answers (and the proxy's own fetches), and the latest version
    of each record an answer showed; deleted records are left out. One tenant: the first seen."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.tenant: str | None = None
        self.objects: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()

    def object_doc(self, tenant: str, doc: dict[str, Any]) -> None:
        if self._tenant(tenant) and isinstance(doc.get("id"), str) and isinstance(doc.get("fields"), list):
            self.objects[doc["id"]] = doc

    def missing_targets(self, tenant: str) -> list[str]:
        """Objects that recorded reference fields point at, not recorded yet."""
        if not self._tenant(tenant):
            return []
        out = []
        for doc in list(self.objects.values()):
            for f in doc["fields"]:
                target = (f.get("options") or {}).get("object_id") if isinstance(f, dict) else None
                if f.get("type") == "reference" and isinstance(target, str) and target not in self.objects:
                    out.append(target)
        return out

    def saw(self, tenant: str, operation: str, ex: Exchange, req: Request) -> None:
        if not self._tenant(tenant):
            return
        doc = ex.json
        if operation == "deleteRecord" and 200 <= ex.status < 300:
            rid = req.path_params.get("record_id", "")
            self.deleted.add(rid)
            self.records.pop(rid, None)
            return
        if not isinstance(doc, dict) or not 200 <= ex.status < 300:
            return
        if operation in ("getObject", "createObject"):
            self.object_doc(tenant, doc)
        docs = doc.get("data") if operation == "queryRecords" else [doc]
        if operation not in ("queryRecords", "getRecord", "createRecord", "updateRecord"):
            return
        for rec in docs if isinstance(docs, list) else []:
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or rec["id"] in self.deleted:
                continue
            old = self.records.get(rec["id"])
            if old is None or _updated(old) <= _updated(rec):
                self.records[rec["id"]] = rec

    def _tenant(self, tenant: str) -> bool:
        if self.tenant is None:
            self.tenant = tenant
        return tenant == self.tenant

    def write(self) -> str:
        """Write the folder; returns a one-line summary, or raises FixtureError when it does not load."""
        root = self.directory
        (root / "records").mkdir(parents=True, exist_ok=True)
        objects = list(self.objects.values())
        known_objects = {o["id"] for o in objects}
        slugs = {o["id"]: o.get("slug") or o["id"].removeprefix("obj_") for o in objects}
        records_by_object: dict[str, list[dict[str, Any]]] = {oid: [] for oid in known_objects}
        kept_ids = {rid for rid, r in self.records.items() if r.get("object_id") in known_objects}
        users = {LOCAL_ADMIN}
        dropped = 0
        fields_of = {o["id"]: {f.get("slug"): f for f in o["fields"] if isinstance(f, dict)} for o in objects}
        for rid in sorted(kept_ids, key=lambda r: (str(self.records[r].get("created_at")), r)):
            rec = self.records[rid]
            oid = rec["object_id"]
            values = {}
            for slug, value in (rec.get("field_values") or {}).items():
                f = fields_of[oid].get(slug, {})
                if f.get("type") == "reference" and value not in kept_ids:
                    dropped += 1  # a record the traffic never showed: the set cannot hold the link
                    continue
                if f.get("type") == "user" and isinstance(value, str):
                    users.add(value)
                values[slug] = value
            if isinstance(rec.get("created_by"), str):
                users.add(rec["created_by"])
            records_by_object[oid].append(
                {
                    "id": rid,
                    "created_at": rec.get("created_at"),
                    "updated_at": rec.get("updated_at"),
                    "created_by": rec.get("created_by"),
                    "field_values": values,
                }
            )
        _dump(
            root / "objects.yaml",
            {
                "objects": [
                    {
                        "id": o["id"],
                        "name": o.get("name"),
                        "slug": slugs[o["id"]],
                        **({"icon": o["icon"]} if o.get("icon") else {}),
                        "fields": [
                            {k: f[k] for k in FIELD_KEYS if k in f and f[k] is not None}
                            for f in sorted(o["fields"], key=lambda f: f.get("position", 0))
                        ],
                    }
                    for o in objects
                ]
            },
        )
        _dump(
            root / "users.yaml",
            {
                "users": [
                    {
                        "id": uid,
                        "name": "Recorded admin" if uid == LOCAL_ADMIN else uid,
                        "email": f"{uid.removeprefix('user_').replace('_', '.')}@recorded.example",
                        "admin": uid == LOCAL_ADMIN,
                    }
                    for uid in sorted(users)
                ]
            },
        )
        _dump(
            root / "api_keys.yaml",
            {
                "keys": [
                    {
                        "key": LOCAL_KEY,
                        "name": "Local admin key (recorded set)",
                        "type": "server",
                        "user": LOCAL_ADMIN,
                        "plan": "enterprise",
                    }
                ]
            },
        )
        for old in (root / "records").glob("*.yaml"):
            old.unlink()
        for oid, recs in records_by_object.items():
            _dump(root / "records" / f"{slugs[oid]}.yaml", {"records": recs})
        fs = load_fixtures(root)  # the same check as `kantos-mock check-fixtures`
        note = f"; {dropped} reference value(s) to records not seen were left out" if dropped else ""
        return f"recorded {len(fs.objects)} object(s) and {len(fs.records)} record(s) in {root}{note}"


def _updated(doc: dict[str, Any]) -> int:
    value = doc.get("updated_at")
    us = parse_datetime_us(value) if isinstance(value, str) else None
    return us if us is not None else -1


def _dump(path: Path, data: Any) -> None:
    text = "# Recorded by kantos-mock proxy --record: what the traffic showed.\n"
    text += yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")


__all__ = ["FixtureError", "Recorder"]
