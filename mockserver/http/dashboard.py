"""The dashboard at `/_mock/ui`: its files (package data, no build step) and the one-time login link."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..domain.errors import NotFound
from .access import LOGIN_PATH, TOKEN_COOKIE, unauthorized
from .gate import TenantRegistry
from .responses import error_response

UI_PATH = "/_mock/ui"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: Nothing but the mock itself: no CDN, no web font, no inline script (the page has none).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def dashboard_files() -> dict[str, tuple[bytes, str]]:
    """Every file under `mockserver/dashboard/`, by its path there, with its media type; read once."""
    found: dict[str, tuple[bytes, str]] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
                continue
            suffix = item.name[item.name.rfind(".") :]
            if suffix in MEDIA_TYPES:
                found[prefix + item.name] = (item.read_bytes(), MEDIA_TYPES[suffix])

    walk(resources.files("mockserver") / "dashboard", "")
    return found


def dashboard_routes(registry: TenantRegistry) -> list[Route]:
    files = dashboard_files()

    def asset(name: str) -> Response:
        found = files.get(name)
        if found is None:
            path = f"{UI_PATH}/{name}"
            return error_response(NotFound(f"No dashboard file {path}", {"path": path, "id": path}))
        content, media_type = found
        return Response(content, media_type=media_type, headers=HEADERS)

    async def index(request: Request) -> Response:
        return asset("index.html")

    async def static(request: Request) -> Response:
        return asset(request.path_params["name"])

    async def to_ui(request: Request) -> Response:
        return RedirectResponse(UI_PATH, status_code=307)

    async def login(request: Request) -> Response:
        """The one-time link printed at start-up: sets the token as a cookie, then opens the UI."""
        access = registry.access
        if not access.required:
            return RedirectResponse(UI_PATH, status_code=303)
        if not access.redeem(request.query_params.get("code")) or access.token is None:
            return error_response(unauthorized())
        response = RedirectResponse(UI_PATH, status_code=303)
        response.set_cookie(TOKEN_COOKIE, access.token, path="/_mock", httponly=True, samesite="strict")
        return response

    return [
        Route("/_mock", to_ui, methods=["GET"]),
        Route("/_mock/", to_ui, methods=["GET"]),
        Route(UI_PATH, index, methods=["GET"]),
        Route(UI_PATH + "/{name:path}", static, methods=["GET"]),
        Route(LOGIN_PATH, login, methods=["GET"]),
    ]
