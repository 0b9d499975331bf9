"""The server's time as the kit sees it: the mock's clock when its control API answers, else wall time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .client import Client, Exchange


def parse_instant(text: Any) -> float | None:
    """Unix seconds of an ISO 8601 timestamp with Z or an offset; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


class ServerClock:
    """Estimates the server's time without a request each time, and moves the mock's clock.

    Against the mock (`GET /_mock/clock` answers), time is the mock's: the kit moves it forward to
    end a rate-limit window or make a webhook retry due instead of waiting. Elsewhere it is the
    wall clock, and `advance` is not available.
    """

    def __init__(
        self, client: Client, mock: bool, offset: float = 0.0, frozen_at: float | None = None
    ) -> None:
        self.client = client
        self.mock = mock
        self._offset = offset  # server time - wall time, for a running clock
        self._frozen_at = frozen_at
        #: How far `now()` may be off the mock's time: half the round trip that read it.
        self.uncertainty = 0.0

    @classmethod
    def of(cls, client: Client) -> ServerClock:
        """The mock's clock when the server is the mock, else the wall clock."""
        clock = cls(client, mock=True)
        if clock.sync():
            return clock
        return cls(client, mock=False)

    def sync(self) -> bool:
        """Read the mock's clock again; False when the server has no `/_mock/clock`."""
        return self._read(lambda: self.client.request("GET", "/_mock/clock")) is not None

    def _read(self, call: Callable[[], Exchange]) -> float | None:
        """Send a request `/_mock/clock` answers with its time, and keep that time; None on failure."""
        before = time.time()
        ex = call()
        after = time.time()
        body = ex.json if isinstance(ex.json, dict) else {}
        now = parse_instant(body.get("now"))
        if ex.status != 200 or now is None:
            return None
        if body.get("frozen") is True:
            self._frozen_at, self.uncertainty = now, 0.0
        else:
            self._frozen_at = None
            self._offset = now - (before + after) / 2
            self.uncertainty = (after - before) / 2
        return now

    def now(self, wall: float | None = None) -> float:
        """The server's time (Unix seconds) at wall-clock time `wall` (default: now)."""
        if self._frozen_at is not None:
            return self._frozen_at
        return (time.time() if wall is None else wall) + self._offset

    def advance(self, seconds: float) -> bool:
        """Move the mock's clock forward; False when this is not the mock or it refused."""
        return self._advance(seconds) is not None

    def _advance(self, seconds: float) -> float | None:
        """Move the mock's clock forward; the time it answers with after the move (None: refused)."""
        if not self.mock:
            return None
        body = {"advance": round(max(seconds, 0.0), 3)}
        return self._read(lambda: self.client.request("POST", "/_mock/clock", json_body=body))

    def advance_to(self, instant: float, margin: float = 0.2) -> bool:
        """Move the mock's clock to just after `instant` (when it is not already there).

        Judged on the time the mock answers with, not on the kit's estimate: on a loaded machine
        the estimate can be off by more than the margin, and a clock left short of `instant` puts
        the next request in the window the kit meant to end.
        """
        if not self.mock:
            return False
        now = self._read(lambda: self.client.request("GET", "/_mock/clock"))
        for _ in range(5):
            if now is None:
                return False
            if now >= instant:
                return True
            now = self._advance(instant - now + margin)
        return now is not None and now >= instant

    def start_of_minute(self, margin: float = 0.2) -> bool:
        """Move the mock's clock to just after the next clock minute begins.

        A window the kit drives then holds the whole drive however slow the machine (unless it takes
        a minute), instead of ending part-way on whatever second the run reached.
        """
        if not self.mock:
            return False
        return self.advance_to((int(self.now()) // 60 + 1) * 60, margin)

    def advance_curl(self, base_url: str, seconds: float) -> str:
        """The reproducer's step that does what `advance` did."""
        body = f'{{"advance": {max(1, round(seconds))}}}'
        return (
            f"curl -sS -X POST {base_url}/_mock/clock -H 'Content-Type: application/json' --data-raw '{body}'"
        )
