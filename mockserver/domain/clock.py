"""Injectable time: the system clock, or a controllable one that can freeze, set and advance."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time plus an offset; may be frozen. Times are integer microseconds (UTC)."""

    def __init__(self, start: datetime | None = None, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._offset_us = 0
        self._frozen_at: int | None = None
        if start is not None:
            self.set(start)
        if frozen:
            self.freeze(True)

    @staticmethod
    def _wall_us() -> int:
        return time.time_ns() // 1000

    def now_us(self) -> int:
        frozen = self._frozen_at
        return frozen if frozen is not None else self._wall_us() + self._offset_us

    def now(self) -> datetime:
        return from_us(self.now_us())

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self, frozen: bool) -> None:
        with self._lock:
            if frozen and self._frozen_at is None:
                self._frozen_at = self._wall_us() + self._offset_us
            elif not frozen and self._frozen_at is not None:
                self._offset_us = self._frozen_at - self._wall_us()
                self._frozen_at = None

    def set(self, when: datetime) -> None:
        target = to_us(when)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = target
            else:
                self._offset_us = target - self._wall_us()

    def advance(self, seconds: float) -> None:
        delta = round(seconds * 1_000_000)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
            else:
                self._offset_us += delta

    def reset(self) -> None:
        with self._lock:
            self._offset_us = 0
            self._frozen_at = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def format_timestamp(us: int) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, with a fraction only when there is one (milliseconds if enough)."""
    global _last_formatted
    if _last_formatted[0] == us:  # writes within one second share their `updated_at`
        return _last_formatted[1]
    text = _format(us)
    _last_formatted = (us, text)
    return text


#: The last time `format_timestamp` wrote, and its text.
_last_formatted: tuple[int, str] = (-1, "")


def _format(us: int) -> str:
    seconds, fraction = divmod(us, 1_000_000)
    t = time.gmtime(seconds)
    base = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if not fraction:
        return base + "Z"
    if fraction % 1000 == 0:
        return f"{base}.{fraction // 1000:03d}Z"
    return f"{base}.{fraction:06d}Z"


def whole_seconds(us: int) -> int:
    return us - us % 1_000_000
