"""docs/web-screenshot.png from a real run: mm-web's site for a model, served by `python -m http.server` on
loopback, opened in headless Chromium, 24 names generated with seed 42.

    .venv/bin/python bench/web_screenshot.py out/model.onnx [docs/web-screenshot.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from loopback import static_server  # noqa: E402
from makemore.runtime.web.site import build_site  # noqa: E402


def main(model: str, shot: str = "docs/web-screenshot.png") -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        build_site(model, Path(folder) / "site")
        with static_server(Path(folder) / "site") as port:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 900, "height": 520})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-state='ready']", timeout=60_000)
            page.fill("#count", "24")
            page.fill("#temperature", "0.9")
            page.fill("#seed", "42")
            page.click("#generate")
            page.wait_for_function("document.querySelectorAll('#names li').length === 24", timeout=60_000)
            page.screenshot(path=shot, full_page=True)
            print(f"wrote {shot}: {', '.join(page.locator('#names li').all_inner_texts()[:8])}, ...")
            browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
