"""The command line reference: every subcommand of `kantos-mock`, every option, from the parsers."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from .text import code, plain, table

#: Defaults read from the environment when the parser is built; the page must not show whatever
#: the build's environment holds (the help texts name the variable instead).
ENVIRONMENT_DEFAULTS = ("KANTOS_API_KEY", "KANTOS_URL")


@contextlib.contextmanager
def _clean_environment() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in ENVIRONMENT_DEFAULTS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def parsers() -> list[tuple[str, str, argparse.ArgumentParser]]:
    """`(name, summary, parser)` of the top-level parser and each subcommand, in the parser's order."""
    from mockserver.cli import _parser

    with _clean_environment():
        top = _parser()
    found = [("kantos-mock", top.description or "", top)]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, helps.get(name, ""), sub))
    return found


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's arguments as the reference lists them: all but `-h` and the subcommands."""
    return [
        a for a in parser._actions if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def usage(parser: argparse.ArgumentParser) -> str:
    # A fixed width, so the page does not depend on the terminal that built it.
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _argument(action: argparse.Action) -> str:
    if action.nargs == 0 or not action.option_strings:
        return ""
    if action.choices is not None:
        return " \\| ".join(code(c) for c in action.choices)
    metavar = action.metavar or (action.dest if not action.option_strings else action.dest.upper())
    return code(metavar)


def _default(action: argparse.Action) -> str:
    if isinstance(action, argparse._VersionAction):
        return ""
    if action.nargs == 0:  # a flag: not given unless given
        return "off"
    if action.required:
        return "required"
    if action.default is None or action.default == [] or action.default is argparse.SUPPRESS:
        return "none"
    return code(action.default)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if isinstance(action, argparse._VersionAction):
        text = "print the version and exit"
    if action.nargs == argparse.ZERO_OR_MORE or isinstance(action, argparse._AppendAction):
        text += " (repeatable)" if "repeatable" not in text else ""
    return plain(text)


def option_table(parser: argparse.ArgumentParser) -> str:
    rows = []
    for action in options(parser):
        names = ", ".join(code(s) for s in action.option_strings) or code(action.dest)
        rows.append([names, _argument(action), _default(action), _help(action)])
    return table(["option", "argument", "default", "what it does"], rows)


def cli_reference() -> str:
    out: list[str] = []
    for name, summary, parser in parsers():
        title = name if name == "kantos-mock" else f"kantos-mock {name}"
        anchor = "kantos-mock" if name == "kantos-mock" else name
        out.append(f"## `{title}` {{#{anchor}}}\n")
        if summary:
            out.append(summary[0].upper() + summary[1:].rstrip(".") + ".\n")
        out.append(f"```text\n{usage(parser)}\n```\n")
        if options(parser):
            out.append(option_table(parser))
    return "\n".join(out)
