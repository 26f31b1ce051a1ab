"""mm-web's page in headless Chromium: names/s of two model files of a kind, side by side (old and new graph).

    .venv/bin/python bench/web_speed.py --pair transformer OLD.onnx NEW.onnx [--pair ...] [--n 10000] [--pairs 3]

Each file becomes a site (mm-web's build_site), served on loopback by `python -m http.server`; the page makes n
names (its most at once: 10,000) with seed 1, and the time from the click to the last name shown is measured; old
and new alternate (A B A B ...). Prints the medians, their ratio and whether both pages showed the same names.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from loopback import static_server  # noqa: E402
from makemore.runtime.web.site import build_site  # noqa: E402


def page_names(browser, port: int, site: str, n: int) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    """One fresh page of `site`: seconds from the click to the n-th name shown, and the names."""
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/{site}/")
    page.wait_for_selector("body[data-state='ready']", timeout=120_000)
    page.fill("#count", str(n))
    page.fill("#seed", "1")
    start = time.perf_counter()
    page.click("#generate")
    page.wait_for_function(f"document.querySelectorAll('#names li').length === {n}", timeout=600_000, polling=20)
    seconds = time.perf_counter() - start
    names = page.locator("#names li").all_inner_texts()
    page.close()
    return seconds, names


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=3, action="append", metavar=("KIND", "OLD", "NEW"), required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    rows = []
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        for index, (_, old, new) in enumerate(args.pair):
            build_site(old, Path(folder) / f"old{index}")
            build_site(new, Path(folder) / f"new{index}")
        with static_server(Path(folder)) as port:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            for index, (kind, _, _) in enumerate(args.pair):
                times: dict[str, list[float]] = {"old": [], "new": []}
                names: dict[str, list[str]] = {}
                for _ in range(args.pairs):
                    for side in ("old", "new"):
                        seconds, names[side] = page_names(browser, port, f"{side}{index}", args.n)
                        times[side].append(seconds)
                rate = {side: args.n / statistics.median(values) for side, values in times.items()}
                differ = sum(a != b for a, b in zip(names["old"], names["new"], strict=True))
                ratio = rate["new"] / rate["old"]
                rows.append(f"| {kind} | {rate['old']:,.0f} | {rate['new']:,.0f} | {ratio:.2f}x | {differ} |")
            browser.close()
    print(f"n = {args.n:,} names on the page, {args.pairs} interleaved pairs, medians; load {load}")
    print("\n| kind | old names/s | new names/s | ratio | names that differ |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
