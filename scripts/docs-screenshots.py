"""Screenshots of the documentation site: the home page and one guide, into docs/screenshots/.

Serves the built ``site/`` (``make docs`` first; ``make docs-screenshots`` does both) on a free
loopback port and photographs it with Debian's headless Chromium (``/usr/bin/chromium``; no
Playwright, nothing downloaded). Run it again after a change to the theme or those pages and
commit the PNGs.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
OUT = ROOT / "docs" / "screenshots"
#: page path in the site -> file name
PAGES = {"": "home.png", "guides/spa/": "guide-spa.png"}
WINDOW = "1280,900"


def chromium() -> str:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit("chromium is not installed: apt-get install -y chromium")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log on the terminal."""


def main() -> int:
    if not (SITE / "index.html").exists():
        sys.exit("no site/ yet: run `make docs` first")
    browser = chromium()
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        for path, name in PAGES.items():
            target = OUT / name
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--window-size={WINDOW}",
                    f"--screenshot={target}",
                    f"http://127.0.0.1:{port}/{path}",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            print(f"{target.relative_to(ROOT)}")
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
