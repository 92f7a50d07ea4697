"""The repository's Node projects (the TypeScript kit, the example SPA) for the tests.

Dependencies come only from each project's committed ``package-lock.json`` (``npm ci``), and
only when ``node_modules`` was not installed from that same lock (``scripts/npm-ci.sh``), so a
second run installs nothing and needs no network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT_DIR = ROOT / "clients" / "typescript"
SPA_DIR = ROOT / "examples" / "spa"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is needed for the TypeScript kit and the example SPA (make system-deps)"
        )
    return found


def npm_ci(*projects: Path) -> None:
    _tool("npm")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "npm-ci.sh"), *map(str, projects)],
        check=True,
        timeout=600,
    )


def run(project: Path, *command: str, timeout: float = 300) -> str:
    """Runs ``command`` (``npm``/``node`` …) in ``project``; fails the test with its output."""
    result = subprocess.run(
        [_tool(command[0]), *command[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` in {project.relative_to(ROOT)} failed:\n{output}")
    return output
