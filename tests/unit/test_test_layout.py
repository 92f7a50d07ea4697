"""The test suite's own rules: helpers are imported from ``tests/support``, never from a
``conftest.py`` (pytest loads conftest files itself; importing one runs it a second time as a
different module and ties a test to another directory's fixtures)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def conftest_imports(source: str) -> list[int]:
    """Line numbers of the imports of a ``conftest`` module (in any spelling) in ``source``."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[-1]
            if module == "conftest" or any(a.name == "conftest" for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(
            a.name.split(".")[-1] == "conftest" for a in node.names
        ):
            lines.append(node.lineno)
    return lines


def test_no_module_imports_a_conftest() -> None:
    files = [p for p in TESTS.rglob("*.py") if "node_modules" not in p.parts]
    assert len(files) > 20
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in files
        for line in conftest_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "import helpers from tests/support, not from a conftest.py"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from tests.conftest import Flows", [1]),
        ("from tests.email.conftest import SENDER", [1]),
        ("from tests.oauth import conftest", [1]),
        ("import tests.abuse.conftest as c", [1]),
        ("from .conftest import x", [1]),
        ("from tests.support.flows import Flows", []),
    ],
)
def test_every_spelling_is_found(source: str, found: list[int]) -> None:
    assert conftest_imports(source) == found
