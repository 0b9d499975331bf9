"""Every example in README.md and docs/**/*.md is marked, and every runnable one runs.

The marker convention and how examples run are in tests/docs_examples.py. Each page's examples
run in page order against a mock started for that page; each example is a test of its own
(`test_example_runs[docs/guides/faults.md:42]`), and selecting one runs the page's earlier
examples first, since it may build on them.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docs_examples import Block, Mock, Outcome, Page, console_commands, extract, marker_problems

from mockserver import MockServer, create_app
from mockserver.domain.backend import FixtureSet
from mockserver.openapi import Spec

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "mockserver" / "fixtures"  # the bundled set (fixtures/ links to it)
# Pages of another checkout can be tried with this runner: KANTOS_DOCS_ROOT=/path/to/clone pytest ...
DOCS_ROOT = Path(os.environ.get("KANTOS_DOCS_ROOT") or ROOT)


def doc_pages(root: Path = ROOT) -> dict[str, list[Block]]:
    paths = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return {
        path.relative_to(root).as_posix(): extract(path, path.relative_to(root).as_posix())
        for path in paths
        if path.is_file()
    }


PAGES = doc_pages(DOCS_ROOT)
RUNNABLE = [block for blocks in PAGES.values() for block in blocks if block.runs]


class Runner:
    """The pages being run: one open at a time (examples come in page order), each with its mock."""

    def __init__(self, root: Path, start_mock: Callable[[], Mock]) -> None:
        self.root, self.start_mock = root, start_mock
        self.pages: dict[str, Page] = {}
        self.seconds, self.examples = 0.0, 0

    def page(self, name: str, blocks: list[Block]) -> Page:
        if name not in self.pages:
            for other in self.pages.values():
                other.close()  # the page before is done: stop its mock
            folder = self.root / f"page{len(self.pages)}"
            runner_files = folder.with_name(folder.name + "-runner")
            self.pages[name] = Page(blocks, folder, runner_files, self.start_mock, FIXTURES)
        return self.pages[name]

    def run(self, block: Block, blocks: list[Block]) -> Outcome:
        started = time.monotonic()
        try:
            return self.page(block.page, blocks).run(block)
        finally:
            self.seconds += time.monotonic() - started
            self.examples += 1

    def close(self) -> None:
        for page in self.pages.values():
            page.close()


@pytest.fixture(scope="module")
def start_mock(fixture_set: FixtureSet, spec: Spec) -> Callable[[], Mock]:
    def start() -> Mock:
        return MockServer(app=create_app(fixture_set, spec=spec)).start()

    return start


@pytest.fixture(scope="module")
def runner(
    tmp_path_factory: pytest.TempPathFactory, start_mock: Callable[[], Mock], request: pytest.FixtureRequest
) -> Iterator[Runner]:
    runner = Runner(tmp_path_factory.mktemp("docs"), start_mock)
    yield runner
    runner.close()
    # The figure the docs check is judged by (under xdist a worker's terminal is not shown: run
    # this file with -n 0 to see it).
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None and runner.examples:
        with capture.global_and_fixture_disabled():
            figures = f"{runner.examples} run on {len(runner.pages)} pages in {runner.seconds:.1f} s"
            reporter.write_line(f"\ndocs examples: {figures}")


def check(outcome: Outcome) -> None:
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    if not outcome.ok:
        pytest.fail(outcome.message, pytrace=False)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_example_is_marked(page: str) -> None:
    problems = marker_problems(PAGES[page])
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.id)
def test_example_runs(block: Block, runner: Runner) -> None:
    check(runner.run(block, PAGES[block.page]))


# --- the runner itself, on small pages made here ------------------------------------------------


def make_page(tmp_path: Path, text: str) -> list[Block]:
    (tmp_path / "docs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "docs" / "page.md").write_text(textwrap.dedent(text), encoding="utf-8")
    return doc_pages(tmp_path)["docs/page.md"]


def run_page(tmp_path: Path, start_mock: Callable[[], Mock], blocks: list[Block]) -> list[Outcome]:
    runner = Runner(tmp_path / "run", start_mock)
    try:
        return [runner.run(block, blocks) for block in blocks if block.runs]
    finally:
        runner.close()


CURLS = """\
    Intro.

    <!-- run: expect {statuses} -->
    ```sh
    curl -s -o /dev/null "$BASE/api/crm/objects" -H "X-Api-Key: $KEY"
    curl -s -w 'status %{{http_code}}\\n' "$BASE/api/crm/objects/obj_nope" -H "X-Api-Key: $KEY"
    ```
"""


def test_curl_statuses_as_expected_pass(tmp_path: Path, start_mock: Callable[[], Mock]) -> None:
    [outcome] = run_page(tmp_path, start_mock, make_page(tmp_path, CURLS.format(statuses="200 404")))
    assert outcome.ok, outcome.message


def test_a_wrong_expected_status_fails_showing_block_output_and_expectation(
    tmp_path: Path, start_mock: Callable[[], Mock]
) -> None:
    [outcome] = run_page(tmp_path, start_mock, make_page(tmp_path, CURLS.format(statuses="200 200")))
    assert not outcome.ok
    assert "docs/page.md:4" in outcome.message
    assert "obj_nope" in outcome.message  # the block
    assert "status 404" in outcome.message  # its output: the example's own -w still prints
    assert "curl statuses 200 404" in outcome.message  # what it got
    assert "curl statuses 200 200" in outcome.message  # what the marker expected


def test_curl_without_expect_fails_naming_what_it_got(tmp_path: Path, start_mock: Callable[[], Mock]) -> None:
    page = CURLS.format(statuses="200").replace("<!-- run: expect 200 -->", "<!-- run -->")
    [outcome] = run_page(tmp_path, start_mock, make_page(tmp_path, page))
    assert not outcome.ok
    assert "<!-- run: expect 200 404 -->" in outcome.message


def test_an_unmarked_block_is_named_by_file_and_line(tmp_path: Path) -> None:
    blocks = make_page(
        tmp_path,
        """\
        <!-- illustrative -->
        ```sh
        ./dev serve
        ```

        ```python
        print("no marker")
        ```

        ```yaml
        a: 1
        ```
        <!-- run: expect 2000 -->
        ```sh
        true
        ```
        """,
    )
    problems = marker_problems(blocks)
    assert len(problems) == 2, problems
    assert problems[0].startswith("docs/page.md:6: python block has no marker")
    assert problems[1].startswith("docs/page.md:14: bad option 'expect 2000'")


def test_blocks_in_lists_and_longer_fences_are_read_whole(tmp_path: Path) -> None:
    blocks = make_page(
        tmp_path,
        """\
        1. A step:

            <!-- run: expect 200 -->
            ```sh
            curl -s "$BASE/x"
              # indented under the fence
            ```

        ````markdown
        <!-- run -->
        ```sh
        not a block of its own
        ```
        ````
        """,
    )
    found = [(b.line, b.lang, b.marker) for b in blocks]
    assert found == [(4, "sh", "run: expect 200"), (9, "markdown", None)]
    assert blocks[0].code == 'curl -s "$BASE/x"\n  # indented under the fence\n'
    assert "not a block of its own" in blocks[1].code
    assert console_commands("$ echo a \\\n    b\na b\n$ true\n") == "echo a \\\n    b\ntrue\n"


def test_a_broken_python_example_fails(tmp_path: Path, start_mock: Callable[[], Mock]) -> None:
    blocks = make_page(
        tmp_path,
        """\
        <!-- run -->
        ```python
        import os, httpx
        r = httpx.get(os.environ["BASE"] + "/api/crm/objects", headers={"X-Api-Key": os.environ["KEY"]})
        assert r.status_code == 201, r.status_code
        ```
        """,
    )
    [outcome] = run_page(tmp_path, start_mock, blocks)
    assert not outcome.ok
    assert "AssertionError: 200" in outcome.message
    assert "exit status 0" in outcome.message


PYTEST_PAGE = """\
    <!-- run: file crm.py -->
    ```python
    import httpx

    def count_objects(base_url: str, api_key: str) -> int:
        return len(httpx.get(f"{base_url}/api/crm/objects", headers={"X-Api-Key": api_key}).json()["data"])
    ```

    <!-- run -->
    ```python
    from crm import count_objects

    def test_counts_the_objects(kantos_mock):
        assert count_objects(kantos_mock.url, kantos_mock.api_key) == EXPECTED
    ```
"""


def test_a_failing_pytest_example_fails(tmp_path: Path, start_mock: Callable[[], Mock]) -> None:
    outcomes = run_page(tmp_path, start_mock, make_page(tmp_path, PYTEST_PAGE.replace("EXPECTED", "4")))
    assert outcomes[0].ok
    assert not outcomes[1].ok
    assert "1 failures" in outcomes[1].message
    assert "assert 3 == 4" in outcomes[1].message


def test_a_page_shares_its_mock_and_folder_and_a_new_page_starts_fresh(
    tmp_path: Path, start_mock: Callable[[], Mock]
) -> None:
    make_page(
        tmp_path,
        """\
        <!-- run: file body.json -->
        ```json
        {"object_id": "obj_contacts", "field_values": {"name": "Ada", "email": "ada@example.com"}}
        ```
        <!-- run: expect 201 -->
        ```sh
        curl -s -X POST "$BASE/api/crm/record" -H "X-Api-Key: $KEY" -H 'Content-Type: application/json' \\
          -d @body.json | python -c 'import json, sys; print(json.load(sys.stdin)["id"])' > id.txt
        ```
        <!-- run: expect 200 -->
        ```console
        $ curl -s -o /dev/null "$BASE/api/crm/record/$(cat id.txt)" \\
            -H "X-Api-Key: $KEY"
        (no output)
        ```
        """,
    )
    (tmp_path / "docs" / "other.md").write_text(
        '<!-- run: expect 404 -->\n```sh\ncurl -s "$BASE/api/crm/record/$(cat id.txt 2>/dev/null || echo x)" '
        '-H "X-Api-Key: $KEY"\n```\n'
    )
    pages = doc_pages(tmp_path)
    runner = Runner(tmp_path / "run", start_mock)
    try:
        outcomes = [runner.run(b, pages[b.page]) for name in pages for b in pages[name] if b.runs]
    finally:
        runner.close()
    assert [o.ok for o in outcomes] == [True, True, True, True], "\n".join(o.message for o in outcomes)


def test_selecting_a_pytest_example_first_writes_the_file_it_imports(
    tmp_path: Path, start_mock: Callable[[], Mock]
) -> None:
    blocks = make_page(tmp_path, PYTEST_PAGE.replace("EXPECTED", "3"))
    runner = Runner(tmp_path / "run", start_mock)
    try:
        outcome = runner.run(blocks[1], blocks)  # as `pytest -k` would select it: crm.py comes first
        written = runner.pages["docs/page.md"].outcomes[blocks[0].line]
    finally:
        runner.close()
    assert written.ok, written.message
    assert outcome.ok, outcome.message


def test_background_processes_end_with_their_example(tmp_path: Path, start_mock: Callable[[], Mock]) -> None:
    blocks = make_page(
        tmp_path,
        """\
        <!-- run -->
        ```bash
        sleep 300 &
        echo $! > sleeper.pid
        ```
        """,
    )
    runner = Runner(tmp_path / "run", start_mock)
    try:
        [outcome] = [runner.run(b, blocks) for b in blocks]
        pid = int((runner.pages["docs/page.md"].folder / "sleeper.pid").read_text())
    finally:
        runner.close()
    assert outcome.ok, outcome.message
    assert not running(pid)


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_node_test_example_runs_under_node(tmp_path: Path, start_mock: Callable[[], Mock]) -> None:
    page = """\
        <!-- run -->
        ```js
        import { test } from "node:test";
        import assert from "node:assert/strict";
        test("objects", async () => {
          const headers = { "X-Api-Key": process.env.KEY };
          const r = await fetch(process.env.KANTOS_URL + "/api/crm/objects", { headers });
          assert.equal(r.status, STATUS);
        });
        ```
        """
    [good] = run_page(tmp_path / "a", start_mock, make_page(tmp_path / "a", page.replace("STATUS", "200")))
    [bad] = run_page(tmp_path / "b", start_mock, make_page(tmp_path / "b", page.replace("STATUS", "418")))
    assert good.ok, good.message
    assert not bad.ok
    assert "418" in bad.message
