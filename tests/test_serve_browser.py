"""The page in a real headless Chromium (Debian's package, driven by Playwright): open /, Generate, see the names.

Deselect with `pytest -m "not browser"`; `make test` installs Chromium first. The screenshot is kept in the
test's tmp_path; docs/serve-screenshot.png is the same page served from the demo model (make demo).
"""

from __future__ import annotations

import pytest
from loopback import running_server

COUNT = 13


@pytest.mark.browser
def test_page_generates_the_requested_names(browser, model_files, tmp_path):
    with running_server(model_files["mlp"][1]) as port:
        page = browser.new_page(viewport={"width": 900, "height": 560})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#model:has-text('mlp')")
        page.fill("#count", str(COUNT))
        page.fill("#temperature", "0.8")
        page.fill("#prefix", "a")
        page.click("#generate")
        page.wait_for_function(f"document.querySelectorAll('#names li').length === {COUNT}", timeout=20_000)
        names = page.locator("#names li").all_inner_texts()
        assert page.inner_text("#status") == f"{COUNT} names"
        assert page.is_enabled("#copy")
        shot = tmp_path / "serve-page.png"
        page.screenshot(path=str(shot), full_page=True)

        page.fill("#prefix", "A")  # outside the vocabulary: the error shows, the list stays
        page.click("#generate")
        page.wait_for_selector("#status.error")
        assert "vocabulary" in page.inner_text("#status")
        assert page.locator("#names li").count() == COUNT
        page.close()
    assert len(names) == COUNT and all(name.startswith("a") for name in names)
    assert shot.stat().st_size > 1000


@pytest.mark.browser
@pytest.mark.parametrize(("seed", "typed"), [(2**64 - 1, None), (2**53 + 1, None), (7, "007")])
def test_page_sends_any_seed_exactly(browser, model_files, seed, typed):
    """A seed past 2**53 (a JavaScript number would round it) gives mm-gen's names for that seed."""
    from makemore.runtime.onnx_sampler import OnnxSampler

    with running_server(model_files["mlp"][1]) as port:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#model:has-text('mlp')")
        page.fill("#count", "5")
        page.fill("#temperature", "1")
        page.fill("#seed", typed or str(seed))
        page.click("#generate")
        page.wait_for_selector("#status:has-text('5 names')", timeout=20_000)
        names = page.locator("#names li").all_inner_texts()
        page.fill("#seed", "12x")
        page.click("#generate")
        page.wait_for_selector("#status.error")
        assert "seed" in page.inner_text("#status")
        page.close()
    assert names == OnnxSampler(model_files["mlp"][1]).sample(5, seed=seed)
