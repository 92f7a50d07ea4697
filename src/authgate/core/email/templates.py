"""The Jinja environment that renders every email.

Sandboxed (a template cannot reach Python internals), ``StrictUndefined`` (a missing context
key is an error, not an empty string) and autoescaping for ``.html`` files only. Context values
are data, never template source: a user whose name is ``{{7*7}}`` gets exactly that text back.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import BaseLoader, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def make_environment(loader: BaseLoader | None = None) -> SandboxedEnvironment:
    """The rendering environment; ``loader`` replaces the packaged templates (tests only)."""
    return SandboxedEnvironment(
        loader=loader or FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(
            enabled_extensions=("html",), default_for_string=False, default=False
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
