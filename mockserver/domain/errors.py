"""Domain errors: each carries the Kantos status, code, message and details."""

from __future__ import annotations

from typing import Any


def describe(value: Any) -> str:
    """How error messages name a value that was received: `null`, `a boolean`, `a number`,
    `the string 'x'` (short strings are quoted), `an array`, `an object`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class KantosError(Exception):
    """An error the API reports as `{"error", "code", "status", "details"}`."""

    status: int = 500
    code: str = "INTERNAL"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "code": self.code,
            "status": self.status,
            "details": self.details,
        }


class Unauthorized(KantosError):
    status, code = 401, "UNAUTHORIZED"


class Forbidden(KantosError):
    status, code = 403, "FORBIDDEN"


class NotFound(KantosError):
    status, code = 404, "NOT_FOUND"


class MethodNotAllowed(KantosError):
    status, code = 405, "METHOD_NOT_ALLOWED"

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(
            f"Method {method} is not allowed here; use {', '.join(allowed)}.",
            {"method": method, "allowed": allowed},
        )
        self.allowed = allowed


class Conflict(KantosError):
    status, code = 409, "CONFLICT"


class PayloadTooLarge(KantosError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(KantosError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class BadRequest(KantosError):
    """400: the request's form is wrong. `details` names `param` or `field`, and `reason`."""

    status, code = 400, "BAD_REQUEST"

    @classmethod
    def param(cls, param: str, reason: str, **extra: Any) -> BadRequest:
        return cls(
            f"Invalid query parameter '{param}': {reason}",
            {"param": param, "reason": reason, **extra},
        )

    @classmethod
    def field(cls, field: str, reason: str, **extra: Any) -> BadRequest:
        return cls(f"Invalid field '{field}': {reason}", {"field": field, "reason": reason, **extra})


class ValidationFailed(KantosError):
    """422: field values break the object's schema; lists every violation."""

    status, code = 422, "VALIDATION_ERROR"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"Validation failed: {summary}{more}", {"errors": errors})
        self.errors = errors


class RateLimited(KantosError):
    status, code = 429, "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int, details: dict[str, Any]) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after
