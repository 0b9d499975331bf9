"""The docs' fenced examples: found in the Markdown, checked for their marker, run against a mock.

The convention. Every sh, bash, shell, console, python, py, js, javascript or mjs block of README.md
and docs/**/*.md has an HTML comment on the line directly above its fence (no blank line between):

    <!-- illustrative -->               never run (installs, long-running servers, output samples)
    <!-- run -->                        run against the page's mock
    <!-- run: expect 200 201 -->         shell: the HTTP statuses of its curl transfers, in order
    <!-- run: file crm.py -->            written into the page's folder under that name
    <!-- run: expect 201; file a.sh -->  options combine with `;`

Blocks in other languages need no marker and never run, but `file NAME` works on them too (a
fixture file, a JSON body). How a page's run blocks run, in page order:
- against one mock started for the page on the bundled fixtures, in one folder of the page's
  (holding a copy of the bundled fixtures as ./fixtures), with BASE and KANTOS_URL (the mock's
  URL), KEY and KANTOS_API_KEY (its admin key) exported and the project's .venv/bin on PATH;
- shell blocks with `bash -euo pipefail`; a console block's `$ ` lines only. A shell block whose
  curl calls got answers must say which (`expect`); curl is a wrapper that records them;
- Python blocks with python, or under pytest (with the project's plugin, so `kantos_mock` works)
  when they define tests; a pytest block fails when no test ran or one skipped;
- JavaScript blocks with `node`, or `node --test` when they use node:test; skipped without node;
- a `file` block is only written, unless it is a Python block with tests or a node:test block;
- each block within BLOCK_TIMEOUT; whatever it started in the background ends with it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

SHELL = frozenset({"sh", "bash", "shell", "console"})
PYTHON = frozenset({"python", "py"})
JS = frozenset({"js", "javascript", "mjs"})
MARKED = SHELL | PYTHON | JS

BLOCK_TIMEOUT = 90.0  # seconds one example may take (a kit run took ~35 s on a loaded machine)
OUTPUT_SHOWN = 6000  # characters of an example's output a failure message shows (the end of it)

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")
_MARKER = re.compile(r"^(?:illustrative|run)\b")
_STATUS = re.compile(r"^\d{3}$")
_PY_TESTS = re.compile(r"^(?:async\s+)?def\s+test|^class\s+Test", re.MULTILINE)
_CURL_MARK = "@@docs-curl-status@@"


class MarkerError(ValueError):
    pass


@dataclass(frozen=True)
class Options:
    run: bool
    expect: tuple[str, ...] | None = None
    file: str | None = None


@dataclass(frozen=True)
class Block:
    page: str  # the file's path as shown (relative to the repository)
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # the comment's text on the line above the fence, when it is a marker

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def options(self) -> Options | None:
        return None if self.marker is None else parse_marker(self.marker)

    @property
    def runs(self) -> bool:
        """Whether the runner touches this block at all (runs it or writes it as a file)."""
        try:
            options = self.options
        except MarkerError:
            return self.lang in MARKED  # run, so that the bad marker fails as this example
        return options is not None and options.run


def parse_marker(body: str) -> Options:
    """`illustrative`, `run`, or `run: OPTION; OPTION` with `expect STATUS...` and `file NAME`."""
    if body == "illustrative":
        return Options(run=False)
    head, colon, rest = body.partition(":")
    if head.strip() != "run" or (not colon and rest):
        raise MarkerError(f"unknown marker <!-- {body} -->: say `illustrative`, `run` or `run: OPTIONS`")
    expect: tuple[str, ...] | None = None
    file: str | None = None
    for option in filter(None, (part.strip() for part in rest.split(";"))):
        word, *args = option.split()
        if word == "expect" and args and all(_STATUS.match(a) for a in args):
            expect = tuple(args)
        elif word == "file" and len(args) == 1 and not Path(args[0]).is_absolute() and ".." not in args[0]:
            file = args[0]
        else:
            raise MarkerError(
                f"bad option {option!r} in <!-- {body} -->: `expect STATUS...` (three digits each) or "
                "`file NAME` (a relative path)"
            )
    if colon and expect is None and file is None:
        raise MarkerError(f"<!-- {body} --> names no option")
    return Options(run=True, expect=expect, file=file)


def extract(path: Path, shown_as: str) -> list[Block]:
    """Every fenced block of a Markdown file, with the marker comment directly above it if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        info = opening["info"].strip().lstrip("{").lstrip(".")
        lang = re.split(r"[\s{}]", info, maxsplit=1)[0].lower() if info else ""
        above = _COMMENT.match(lines[i - 1]) if i else None
        marker = above["body"] if above and _MARKER.match(above["body"]) else None
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            text = lines[j]
            strip = min(indent, len(text) - len(text.lstrip(" ")))
            body.append(text[strip:])
            j += 1
        blocks.append(Block(shown_as, i + 1, lang, "\n".join(body) + "\n", marker))
        i = j + 1
    return blocks


def marker_problems(blocks: list[Block]) -> list[str]:
    """What breaks the convention: a block that needs a marker and has none, or a bad marker."""
    problems = []
    for block in blocks:
        if block.marker is None:
            if block.lang in MARKED:
                problems.append(
                    f"{block.id}: {block.lang} block has no marker: put <!-- run --> or "
                    "<!-- illustrative --> on the line directly above the fence"
                )
            continue
        try:
            options = parse_marker(block.marker)
        except MarkerError as exc:
            problems.append(f"{block.id}: {exc}")
            continue
        if options.expect is not None and block.lang not in SHELL:
            problems.append(f"{block.id}: `expect` is for shell blocks, this is {block.lang or 'untagged'}")
        if options.run and block.lang not in MARKED and options.file is None:
            problems.append(
                f"{block.id}: a {block.lang or 'untagged'} block only runs as `file NAME` (written, not run)"
            )
    return problems


# --- running ----------------------------------------------------------------------------------


class Mock(Protocol):
    url: str
    api_key: str

    def stop(self) -> None: ...


@dataclass
class Outcome:
    ok: bool
    skipped: str | None = None  # the reason, when the example could not run here
    message: str = ""
    seconds: float = 0.0


# A curl that records each transfer's HTTP status (one line each) in $DOCS_CURL_STATUSES and
# otherwise behaves as the real one: the example's own `-w FORMAT` is kept, ours goes to stderr
# behind a mark and is filtered out of it there.
_CURL_SHIM = r"""#!/usr/bin/env bash
set -u
real=__REAL__
mark=__MARK__
fmt="" next=0 args=()
for a in "$@"; do
    if (( next )); then fmt=$a; next=0; continue; fi
    case $a in
        -w|--write-out) next=1 ;;
        -[!-]*w) args+=("${a%w}"); next=1 ;;
        *) args+=("$a") ;;
    esac
done
if [[ $fmt == @- ]]; then fmt=$(cat); elif [[ $fmt == @* ]]; then fmt=$(cat "${fmt#@}"); fi
exec 3>&1
"$real" "${args[@]}" --write-out "${fmt}%{stderr}${mark}%{http_code}\n" 2>&1 1>&3 3>&- |
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line == *"$mark"* ]]; then
            printf '%s\n' "${line##*"$mark"}" >> "$DOCS_CURL_STATUSES"
            line=${line%%"$mark"*}
            [[ -z $line ]] || printf '%s' "$line" >&2
        else
            printf '%s\n' "$line" >&2
        fi
    done 3>&-
exit "${PIPESTATUS[0]}"
"""


@dataclass
class Page:
    """One Markdown page's run blocks, their folder and their mock (started on first use)."""

    blocks: list[Block]
    folder: Path
    runner: Path  # the runner's own files (scripts, curl shim, statuses), outside the page folder
    start_mock: Callable[[], Mock]
    fixtures: Path
    mock: Mock | None = None
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def close(self) -> None:
        if self.mock is not None:
            self.mock.stop()
            self.mock = None

    def run(self, block: Block) -> Outcome:
        """Run `block`, after the page's earlier blocks it may build on (once each)."""
        earlier_failed = []
        for other in self.blocks:
            if other.line >= block.line:
                break
            if other.runs and other.line not in self.outcomes:
                self.outcomes[other.line] = self._run(other)
            if not self.outcomes.get(other.line, Outcome(True)).ok and other.runs:
                earlier_failed.append(other.id)
        outcome = self.outcomes[block.line] = self._run(block)
        if earlier_failed and not outcome.ok:
            outcome.message += f"\n(an earlier example of this page failed too: {', '.join(earlier_failed)})"
        return outcome

    def _run(self, block: Block) -> Outcome:
        started = time.monotonic()
        try:
            outcome = self._dispatch(block)
        except MarkerError as exc:
            outcome = Outcome(False, message=f"{block.id}: {exc}")
        outcome.seconds = time.monotonic() - started
        return outcome

    def _dispatch(self, block: Block) -> Outcome:
        options = parse_marker(block.marker or "run")
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            shutil.copytree(self.fixtures, self.folder / "fixtures")
            self.runner.mkdir(parents=True, exist_ok=True)
        if self.mock is None:
            self.mock = self.start_mock()
        if options.file is not None:
            target = self.folder / options.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
        if block.lang in SHELL:
            if options.file is not None:
                return Outcome(True)
            return self._shell(block, options)
        if block.lang in PYTHON:
            return self._python(block, options)
        if block.lang in JS:
            return self._js(block, options)
        return Outcome(True)  # another language's `file` block: written above

    # -- per language --

    def _shell(self, block: Block, options: Options) -> Outcome:
        code = console_commands(block.code) if block.lang == "console" else block.code
        script = self.runner / f"L{block.line}.sh"
        script.write_text(code, encoding="utf-8")
        statuses = self.runner / f"L{block.line}.statuses"
        statuses.write_text("")
        rc, output = self._exec(["bash", "-euo", "pipefail", str(script)], statuses=statuses)
        seen = statuses.read_text().split()
        if rc != 0:
            wanted = "" if options.expect is None else f"; curl statuses {' '.join(options.expect)}"
            got = f"exit status {rc}; curl statuses {' '.join(seen) or '(no curl call)'}"
            return self._failed(block, output, got, f"exit status 0{wanted}")
        if options.expect is None:
            if seen:
                return self._failed(
                    block, output, f"curl answered {' '.join(seen)} with no `expect`",
                    f"<!-- run: expect {' '.join(seen)} --> (or the statuses the example should get)",
                )  # fmt: skip
            return Outcome(True)
        if tuple(seen) != options.expect:
            return self._failed(
                block, output, f"curl statuses {' '.join(seen) or '(no curl call)'}",
                f"curl statuses {' '.join(options.expect)}",
            )  # fmt: skip
        return Outcome(True)

    def _python(self, block: Block, options: Options) -> Outcome:
        has_tests = bool(_PY_TESTS.search(block.code))
        if options.file is not None:
            if not has_tests:
                try:
                    compile(block.code, options.file, "exec")
                except SyntaxError as exc:
                    return self._failed(block, "", f"SyntaxError: {exc}", "valid Python")
                return Outcome(True)
            name = options.file
        else:
            name = f"{'test_' if has_tests else ''}docs_example_L{block.line}.py"
            (self.folder / name).write_text(block.code, encoding="utf-8")
        if not has_tests:
            rc, output = self._exec([sys.executable, name])
            if rc != 0:
                return self._failed(block, output, f"exit status {rc}", "exit status 0")
            return Outcome(True)
        report = self.runner / f"L{block.line}.xml"
        # Only the project's plugin (as the entry point would load it): autoloading every installed
        # plugin (hypothesis, schemathesis, Faker, ...) costs seconds per run.
        plugins = ["-p", "no:cacheprovider", "-p", "mockserver.pytest_plugin"]
        argv = [sys.executable, "-m", "pytest", "-q", "-rA", *plugins, f"--junit-xml={report}", name]
        rc, output = self._exec(argv, {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
        counts = _junit_counts(report)
        problems = [f"{n} {what}" for what, n in counts.items() if what != "tests" and n]
        if rc != 0 or not counts["tests"] or problems:
            got = f"pytest exit status {rc}: {counts['tests']} tests, {', '.join(problems) or 'none failed'}"
            return self._failed(block, output, got, "every test collected and passing, none skipped")
        return Outcome(True)

    def _js(self, block: Block, options: Options) -> Outcome:
        is_test = "node:test" in block.code
        if options.file is not None and not is_test:
            return Outcome(True)
        node = shutil.which("node")
        if node is None:
            return Outcome(True, skipped=f"{block.id}: node is not installed, so this example cannot run")
        name = options.file or f"docs_example_L{block.line}{'.test' if is_test else ''}.mjs"
        if options.file is None:
            (self.folder / name).write_text(block.code, encoding="utf-8")
        rc, output = self._exec([node, "--test", name] if is_test else [node, name])
        if rc != 0:
            return self._failed(block, output, f"exit status {rc}", "exit status 0")
        return Outcome(True)

    # -- shared --

    def _exec(
        self, argv: list[str], extra_env: dict[str, str] | None = None, statuses: Path | None = None
    ) -> tuple[int, str]:
        """Run argv in the page folder with the convention's environment; its whole process group
        is killed afterwards (servers an example started in the background included)."""
        assert self.mock is not None
        shim = self.runner / "bin"
        real_curl = shutil.which("curl")
        if real_curl and not (shim / "curl").exists():
            shim.mkdir(parents=True, exist_ok=True)
            text = _CURL_SHIM.replace("__REAL__", real_curl).replace("__MARK__", _CURL_MARK)
            (shim / "curl").write_text(text)
            (shim / "curl").chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        path = [str(shim), str(Path(sys.executable).parent), env.get("PATH", os.defpath)]
        env.update(
            PATH=os.pathsep.join(path),
            BASE=self.mock.url,
            KEY=self.mock.api_key,
            KANTOS_URL=self.mock.url,
            KANTOS_API_KEY=self.mock.api_key,
            DOCS_CURL_STATUSES=str(statuses or self.runner / "ignored.statuses"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra_env or {})
        log = self.runner / "output.log"
        with log.open("w") as out:
            # Output to a file, not a pipe: a background child keeping a pipe open would block us.
            proc = subprocess.Popen(
                argv, cwd=self.folder, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                rc = proc.wait(timeout=BLOCK_TIMEOUT)
            except subprocess.TimeoutExpired:
                rc = -1
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output = log.read_text(errors="replace")
        if rc == -1:
            output += f"\n[killed: still running after {BLOCK_TIMEOUT:g} s]"
        return rc, output

    def _failed(self, block: Block, output: str, got: str, expected: str) -> Outcome:
        if len(output) > OUTPUT_SHOWN:
            output = f"[... {len(output) - OUTPUT_SHOWN} characters before]\n" + output[-OUTPUT_SHOWN:]
        numbered = "\n".join(
            f"{block.line + n:5} | {text}" for n, text in enumerate(block.code.splitlines(), start=1)
        )
        return Outcome(
            False,
            message=(
                f"{block.id}: the {block.lang} example <!-- {block.marker} --> failed\n"
                f"--- example ---\n{numbered}\n"
                f"--- output ---\n{output.rstrip() or '(none)'}\n"
                f"--- got ---\n{got}\n"
                f"--- expected ---\n{expected}"
            ),
        )


def console_commands(text: str) -> str:
    """A console block's commands: the `$ ` lines and their backslash continuations."""
    commands: list[str] = []
    continued = False
    for line in text.splitlines():
        if continued or line.startswith("$ "):
            commands.append(line if continued else line[2:])
            continued = line.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def _junit_counts(report: Path) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if report.exists():
        root = ET.parse(report).getroot()
        for suite in root.iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, "0"))
    return counts
