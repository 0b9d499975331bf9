"""The kit's rate-limit checks: the window scan, and a limited key driven into a 429 (--limited-key)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kantos_support import ADMIN_KEY, SERVER_KEY
from kit_support import Kit, call_app, read_body
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mockserver import create_app
from mockserver.conformance import mockclock, ratelimits
from mockserver.conformance.client import Client, Exchange
from mockserver.conformance.mockclock import ServerClock
from mockserver.conformance.ratelimits import scan_windows
from mockserver.conformance.report import Report
from mockserver.domain.auth import ApiKey, RateLimiter, RateStatus
from mockserver.domain.errors import RateLimited
from mockserver.server import MockServer

LIMITED = SERVER_KEY
RATE_CHECKS = (
    "rate-limits.window",
    "rate-limits.429",
    "rate-limits.429-no-quota",
    "rate-limits.429-changes-nothing",
)

# --- the window scan on its own ------------------------------------------------------------------


def answer(remaining: int, reset: int = 1_800_000_000, limit: int = 20, status: int = 200) -> Exchange:
    ex = Exchange("GET", "/api/crm/objects", [], None, None, "key", status=status)
    ex.headers = {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(reset),
    }
    return ex


def window_findings(*log: Exchange) -> list[str]:
    report = Report("http://kantos.test")
    scan_windows(report, list(log))
    check = report.checks.get("rate-limits.window")
    assert check is not None and check.runs == len(log)
    return [f"{f.expected} | {f.received}" for f in check.findings]


def test_a_window_whose_remaining_falls_with_each_request_passes() -> None:
    assert window_findings(answer(19), answer(18), answer(15), answer(0), answer(0, status=429)) == []


def test_other_clients_may_use_the_key_meanwhile_but_remaining_never_rises() -> None:
    assert window_findings(answer(19), answer(12)) == []  # others used some: fine
    (finding,) = window_findings(answer(19), answer(19))
    assert "at most 18" in finding and "X-RateLimit-Remaining 19" in finding
    (finding,) = window_findings(answer(5, status=429), answer(6, status=429))
    assert "at most 5" in finding


def test_a_request_served_when_the_window_had_none_left_is_a_finding() -> None:
    (finding,) = window_findings(answer(0), answer(0))
    assert finding.startswith("429 RATE_LIMITED: the window (reset 1800000000) had 0 request(s) left")


def test_a_new_window_starts_afresh_and_ends_on_a_clock_minute() -> None:
    assert window_findings(answer(0), answer(19, reset=1_800_000_060)) == []
    (finding,) = window_findings(answer(19, reset=1_800_000_007))
    assert "a multiple of 60" in finding and "7 s past a minute" in finding
    (finding,) = window_findings(answer(19), answer(18, limit=30))
    assert "X-RateLimit-Limit 20" in finding


def test_401s_and_answers_without_headers_are_not_judged() -> None:
    no_headers = Exchange("GET", "/api/crm/objects", [], None, None, "key", status=200)
    unauthorized = answer(19, status=401)
    report = Report("http://kantos.test")
    scan_windows(report, [no_headers, unauthorized])
    assert "rate-limits.window" not in report.checks


# --- broken servers -----------------------------------------------------------------------------


class OnResponse:
    """ASGI middleware that rewrites the headers of the mock's /api answers."""

    def __init__(self, app: ASGIApp, change: Callable[[int, dict[bytes, bytes]], None]) -> None:
        self.app = app
        self.change = change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def changed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                self.change(message["status"], headers)
                message = {**message, "headers": list(headers.items())}
            await send(message)

        await self.app(scope, receive, changed)


def drop_retry_after(status: int, headers: dict[bytes, bytes]) -> None:
    headers.pop(b"retry-after", None)


def retry_after_is_the_reset(status: int, headers: dict[bytes, bytes]) -> None:
    if status == 429:  # X-RateLimit-Reset's Unix time, where seconds belong
        headers[b"retry-after"] = headers[b"x-ratelimit-reset"]


def remaining_never_falls(status: int, headers: dict[bytes, bytes]) -> None:
    if b"x-ratelimit-limit" in headers:
        headers[b"x-ratelimit-remaining"] = b"%d" % (int(headers[b"x-ratelimit-limit"]) - 1)


class AppliesWhenLimited:
    """Runs a POST /api/crm/record answered 429 anyway (as another key), and still answers 429."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/api/crm/record"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        status, headers, raw = await call_app(self.app, scope, body)
        if status == 429:
            others = [(k, v) for k, v in scope["headers"] if k != b"x-api-key"]
            await call_app(
                self.app, {**scope, "headers": [*others, (b"x-api-key", ADMIN_KEY.encode())]}, body
            )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})


class CountsRejected(RateLimiter):
    """A limiter that counts the requests it refuses, so 429s use quota."""

    def hit(self, key: ApiKey, now_s: int) -> RateStatus:
        try:
            return super().hit(key, now_s)
        except RateLimited:
            window = self._windows[key.key]
            window[1] += 1
            window[3] += 1
            raise


#: The kit's steps these tests run (the whole battery runs in test_conformance_kit.py and below).
ONLY = ("rate-limits",)


class NeverLimits(RateLimiter):
    """A limiter that counts and reports, but never refuses."""

    def hit(self, key: ApiKey, now_s: int) -> RateStatus:
        try:
            return super().hit(key, now_s)
        except RateLimited:
            return self.peek(key, now_s)


@pytest.fixture
def serve() -> Iterator[Callable[..., MockServer]]:
    started: list[MockServer] = []

    def start(*, middleware: Any = None, limiter: type[RateLimiter] | None = None, **key: int) -> MockServer:
        app = create_app(seed=3)
        if middleware is not None:
            app.add_middleware(*middleware)
        mock = MockServer(app=app).start()
        started.append(mock)
        mock.set_key(LIMITED, **key)
        if limiter is not None:
            mock.backend.limiter = limiter()
        return mock

    yield start
    for mock in started:
        mock.stop()


@pytest.mark.parametrize("per_day", [None, 30], ids=["minute-binds", "the-day-binds-after-the-minute"])
def test_the_limited_key_checks_pass_against_the_mock(
    serve: Callable[..., MockServer], tmp_path: Path, per_day: int | None
) -> None:
    mock = serve(per_minute=20, **({"per_day": per_day} if per_day else {}))
    kit = Kit(mock.url, tmp_path, only=ONLY, limited_key=LIMITED)
    assert kit.status == 0, kit.output
    for check in RATE_CHECKS:
        assert kit.checked(check), f"{check} not checked\n{kit.output}"
    if per_day:  # the day's window showed after the minute's reset: the kit ended the day and drove again
        assert "ending the day's window on the mock's clock" in kit.output


def test_a_429_for_the_day_is_waited_out_on_the_mocks_clock(
    serve: Callable[..., MockServer], tmp_path: Path
) -> None:
    mock = serve(per_minute=50, per_day=15)  # the day's window binds from the first request
    kit = Kit(mock.url, tmp_path, only=ONLY, limited_key=LIMITED)
    assert kit.status == 0, kit.output
    for check in RATE_CHECKS:
        assert kit.checked(check), f"{check} not checked\n{kit.output}"


def test_the_days_last_minute_is_judged_on_a_frozen_clock(
    serve: Callable[..., MockServer], tmp_path: Path
) -> None:
    # After the 429's window the key is in the day's last minute, which ends with the day: the
    # headers cannot say which window they describe, so the kit ends that one on the mock's clock
    # too and drives the key again in a fresh day. (The kit begins the drive with the next minute,
    # the day's last but one.)
    mock = serve(per_minute=20)
    midnight = (int(time.time()) // 86_400 + 1) * 86_400
    mock.clock.freeze(datetime.fromtimestamp(midnight - 130, UTC))
    kit = Kit(mock.url, tmp_path, only=ONLY, limited_key=LIMITED)
    assert kit.status == 0, kit.output
    for check in RATE_CHECKS:
        assert kit.checked(check), f"{check} not checked\n{kit.output}"
    assert "ending the day's window on the mock's clock" in kit.output
    assert mock.clock.frozen


class SlowLink:
    """A slow machine, simulated: each request of the limited key takes `step` seconds more, on the
    mock's clock and in the time the kit reads it against alike (no wall-clock time passes)."""

    def __init__(self, mock: MockServer, monkeypatch: pytest.MonkeyPatch, step: float) -> None:
        self.extra = 0.0
        monkeypatch.setattr(mockclock, "time", self)
        monkeypatch.setattr(mock.backend.clock, "_wall_us", lambda: round(self.time() * 1_000_000))
        limiter = mock.backend.limiter
        hit = limiter.hit

        def slow(key: ApiKey, now_s: int) -> RateStatus:
            try:
                return hit(key, now_s)
            finally:
                if key.key == LIMITED:
                    self.extra += step

        monkeypatch.setattr(limiter, "hit", slow)

    def time(self) -> float:
        return time.time() + self.extra


@pytest.mark.parametrize("second", [0, 40, 59], ids=lambda s: f"at-second-{s}")
@pytest.mark.parametrize("broken", [False, True], ids=["mock", "429s-use-quota"])
def test_the_verdict_does_not_depend_on_the_second_the_drive_begins(
    serve: Callable[..., MockServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    second: int,
    broken: bool,
) -> None:
    # The drive spans most of a minute (1.5 s a request). Begun at whatever second the run had
    # reached (40 here), it crossed into the next minute, where the day's window bound: its 429 was
    # the day's, and 429s using quota went unseen. The kit begins it with a minute instead.
    mock = serve(per_minute=20, per_day=30, **({"limiter": CountsRejected} if broken else {}))
    noon = (int(time.time()) // 86_400 + 1) * 86_400 + 43_200
    SlowLink(mock, monkeypatch, step=1.5)
    mock.clock.set(datetime.fromtimestamp(noon + second, UTC))
    kit = Kit(mock.url, tmp_path, only=ONLY, limited_key=LIMITED)
    if broken:
        assert kit.status == 1, kit.output
        (rule,) = kit.failing()
        assert kit.case("rate-limits.429-no-quota").get("name") == rule, kit.output
        text = kit.failure("rate-limits.429-no-quota")
        assert "expected: X-RateLimit-Remaining 9:" in text, text
        assert "received: X-RateLimit-Remaining 6 (limit 30," in text, text
    else:
        assert kit.status == 0, kit.output
        for check in RATE_CHECKS:
            assert kit.checked(check), f"{check} not checked\n{kit.output}"


def test_the_kit_moves_the_mocks_clock_past_an_instant_whatever_its_estimate(
    serve: Callable[..., MockServer],
) -> None:
    # The kit estimates the mock's time from one read; on a loaded machine that estimate can be off
    # by more than the margin it moves past an instant by. It judges the move on the mock's answer.
    mock = serve(per_minute=20)
    client = Client(mock.url, ADMIN_KEY)
    try:
        for frozen in (True, False):
            if frozen:
                mock.clock.freeze()
            else:
                mock.clock.unfreeze()
            clock = ServerClock.of(client)
            assert clock.mock
            target = mock.clock.now().timestamp() + 30
            if frozen:
                assert clock._frozen_at is not None
                clock._frozen_at += 5  # believes the mock 5 s ahead of where it is
            else:
                clock._offset += 5
            assert clock.advance_to(target, margin=0.2)
            assert mock.clock.now().timestamp() >= target
            if frozen:  # where the drive begins: the next minute's first fraction of a second
                before = mock.clock.now().timestamp()
                assert clock.start_of_minute()
                now = mock.clock.now().timestamp()
                assert now // 60 == before // 60 + 1 and now % 60 < 1, (before, now)
    finally:
        client.close()


def test_without_the_mocks_clock_the_429_is_judged_on_the_wall_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server the kit cannot move time on: Retry-After is checked against the wall clock and the
    # server's Date header, and a window that ends later than the kit waits is left unchecked.
    monkeypatch.setattr(ratelimits, "MAX_WAIT", 0.0)
    with MockServer(seed=3, control=False) as mock:
        mock.set_key(LIMITED, per_minute=20)
        kit = Kit(mock.url, tmp_path, only=ONLY, limited_key=LIMITED)
    assert kit.status == 0, kit.output
    assert kit.checked("rate-limits.429") and kit.checked("rate-limits.429-changes-nothing")
    assert "the kit waits at most 0 s, so what follows the reset is unchecked" in kit.output
    assert kit.case("rate-limits.429-no-quota").find("skipped") is not None


def test_a_key_with_a_large_allowance_is_not_driven(serve: Callable[..., MockServer], tmp_path: Path) -> None:
    mock = serve(per_minute=5000)
    kit = Kit(mock.url, tmp_path, only=ONLY, limited_key=LIMITED)
    assert kit.status == 0, kit.output
    assert "only when at most 1000 are left" in kit.output
    assert kit.case("rate-limits.429").find("skipped") is not None
    assert len(mock.requests(path="/api/crm/objects/*")) < 50  # not thousands


BROKEN = [
    pytest.param(
        {"middleware": (OnResponse, drop_retry_after)},
        "rate-limits.429",
        ("expected: a Retry-After header", "received: no Retry-After header"),
        id="429-without-retry-after",
    ),
    pytest.param(
        {"middleware": (OnResponse, retry_after_is_the_reset)},
        "rate-limits.429",
        ("expected: Retry-After between ", "received: Retry-After: 1"),
        id="retry-after-not-the-window",
    ),
    pytest.param(
        {"limiter": CountsRejected, "per_day": 30},
        "rate-limits.429-no-quota",
        ("expected: X-RateLimit-Remaining 9:", "received: X-RateLimit-Remaining 6 (limit 30,"),
        id="429s-use-quota",
    ),
    pytest.param(
        {"middleware": (AppliesWhenLimited,)},
        "rate-limits.429-changes-nothing",
        ("expected: no record with name = ", "received: 1 such record(s): rec_"),
        id="post-applied-although-429",
    ),
    pytest.param(
        {"middleware": (OnResponse, remaining_never_falls)},
        "rate-limits.window",
        ("expected: X-RateLimit-Remaining at most 18", "received: X-RateLimit-Remaining 19"),
        id="remaining-does-not-fall",
    ),
]


@pytest.mark.parametrize("seed", [3, 5, 8], ids=lambda seed: f"seed-{seed}")
@pytest.mark.parametrize(("setup", "check", "texts"), BROKEN)
def test_a_broken_rate_limit_is_reported_with_a_reproducer(
    serve: Callable[..., MockServer],
    tmp_path: Path,
    setup: dict[str, Any],
    check: str,
    texts: tuple[str, ...],
    seed: int,
) -> None:
    mock = serve(per_minute=20, **setup)
    kit = Kit(mock.url, tmp_path, only=ONLY, seed=seed, limited_key=LIMITED)
    assert kit.status == 1, kit.output
    (rule,) = [r for r in kit.failing()]
    assert kit.case(check).get("name") == rule, kit.output
    text = kit.failure(check)
    for expected in texts:
        assert expected in text, text
    curls = kit.reproducers(check)
    assert curls and all(mock.url in c for c in curls), text
    assert '"X-Api-Key: $KANTOS_LIMITED_KEY"' in curls[0]
    assert "export KANTOS_LIMITED_KEY=<the key passed with --limited-key>" in text


def test_a_server_that_never_answers_429_is_reported_under_both_rules(
    serve: Callable[..., MockServer], tmp_path: Path
) -> None:
    mock = serve(per_minute=20, limiter=NeverLimits)
    kit = Kit(mock.url, tmp_path, only=ONLY, limited_key=LIMITED)
    assert kit.status == 1, kit.output
    assert kit.failing() == ["rate-limits.exceeded", "rate-limits.window"], kit.output
    text = kit.failure("rate-limits.429")
    assert "expected: a 429 once the window's requests are used up (19 left at the first request)" in text
    assert "received: 24 more requests, all served; the last: limit 20, remaining 0" in text
    assert "for i in $(seq 21); do curl" in text
    window = kit.failure("rate-limits.window")
    assert "expected: 429 RATE_LIMITED: the window (reset " in window and "had 0 request(s) left" in window
