"""Who may use the control API and the dashboard: anyone on a loopback bind, else a token holder."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading

from starlette.datastructures import Headers

from ..domain.errors import Unauthorized

#: The header that carries the control token, and the cookie the one-time link sets.
TOKEN_HEADER = "x-mock-token"
TOKEN_COOKIE = "kantos_mock_token"
#: The one-time link's path: it needs no token (its code stands for one), and sets the cookie.
LOGIN_PATH = "/_mock/login"


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine: `localhost` or a loopback address.
    `0.0.0.0` and `::` listen on every interface, so they are not."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def new_token() -> str:
    return secrets.token_urlsafe(24)


class ControlAccess:
    """The control token (None: no token needed), and the one-time codes of login links."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self._codes: set[str] = set()
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return self.token is not None

    def allows(self, headers: Headers) -> bool:
        """The token came as the `X-Mock-Token` header or the cookie the login link sets."""
        if self.token is None:
            return True
        given = headers.get(TOKEN_HEADER) or _cookie(headers.get("cookie"), TOKEN_COOKIE)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def issue_code(self) -> str:
        """A code for a one-time login link (`/_mock/login?code=...`)."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes.add(code)
        return code

    def redeem(self, code: str | None) -> bool:
        """True once per issued code: the link works the first time it is opened."""
        with self._lock:
            for known in self._codes:
                if code is not None and hmac.compare_digest(known.encode(), code.encode()):
                    self._codes.discard(known)
                    return True
        return False


def unauthorized() -> Unauthorized:
    return Unauthorized(
        "The control API and the dashboard need the control token on this bind: send it in the "
        "X-Mock-Token header, or open the one-time link kantos-mock printed at start-up",
        {"header": "X-Mock-Token", "reason": "missing or wrong control token"},
    )


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
