"""Checks on single responses: error statuses and bodies, rate-limit headers, no 5xx, JSON."""

from __future__ import annotations

import time
from typing import Any

from .client import Exchange
from .report import Finding, Report

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}
ERROR_RULE = (
    'every error is {"error": "<message>", "code": "<CODE>", "status": <int>, "details": {...}}, '
    "with the code of its status (400 BAD_REQUEST, 401 UNAUTHORIZED, 403 FORBIDDEN, 404 NOT_FOUND, "
    "405 METHOD_NOT_ALLOWED, 409 CONFLICT, 415 UNSUPPORTED_MEDIA_TYPE, 422 VALIDATION_ERROR, …)"
)


def error_shape_problem(ex: Exchange) -> str | None:
    """What is wrong with an error response's body, or None when it has the Kantos shape."""
    body = ex.json
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    problems = []
    if set(body) != {"error", "code", "status", "details"}:
        problems.append(f"members {sorted(body)}")
    if not isinstance(body.get("error"), str) or not body.get("error"):
        problems.append("no error message")
    if body.get("code") != CODES.get(ex.status, body.get("code")) or not isinstance(body.get("code"), str):
        problems.append(f"code {body.get('code')!r} for status {ex.status}")
    if body.get("status") != ex.status:
        problems.append(f"status {body.get('status')!r} in the body, {ex.status} in the response")
    if not isinstance(body.get("details"), dict):
        problems.append("details is not an object")
    return "; ".join(problems) or None


def details(ex: Exchange) -> dict[str, Any]:
    body = ex.json
    d = body.get("details") if isinstance(body, dict) else None
    return d if isinstance(d, dict) else {}


def check_error(
    report: Report,
    ex: Exchange,
    status: int,
    code: str,
    check_id: str,
    title: str,
    *,
    names: str | None = None,
    rule: str = "",
    area: str = "errors",
) -> bool:
    """The response is `status` with `code`; when `names` is given, `details` mentions it."""
    report.ran(check_id, area, title, rule)
    expected = f"{status} {code}" + (f", details naming {names!r}" if names else "")
    body = ex.json if isinstance(ex.json, dict) else {}
    if (
        ex.status != status
        or (isinstance(body.get("code"), str) and body.get("code") != code)
        or (names is not None and error_shape_problem(ex) is None and not _mentions(details(ex), names))
    ):
        report.fail(check_id, area, title, Finding(expected, ex.summary(), ex), rule)
        return False
    return True


def _mentions(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return value == needle
    if isinstance(value, dict):
        return any(_mentions(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, needle) for v in value)
    return False


def scan(report: Report, log: list[Exchange]) -> None:
    """Checks every exchange of the run: error bodies, rate-limit headers, 5xx, JSON bodies."""
    api = [ex for ex in log if ex.path.startswith("/api/") and ex.status]
    _scan_error_shapes(report, api)
    _scan_rate_headers(report, api)
    _scan_server_errors(report, [ex for ex in log if ex.status >= 500 or not ex.status])
    _scan_json(report, api)


def _scan_error_shapes(report: Report, api: list[Exchange]) -> None:
    check = ("errors.shape", "errors", "error responses have the Kantos error body", ERROR_RULE)
    errors = [ex for ex in api if 400 <= ex.status < 500 and ex.method != "HEAD"]  # HEAD has no body
    report.ran(*check[:3], check[3], count=len(errors))
    bad = [(ex, p) for ex in errors if (p := error_shape_problem(ex)) is not None]
    # One example per status first, so the report shows how each kind of error is shaped.
    first: dict[int, tuple[Exchange, str]] = {}
    for b in bad:
        first.setdefault(b[0].status, b)
    ordered = list(first.values()) + [b for b in bad if b not in first.values()]
    for ex, problem in ordered:
        report.fail(
            *check[:3],
            Finding(
                f'{ex.status} {{"error", "code": "{CODES.get(ex.status, "…")}", '
                f'"status": {ex.status}, "details"}}',
                f"{ex.summary(200)}\n({problem})",
                ex,
            ),
            check[3],
        )


def _scan_rate_headers(report: Report, api: list[Exchange]) -> None:
    check = (
        "protocol.rate-limit-headers",
        "protocol",
        "every /api response carries X-RateLimit-Limit, -Remaining and -Reset as integers",
        "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset (Unix seconds) on every /api "
        "response; a 401 may leave them out",
    )
    considered = [ex for ex in api if ex.status != 401]
    report.ran(*check[:3], check[3], count=len(considered))
    now = time.time()
    for ex in considered:
        problem = _rate_problem(ex, now)
        if problem:
            report.fail(
                *check[:3],
                Finding("X-RateLimit-Limit, -Remaining, -Reset: integers", problem, ex),
                check[3],
            )


def _rate_problem(ex: Exchange, now: float) -> str | None:
    values: dict[str, int] = {}
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        raw = ex.header(name)
        if raw is None:
            return f"{ex.status} without {name}"
        try:
            values[name] = int(raw.strip())
        except ValueError:
            return f"{name}: {raw!r} is not an integer"
    limit, remaining, reset = values.values()
    if limit <= 0 or not 0 <= remaining <= limit:
        return f"limit {limit}, remaining {remaining}: expected 0 <= remaining <= limit"
    if not now - 120 <= reset <= now + 2 * 86_400:
        return f"X-RateLimit-Reset {reset} is not a Unix time in the current window (now is {int(now)})"
    return None


def _scan_server_errors(report: Report, bad: list[Exchange]) -> None:
    check = (
        "protocol.no-5xx",
        "protocol",
        "no request, however malformed, gets a 5xx (or no answer)",
        "CONTRACT: no request, however malformed, gets a 5xx",
    )
    report.ran(*check[:3], check[3])
    for ex in bad:
        report.fail(*check[:3], Finding("a 2xx or 4xx answer", ex.summary(200), ex), check[3])


def _scan_json(report: Report, api: list[Exchange]) -> None:
    check = ("protocol.json", "protocol", "responses with a body are application/json")
    with_body = [ex for ex in api if ex.status != 204 and ex.status < 500 and ex.method != "HEAD"]
    report.ran(*check, count=len(with_body))
    for ex in with_body:
        media = (ex.header("content-type") or "").split(";")[0].strip().lower()
        if media != "application/json" or ex.json is None:
            report.fail(
                *check,
                Finding(
                    "Content-Type: application/json and a JSON body",
                    f"{media or 'no type'}: {ex.summary(120)}",
                    ex,
                ),
            )
