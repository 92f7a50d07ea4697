"""Generators of the documentation site's reference pages (settings, HTTP, CLI).

Each returns Markdown made from the code itself — ``Settings``, the app's ``/openapi.json`` and
the ``authgate`` argparse parser — so the reference cannot drift from what ships. ``hooks.py``
hands the pages to MkDocs at build time; ``tests/docs/`` checks the built site against the code.
"""
