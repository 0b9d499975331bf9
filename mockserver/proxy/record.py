"""`--record DIR`: what the traffic showed, written as a fixture folder `serve --fixtures` loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..conformance.client import Exchange
from ..domain.fixtures import FixtureError, load_fixtures, write_fixture_set
from ..domain.schema import parse_datetime_us
from .clientside import Request

#: The key the recorded set ships for local use (the bundled set's documented admin key).
LOCAL_KEY = "kantos_admin_local_key"
LOCAL_ADMIN = "user_recorded_admin"
FIELD_KEYS = ("id", "name", "slug", "type", "required", "unique", "options", "default_value")
COMMENT = "Recorded by kantos-mock proxy --record: what the traffic showed."


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
            if not all(isinstance(rec.get(k), str) for k in ("object_id", "created_at", "created_by")):
                continue  # not a record a fixture file can hold (the checks report the shape)
            old = self.records.get(rec["id"])
            if old is None or _updated(old) <= _updated(rec):
                self.records[rec["id"]] = rec

    def _tenant(self, tenant: str) -> bool:
        if self.tenant is None:
            self.tenant = tenant
        return tenant == self.tenant

    def write(self) -> str:
        """Write the folder; returns a one-line summary, or raises FixtureError when it does not load."""
        objects = list(self.objects.values())
        known_objects = {o["id"] for o in objects}
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
            records_by_object[oid].append({**rec, "field_values": values})
        write_fixture_set(
            self.directory,
            [_fixture_object(o) for o in objects],
            [
                {
                    "id": uid,
                    "name": "Recorded admin" if uid == LOCAL_ADMIN else uid,
                    "email": f"{uid.removeprefix('user_').replace('_', '.')}@recorded.example",
                    "admin": uid == LOCAL_ADMIN,
                }
                for uid in sorted(users)
            ],
            [
                {
                    "key": LOCAL_KEY,
                    "name": "Local admin key (recorded set)",
                    "type": "server",
                    "user": LOCAL_ADMIN,
                    "plan": "enterprise",
                }
            ],
            records_by_object,
            comment=COMMENT,
        )
        fs = load_fixtures(self.directory)  # the same check as `kantos-mock check-fixtures`
        note = f"; {dropped} reference value(s) to records not seen were left out" if dropped else ""
        return (
            f"recorded {len(fs.objects)} object(s) and {len(fs.records)} record(s) in {self.directory}{note}"
        )


def _fixture_object(doc: dict[str, Any]) -> dict[str, Any]:
    """An object as an answer showed it, in the form of objects.yaml."""
    return {
        "id": doc["id"],
        "name": doc.get("name"),
        "slug": doc.get("slug") or doc["id"].removeprefix("obj_"),
        **({"icon": doc["icon"]} if doc.get("icon") else {}),
        "fields": [
            {k: f[k] for k in FIELD_KEYS if k in f and f[k] is not None}
            for f in sorted(doc["fields"], key=lambda f: f.get("position", 0))
        ],
    }


def _updated(doc: dict[str, Any]) -> int:
    value = doc.get("updated_at")
    us = parse_datetime_us(value) if isinstance(value, str) else None
    return us if us is not None else -1


__all__ = ["FixtureError", "Recorder"]
