"""Rate limits: the fixed window each answer's headers describe, and a limited key driven into a 429."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from ..domain.schema import FieldType
from .client import KEY_VARIABLE, Client, Exchange, dumps
from .mockclock import ServerClock
from .oracle import is_empty
from .report import Finding, Report
from .shapes import error_shape_problem
from .suite import Suite

WINDOW = (
    "rate-limits.window",
    "rate-limits",
    "the rate-limit headers describe a fixed window: the limit stays, remaining falls with each counted "
    "request, reset is the end of a clock minute or UTC day",
)
TOO_MANY = (
    "rate-limits.429",
    "rate-limits",
    "over the limit: 429 RATE_LIMITED with Retry-After, whole seconds until the window resets",
)
NO_QUOTA = (
    "rate-limits.429-no-quota",
    "rate-limits",
    "429s use no quota: after the window resets the key has its whole allowance less what succeeded",
)
NO_CHANGE = ("rate-limits.429-changes-nothing", "rate-limits", "a POST answered 429 creates nothing")

#: The reproducers of the limited key's findings read it from this variable.
LIMITED_VARIABLE = "KANTOS_LIMITED_KEY"
#: The kit drives a key into a 429 only when at most this many requests are left in its window.
MAX_DRIVE = 1000
#: Seconds the kit waits for a window to reset on a server whose clock it cannot move.
MAX_WAIT = 65.0
#: Findings of one kind the window scan keeps per key (one broken header repeats on every answer).
MAX_WINDOW_FINDINGS = 12


@dataclass(frozen=True, slots=True)
class Rate:
    """An answer's X-RateLimit-Limit, -Remaining and -Reset."""

    limit: int
    remaining: int
    reset: int

    def __str__(self) -> str:
        return f"limit {self.limit}, remaining {self.remaining}, reset {self.reset}"


def rate_of(ex: Exchange) -> Rate | None:
    """The answer's rate-limit headers, or None when one is missing or not an integer."""
    values = []
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        try:
            values.append(int((ex.header(name) or "").strip()))
        except ValueError:
            return None
    return Rate(*values)


def _counted(ex: Exchange) -> bool:
    """Whether the answer used quota: every answered request but a 401 or a 429."""
    return ex.status not in (0, 401, 429)


def scan_windows(
    report: Report,
    log: list[Exchange],
    curl: Callable[[Exchange], str] | None = None,
    detail: tuple[str, ...] = (),
) -> None:
    """Checks one key's answers, in the order they came: within a window (the same reset), the limit
    stays, remaining falls by at least one per counted request (other clients may share the key) and
    never rises, and the reset is the end of a clock minute (or of a UTC day, also a minute's end)."""
    show = curl or (lambda ex: ex.curl(report.base_url))
    answers = [
        ex
        for ex in log
        if ex.path.startswith("/api/") and ex.auth == "key" and ex.status and ex.status != 401
    ]
    # reset -> (the window's last answer, its rate, counted answers up to it)
    seen: dict[int, tuple[Exchange, Rate, int]] = {}
    counted = found = 0
    for ex in answers:
        rate = rate_of(ex)
        if rate is None:  # protocol.rate-limit-headers reports it; it is not counted here either
            continue
        if _counted(ex):
            counted += 1
        report.ran(*WINDOW)
        finding: Finding | None = None
        previous = seen.get(rate.reset)
        if found >= MAX_WINDOW_FINDINGS:  # no more are kept: build none (each carries curl commands)
            pass
        elif rate.reset % 60:
            finding = Finding(
                "X-RateLimit-Reset at the end of the window: a clock minute or UTC day (a multiple of 60)",
                f"X-RateLimit-Reset {rate.reset}, {rate.reset % 60} s past a minute ({rate})",
                ex,
                curl=show(ex),
            )
        elif previous is not None:
            before, was, at = previous
            used = counted - at  # counted requests after `before`, this one included
            bound = was.remaining - used
            if was.limit != rate.limit and rate.reset % 86_400:
                # At a day's last minute both windows end together, and the headers may switch.
                finding = Finding(
                    f"X-RateLimit-Limit {was.limit}, as in the window's earlier answer",
                    f"X-RateLimit-Limit {rate.limit} ({rate})",
                    ex,
                    curl=f"{show(before)}; {show(ex)}",
                )
            elif _counted(ex) and bound < 0:
                finding = Finding(
                    f"429 RATE_LIMITED: the window (reset {rate.reset}) had {was.remaining} request(s) left "
                    f"and {used - 1} more were served before this one",
                    f"{ex.status}, {rate}",
                    ex,
                    curl=f"{show(before)}; {show(ex)}",
                )
            elif rate.remaining > max(bound, 0):
                finding = Finding(
                    f"X-RateLimit-Remaining at most {max(bound, 0)}: {was.remaining} at the window's "
                    f"previous answer, less {used} counted request(s) since",
                    f"X-RateLimit-Remaining {rate.remaining} ({rate})",
                    ex,
                    curl=f"{show(before)}; {show(ex)}",
                )
        if finding is not None:
            found += 1
            finding.detail += detail
            report.fail(*WINDOW, finding)
        seen[rate.reset] = (ex, rate, counted)


class NoWaitClient(Client):
    """A client that hands back each 429 as it came: the limited key's checks want them."""

    def _wait_for_limit(self, ex: Exchange) -> bool:
        return False


@dataclass(slots=True)
class Sent:
    """One request of the limited key, with the server's time before and after it (slack included)."""

    ex: Exchange
    lo: float
    hi: float

    @property
    def rate(self) -> Rate | None:
        return rate_of(self.ex)

    @property
    def counted(self) -> bool:
        return _counted(self.ex)


class RateLimitChecks(Suite):
    """`--limited-key`: drive a key on a small plan into a 429 and check what the 429 does."""

    def run_rate_limits(self) -> None:
        key = self.options.limited_key
        if not key:
            return
        if key == self.client.api_key:
            self.report.note(
                "--limited-key is the key of the run: the kit needs that key for its other checks, so it "
                "does not drive it into a 429 (pass another key of the same server)"
            )
            return
        self.report.progress("rate limits: driving the limited key into a 429")
        limited = NoWaitClient(self.client.base_url, key, notify=self.report.progress)
        run = LimitedKey(self, limited, ServerClock.of(self.client))
        try:
            run.run()
        finally:
            scan_windows(self.report, limited.log, run.curl, (run.export,))
            limited.close()


class LimitedKey:
    """One drive of the limited key: its requests with their times, and the checks on them."""

    def __init__(self, suite: Suite, client: Client, clock: ServerClock) -> None:
        self.suite = suite
        self.report = suite.report
        self.client = client
        self.clock = clock
        self.base_url = suite.client.base_url
        self.sent: list[Sent] = []
        self.reset_steps: list[str] = []  # what the reproducer does to end a window

    @property
    def slack(self) -> float:
        """How far the kit's idea of the server's time may be off: the mock's is read, others' guessed."""
        return 0.05 + self.clock.uncertainty if self.clock.mock else 1.0

    # --- requests --------------------------------------------------------------------------------

    def send(self, method: str, path: str, **kwargs: Any) -> Sent:
        lo = self.clock.now() - self.slack
        ex = self.client.request(method, path, **kwargs)
        sent = Sent(ex, lo, self.clock.now() + self.slack)
        self.sent.append(sent)
        return sent

    def probe(self) -> Sent:
        """A cheap request that uses one unit of quota."""
        return self.send("GET", f"/api/crm/objects/{self.suite.obj.id}")

    def curl(self, ex: Exchange, headers: bool = True) -> str:
        """The request as curl, with the limited key from $KANTOS_LIMITED_KEY."""
        return ex.curl(self.base_url, headers=headers).replace(
            f'"X-Api-Key: ${KEY_VARIABLE}"', f'"X-Api-Key: ${LIMITED_VARIABLE}"'
        )

    def exhaust_curl(self, count: int) -> str:
        """A loop that uses up `count` requests of the window, printing each status."""
        one = self.curl(self.sent[0].ex, headers=False)
        return f"for i in $(seq {count}); do {one} -o /dev/null -w '%{{http_code}} '; done; echo"

    export = f"export {LIMITED_VARIABLE}=<the key passed with --limited-key>"

    def finding(self, expected: str, received: str, sent: Sent, steps: list[str], *detail: str) -> Finding:
        return Finding(
            expected,
            received,
            sent.ex,
            detail=[*detail, self.export],
            curl="; ".join(steps),
        )

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> None:
        if self.clock.mock:
            # The mock's clock runs on: a drive begun late in a minute would end that window part-way
            # (the day's may bind in the next one, hiding what the 429s did), depending on the second
            # the run reached. Begun with a minute, the drive's few dozen requests all fall in it.
            self.clock.start_of_minute()
        first = self.probe()
        if first.ex.status in (401, 403):
            self.report.problem(
                f"--limited-key: the server refused the key ({first.ex.summary(160)}): pass a server key "
                "on a small plan"
            )
            return
        if first.ex.status == 429:
            reset = first.rate.reset if first.rate else None
            if reset is None or not self.wait_for_reset(reset, "the limited key is over its limit already"):
                return
            first = self.probe()
        rate = first.rate
        if first.ex.status != 200 or rate is None:
            self.report.note(
                f"--limited-key: the first request answered {first.ex.summary(120)} without usable "
                "X-RateLimit headers; the 429 checks did not run"
            )
            return
        if rate.remaining > MAX_DRIVE:
            self.report.note(
                f"--limited-key: {rate.remaining} requests are left in the key's window; the kit drives a "
                f"key into a 429 only when at most {MAX_DRIVE} are left (pass a key on a small plan)"
            )
            return
        outcome = self.round(first, checks=True)
        if outcome is not None and self.clock.mock:
            # The headers after the reset describe a window (the UTC day's) that began before the
            # kit's first request, so what was used of it is unknown: end it too, and drive again.
            self.report.progress("rate limits: ending the day's window on the mock's clock, and again")
            if self.wait_for_reset(outcome, "the day's window"):
                again = self.probe()
                if again.ex.status == 200 and again.rate is not None:
                    outcome = self.round(again, checks=False)
        if outcome is not None:
            self.report.note(
                "--limited-key: after the window reset, the headers describe a window that began before the "
                "kit's first request (the UTC day's), so the kit cannot tell how much of it 429s used: "
                "rate-limits.429-no-quota is unchecked"
            )

    def round(self, first: Sent, *, checks: bool) -> int | None:
        """Use up the window, check the 429, end the window, check what is left.

        Returns the reset of a window the kit could not judge (None when it judged or cannot).
        """
        assert first.rate is not None
        served = [first]
        over: Sent | None = None
        budget, last = first.rate.remaining + 5, first.rate
        tries = windows = 0
        while tries < budget:
            sent = self.probe()
            tries += 1
            if sent.ex.status == 429:
                over = sent
                break
            if sent.ex.status != 200:
                self.report.problem(f"--limited-key: {sent.ex.method} {sent.ex.path}: {sent.ex.summary(160)}")
                return None
            served.append(sent)
            rate = sent.rate
            if rate is not None and rate.reset > last.reset:  # a new window began meanwhile
                windows += 1
                if windows > 1:  # the kit cannot use a window up before the next one begins
                    self.report.note(
                        f"--limited-key: {tries} requests did not use up the key's window before it reset, "
                        "twice; the 429 checks did not run (a key on a smaller plan, or a faster link, helps)"
                    )
                    return None
                budget = tries + rate.remaining + 5
            last = rate or last
        if over is None:
            self.report.ran(*TOO_MANY)
            self.report.fail(
                *TOO_MANY,
                self.finding(
                    f"a 429 once the window's requests are used up ({first.rate.remaining} left at the first "
                    "request)",
                    f"{tries} more requests, all served; the last: {last}",
                    served[-1],
                    [self.exhaust_curl(first.rate.limit + 1)],
                ),
            )
            return None
        if checks:
            self.check_429(over, served, first.rate.limit)
        limited = [over]
        if checks:
            post = self.check_write(over, first.rate.limit)
            if post is not None:
                limited.append(post)
        for _ in range(2):
            limited.append(self.probe())
        if checks:
            self.check_still_limited(over, limited, first.rate.limit)
        return self.check_no_quota(over, served, limited, first.rate.limit)

    # --- the 429 -------------------------------------------------------------------------------

    def check_429(self, over: Sent, served: list[Sent], limit: int) -> None:
        self.report.ran(*TOO_MANY)
        ex = over.ex
        steps = [self.exhaust_curl(limit), self.curl(ex)]
        body = ex.json if isinstance(ex.json, dict) else {}
        shape = error_shape_problem(ex)
        if body.get("code") != "RATE_LIMITED" or shape is not None:
            self.report.fail(
                *TOO_MANY,
                self.finding(
                    '429 {"error", "code": "RATE_LIMITED", "status": 429, "details"}',
                    ex.summary(200) + (f"\n({shape})" if shape else ""),
                    over,
                    steps,
                ),
            )
        raw = ex.header("retry-after")
        rate = over.rate or next((s.rate for s in reversed(served) if s.rate is not None), None)
        if raw is None or not raw.strip().isdigit():
            self.report.fail(
                *TOO_MANY,
                self.finding(
                    "a Retry-After header: whole seconds until the window resets",
                    "no Retry-After header" if raw is None else f"Retry-After: {raw}",
                    over,
                    steps,
                ),
            )
            return
        retry = int(raw)
        if rate is None:
            return
        lo, hi = over.lo, over.hi
        date = _date(ex)
        if not self.clock.mock and date is not None:  # the server's own clock, to the second
            lo, hi = min(lo, date), max(hi, date + 1)
        # Whole seconds from when the 429 was sent to the window's end, either way rounded, give or take one.
        least, most = max(1, int(rate.reset - hi) - 1), int(rate.reset - lo) + 2
        if not least <= retry <= most:
            self.report.fail(
                *TOO_MANY,
                self.finding(
                    f"Retry-After between {least} and {most}: the window ends at {rate.reset} "
                    f"(X-RateLimit-Reset), {rate.reset - (lo + hi) / 2:.0f} s after the 429",
                    f"Retry-After: {raw}",
                    over,
                    steps,
                ),
            )

    def check_still_limited(self, over: Sent, limited: list[Sent], limit: int) -> None:
        """Each request sent after the 429, in the same window, is a 429 too."""
        reset = over.rate.reset if over.rate else None
        for sent in limited[1:]:
            rate = sent.rate
            if sent.ex.status == 429 or (rate is not None and reset is not None and rate.reset != reset):
                continue
            self.report.fail(
                *TOO_MANY,
                self.finding(
                    "429 RATE_LIMITED: the window's requests are used up",
                    sent.ex.summary(160),
                    sent,
                    [self.exhaust_curl(limit), self.curl(sent.ex)],
                ),
            )

    def check_write(self, over: Sent, limit: int) -> Sent | None:
        """A POST sent while limited: a 429 that creates nothing (checked with the run's own key)."""
        suite = self.suite
        text = next(
            (f for f in suite.obj.fields if f.type in (FieldType.TEXT, FieldType.LONG_TEXT, FieldType.EMAIL)),
            None,
        )
        if text is None:
            self.report.note(
                "--limited-key: the object has no text field to mark a record with; no POST sent"
            )
            return None
        values = {k: v for k, v in suite.setup.values_for(suite.scratch, 981).items() if not is_empty(v)}
        mark = f"kit429-{suite.setup.marker}-{secrets.token_hex(4)}"
        values[text.slug] = f"{mark}@example.com" if text.type == FieldType.EMAIL else mark
        post = self.send(
            "POST", "/api/crm/record", json_body={"object_id": suite.obj.id, "field_values": values}
        )
        if post.ex.status in (200, 201):
            rid = post.ex.json.get("id") if isinstance(post.ex.json, dict) else None
            if isinstance(rid, str):
                suite.client.request("DELETE", f"/api/crm/record/{rid}")
            return post
        if post.ex.status != 429:
            return post
        found = suite.client.query(
            {"object_id": suite.obj.id, "filters": {text.slug: {"$eq": values[text.slug]}}, "per_page": 10}
        )
        data = found.json.get("data") if isinstance(found.json, dict) else None
        if found.status != 200 or not isinstance(data, list):
            self.report.note(f"--limited-key: could not look for the POST's record: {found.summary(120)}")
            return post
        self.report.ran(*NO_CHANGE)
        if data:
            ids = [r.get("id") for r in data if isinstance(r, dict)]
            self.report.fail(
                *NO_CHANGE,
                self.finding(
                    f"no record with {text.slug} = {dumps(values[text.slug])}: the POST was answered 429",
                    f"{len(data)} such record(s): {', '.join(map(str, ids))}",
                    post,
                    [self.exhaust_curl(limit), self.curl(post.ex), found.curl(self.base_url)],
                    f"the POST's answer: {post.ex.summary(160)}",
                ),
            )
            for rid in ids:
                suite.client.request("DELETE", f"/api/crm/record/{rid}")
        return post

    # --- after the window ---------------------------------------------------------------------

    def wait_for_reset(self, reset: int, why: str) -> bool:
        """Move past `reset`: the mock's clock forward, else a wait of at most MAX_WAIT seconds."""
        if self.clock.mock:
            ahead = reset - self.clock.now() + 0.2
            if self.clock.advance_to(reset):
                self.reset_steps.append(self.clock.advance_curl(self.base_url, ahead))
                return True
            self.report.note(f"--limited-key: the mock's clock did not move ({why})")
            return False
        wait = reset - self.clock.now() + 1.0
        if wait > MAX_WAIT:
            self.report.note(
                f"--limited-key: {why}; the window resets in {wait:.0f} s and the kit waits at most "
                f"{MAX_WAIT:.0f} s, so what follows the reset is unchecked"
            )
            return False
        self.report.progress(f"rate limits: waiting {max(wait, 0):.0f} s for the window to reset")
        time.sleep(max(wait, 0.0))
        self.reset_steps.append(f"sleep {max(1, round(wait))}")
        return True

    def check_no_quota(self, over: Sent, served: list[Sent], limited: list[Sent], limit: int) -> int | None:
        rate = over.rate or next((s.rate for s in reversed(served) if s.rate is not None), None)
        if rate is None:
            return None
        target = rate.reset
        after: Sent | None = None
        for attempt in range(3):
            if not self.wait_for_reset(target, "after the 429"):
                return None
            after = self.probe()
            later = after.rate
            if after.ex.status != 429:
                break
            if later is not None and later.reset > target:  # a longer window binds now (the day's)
                target = later.reset
            elif not self.clock.mock and attempt == 0:
                time.sleep(2.0)  # the server's clock may be a little behind the kit's
        assert after is not None
        steps = [self.exhaust_curl(limit), *(self.curl(s.ex, headers=False) for s in limited)]
        steps += [*self.reset_steps[-1:], self.curl(after.ex)]
        if after.ex.status == 429:
            self.report.ran(*NO_QUOTA)
            self.report.fail(
                *NO_QUOTA,
                self.finding(
                    f"the key served again once its window ended (X-RateLimit-Reset {target})",
                    after.ex.summary(160),
                    after,
                    steps,
                ),
            )
            return None
        now = after.rate
        if now is None:
            return None
        expected = self.expected_remaining(after, now)
        if expected is None:
            return now.reset
        self.report.ran(*NO_QUOTA)
        if now.remaining != expected:
            spent = sum(1 for s in limited if s.ex.status == 429)
            self.report.fail(
                *NO_QUOTA,
                self.finding(
                    f"X-RateLimit-Remaining {expected}: the window's allowance less what was served in it",
                    f"X-RateLimit-Remaining {now.remaining} ({now})",
                    after,
                    steps,
                    f"{spent} request(s) were answered 429 after the window's requests were used up; "
                    f"{expected - now.remaining} unit(s) of quota more than were served are gone",
                ),
            )
        return None

    def expected_remaining(self, after: Sent, now: Rate) -> int | None:
        """What the window `now` describes has left, from the kit's own requests; None when unknown.

        The kit knows a window's use when it began after the kit's first request (assuming no other
        client uses the key meanwhile), or when it saw the window before.
        """
        to_end = now.reset - after.hi
        if to_end > 60 + self.slack:
            length = 86_400
        elif now.reset % 86_400:
            length = 60
        else:  # a minute or a day ending at midnight: cannot tell which
            return None
        start = now.reset - length
        if self.sent[0].hi < start:
            used = 0
            for s in self.sent:
                if not s.counted or s.hi < start or s.lo >= now.reset:
                    continue
                if s.lo < start:  # sent too close to the window's start to tell which side it fell on
                    return None
                used += 1
            return now.limit - used
        earlier = [
            s
            for s in self.sent[:-1]
            if (r := s.rate) is not None and r.limit == now.limit and r.reset == now.reset
        ]
        if earlier:
            last = earlier[-1]
            assert last.rate is not None
            since = self.sent[self.sent.index(last) + 1 :]
            return last.rate.remaining - sum(1 for s in since if s.counted)
        return None


def _date(ex: Exchange) -> float | None:
    raw = ex.header("date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
