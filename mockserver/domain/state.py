"""Export and import of a Backend's whole state (objects and fields, records, clock) as JSON data."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .auth import User
from .backend import Backend
from .clock import Clock, format_timestamp, from_us, to_us
from .errors import ValidationFailed
from .fixtures import Admitted, _Loader
from .records import Record
from .schema import ObjectDef, parse_instant_operand

VERSION = 1
#: The range of times the clock may take (datetime's, with a day to spare at each end).
MIN_US = to_us(datetime(1, 1, 2, tzinfo=UTC))
MAX_US = to_us(datetime(9999, 12, 30, tzinfo=UTC))


def export_state(backend: Backend) -> dict[str, Any]:
    """The whole state as JSON data; `import_state` of it restores it."""
    objects = backend.list_objects()
    return {
        "version": VERSION,
        "clock": export_clock(backend.clock),
        "objects": [obj.to_json() for obj in objects],
        "records": [rec.to_json() for obj in objects for rec in backend.stores[obj.id].records.values()],
    }


def export_clock(clock: Clock) -> dict[str, Any]:
    now = clock.now_us()
    out: dict[str, Any] = {"now": format_timestamp(now), "frozen": clock.frozen}
    if not clock.frozen:
        # Milliseconds are plenty, and keep an untouched clock's offset at exactly 0.
        out["offset_seconds"] = round((now - time.time_ns() // 1000) / 1000) / 1000
    return out


def import_state(backend: Backend, data: Any) -> tuple[int, int]:
    """Replace the backend's objects, records and (when given) clock with `data`.

    Everything is checked first, by the fixture set's rules; any problem raises
    `ValidationFailed` listing every one with its path, and changes nothing.
    Returns the number of objects and records imported.
    """
    checker = _StateChecker(data, backend.users)
    objects, records = checker.check()
    clock = checker.clock
    if checker.problems:
        raise ValidationFailed([{"field": path, "message": message} for _, path, message in checker.problems])
    backend.replace_state(objects, records)
    if clock is not None:
        now_us, frozen, offset_us = clock
        if frozen:
            backend.clock.freeze(True)
            backend.clock.set(from_us(now_us))
        else:
            backend.clock.freeze(False)
            target = now_us if offset_us is None else time.time_ns() // 1000 + offset_us
            backend.clock.set(from_us(target))
    return len(objects), len(records)


class _StateChecker(_Loader):
    """The fixture loader's checks, run on one JSON document instead of a folder of files."""

    def __init__(self, data: Any, users: dict[str, User]) -> None:
        super().__init__(Path("."))
        self.data = data if isinstance(data, dict) else {}
        self.users = users
        self.file = "state"
        self.clock: tuple[int, bool, int | None] | None = None
        if not isinstance(data, dict):
            self.fail("", "expected a JSON object with 'objects' and 'records'")

    def check(self) -> tuple[list[ObjectDef], list[Record]]:
        version = self.data.get("version", VERSION)
        if version != VERSION:
            self.fail("version", f"expected {VERSION}, got {version!r}")
        self._clock(self.data.get("clock"))
        objects = self._objects()
        records = self._records(objects, self.users)
        return list(objects.values()), records

    def _read(self, stem: str, top: str, required: bool = True) -> list[Any]:
        self.file = "state"
        items = self.data.get(top)
        if not isinstance(items, list):
            if items is not None or required:
                self.fail(top, f"expected a list of {top}")
            return []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{top}[{i}]", "expected an object")
        return [item if isinstance(item, dict) else {} for item in items]

    def _records(self, objects: dict[str, ObjectDef], users: dict[str, User]) -> list[Record]:
        loaded: list[Admitted] = []
        seen: dict[str, str] = {}  # id -> object id, for references and duplicates
        for i, item in enumerate(self._read("records", "records")):
            where = f"records[{i}]"
            object_id = item.get("object_id")
            obj = objects.get(object_id) if isinstance(object_id, str) else None
            if obj is None:
                self.fail(
                    f"{where}.object_id", f"expected the id of an object of this state, got {object_id!r}"
                )
                continue
            self._admit(item, where, obj, item, seen, loaded, users)
        return self._check_records(loaded, users, seen)

    def _clock(self, clock: Any) -> None:
        if clock is None:
            return
        if not isinstance(clock, dict):
            self.fail("clock", "expected an object with 'now' and 'frozen'")
            return
        raw = clock.get("now")
        now = parse_instant_operand(raw) if isinstance(raw, str) else None
        if now is None or not MIN_US <= now <= MAX_US:
            self.fail("clock.now", f"expected a datetime like 2024-01-15T10:30:00Z, got {raw!r}")
            return
        frozen = clock.get("frozen", False)
        if not isinstance(frozen, bool):
            self.fail("clock.frozen", f"expected true or false, got {frozen!r}")
            return
        offset = clock.get("offset_seconds")
        offset_us: int | None = None
        if offset is not None:
            if not isinstance(offset, int | float) or isinstance(offset, bool):
                self.fail("clock.offset_seconds", f"expected a number, got {offset!r}")
                return
            offset_us = round(offset * 1_000_000)
            if not MIN_US <= time.time_ns() // 1000 + offset_us <= MAX_US:
                self.fail("clock.offset_seconds", "puts the clock outside the years 1 to 9999")
                return
        self.clock = (now, frozen, offset_us)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash at any moment leaves the old file or the new one,
    never a mix: a temporary file beside it, flushed to disk, then renamed over it."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename is durable once the directory entry is on disk too (POSIX only).
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
