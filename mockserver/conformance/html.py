"""The kit's report as one self-contained HTML file: inline CSS, a tiny inline script, nothing fetched."""

from __future__ import annotations

import base64
import hashlib
import html
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

from .client import KEY_VARIABLE
from .report import Check, Finding, Report, _area_key, _label, reproducer_commands
from .rules import AREAS, RULES, Rule

__all__ = ["render_html", "write_html"]

#: Findings of a check shown at once; the rest sit in a collapsed list, up to `MAX_FINDINGS` in all.
SHOWN_FINDINGS = 5
MAX_FINDINGS = 100

_STYLE = """
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --card: #fff; --text: #1c2024; --muted: #5b636d; --line: #dde1e6;
  --code-bg: #f1f3f5; --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #b3261e; --fail-bg: #ffe4e1;
  --skip: #5b636d; --skip-bg: #eceff2; --warn: #8a5300; --warn-bg: #fff1cc; --accent: #2456c9;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15181c; --card: #1d2126; --text: #e6e9ed; --muted: #a0a8b2; --line: #333a42;
    --code-bg: #262b31; --pass: #6fdd8b; --pass-bg: #17341f; --fail: #ff9b91; --fail-bg: #43201d;
    --skip: #b2bac4; --skip-bg: #2a3037; --warn: #f2c266; --warn-bg: #3b2e12; --accent: #8cb0ff;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text); line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
main, .top { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
.top { padding-top: 28px; padding-bottom: 8px; }
h1 { font-size: 1.6rem; margin: 0 0 12px; }
h2 { font-size: 1.25rem; margin: 0 0 12px; }
h3 { font-size: 1.05rem; margin: 0 0 6px; }
h4 { font-size: 0.98rem; margin: 16px 0 4px; }
a { color: var(--accent); }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
code { background: var(--code-bg); padding: 1px 5px; border-radius: 4px; }
pre {
  background: var(--code-bg); margin: 0; padding: 8px 10px; border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere;
}
section.card {
  background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px; margin: 18px 0;
}
.verdict { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; margin-bottom: 14px; }
.verdict .headline { font-size: 1.1rem; font-weight: 600; }
.badge {
  display: inline-block; font-size: 0.75rem; font-weight: 700; letter-spacing: 0.04em;
  padding: 1px 8px; border-radius: 999px; border: 1px solid currentColor; white-space: nowrap;
}
.badge.big { font-size: 1rem; padding: 4px 14px; }
.pass { color: var(--pass); background: var(--pass-bg); }
.fail { color: var(--fail); background: var(--fail-bg); }
.skip { color: var(--skip); background: var(--skip-bg); }
.warn { color: var(--warn); background: var(--warn-bg); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 0.85rem; color: var(--muted); font-weight: 600; }
tbody th[scope=row], tfoot th[scope=row] { color: var(--text); font-size: 0.95rem; }
table.narrow { width: auto; min-width: 480px; }
td.status { width: 8.5em; }
.frac { display: inline-block; min-width: 4.2em; font-variant-numeric: tabular-nums; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody th[scope=rowgroup] { color: var(--text); background: var(--code-bg); font-size: 0.9rem; }
.bar { display: inline-block; width: 160px; height: 8px; background: var(--skip-bg);
  border-radius: 4px; overflow: hidden; vertical-align: middle; margin-left: 8px; }
.bar > span { display: block; height: 100%; background: var(--accent); }
.coverage { font-size: 1.05rem; font-weight: 600; margin: 0 0 12px; }
.muted { color: var(--muted); }
ul.plain { list-style: none; padding: 0; margin: 0; }
ul.plain > li { padding: 6px 0; border-bottom: 1px solid var(--line); }
ul.plain > li:last-child { border-bottom: 0; }
article.rule { border-top: 1px solid var(--line); padding-top: 14px; margin-top: 14px; }
article.rule:first-of-type { border-top: 0; margin-top: 0; padding-top: 0; }
.rule-text { margin: 0 0 6px; }
ol.findings { padding-left: 0; list-style: none; margin: 8px 0 0; }
li.finding { border: 1px solid var(--line); border-left: 4px solid var(--fail); border-radius: 6px;
  padding: 10px 12px; margin: 10px 0; }
.finding .label { margin: 0 0 8px; overflow-wrap: anywhere; }
.finding .label code { background: none; padding: 0; font-size: 13.5px; font-weight: 600; }
dl.values { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 14px; margin: 0; }
dl.values > div { min-width: 0; }
dl.values dt { font-size: 0.8rem; font-weight: 600; color: var(--muted); margin-bottom: 2px; }
dl.values dd { margin: 0; }
@media (max-width: 720px) { dl.values { grid-template-columns: 1fr; } }
ul.detail { margin: 8px 0 0; padding-left: 20px; list-style: disc; }
.repro { margin-top: 10px; }
.repro-head { display: flex; align-items: center; justify-content: space-between; gap: 10px;
  font-size: 0.8rem; font-weight: 600; color: var(--muted); margin-bottom: 2px; }
button.copy {
  font: inherit; font-size: 0.8rem; font-weight: 600; cursor: pointer; color: var(--accent);
  background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 2px 12px;
}
button.copy:hover { border-color: var(--accent); }
button.copy:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
details { margin-top: 8px; }
summary { cursor: pointer; color: var(--accent); }
.checks-ran code { font-size: 12px; white-space: nowrap; }
nav.jump { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 16px 0 0; font-size: 0.92rem; }
footer { max-width: 1120px; margin: 0 auto; padding: 8px 24px 32px; color: var(--muted); font-size: 0.85rem; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
"""

# The copy buttons are hidden until this runs: without JavaScript the page shows no dead buttons.
_SCRIPT = """
(function () {
  var live = document.getElementById("copy-status");
  function say(button, message) {
    button.textContent = message;
    live.textContent = message;
    setTimeout(function () { button.textContent = "Copy"; }, 1600);
  }
  function fallback(button, pre) {
    var range = document.createRange();
    range.selectNodeContents(pre);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    say(button, copied ? "Copied" : "Selected: press Ctrl+C");
  }
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var pre = document.getElementById(button.getAttribute("aria-controls"));
      var text = pre.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { say(button, "Copied"); },
          function () { fallback(button, pre); }
        );
      } else {
        fallback(button, pre);
      }
    });
  });
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
# Nothing may be fetched, and no script runs but ours: a finding's text cannot reach the network.
_CSP = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'"

_STATUS = {0: ("PASS", "pass"), 1: ("FAIL", "fail"), 2: ("INCOMPLETE", "warn")}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(text: str, kind: str, big: bool = False) -> str:
    return f'<span class="badge {kind}{" big" if big else ""}">{_e(text)}</span>'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def write_html(report: Report, path: str | Path) -> None:
    """Write `report` as one HTML file at `path` (its folder made when missing)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report), encoding="utf-8")


def render_html(report: Report, now: datetime | None = None) -> str:
    """The report as one HTML document, every value escaped."""
    now = now if now is not None else datetime.now(UTC)
    status = report.exit_status()
    word, kind = _STATUS.get(status, ("INCOMPLETE", "warn"))
    failing = report.failing
    title = f"Kantos conformance: {word} for {report.base_url}"
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        '<header class="top">',
        "<h1>Kantos conformance report</h1>",
        *_header(report, status, word, kind, now),
        "</header>",
        "<main>",
        *_summary(report),
        *_findings(report, failing),
        *_unchecked(report),
        *_problems(report),
        *_rules_table(report),
        *_timings(report),
        "</main>",
        "<footer>Written by the Kantos conformance kit (<code>kantos-mock conformance</code>). "
        "This file is self-contained: it loads nothing from the network.</footer>",
        '<div id="copy-status" class="sr-only" role="status" aria-live="polite"></div>',
        f"<script>{_SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections ------------------------------------------------------------------------------------


def _header(report: Report, status: int, word: str, kind: str, now: datetime) -> list[str]:
    failing = report.failing
    if status == 1:
        requests = sum(len(c.findings) for c in failing)
        rules = [r for r in RULES if any(c.findings for c in report.exercised(r))]
        headline = (
            f"{_plural(len(rules), 'rule')} failed: {_plural(len(failing), 'check')} found "
            f"{_plural(requests, 'deviating request')}"
        )
    elif status == 0:
        headline = "no deviations found"
    else:
        headline = "the kit could not complete its run"
    passed = sum(1 for c in report.checks.values() if c.ok)
    seed = str(report.seed) if report.seed is not None else "not recorded"
    elapsed = time.monotonic() - report.started
    rows = [
        ("Server", f"<code>{_e(report.base_url)}</code>"),
        ("Date", _e(now.strftime("%Y-%m-%d %H:%M:%S UTC"))),
        ("Run time", _e(f"{elapsed:.1f} s")),
        (
            "Seed",
            f"<code>{_e(seed)}</code>"
            + (" (pass <code>--seed</code> to repeat the run)" if report.seed is not None else ""),
        ),
        ("Checks", _e(f"{passed} passed, {len(failing)} failed, {len(report.problems)} problem(s)")),
    ]
    return [
        '<div class="verdict">',
        _badge(word, kind, big=True),
        f'<span class="headline">{_e(headline)}</span>',
        "</div>",
        '<dl class="meta">',
        *(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows),
        "</dl>",
        '<nav class="jump" aria-label="Sections">',
        *(f'<a href="#{anchor}">{_e(name)}</a>' for anchor, name in _sections(report)),
        "</nav>",
    ]


def _sections(report: Report) -> list[tuple[str, str]]:
    """The page's sections, for the links under the header (only those the page has)."""
    unchecked = report.coverage()[1]
    out = [("summary", "Summary"), ("findings", f"Findings ({len(report.failing)})")]
    if unchecked:
        out.append(("unchecked", f"Rules not checked ({len(unchecked)})"))
    if report.problems or report.notes:
        out.append(("notes", "Problems and notes"))
    out.append(("rules", "All rules"))
    if report.timings:
        out.append(("timings", "Time by phase"))
    return out


def _summary(report: Report) -> list[str]:
    checked, _ = report.coverage()
    out = [
        '<section class="card" aria-labelledby="summary">',
        '<h2 id="summary">Summary by area</h2>',
        f'<p class="coverage">Contract coverage: {len(checked)} of {len(RULES)} rules checked'
        f"{_bar(len(checked), len(RULES))}</p>",
        "<table>",
        "<thead><tr>"
        '<th scope="col">Area</th><th scope="col">Result</th>'
        '<th scope="col" class="num">Rules passed</th><th scope="col" class="num">Rules failed</th>'
        '<th scope="col">Checked of the rules in the table</th>'
        "</tr></thead>",
        "<tbody>",
    ]
    for area, (ok, bad, n_checked, total) in report.by_area().items():
        if bad:
            result = _badge("FAIL", "fail")
        elif n_checked:
            result = _badge("PASS", "pass")
        else:
            result = _badge("NOT CHECKED", "skip")
        out.append(
            f'<tr><th scope="row"><a href="#area-{_e(area)}">{_e(area)}</a></th><td>{result}</td>'
            f'<td class="num">{ok}</td><td class="num">{bad}</td>'
            f'<td><span class="frac">{n_checked} of {total}</span>{_bar(n_checked, total)}</td></tr>'
        )
    out += ["</tbody>", "</table>", "</section>"]
    return out


def _bar(part: float, whole: float) -> str:
    share = 100 * part / whole if whole else 0
    return f'<span class="bar" aria-hidden="true"><span style="width: {share:.1f}%"></span></span>'


def _unchecked(report: Report) -> list[str]:
    _, unchecked = report.coverage()
    if not unchecked:
        return []
    out = [
        '<section class="card" aria-labelledby="unchecked">',
        f'<h2 id="unchecked">Rules not checked in this run ({len(unchecked)})</h2>',
        '<ul class="plain">',
    ]
    for rule in unchecked:
        why = f"needs {rule.needs}" if rule.needs else "no check of this rule ran in this run"
        out.append(
            f"<li>{_badge('NOT CHECKED', 'skip')} <code>{_e(rule.id)}</code> {_e(rule.text)}"
            f'<br><span class="muted">why: {_e(why)}</span></li>'
        )
    out += ["</ul>", "</section>"]
    return out


def _findings(report: Report, failing: list[Check]) -> list[str]:
    out = ['<section class="card" aria-labelledby="findings">', '<h2 id="findings">Findings</h2>']
    if not failing:
        out += ["<p>No deviations found: every check that ran passed.</p>", "</section>"]
        return out
    out.append(
        f"<p>Reproducers read the API key from <code>${_e(KEY_VARIABLE)}</code>: "
        f"<code>export {_e(KEY_VARIABLE)}=&lt;the key passed with --api-key&gt;</code></p>"
    )
    shown: dict[str, str] = {}  # check id -> the rule whose findings list it
    counter = count(1)  # reproducer ids, unique in the page
    for rule, checks in _failing_by_rule(report, failing):
        anchor = f"rule-{rule.id}" if rule is not None else "rule-none"
        out.append(f'<article class="rule" id="{_e(anchor)}">')
        if rule is not None:
            out.append(f"<h3>{_badge('FAIL', 'fail')} Rule <code>{_e(rule.id)}</code></h3>")
            out.append(f'<p class="rule-text">{_e(rule.text)}</p>')
        else:
            out.append(f"<h3>{_badge('FAIL', 'fail')} Checks that name no rule of the table</h3>")
        for c in checks:
            if c.id in shown:
                out.append(
                    f"<h4>Check <code>{_e(c.id)}</code>: {_e(c.title)}</h4>"
                    '<p class="muted">Its findings are listed under '
                    f'<a href="#rule-{_e(shown[c.id])}">{_e(shown[c.id])}</a>.</p>'
                )
                continue
            shown[c.id] = rule.id if rule is not None else "none"
            out += _check(report, c, counter)
        out.append("</article>")
    out.append("</section>")
    return out


def _failing_by_rule(report: Report, failing: list[Check]) -> list[tuple[Rule | None, list[Check]]]:
    groups: list[tuple[Rule | None, list[Check]]] = []
    for rule in sorted(RULES, key=lambda r: _area_key(r.area)):
        checks = [c for c in report.exercised(rule) if c.findings]
        if checks:
            groups.append((rule, sorted(checks, key=lambda c: c.id)))
    orphans = sorted((c for c in failing if not c.rules), key=lambda c: c.id)
    if orphans:
        groups.append((None, orphans))
    return groups


def _check(report: Report, c: Check, counter: Iterator[int]) -> list[str]:
    n = len(c.findings)
    runs = f"{n} of {max(c.runs, n)} request(s) deviate" if c.runs else f"{n} deviating request(s)"
    out = [
        f"<h4>Check <code>{_e(c.id)}</code>: {_e(c.title)}</h4>",
        f'<p class="muted">{_e(runs)}'
        + (f" · rule: {_e(c.rule)}" if c.rule and not c.rules else "")
        + "</p>",
    ]
    first, rest = c.findings[:SHOWN_FINDINGS], c.findings[SHOWN_FINDINGS:MAX_FINDINGS]
    out.append('<ol class="findings">')
    out += [line for i, f in enumerate(first, 1) for line in _finding(report, c, f, i, next(counter))]
    out.append("</ol>")
    if rest:
        out.append(f"<details><summary>Show {_plural(len(rest), 'more deviating request')}</summary>")
        out.append(f'<ol class="findings" start="{SHOWN_FINDINGS + 1}">')
        out += [
            line
            for i, f in enumerate(rest, SHOWN_FINDINGS + 1)
            for line in _finding(report, c, f, i, next(counter))
        ]
        out += ["</ol>", "</details>"]
    left = len(c.findings) - MAX_FINDINGS
    if left > 0:
        out.append(f'<p class="muted">… and {left} more not listed here.</p>')
    return out


def _finding(report: Report, c: Check, f: Finding, index: int, number: int) -> list[str]:
    label = f.label or _label(f.request)
    out = [
        '<li class="finding">',
        f'<p class="label">{index}) <code>{_e(label)}</code></p>',
        '<dl class="values">',
        f"<div><dt>Expected</dt><dd><pre>{_e(f.expected)}</pre></dd></div>",
        f"<div><dt>Received</dt><dd><pre>{_e(f.received)}</pre></dd></div>",
        "</dl>",
    ]
    if f.detail:
        out.append('<ul class="detail">' + "".join(f"<li>{_e(d)}</li>" for d in f.detail) + "</ul>")
    commands = reproducer_commands(f, report.base_url)
    if commands:
        pre_id = f"repro-{number}"
        what = (
            "Reproduce in order (the first request creates the record again)"
            if len(commands) > 1
            else "Reproduce"
        )
        out += [
            '<div class="repro">',
            '<div class="repro-head">',
            f"<span>{_e(what)}</span>",
            f'<button type="button" class="copy" hidden aria-controls="{pre_id}" '
            f'aria-label="Copy the reproducer of {_e(c.id)}, request {index}">Copy</button>',
            "</div>",
            f'<pre id="{pre_id}" class="curl">{_e(chr(10).join(commands))}</pre>',
            "</div>",
        ]
    out.append("</li>")
    return out


def _problems(report: Report) -> list[str]:
    if not report.problems and not report.notes:
        return []
    out = ['<section class="card" aria-labelledby="notes">', '<h2 id="notes">Problems and notes</h2>']
    out.append('<ul class="plain">')
    out += [f"<li>{_badge('PROBLEM', 'warn')} {_e(p)}</li>" for p in report.problems]
    out += [f"<li>{_badge('NOTE', 'skip')} {_e(n)}</li>" for n in report.notes]
    out += ["</ul>", "</section>"]
    return out


def _rules_table(report: Report) -> list[str]:
    out = [
        '<section class="card" aria-labelledby="rules">',
        f'<h2 id="rules">All rules of the contract ({len(RULES)})</h2>',
        "<table>",
        '<thead><tr><th scope="col">Status</th><th scope="col">Rule</th>'
        '<th scope="col">Checks that ran (requests)</th></tr></thead>',
    ]
    areas = [a for a in AREAS if any(r.area == a for r in RULES)]
    areas += sorted({r.area for r in RULES} - set(areas))
    for area in areas:
        out.append(f'<tbody><tr><th scope="rowgroup" colspan="3" id="area-{_e(area)}">{_e(area)}</th></tr>')
        for rule in (r for r in RULES if r.area == area):
            checks = report.exercised(rule)
            if any(c.findings for c in checks):
                status = f'<a href="#rule-{_e(rule.id)}">{_badge("FAIL", "fail")}</a>'
            elif checks:
                status = _badge("PASS", "pass")
            else:
                status = _badge("NOT CHECKED", "skip")
            if checks:
                ran = ", ".join(
                    f"<code>{_e(c.id)}</code>&nbsp;({c.runs}"
                    + (f", {len(c.findings)} failed" if c.findings else "")
                    + ")"
                    for c in sorted(checks, key=lambda c: c.id)
                )
            else:
                why = f"needs {rule.needs}" if rule.needs else "no check of this rule ran"
                ran = f'<span class="muted">{_e(why)}</span>'
            out.append(
                f'<tr><td class="status">{status}</td><td><code>{_e(rule.id)}</code><br>{_e(rule.text)}</td>'
                f'<td class="checks-ran">{ran}</td></tr>'
            )
        out.append("</tbody>")
    out += ["</table>", "</section>"]
    return out


def _timings(report: Report) -> list[str]:
    if not report.timings:
        return []
    longest = max(report.timings.values()) or 1.0
    out = [
        '<section class="card" aria-labelledby="timings">',
        '<h2 id="timings">Time by phase</h2>',
        '<table class="narrow">',
        '<thead><tr><th scope="col">Phase</th><th scope="col" class="num">Seconds</th>'
        '<th scope="col"><span class="sr-only">Share</span></th></tr></thead>',
        "<tbody>",
    ]
    for name, secs in report.timings.items():
        out.append(
            f'<tr><th scope="row">{_e(name)}</th><td class="num">{secs:.1f}</td>'
            f"<td>{_bar(secs, longest)}</td></tr>"
        )
    total = sum(report.timings.values())
    out += [
        "</tbody>",
        f'<tfoot><tr><th scope="row">total</th><td class="num">{total:.1f}</td><td></td></tr></tfoot>',
        "</table>",
        "</section>",
    ]
    return out
