"""Records, and how each field's stored value orders and compares (shared by sort, filters, indexes)."""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .clock import format_timestamp
from .schema import STRING_EMPTYABLE, FieldDef, FieldType, ObjectDef, parse_datetime_us


class Record:
    """One record, held as the JSON the API serves (`json`) plus the fields the engine reads
    without decoding it (id, object, times, creator). Records never change: an update makes a
    new one.

    Its field values (`values`, only the non-empty fields) are decoded from `json` when asked
    for, not kept beside it: a dict of values cost about 800 bytes a record more than the JSON
    (the dict and an object per value), which at 1,000,000 records was most of the RSS. Indexes
    keep the keys they need, so queries do not ask; the two records whose values were asked for
    last are remembered with them (see `values`)."""

    __slots__ = ("created_at", "created_by", "id", "json", "object_id", "updated_at")

    def __init__(
        self,
        id: str,
        object_id: str,
        values: dict[str, Any],
        created_at: int,
        updated_at: int,
        created_by: str,
    ) -> None:
        created = format_timestamp(created_at)
        # A new record's two times are the same: format once.
        updated = created if updated_at == created_at else format_timestamp(updated_at)
        self._fill(id, object_id, values, created_at, updated_at, created_by, created, updated)
        _remember(self, values)  # a write's index updates read them next

    def _fill(
        self,
        id: str,
        object_id: str,
        values: dict[str, Any],
        created_at: int,
        updated_at: int,
        created_by: str,
        created_text: str,
        updated_text: str,
    ) -> None:
        self.id = id
        self.object_id = object_id
        self.created_at = created_at
        self.updated_at = updated_at
        self.created_by = created_by
        #: The record as the API serves it, encoded once when the record is made: a read sends
        #: these bytes as they are. Encoding on each read cost more than anything else in a
        #: page of 25, mostly in cache misses.
        self.json: bytes = encode(id, object_id, values, created_text, updated_text, created_by)

    @classmethod
    def loaded(
        cls,
        id: str,
        object_id: str,
        values: dict[str, Any],
        created_at: int,
        updated_at: int,
        created_by: str,
        created_text: str,
        updated_text: str,
    ) -> Record:
        """A record as the fixture loader makes it: `created_text` and `updated_text` are the two
        times as `format_timestamp` writes them (the loader has them already)."""
        rec = cls.__new__(cls)
        rec._fill(id, object_id, values, created_at, updated_at, created_by, created_text, updated_text)
        return rec

    @property
    def values(self) -> dict[str, Any]:
        """The non-empty field values, decoded from `json`. Do not change the dict: it may be
        shared with the next caller."""
        recent = _recent
        values: dict[str, Any]
        if recent[0] is self:
            values = recent[1]
        elif recent[2] is self:
            values = recent[3]
        else:
            values = orjson.loads(self.json)["field_values"]
            _remember(self, values)
        return values

    def to_json(self) -> dict[str, Any]:
        return orjson.loads(self.json)  # type: ignore[no-any-return]

    def replace(self, values: dict[str, Any], updated_at: int) -> Record:
        """This record with new values and `updated_at` (its `created_at` text taken from its JSON)."""
        rec = Record.__new__(Record)
        json = self.json
        # The last `"created_at":"` is the key's: inside a value, a quote is written `\"`.
        start = json.rfind(b'"created_at":"') + 14
        created = json[start : json.index(b'"', start)].decode()
        updated = created if updated_at == self.created_at else format_timestamp(updated_at)
        rec._fill(
            self.id, self.object_id, values, self.created_at, updated_at, self.created_by, created, updated
        )
        _remember(rec, values)
        return rec


#: The two records whose values were asked for (or made) last, with them: `(record, values,
#: record, values)`, most recent first. An index reads several fields of one record in a row (a
#: composite index's group and sort keys), and an update reads the old record's and the new one's
#: in turn. One tuple, replaced whole, so a reader never pairs a record with another's values.
_recent: tuple[Any, ...] = (None, None, None, None)


def _remember(rec: Record, values: dict[str, Any]) -> None:
    global _recent
    _recent = (rec, values, _recent[0], _recent[1])


def encode(
    id: str, object_id: str, values: dict[str, Any], created: str, updated: str, created_by: str
) -> bytes:
    """A record's JSON, as the API serves it."""
    body = orjson.dumps(
        {
            "id": id,
            "object_id": object_id,
            "field_values": values,
            "created_at": created,
            "updated_at": updated,
            "created_by": created_by,
        }
    )
    # A copy: the bytes orjson returns keep the buffer they were written in (kilobytes), and
    # 100,000 of them took 390 MB; the copy is its own size.
    return bytes(memoryview(body))


#: Bulk work on this many records or more hands the memory it freed back (`release_memory`).
BULK = 100_000


def release_memory() -> None:
    """Give the C allocator's free memory back to the system (glibc's `malloc_trim`; elsewhere
    nothing). Loading or indexing a million records frees about as many temporary objects, and
    large tables (the ids seen so far, lists grown by doubling) that glibc keeps: 30-50 MB of RSS
    each time at 1,000,000 records."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


#: The kind of a filterable/sortable key, which decides how values compare.
class Kind:
    NUMBER = "number"  # number, currency
    STRING = "string"  # text-like; sorts lowercased
    CHOICE = "choice"  # status, dropdown: ordered options, case-folded equality
    BOOLEAN = "boolean"
    DATE = "date"  # YYYY-MM-DD strings compare in calendar order
    INSTANT = "instant"  # datetime fields and created_at/updated_at: microseconds UTC
    MULTI = "multi"  # multi_select


@dataclass(frozen=True, slots=True)
class KeySpec:
    """Everything the engine needs about one filter/sort key of an object."""

    slug: str
    kind: str
    field: FieldDef | None  # None for the system fields
    type_name: str  # field type, or the system field's own name
    get: Callable[[Record], Any]  # the stored value, None when empty
    sort_key: Callable[[Any], Any]  # stored (non-empty) value -> orderable key


#: Types that compare as text and sort lowercased: the string types, except the choices (status,
#: dropdown), which sort by their options' order.
_TEXT_LIKE = STRING_EMPTYABLE - {FieldType.STATUS, FieldType.DROPDOWN}


def _lower(v: str) -> str:
    return v.lower()


def _ident(v: Any) -> Any:
    return v


def _instant(v: str) -> int:
    us = parse_datetime_us(v)
    assert us is not None, v  # stored values were validated on write
    return us


def key_spec(obj: ObjectDef, slug: str) -> KeySpec | None:
    """The KeySpec for a field slug or system field of `obj`, or None when there is none. Made
    once per field: every query asks for its filter and sort keys."""
    known: KeySpec | None = obj.key_specs.get(slug)
    if known is not None and known.field is obj.by_slug.get(slug):
        return known
    spec = _key_spec(obj, slug)
    if spec is not None:
        obj.key_specs[slug] = spec
    return spec


def _key_spec(obj: ObjectDef, slug: str) -> KeySpec | None:
    if slug == "id":
        return KeySpec("id", Kind.STRING, None, "id", lambda r: r.id, _ident)
    if slug == "created_by":
        return KeySpec("created_by", Kind.STRING, None, "created_by", lambda r: r.created_by, _lower)
    if slug == "created_at":
        return KeySpec("created_at", Kind.INSTANT, None, "created_at", lambda r: r.created_at, _ident)
    if slug == "updated_at":
        return KeySpec("updated_at", Kind.INSTANT, None, "updated_at", lambda r: r.updated_at, _ident)
    f = obj.by_slug.get(slug)
    if f is None:
        return None

    def get(r: Record, _s: str = slug) -> Any:
        return r.values.get(_s)

    t = f.type
    kind: str
    sort_key: Callable[[Any], Any]
    if t in (FieldType.NUMBER, FieldType.CURRENCY):
        kind, sort_key = Kind.NUMBER, _ident
    elif t in _TEXT_LIKE:
        kind, sort_key = Kind.STRING, _lower
    elif t in (FieldType.STATUS, FieldType.DROPDOWN):
        position = f.choice_position
        kind, sort_key = Kind.CHOICE, lambda v: position.get(v, len(position))
    elif t == FieldType.BOOLEAN:
        kind, sort_key = Kind.BOOLEAN, int
    elif t == FieldType.DATE:
        kind, sort_key = Kind.DATE, _ident
    elif t == FieldType.DATETIME:
        kind, sort_key = Kind.INSTANT, _instant
    else:  # multi_select: by its values joined
        kind, sort_key = Kind.MULTI, lambda v: ",".join(v).lower()
    return KeySpec(slug, kind, f, str(t), get, sort_key)
