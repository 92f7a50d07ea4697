"""The CLI reference, rendered from the ``authgate`` argparse parser (``cli.build_parser``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

from authgate.cli import build_parser

#: argparse wraps help to the terminal; the reference uses one fixed width.
HELP_WIDTH = "100"


@contextmanager
def _fixed_width() -> Iterator[None]:
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def commands(
    parser: argparse.ArgumentParser | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """``(words, help, parser)`` for every command and sub-command, depth first."""
    parser = parser or build_parser()
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            words = (*prefix, name)
            yield words, helps.get(name, ""), sub
            yield from commands(sub, words)


def anchor(words: tuple[str, ...]) -> str:
    return "cmd-" + "-".join(words)


def render() -> str:
    """The Markdown of ``reference/cli.md``."""
    parser = build_parser()
    with _fixed_width():
        top = parser.format_help()
        entries = [(words, text, sub.format_help()) for words, text, sub in commands(parser)]
    out = [
        "# CLI reference",
        "",
        "Generated from the `authgate` command's argparse parser (`authgate.cli.build_parser`)",
        "when this site was built: each section is exactly what `--help` prints. The command is",
        "the `authgate` console script of the package (also `python -m authgate`); in the compose",
        "deployment run it as `docker compose run --rm --no-deps app <command>`.",
        "",
        "Long operations print progress and a summary on a terminal and JSON lines when their",
        "output is piped. Exit codes: `0` done, `1` the operation failed (or, for commands that",
        "handle several items, at least one item did), `2` wrong usage, `130` interrupted.",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for words, text, _ in entries:
        out.append(f"| [`authgate {' '.join(words)}`](#{anchor(words)}) | {text} |")
    out += ["", "## `authgate`", "", "```text", top.rstrip(), "```", ""]
    for words, text, help_text in entries:
        out += [f"## `authgate {' '.join(words)}` {{#{anchor(words)}}}", ""]
        if text:
            out += [text[0].upper() + text[1:] + ".", ""]
        out += ["```text", help_text.rstrip(), "```", ""]
    return "\n".join(out)
