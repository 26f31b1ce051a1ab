"""mm-web's site in a real headless Chromium, served by `python -m http.server` (no server code behind it):
the names, the logits and the names for a seed equal onnxruntime's in Python and mm-gen's; bad input and a bad
model file show one message, never a blank page or a console error.

Deselect with `pytest -m "not browser"`; `make test` installs Chromium and onnxruntime-web (make web) first.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from clirun import run
from loopback import running_server, static_server
from makemore.contract import empty_state
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.web.site import build_site
from webfiles import Console, open_site, same_names

SITES = {  # site name -> (kind, quantize)
    "mlp": ("mlp", None),
    "mlp-int8": ("mlp", "int8"),
    "transformer": ("transformer", None),
    "transformer-int8": ("transformer", "int8"),
    "gru": ("gru", None),
    "rnn": ("rnn", None),  # a step call of one row runs as two (onnxruntime's RNN op), here as in Python
}
REQUESTS = [  # the page's fields -> SamplingOptions
    ({"seed": "0"}, {"seed": 0}),
    ({"seed": "42", "temperature": "0.8", "prefix": "a"}, {"seed": 42, "temperature": 0.8, "prefix": "a"}),
    ({"seed": "18446744073709551615", "top_k": "5"}, {"seed": 2**64 - 1, "top_k": 5}),
    ({"seed": "7", "temperature": "0"}, {"seed": 7, "temperature": 0}),
    (
        {"seed": "3", "temperature": "1.3", "top_p": "0.9", "prefix": "mar"},
        {"seed": 3, "temperature": 1.3, "top_p": 0.9, "prefix": "mar"},
    ),
]
N = 300


@pytest.fixture(scope="module")
def site_models(model_files, tmp_path_factory) -> dict:
    """Site name -> the ONNX file it is built from (int8 files exported here)."""
    from makemore.export.onnx_export import export_checkpoint

    folder = tmp_path_factory.mktemp("web-models")
    models = {}
    for name, (kind, quantize) in SITES.items():
        pt, onnx_path = model_files[kind]
        if quantize is not None:
            onnx_path = folder / f"{name}.onnx"
            export_checkpoint(pt, onnx_path, quantize=quantize)
        models[name] = onnx_path
    return models


@pytest.fixture(scope="module")
def served(site_models, tmp_path_factory):
    """(port, root): every site built by mm-web's code under one folder, served as static files."""
    root = tmp_path_factory.mktemp("sites")
    for name, model in site_models.items():
        build_site(model, root / name)
    shutil.copytree(root / "mlp", root / "broken")
    (root / "broken" / "model.onnx").write_bytes(b"this is not an ONNX model\n")
    with static_server(root) as port:
        yield port, root


def python_logits(sampler: OnnxSampler, rows: list[list[int]]) -> np.ndarray:
    """onnxruntime's logits in Python: window [B, V] for contexts, step [B, T, V] for tokens from the empty state."""
    if sampler.info.state is None:
        return sampler.logits(np.array(rows, dtype=np.int64))
    return sampler.forward.step_fn(np.array(rows, dtype=np.int64), empty_state(sampler.info, len(rows)))[0]


def fixed_inputs(sampler: OnnxSampler) -> list[list[int]]:
    """Rows that touch every character: contexts of block_size (window), or 6 tokens after the boundary (step)."""
    V, width = sampler.vocab.size, sampler.block_size if sampler.info.state is None else 7
    rng = np.random.default_rng(0)
    rows = [[0] * width, [(i * 7 + 3) % V for i in range(width)]]
    rows += [[0, *rng.integers(1, V, width - 1).tolist()] for _ in range(V)]
    return rows


@pytest.mark.browser
@pytest.mark.parametrize("name", list(SITES))
def test_site_matches_onnxruntime_and_mm_gen(browser, served, site_models, name):
    port, _ = served
    sampler = OnnxSampler(site_models[name])
    page, console = open_site(browser, port, name)
    assert page.inner_text("#model").startswith(sampler.info.kind)

    page.fill("#count", "13")
    page.fill("#temperature", "0.8")
    page.fill("#prefix", "a")
    page.fill("#seed", "5")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#names li').length === 13", timeout=60_000)
    shown = page.locator("#names li").all_inner_texts()
    assert page.inner_text("#status") == "13 names (seed 5)" and page.is_enabled("#copy")
    assert same_names(shown, sampler.sample(13, seed=5, temperature=0.8, prefix="a"))
    assert all(name.startswith("a") and set(name) <= set(sampler.vocab.chars) for name in shown)

    rows = fixed_inputs(sampler)
    got = np.array(page.evaluate("rows => window.mmLogits(rows)", rows), dtype=np.float32)
    want = python_logits(sampler, rows)
    gaps = np.abs(got - want)
    assert got.shape == want.shape and gaps.max() <= 1e-5, gaps.max()  # int8 files too: they compute in float32

    for fields, options in REQUESTS:
        names = page.evaluate("fields => window.mmGenerate(fields)", {"count": str(N), **fields})
        assert same_names(names, sampler.sample(N, **options)), (name, options)
    if name == "mlp":  # two chunks, and mm-gen itself
        names = page.evaluate("() => window.mmGenerate({count: '5000', seed: '11', top_k: '20'})")
        result = run("mm-gen", site_models[name], "--n", 5000, "--seed", 11, "--top-k", 20)
        assert result.returncode == 0 and same_names(names, result.stdout.splitlines())
    page.close()
    assert console.errors == []


BAD_INPUTS = [
    ({"count": "0"}, "count must be a whole number from 1 to 10,000"),
    ({"count": "10001"}, "count must be a whole number from 1 to 10,000"),
    ({"count": "2.5"}, "count"),
    ({"temperature": "0"}, "temperature must be a number above 0"),
    ({"temperature": "warm"}, "temperature must be a number above 0"),
    ({"temperature": ""}, "temperature"),
    ({"top_k": "0"}, "top-k must be a whole number of at least 1"),
    ({"top_p": "1.5"}, "top-p must be a number in (0, 1]"),
    ({"prefix": "A"}, "prefix has characters outside the model's vocabulary"),
    ({"prefix": "a" * 40}, "prefix is longer (40) than max_len"),
    ({"seed": "-1"}, "seed must be a whole number from 0 to"),
    ({"seed": "18446744073709551616"}, "seed must be a whole number from 0 to"),
]


@pytest.mark.browser
def test_bad_input_shows_a_message_and_keeps_the_names(browser, served):
    port, _ = served
    page, console = open_site(browser, port, "mlp")
    page.click("#generate")  # the defaults: 20 names
    page.wait_for_function("document.querySelectorAll('#names li').length === 20", timeout=60_000)
    good = {"count": "20", "temperature": "1.0", "top_k": "", "top_p": "", "prefix": "", "seed": ""}
    for fields, message in BAD_INPUTS:
        for field, value in {**good, **fields}.items():
            page.fill(f"#{field}", value)
        page.click("#generate")
        page.wait_for_selector("#status.error")
        status = page.inner_text("#status")
        assert status.startswith("error: ") and message in status and "\n" not in status, (fields, status)
        assert page.locator("#names li").count() == 20
        page.evaluate("document.getElementById('status').className = ''")
    page.close()
    assert console.errors == []


@pytest.mark.browser
def test_a_model_that_fails_to_load_shows_one_line(browser, served):
    port, _ = served
    page, _ = open_site(browser, port, "broken", state="failed")
    status = page.inner_text("#status")
    assert status.startswith("error: cannot load model.onnx: ") and "\n" not in status, status
    assert page.is_disabled("#generate") and page.inner_text("#model") == "no model"
    page.close()


@pytest.mark.browser
def test_mm_serve_switches_between_the_server_and_this_browser(browser, site_models):
    sampler = OnnxSampler(site_models["mlp"])
    with running_server(site_models["mlp"], "--web") as port:
        page = browser.new_page(viewport={"width": 900, "height": 620})
        console = Console(page)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#where:has-text('on the server')")
        page.click("#in-browser")
        page.wait_for_selector("body[data-state='ready']", timeout=60_000)
        assert page.url == f"http://127.0.0.1:{port}/web/" and page.is_visible("#on-server")
        names = page.evaluate("() => window.mmGenerate({count: '50', seed: '9', prefix: 'e'})")
        assert same_names(names, sampler.sample(50, seed=9, prefix="e"))
        page.click("#on-server")
        page.wait_for_selector("#model:has-text('mlp')")
        assert page.url == f"http://127.0.0.1:{port}/"
        page.close()
    assert console.errors == []
