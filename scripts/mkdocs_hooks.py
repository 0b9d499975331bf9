"""MkDocs hooks (mkdocs.yml `hooks:`): generated reference sections and included repository files.

In a page, a line `<!-- generated: NAME -->` becomes the Markdown of `docsgen.GENERATORS[NAME]`,
and `<!-- include: PATH -->` the file at PATH, relative to the repository root (`, optional`
after the path: a note instead of an error when the file is missing). An unknown name or a
missing file fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# MkDocs puts this file's folder on sys.path while it loads the file, so docsgen/ imports.
from docsgen import GENERATORS, api

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- (generated|include): ([^,>]+?)(, optional)? -->[ \t]*$", re.MULTILINE)


def expand(markdown: str, root: Path = ROOT) -> str:
    """`markdown` with every marker replaced."""

    def replace(match: re.Match[str]) -> str:
        kind, name, optional = match.group(1), match.group(2).strip(), bool(match.group(3))
        if kind == "generated":
            if name not in GENERATORS:
                raise KeyError(f"<!-- generated: {name} -->: no such generator; known: {sorted(GENERATORS)}")
            return GENERATORS[name]().rstrip() + "\n"
        path = root / name
        if not path.is_file():
            if optional:
                title = Path(name).stem.replace("_", " ").capitalize()
                return f"# {title}\n\n*`{name}` is not in the repository yet.*\n"
            raise FileNotFoundError(f"<!-- include: {name} -->: {path} does not exist")
        return path.read_text(encoding="utf-8").rstrip() + "\n"

    return MARKER.sub(replace, markdown)


def on_pre_build(**kwargs: Any) -> None:
    # `mkdocs serve` rebuilds in the same process: read the specs afresh each time.
    api.load.cache_clear()


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return expand(markdown)
