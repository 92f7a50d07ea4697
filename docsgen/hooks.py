"""MkDocs hook (``hooks:`` in mkdocs.yml): adds the generated reference pages to the build.

The pages exist only in the build (``File.generated``), never in ``docs/``: there is nothing to
keep in sync by hand, and a setting, route or command added to the code is in the next build.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

# MkDocs loads this file by path; the package next to it and authgate must be importable.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from docsgen import cli_ref, http_ref, metrics_ref, settings_ref  # noqa: E402

GENERATED = {
    "reference/settings.md": settings_ref.render,
    "reference/http.md": http_ref.render,
    "reference/cli.md": cli_ref.render,
    "reference/metrics.md": metrics_ref.render,
}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for src_uri, render in GENERATED.items():
        files.append(File.generated(config, src_uri, content=render()))
    return files
