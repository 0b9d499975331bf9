"""Markdown helpers shared by the generators."""

from __future__ import annotations

import html
import re


def cell(text: object) -> str:
    """Text for one Markdown table cell: on one line; outside code spans, `|` escaped and HTML
    special characters escaped (so `<id>` shows as written). Python-Markdown's tables do not
    split a row at a `|` inside a code span, and would show a backslash there."""
    flat = " ".join(str(text).split())
    parts = re.split(r"(`[^`]*`)", flat)
    out = [
        p
        if p.startswith("`") and p.endswith("`") and len(p) > 1
        else html.escape(p, quote=False).replace("|", "\\|")
        for p in parts
    ]
    return "".join(out)


def plain(text: object) -> str:
    """Plain text (a help string, a rule) for a table cell: `*` and `_` shown as they are, never
    read as emphasis (`/api/crm/*`, "turned into _")."""
    return cell(str(text).replace("*", "\\*").replace("_", "\\_"))


def code(text: object) -> str:
    """An inline code span that holds any text (backticks included)."""
    s = str(text)
    fence = "``" if "`" in s else "`"
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
