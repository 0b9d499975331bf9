"""Users, API keys, their plans, and the fixed-window rate limiter that counts their requests."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Forbidden, RateLimited, Unauthorized

#: Requests per minute and per day for each plan (CONTRACT.md, "Rate limits").
PLANS: dict[str, tuple[int, int]] = {
    "free": (100, 10_000),
    "starter": (500, 50_000),
    "professional": (1_000, 100_000),
    "enterprise": (10_000, 1_000_000),  # "as configured": keys usually set their own
}
KEY_TYPES = ("server", "intake")


@dataclass(slots=True)
class User:
    id: str
    name: str
    email: str
    admin: bool = False


@dataclass(slots=True)
class ApiKey:
    key: str
    name: str
    type: str
    user: User
    plan: str
    per_minute: int
    per_day: int

    def redacted(self) -> str:
        return self.key[:6] + "…" if len(self.key) > 8 else "…"

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "name": self.name,
            "type": self.type,
            "user_id": self.user.id,
            "admin": self.user.admin,
            "plan": self.plan,
            "per_minute": self.per_minute,
            "per_day": self.per_day,
        }


def authenticate(keys: dict[str, ApiKey], presented: str | None) -> ApiKey:
    if not presented:
        raise Unauthorized(
            "Missing API key: send it in the X-Api-Key header",
            {"header": "X-Api-Key", "reason": "missing"},
        )
    key = keys.get(presented)
    if key is None:
        raise Unauthorized(
            "Unknown API key: check the X-Api-Key header",
            {"header": "X-Api-Key", "reason": "unknown key"},
        )
    return key


def require_server_key(key: ApiKey) -> None:
    if key.type != "server":
        raise Forbidden(
            f"An {key.type} key cannot call the CRM API; use a server key",
            {"key_type": key.type, "required": "server"},
        )


def require_admin(key: ApiKey) -> None:
    if not key.user.admin:
        raise Forbidden(
            "Creating objects or fields needs the API key of an admin user",
            {"user_id": key.user.id, "required": "admin"},
        )


@dataclass(slots=True)
class RateStatus:
    limit: int
    remaining: int
    reset: int  # Unix seconds when the window that binds opens anew

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The X-RateLimit-* headers every counted request gets, as ASGI wants them."""
        return [
            (b"x-ratelimit-limit", b"%d" % self.limit),
            (b"x-ratelimit-remaining", b"%d" % self.remaining),
            (b"x-ratelimit-reset", b"%d" % self.reset),
        ]


class RateLimiter:
    """Fixed windows: the clock minute and the UTC day, per key."""

    def __init__(self) -> None:
        # key -> [minute window start, count in it, day window start, count in it]
        self._windows: dict[str, list[int]] = {}

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, key: ApiKey, now_s: int) -> RateStatus:
        """Count one request, or raise RateLimited (which uses no quota)."""
        minute, day = now_s - now_s % 60, now_s - now_s % 86_400
        w = self._windows.get(key.key)
        if w is None:
            w = self._windows[key.key] = [minute, 0, day, 0]
        if w[0] != minute:
            w[0], w[1] = minute, 0
        if w[2] != day:
            w[2], w[3] = day, 0
        if w[1] >= key.per_minute or w[3] >= key.per_day:
            by_day = w[3] >= key.per_day
            reset = day + 86_400 if by_day else minute + 60
            limit = key.per_day if by_day else key.per_minute
            retry = max(1, reset - now_s)
            raise RateLimited(
                f"Rate limit of {limit} requests per {'day' if by_day else 'minute'} exceeded "
                f"for this key; retry in {retry} s",
                retry_after=retry,
                details={
                    "limit": limit,
                    "window": "day" if by_day else "minute",
                    "retry_after": retry,
                    "reset": reset,
                },
            )
        w[1] += 1
        w[3] += 1
        left_minute, left_day = key.per_minute - w[1], key.per_day - w[3]
        if left_day < left_minute:
            return RateStatus(key.per_day, left_day, day + 86_400)
        return RateStatus(key.per_minute, left_minute, minute + 60)

    def peek(self, key: ApiKey, now_s: int) -> RateStatus:
        """The headers a 429 carries: nothing left in the binding window."""
        minute, day = now_s - now_s % 60, now_s - now_s % 86_400
        w = self._windows.get(key.key, [minute, 0, day, 0])
        if w[2] == day and w[3] >= key.per_day:
            return RateStatus(key.per_day, 0, day + 86_400)
        return RateStatus(
            key.per_minute, max(0, key.per_minute - (w[1] if w[0] == minute else 0)), minute + 60
        )

    def usage(self, key: ApiKey, now_s: int) -> dict[str, dict[str, int]]:
        """The key's current minute and day windows: requests counted, left, and when each
        window opens anew (Unix seconds). Counts nothing."""
        minute, day = now_s - now_s % 60, now_s - now_s % 86_400
        w = self._windows.get(key.key, [minute, 0, day, 0])
        used_minute = w[1] if w[0] == minute else 0
        used_day = w[3] if w[2] == day else 0
        return {
            "minute": {
                "used": used_minute,
                "remaining": max(0, key.per_minute - used_minute),
                "reset": minute + 60,
            },
            "day": {"used": used_day, "remaining": max(0, key.per_day - used_day), "reset": day + 86_400},
        }
