"""The TypeScript kit (clients/typescript): its generated types match the app's OpenAPI spec,
and its type check and unit tests pass (so ``make test`` runs them)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from authgate.app import create_app
from authgate.config import Settings
from tests.support.node import KIT_DIR, npm_ci, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kit() -> Path:
    npm_ci(KIT_DIR)
    return KIT_DIR


def test_generated_schema_matches_the_app(kit: Path, tmp_path: Path) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(create_app(Settings(_env_file=None)).openapi(), indent=2))
    generated = tmp_path / "schema.d.ts"
    # The kit's own pinned openapi-typescript, through the script `make client` runs.
    run(kit, "node", "scripts/generate-schema.mjs", str(spec), str(generated))
    checked_in = (kit / "src" / "schema.d.ts").read_text()
    fresh = generated.read_text()
    if fresh != checked_in:
        diff = difflib.unified_diff(
            checked_in.splitlines(),
            fresh.splitlines(),
            "clients/typescript/src/schema.d.ts (checked in)",
            "from the app's /openapi.json",
            lineterm="",
        )
        shown = "\n".join(list(diff)[:80])
        pytest.fail(
            "clients/typescript/src/schema.d.ts is out of date with the API: run `make client` "
            f"and commit the result.\n{shown}"
        )


def test_kit_typechecks(kit: Path) -> None:
    run(kit, "npm", "run", "--silent", "typecheck")


def test_kit_unit_tests(kit: Path) -> None:
    output = run(kit, "npm", "test", "--silent")
    assert " passed" in output and "failed" not in output, output
