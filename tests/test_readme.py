"""The README's curl walk-through, run as written against a real ``authgate serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def _walkthrough() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Walk-through with curl", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.strip().splitlines() if line and not line.startswith("#")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")},
        "AUTHGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}",
        "AUTHGATE_KEYS_DIR": str(tmp_path / "keys"),
        "AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    cli = [sys.executable, "-m", "authgate"]
    subprocess.run([*cli, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True)
    with log.open("w") as handle:
        process = subprocess.Popen(
            [*cli, "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30)
        yield port, log
    finally:
        process.terminate()
        process.wait(10)


def _console_token(log: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"/verify-email\?token=(agv_[A-Za-z0-9_-]+)", log.read_text())
        if match:
            return match.group(1)
        time.sleep(0.05)
    raise AssertionError("no verification link in the console log:\n" + log.read_text())


def test_readme_walkthrough(server: tuple[int, Path]) -> None:
    port, log = server
    lines = [line.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for line in _walkthrough()]
    assert len(lines) == 5  # register, TOKEN=, verify, login, me: nothing hidden
    assert lines[1].startswith("TOKEN=")

    def bash(script: list[str]) -> str:
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + "\n".join(script)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "verification email" in bash(lines[:1])
    # The one manual step: the token is copied from the console log into TOKEN.
    output = bash([f"TOKEN={_console_token(log)}", *lines[2:]])
    outputs = [output.splitlines()[-1]]
    assert '"email":"ada@example.com"' in outputs[-1].replace(" ", "")
    assert '"email_verified":true' in outputs[-1].replace(" ", "")
