"""The dashboard in a real browser: Playwright driving Debian's Chromium, headless, against real servers.

Without /usr/bin/chromium these tests skip (`apt-get install chromium`); `playwright install` is
never needed. Each view's screenshot goes to a temporary folder, or to docs/images/ with
KANTOS_UPDATE_SCREENSHOTS=1 (the README shows those).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS
from kantos_support import ADMIN_KEY
from test_cli import Lines

from mockserver import MockServer
from mockserver.domain.backend import FixtureSet

if not CHROMIUM.exists():
    pytest.skip(
        "the browser tests need Debian's Chromium at /usr/bin/chromium: apt-get install -y chromium",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (the dev extras have it)"
)
Browser, Page, expect = sync_api.Browser, sync_api.Page, sync_api.expect

VIEWS = ["overview", "records", "requests", "webhooks", "faults"]
ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = Path(sys.executable).with_name("kantos-mock")
#: The clock the screenshots are taken at, so they change only when the dashboard does.
FROZEN_AT = "2024-06-03T09:30:00Z"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def mock(fixture_set: FixtureSet) -> Iterator[MockServer]:
    with MockServer(fixture_set, seed=7) as server:
        yield server


class Watched:
    """A page, with every console error, page error, failed request and 4xx/5xx answer it saw."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.method} {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"))


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    pg = context.new_page()
    pg.set_default_timeout(5000)
    yield pg
    context.close()


def api(mock: MockServer, tenant: str | None = None) -> httpx.Client:
    return mock.client(tenant=tenant, timeout=5)


def open_view(page: Any, mock: MockServer, view: str, query: str = "") -> None:
    page.goto(f"{mock.url}/_mock/ui#/{view}{query}")
    expect(page.locator("nav a[aria-current=page]")).to_have_attribute("data-view", view)
    page.wait_for_load_state("networkidle")


def screenshot_dir(tmp_path: Path) -> Path:
    if os.environ.get("KANTOS_UPDATE_SCREENSHOTS") == "1":
        return ROOT / "docs" / "images"
    return tmp_path


def busy_state(mock: MockServer) -> None:
    """What a test run leaves behind: the clock frozen, writes, errors, a fault, a webhook."""
    mock.clock.freeze(FROZEN_AT)
    with api(mock) as c:
        created = c.post(
            "/api/crm/record",
            json={
                "object_id": "obj_contacts",
                "field_values": {"name": "Jane Smith", "email": "jane@example.com"},
            },
        ).json()
        c.patch(f"/api/crm/record/{created['id']}", json={"field_values": {"status": "qualified"}})
        c.get(
            "/api/crm/records/query", params={"object_id": "obj_contacts", "filters": '{"status":"active"}'}
        )
        c.get("/api/crm/records/query", params={"object_id": "obj_contacts", "filters": '{"nope":1}'})
        c.post(
            "/_mock/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["record.created"], "secret": "s"},
        )
        c.post("/api/crm/record", json={"object_id": "obj_companies", "field_values": {"name": "Acme"}})
        mock.fault("GET", "/api/crm/objects", status=503, times=1)
        c.get("/api/crm/objects")
        c.get("/api/crm/record/rec_missing")
        mock.fault("POST", "/api/crm/record", latency_ms=250, probability=0.5)


# --- each view ------------------------------------------------------------------------------------


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_loads_with_no_console_error_and_no_failed_request(
    page: Any, mock: MockServer, view: str, tmp_path: Path
) -> None:
    busy_state(mock)
    watched = Watched(page)
    open_view(page, mock, view)
    expect(page.locator("main h1")).to_have_text(view.capitalize())
    if view == "requests":
        expect(page.locator("#journal-rows tr")).to_have_count(7)
        page.locator("#journal-rows tr", has_text="/api/crm/record/rec_missing").get_by_role("button").click()
        expect(page.locator("#request-detail")).to_contain_text("NOT_FOUND")
    if view == "records":
        filters = '{"status": "active", "deal_value": {"$gte": 1000}}'
        with api(mock) as c:
            params = {"object_id": "obj_contacts", "filters": filters, "sort": "deal_value", "order": "desc"}
            first = c.get("/api/crm/records/query", params=params).json()["data"][0]["id"]
        run_query(page, filters, "deal_value", "desc")
        expect(page.locator("#records-table button[data-id]").first).to_have_attribute("data-id", first)
        expect(page.locator("#records-table button[data-id]")).to_have_count(25)
        page.locator("#records-table button[data-id]").first.click()
        expect(page.locator("#record-detail pre")).to_contain_text('"object_id": "obj_contacts"')
    if view == "webhooks":
        expect(page.locator("#deliveries")).to_contain_text("record.created")
    if view == "overview":
        expect(page.locator("main")).to_contain_text("221")  # contacts, with the one created
        expect(page.locator(".clock-now")).to_have_text(re.compile(r"^2024-06-03T09:30:00"))
    page.wait_for_load_state("networkidle")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot_dir(tmp_path) / f"dashboard-{view}.png"), full_page=False)
    assert watched.problems == []


# --- records --------------------------------------------------------------------------------------


def run_query(page: Any, filters: str, sort: str = "created_at", order: str = "asc") -> None:
    page.get_by_label("Sort by").select_option(sort)
    page.get_by_label("Order").select_option(order)
    page.get_by_label("Filters (the API's filter JSON)").fill(filters)
    page.get_by_role("button", name="Run query").click()


def shown_ids(page: Any) -> list[str]:
    return page.locator("#records-table button[data-id]").evaluate_all("els => els.map(e => e.dataset.id)")  # type: ignore[no-any-return]


def test_a_filter_shows_the_same_ids_in_the_same_order_as_the_api(page: Any, mock: MockServer) -> None:
    filters = '{"status": {"$in": ["active", "new", "qualified"]}, "deal_value": {"$gte": 1000}}'
    with api(mock) as c:
        params = {"object_id": "obj_contacts", "filters": filters, "sort": "deal_value", "order": "desc"}
        first = c.get("/api/crm/records/query", params=params).json()
        second = c.get("/api/crm/records/query", params={**params, "page": 2}).json()
    assert first["pagination"]["total"] > 25  # there is a second page to compare
    open_view(page, mock, "records")
    run_query(page, filters, "deal_value", "desc")
    expect(page.locator("#records-table button[data-id]").first).to_have_attribute(
        "data-id", first["data"][0]["id"]
    )
    assert shown_ids(page) == [r["id"] for r in first["data"]]
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#records-table button[data-id]").first).to_have_attribute(
        "data-id", second["data"][0]["id"]
    )
    assert shown_ids(page) == [r["id"] for r in second["data"]]
    total = f"{first['pagination']['total']} records · page 2 of {first['pagination']['total_pages']}"
    expect(page.locator("main")).to_contain_text(total)


@pytest.mark.parametrize(
    "filters",
    ['{"nope": 1}', '{"deal_value": {"$gte": "lots"}}', '{"status": '],
    ids=["unknown-field", "wrong-operand", "not-json"],
)
def test_an_invalid_filter_shows_the_apis_message(page: Any, mock: MockServer, filters: str) -> None:
    with api(mock) as c:
        answer = c.get(
            "/api/crm/records/query", params={"object_id": "obj_contacts", "filters": filters}
        ).json()
    open_view(page, mock, "records")
    run_query(page, filters)
    expect(page.locator("#query-error")).to_be_visible()
    expect(page.locator("#query-error")).to_contain_text(answer["error"])
    expect(page.locator("#query-error")).to_contain_text("400 BAD_REQUEST")


def test_switching_tenant_shows_that_tenants_records(page: Any, mock: MockServer) -> None:
    with api(mock, tenant="w1") as c:
        mine = c.post(
            "/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": "Only In W1"}}
        ).json()
    filters = '{"name": "Only In W1"}'
    open_view(page, mock, "records")
    run_query(page, filters)
    expect(page.locator("#records-table")).to_contain_text("No record matches.")
    page.get_by_label("Tenant", exact=True).select_option("w1")
    expect(page.locator("main h1")).to_contain_text("tenant w1")
    run_query(page, filters)
    expect(page.locator("#records-table button[data-id]")).to_have_count(1)
    assert shown_ids(page) == [mine["id"]]
    page.get_by_label("Tenant", exact=True).select_option("")
    expect(page.locator("main h1")).not_to_contain_text("tenant")
    run_query(page, filters)
    expect(page.locator("#records-table")).to_contain_text("No record matches.")


# --- requests --------------------------------------------------------------------------------------


def test_a_request_shows_up_within_2_seconds_with_its_status_and_answer(page: Any, mock: MockServer) -> None:
    open_view(page, mock, "requests")
    expect(page.locator("#journal-rows tr")).to_have_count(0)
    with api(mock) as c:
        answer = c.get("/api/crm/record/rec_from_my_test")
    assert answer.status_code == 404
    row = page.locator("#journal-rows tr", has_text="/api/crm/record/rec_from_my_test")
    expect(row).to_be_visible(timeout=2000)
    expect(row).to_contain_text("404")
    row.get_by_role("button").click()
    detail = page.locator("#request-detail")
    expect(detail).to_contain_text("GET /api/crm/record/rec_from_my_test")
    expect(detail).to_contain_text(answer.json()["error"])
    assert '"code": "NOT_FOUND"' in detail.locator("pre[aria-label='Response body']").inner_text()
    assert "kantos_admin_local_key" not in detail.inner_text()  # the key stays redacted
    curl = detail.locator("textarea.curl").input_value()
    assert curl.startswith("curl -s '" + mock.url + "/api/crm/record/rec_from_my_test'")
    assert '"X-Api-Key: $KANTOS_API_KEY"' in curl


def test_copy_as_curl_gives_a_command_that_repeats_the_request(page: Any, mock: MockServer) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    with api(mock) as c:
        c.post("/api/crm/record", json={"object_id": "obj_contacts", "field_values": {"name": "It's Quoted"}})
    open_view(page, mock, "requests")
    page.locator("#journal-rows tr").first.get_by_role("button").click()
    page.get_by_role("button", name="Copy as curl").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("textarea.curl").input_value()
    # Run it: the same request, answered the same way.
    result = subprocess.run(
        ["bash", "-c", copied + " -o /dev/null -w '%{http_code}'"],
        env={**os.environ, "KANTOS_API_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode == 127:
        pytest.skip("curl is not installed")
    assert result.stdout == "201"
    with api(mock) as c:
        query = {"object_id": "obj_contacts", "filters": json.dumps({"name": "It's Quoted"})}
        assert c.get("/api/crm/records/query", params=query).json()["pagination"]["total"] == 2


def test_a_fault_added_in_the_faults_view_fails_the_next_call_and_the_journal_marks_it(
    page: Any, mock: MockServer
) -> None:
    open_view(page, mock, "faults")
    page.get_by_label("Method").select_option("GET")
    page.get_by_label("Path").fill("/api/crm/objects")
    page.get_by_label("Action").select_option("status")
    page.get_by_label("Status").fill("503")
    page.get_by_label("Times").fill("1")
    page.get_by_role("button", name="Add fault").click()
    expect(page.locator("#fault-rules")).to_contain_text("flt_1")
    with api(mock) as c:
        assert c.get("/api/crm/objects").status_code == 503
        assert c.get("/api/crm/objects").status_code == 200  # times: 1
    open_view(page, mock, "requests")
    faulted = page.locator("#journal-rows tr.faulted")
    expect(faulted).to_have_count(1)
    expect(faulted).to_contain_text("503")
    expect(faulted).to_contain_text("fault flt_1")
    open_view(page, mock, "faults")
    page.get_by_role("button", name="Delete fault flt_1").click()
    expect(page.locator("#fault-rules")).to_contain_text("No fault rules")
    assert mock.faults() == []


# --- overview -------------------------------------------------------------------------------------


def test_advancing_the_clock_in_the_ui_moves_the_clock_the_api_sees(page: Any, mock: MockServer) -> None:
    open_view(page, mock, "overview")
    page.get_by_role("button", name="Freeze").click()
    expect(page.locator(".clock .badge")).to_have_text("frozen")
    frozen = mock.clock.now()
    page.get_by_label("Seconds").fill("3600")
    page.get_by_role("button", name="Advance the clock").click()
    expect(page.locator(".clock-now")).to_have_text(
        re.compile((frozen + timedelta(hours=1)).strftime("^%Y-%m-%dT%H:%M:%S"))
    )
    with api(mock) as c:
        created = c.post(
            "/api/crm/record", json={"object_id": "obj_companies", "field_values": {"name": "Later"}}
        )
    at = datetime.fromisoformat(created.json()["created_at"].replace("Z", "+00:00"))
    assert at == (frozen + timedelta(hours=1)).astimezone(UTC).replace(microsecond=0)


def test_reset_in_the_ui_goes_back_to_the_fixture_set(page: Any, mock: MockServer) -> None:
    with api(mock) as c:
        c.post("/api/crm/record", json={"object_id": "obj_companies", "field_values": {"name": "Temp"}})
    open_view(page, mock, "overview")
    expect(page.locator("main")).to_contain_text("71")
    page.get_by_role("button", name="Reset tenant").click()
    expect(page.locator("#toast")).to_contain_text("changes undone")
    with api(mock) as c:
        total = c.get("/api/crm/records/query", params={"object_id": "obj_companies"}).json()["pagination"][
            "total"
        ]
    assert total == 70


# --- the control token ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_token_is_required_on_a_non_loopback_bind_and_accepted_from_the_printed_link(
    browser: Any,
) -> None:
    command = [str(CONSOLE_SCRIPT), "serve", "--host", "0.0.0.0", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            lines = Lines(proc)
            link = lines.wait_for(
                re.compile(r"dashboard: (http://0\.0\.0\.0:\d+/_mock/login\?code=\S+)")
            ).group(1)
            # Bound to every interface; reached through loopback, so nothing leaves the machine.
            link = link.replace("0.0.0.0", "127.0.0.1")
            base = link.split("/_mock/")[0]
            context = browser.new_context()
            page = context.new_page()
            refused = page.goto(base + "/_mock/ui")
            assert refused is not None and refused.status == 401
            assert json.loads(page.inner_text("body"))["code"] == "UNAUTHORIZED"
            # A page of its own for the dashboard: Chromium asks the refused JSON page for
            # /favicon.ico (the dashboard names an icon of its own, none), and that 404's console
            # line can come after the refusal was checked.
            page = context.new_page()
            watched = Watched(page)
            page.goto(link)
            assert page.url == base + "/_mock/ui"
            expect(page.locator("main")).to_contain_text("obj_contacts")
            page.wait_for_load_state("networkidle")
            assert watched.problems == []
            context.close()
            other = browser.new_context()
            again = other.new_page().goto(link)  # one time only
            assert again is not None and again.status == 401
            other.close()
        finally:
            proc.kill()
            proc.wait(timeout=5)


# --- accessibility ----------------------------------------------------------------------------------

CONTROLS = "a[href], button, input, select, textarea"
NAMES = """els => els.filter(e => e.checkVisibility() && !e.disabled).map(e => {
  const labels = e.labels ? [...e.labels].map(l => l.textContent.trim()).join(" ") : "";
  const aria = e.getAttribute("aria-label") || "";
  const text = (e.tagName === "BUTTON" || e.tagName === "A") ? e.textContent.trim() : "";
  return {id: e.dataset.kb, tag: e.tagName, name: (labels || aria || text).trim()};
})"""


@pytest.mark.parametrize("view", VIEWS)
def test_every_control_has_a_label_and_is_reachable_from_the_keyboard(
    page: Any, mock: MockServer, view: str
) -> None:
    busy_state(mock)
    open_view(page, mock, view)
    if view == "records":
        page.locator("#records-table button[data-id]").first.click()
        expect(page.locator("#record-detail pre")).to_be_visible()
    if view == "requests":
        page.locator("#journal-rows tr").first.get_by_role("button").click()
        expect(page.locator("#request-detail textarea.curl")).to_be_visible()
        page.get_by_label("Live").uncheck()  # keep the list still while tabbing
    page.locator(CONTROLS).evaluate_all("els => els.forEach((e, i) => e.dataset.kb = String(i))")
    controls = page.locator(CONTROLS).evaluate_all(NAMES)
    unnamed = [c for c in controls if not c["name"]]
    assert unnamed == [], unnamed
    reached = set()
    page.locator("body").focus()
    for _ in range(len(controls) + 10):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement && document.activeElement.dataset.kb"))
    missed = [c for c in controls if c["id"] not in reached]
    assert missed == [], missed
