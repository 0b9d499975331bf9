"""The kit's HTML report: every value escaped, nothing fetched, and in a real browser the Copy buttons work.

The browser tests drive Debian's Chromium (headless) with Playwright; without /usr/bin/chromium
they skip (`apt-get install chromium`); `playwright install` is never needed. The screenshot goes
to a temporary folder, or to docs/images/ with KANTOS_UPDATE_SCREENSHOTS=1 (the README shows it).
"""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS
from test_conformance_kit import ADMIN_KEY, MIDDLEWARE, Rewrite

from mockserver import create_app
from mockserver.conformance import Options, run
from mockserver.conformance.client import Exchange
from mockserver.conformance.html import render_html, write_html
from mockserver.conformance.report import Finding, Report, render_check, reproducer_commands
from mockserver.conformance.rules import RULES, rules_for
from mockserver.server import MockServer

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8123"
NASTY = """<script>alert("x")</script> & 'quoted' "double" </pre><img src=x onerror=alert(1)>"""
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- reports built by hand ----------------------------------------------------------------------


def _exchange(method: str, path: str, params: list[tuple[str, str]], body: bytes | None = None) -> Exchange:
    return Exchange(method, path, params, body, "application/json" if body else None, "key", status=200)


def nasty_report() -> tuple[Report, Finding, Finding]:
    """A run with one failing check whose findings hold text that must be escaped."""
    report = Report(BASE, io.StringIO())
    report.seed = 424242
    report.timings = {"setup": 0.4, "filters": 1.5}
    report.ran("paging.echo", "paging", "pagination echoes page and per_page", count=4)
    report.ran("paging.total-pages", "paging", "total_pages is ceil(total / per_page)", count=3)
    by_curl = Finding(
        expected=f"total_pages 1 {NASTY}",
        received="total_pages 0 & <b>bold</b>\nsecond line",
        label=f"GET /api/crm/records/query {NASTY}",
        detail=['detail with <tags> & "quotes"', "another 'detail'"],
        curl=f"curl -sS '{BASE}/api/crm/records/query?q=<x>&y=\"z\"'",
    )
    created = _exchange(
        "POST", "/api/crm/record", [], b'{"id": "rec_1", "field_values": {"name": "<i>&amp;</i>"}}'
    )
    by_steps = Finding(
        expected="name <i>&amp;</i>",
        received="name missing",
        request=_exchange(
            "GET", "/api/crm/records/query", [("object_id", "obj_x"), ("filters", '{"name":"<i>"}')]
        ),
        steps=[created],
        record_id="rec_1",
    )
    report.fail("paging.total-pages", "paging", "total_pages is ceil(total / per_page)", by_curl)
    report.fail("paging.total-pages", "paging", "total_pages is ceil(total / per_page)", by_steps)
    return report, by_curl, by_steps


class Document(HTMLParser):
    """The parsed page: tags with their attributes, the text of each <pre>, and nesting errors."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.pres: list[str] = []
        self.scripts = 0
        self.errors: list[str] = []
        self._open: list[str] = []
        self._pre: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.scripts += tag == "script"
        if tag == "pre":
            self._pre = []
        if tag not in self.VOID:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._pre is not None:
            self.pres.append("".join(self._pre))
            self._pre = None
        if not self._open or self._open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self._open[-1:] or 'nothing'}")
        else:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._pre is not None:
            self._pre.append(data)

    def attr(self, name: str) -> list[str]:
        return [a[name] or "" for _, a in self.tags if name in a]


def test_every_value_of_a_finding_is_escaped() -> None:
    report, by_curl, by_steps = nasty_report()
    page = render_html(report, now=NOW)
    doc = Document(page)
    assert doc.errors == []  # escaped text cannot close or open an element
    assert doc.scripts == 1  # the page's own copy script, nothing injected
    assert [t for t, a in doc.tags if t == "img"] == []
    assert "<b>bold</b>" not in page and "<script>alert" not in page
    for text in (by_curl.expected, by_curl.received, by_curl.label, *by_curl.detail, by_steps.expected):
        assert html.escape(text) in page
    # What the reader sees is the text as it was, character for character.
    assert by_curl.expected in doc.pres and by_curl.received in doc.pres


def test_the_finding_shows_its_rule_check_values_and_reproducers() -> None:
    report, by_curl, by_steps = nasty_report()
    page = render_html(report, now=NOW)
    doc = Document(page)
    (rule,) = rules_for("paging.total-pages")
    assert 'id="rule-paging.total-pages"' in page
    assert html.escape(rule.text) in page
    assert html.escape("total_pages is ceil(total / per_page)") in page  # the check's title
    assert "2 of 3 request(s) deviate" in page
    # The reproducers are the commands the text report prints, one Copy button each.
    text = render_check(report.checks["paging.total-pages"], BASE, 1, 10)
    printed = [line.strip()[2:] for line in text if line.strip().startswith("$ ")]
    commands = reproducer_commands(by_curl, BASE) + reproducer_commands(by_steps, BASE)
    assert printed == commands
    assert len(reproducer_commands(by_steps, BASE)) == 2  # create the record, then query
    curls = [p for p in doc.pres if p.startswith(("curl ", "REC_ID="))]
    assert curls == [by_curl.curl, "\n".join(reproducer_commands(by_steps, BASE))]
    buttons = [a for t, a in doc.tags if t == "button"]
    assert len(buttons) == 2
    assert all(
        b.get("aria-label", "").startswith("Copy the reproducer of paging.total-pages") for b in buttons
    )
    pre_ids = {a["id"] for t, a in doc.tags if t == "pre" and a.get("id")}
    assert {b["aria-controls"] for b in buttons} == pre_ids
    assert "Reproduce in order" in page


def test_header_summary_and_coverage() -> None:
    report, _, _ = nasty_report()
    page = render_html(report, now=NOW)
    checked, unchecked = report.coverage()
    assert len(checked) == 2  # paging.echo and paging.total-pages
    assert f"Contract coverage: {len(checked)} of {len(RULES)} rules checked" in page
    assert f"Rules not checked in this run ({len(unchecked)})" in page
    assert ">FAIL<" in page and ">PASS<" in page and ">NOT CHECKED<" in page
    assert BASE in page and "424242" in page and "2026-01-02 03:04:05 UTC" in page
    # Rules left unchecked say why: the option they need, where the table names one.
    limited = next(r for r in unchecked if r.needs == "--limited-key")
    assert html.escape(limited.text) in page and "needs --limited-key" in page
    # Every phase timed.
    assert re.search(r"setup</th><td[^>]*>0\.4</td>", page)
    assert re.search(r"filters</th><td[^>]*>1\.5</td>", page)


def test_the_page_loads_nothing_from_anywhere() -> None:
    report, _, _ = nasty_report()
    page = render_html(report, now=NOW)
    doc = Document(page)
    assert doc.attr("src") == []
    assert doc.tags and all(href.startswith("#") for href in doc.attr("href"))
    assert not re.search(r"@import|url\(|<link|<iframe|<object|<embed", page, re.IGNORECASE)
    # And the page forbids itself any fetch: a stray URL would be blocked, not loaded.
    (csp,) = [a["content"] for t, a in doc.tags if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp is not None and csp.startswith("default-src 'none'")


def test_every_link_in_the_page_leads_somewhere_and_ids_are_unique() -> None:
    report, _, _ = nasty_report()
    doc = Document(render_html(report, now=NOW))
    ids = doc.attr("id")
    assert len(ids) == len(set(ids))
    assert {h[1:] for h in doc.attr("href")} <= set(ids)


def test_a_clean_run_says_pass() -> None:
    report = Report(BASE, io.StringIO())
    report.ran("paging.echo", "paging", "pagination echoes page and per_page", count=2)
    page = render_html(report, now=NOW)
    assert "No deviations found" in page
    assert 'badge pass big">PASS<' in page
    assert "<button" not in page
    assert "Seed</dt><dd><code>not recorded" in page
    doc = Document(page)  # no timings, no problems: no link to a section left out
    assert {h[1:] for h in doc.attr("href")} <= set(doc.attr("id"))


def test_an_incomplete_run_says_so_and_names_the_problem() -> None:
    report = Report(BASE, io.StringIO())
    report.problem("cannot reach the server: <refused> & gone")
    page = render_html(report, now=NOW)
    assert 'badge warn big">INCOMPLETE<' in page
    assert "the kit could not complete its run" in page
    assert html.escape("cannot reach the server: <refused> & gone") in page
    assert 'href="#notes"' in page and 'id="notes"' in page


def test_write_html_makes_the_folder(tmp_path: Path) -> None:
    report, _, _ = nasty_report()
    target = tmp_path / "deep" / "er" / "report.html"
    write_html(report, target)
    assert target.read_text(encoding="utf-8").startswith("<!doctype html>")


# --- a real run against a broken server ---------------------------------------------------------


class HtmlRun:
    def __init__(self, url: str, path: Path, status: int, output: str) -> None:
        self.url, self.path, self.status, self.output = url, path, status, output


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HtmlRun]:
    """The kit's quick run against a mock that rounds total_pages down and drops empties from $ne."""
    path = tmp_path_factory.mktemp("html") / "report.html"
    app = create_app(seed=3)
    app.add_middleware(Rewrite, **MIDDLEWARE["total_pages_floor"])
    app.add_middleware(Rewrite, **MIDDLEWARE["ne_drops_empty"])
    with MockServer(app=app) as mock:
        out = io.StringIO()
        status = run(
            mock.url, ADMIN_KEY, quick=True, fuzz=False, out=out, seed=5, options=Options(html_path=str(path))
        )
        yield HtmlRun(mock.url, path, status, out.getvalue())


def test_the_kit_writes_the_html_report(broken_run: HtmlRun) -> None:
    assert broken_run.status == 1, broken_run.output
    assert f"HTML report written to {broken_run.path}" in broken_run.output
    page = broken_run.path.read_text(encoding="utf-8")
    assert 'id="rule-paging.total-pages"' in page and 'id="rule-filters.ne"' in page
    coverage = re.search(r"contract coverage: (\d+) of (\d+) rules checked", broken_run.output)
    assert coverage is not None
    assert f"Contract coverage: {coverage[1]} of {coverage[2]} rules checked" in page
    assert "Seed</dt><dd><code>5</code>" in page


# --- in a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("the browser tests need Debian's Chromium at /usr/bin/chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extras)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Opened:
    """The report in a browser tab, with every console error, page error and request it made."""

    def __init__(self, browser: Any, path: Path, **context: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 1600}, **context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(5000)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def opened(browser: Any, broken_run: HtmlRun) -> Iterator[Opened]:
    tab = Opened(browser, broken_run.path, permissions=["clipboard-read", "clipboard-write"])
    yield tab
    tab.close()


def _screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("KANTOS_UPDATE_SCREENSHOTS") == "1":
        return ROOT / "docs" / "images" / "conformance-report.png"
    return tmp_path / "conformance-report.png"


def test_report_opens_offline_with_no_error_and_no_request(opened: Opened, tmp_path: Path) -> None:
    page = opened.page
    assert page.title().startswith("Kantos conformance: FAIL")
    rule = page.locator("#rule-paging\\.total-pages")
    assert rule.is_visible()
    assert "total_pages is ceil(total / per_page)" in rule.inner_text()
    first = rule.locator("pre.curl").first
    assert first.is_visible() and first.inner_text().startswith("curl -sS -i -G http://127.0.0.1:")
    assert rule.get_by_role("button", name=re.compile("^Copy the reproducer")).first.is_visible()
    assert page.get_by_role("heading", name="Summary by area").is_visible()
    shot = _screenshot_path(tmp_path)
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1280, "height": 1600})
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert opened.errors == []
    assert opened.requests == [opened.url]


def test_copy_puts_the_curl_reproducer_on_the_clipboard(opened: Opened, broken_run: HtmlRun) -> None:
    page = opened.page
    rule = page.locator("#rule-filters\\.ne")
    shown = rule.locator("pre.curl").first.inner_text()
    button = rule.get_by_role("button", name=re.compile("^Copy the reproducer")).first
    button.click()
    page.wait_for_function("document.getElementById('copy-status').textContent === 'Copied'")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown
    assert f"$ {copied}" in broken_run.output  # the very command the text report prints
    assert "$ne" in copied and broken_run.url in copied
    assert opened.errors == []


def test_copy_falls_back_to_selecting_the_reproducer(browser: Any, broken_run: HtmlRun) -> None:
    tab = Opened(browser, broken_run.path)
    try:
        page = tab.page
        # A browser without the asynchronous clipboard API (or one refusing it): the text is selected.
        page.evaluate("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
        pre = page.locator("#rule-paging\\.total-pages pre.curl").first
        page.locator("#rule-paging\\.total-pages").get_by_role("button").first.click()
        page.wait_for_function("document.getElementById('copy-status').textContent !== ''")
        assert page.evaluate("window.getSelection().toString()") == pre.inner_text()
        assert page.locator("#copy-status").inner_text() in ("Copied", "Selected: press Ctrl+C")
        assert tab.errors == []
    finally:
        tab.close()


def test_report_reads_without_javascript(browser: Any, broken_run: HtmlRun) -> None:
    tab = Opened(browser, broken_run.path, java_script_enabled=False)
    try:
        page = tab.page
        assert page.locator("#rule-paging\\.total-pages pre.curl").first.is_visible()
        assert page.get_by_text("Contract coverage:").is_visible()
        # No dead buttons: the Copy buttons show only when the script runs.
        assert page.locator("button.copy").count() > 0
        assert not page.locator("button.copy").first.is_visible()
        # The collapsed findings open without JavaScript too.
        more = page.locator("#rule-paging\\.total-pages details").first
        more.locator("summary").click()
        assert more.locator("li.finding").first.is_visible()
        assert tab.errors == []
        assert tab.requests == [tab.url]
    finally:
        tab.close()
