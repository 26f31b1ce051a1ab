"""mm-web's command line: the site's files and JSON; the output folder rule (new, empty or an earlier site, replaced
whole); every refusal is one `error:` line, exit 2, with nothing written or changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from inprocess import is_usage_error, run_main
from makemore.runtime.chunks import CHUNK_SIZE
from makemore.runtime.onnx_sampler import OnnxSampler
from makemore.runtime.serve.cli import main as serve_main
from makemore.runtime.web import site
from makemore.runtime.web.cli import main
from makemore.runtime.web.folder import MARKER
from makemore.runtime.web.site import ORT_FILES, PAGE_FILES
from webfiles import fake_ort_dist, snapshot

SITE_FILES = sorted([*PAGE_FILES, *ORT_FILES, "model.onnx", MARKER])


@pytest.fixture
def work(tmp_path, model_files) -> Path:
    """A folder holding model.onnx (the quick mlp) and a stand-in onnxruntime-web dist."""
    shutil.copyfile(model_files["mlp"][1], tmp_path / "model.onnx")
    fake_ort_dist(tmp_path / "dist")
    return tmp_path


def web(work: Path, *args: object):
    """mm-web with `args`, and the stand-in dist unless they name one."""
    return run_main(main, *args, *(() if "--ort-dist" in args else ("--ort-dist", work / "dist")))


def test_writes_the_site_and_what_the_page_needs(work, model_files) -> None:
    outcome = web(work, work / "model.onnx", "-o", work / "site")
    assert outcome.status == 0 and outcome.stderr == "" and "http.server" in outcome.stdout, outcome
    assert sorted(p.name for p in (work / "site").iterdir()) == SITE_FILES
    assert (work / "site" / "model.onnx").read_bytes() == (work / "model.onnx").read_bytes()
    meta = json.loads((work / "site" / MARKER).read_text())
    info = OnnxSampler(work / "model.onnx").info
    assert meta["vocab"] == info.vocab.chars and meta["block_size"] == info.block_size
    assert meta["max_len"] == info.max_len and meta["contract"] == "window" and meta["state"] is None
    assert meta["kind"] == "mlp" and meta["val_loss"] == info.metrics["val_loss"] and meta["chunk_size"] == CHUNK_SIZE
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_a_step_model_describes_its_state(work, model_files) -> None:
    assert web(work, model_files["transformer"][1], "-o", work / "site").status == 0
    meta = json.loads((work / "site" / MARKER).read_text())
    assert meta["contract"] == "step" and meta["inputs"] == ["tokens"]
    assert all("batch" in tensor["shape"] for tensor in meta["state"]["tensors"])


def test_an_empty_folder_or_an_earlier_site_is_replaced_whole(work) -> None:
    (work / "site").mkdir()
    assert web(work, work / "model.onnx", "-o", work / "site").status == 0
    (work / "site" / "model.onnx").write_bytes(b"an older model")
    assert web(work, work / "model.onnx", "--out", work / "site").status == 0
    assert sorted(p.name for p in (work / "site").iterdir()) == SITE_FILES
    assert (work / "site" / "model.onnx").read_bytes() == (work / "model.onnx").read_bytes()
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []


def refusals(work: Path) -> dict[str, tuple[list, str]]:
    """name -> (arguments, a part of the error line)."""
    model = work / "model.onnx"
    return {
        "file": ([model, "-o", work / "notes.txt"], "not a folder"),
        "other folder": ([model, "-o", work / "photos"], "not empty and not a site mm-web wrote"),
        "device": ([model, "-o", "/dev/null"], "not a folder"),
        "no parent": ([model, "-o", work / "missing" / "site"], "parent does not exist"),
        "model inside": ([work / "old-site" / "model.onnx", "-o", work / "old-site"], "holds the input"),
        "no model": ([work / "nothing.onnx", "-o", work / "site"], "model file not found"),
        "bad model": ([work / "notes.txt", "-o", work / "site"], "is not a valid ONNX model"),
        "no dist": ([model, "-o", work / "site", "--ort-dist", work / "photos"], "make web"),
        "no out": ([model], "--out"),
        "a user's files in a site": ([model, "-o", work / "pages"], "'.git', which no site of mm-web holds"),
        "a folder named as the marker": ([model, "-o", work / "fake"], "not a site mm-web wrote"),
        "the current folder": ([model, "-o", "."], "the current folder or holds it"),
    }


@pytest.mark.parametrize("case", list(refusals(Path("."))))
def test_refusals_are_one_line_and_write_nothing(work, case, monkeypatch) -> None:
    (work / "notes.txt").write_text("not a model\n")
    (work / "photos").mkdir()
    (work / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    assert web(work, work / "model.onnx", "-o", work / "old-site").status == 0
    assert web(work, work / "model.onnx", "-o", work / "pages").status == 0
    (work / "pages" / ".git").mkdir()  # a GitHub Pages checkout: never deleted with the old site
    (work / "fake" / MARKER).mkdir(parents=True)
    (work / "here").mkdir()
    monkeypatch.chdir(work / "here")  # "-o ." would delete the folder the user stands in
    before = snapshot(work)
    args, message = refusals(work)[case]
    outcome = web(work, *args)
    assert is_usage_error(outcome) and message in outcome.stderr, outcome
    assert snapshot(work) == before


def test_without_make_web_the_error_says_what_to_run(work, monkeypatch) -> None:
    monkeypatch.setattr(site, "CHECKOUT_DIST", work / "no-node-modules")
    outcome = run_main(main, work / "model.onnx", "-o", work / "site")
    assert is_usage_error(outcome) and "make web" in outcome.stderr and "--ort-dist" in outcome.stderr, outcome
    assert not (work / "site").exists()


# --- mm-serve's "in this browser" mode: the same files under /web/ ---------------------------------


def test_mm_serve_serves_the_site_under_web(work) -> None:
    from makemore.runtime.serve.factory import ServeConfig, build_app
    from starlette.testclient import TestClient

    app = build_app(ServeConfig(str(work / "model.onnx"), web=True, ort_dist=str(work / "dist")))
    with TestClient(app) as client:
        assert '<nav id="where">' in client.get("/").text
        assert 'src="app.js"' in client.get("/web/").text
        meta = client.get("/web/makemore-site.json").json()
        assert meta["server"] == "../" and meta["kind"] == "mlp"
        assert client.get("/web/model.onnx").content == (work / "model.onnx").read_bytes()
        wasm = client.get("/web/ort-wasm-simd-threaded.wasm")
        assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
        assert client.get("/web/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/web/secrets.txt").status_code == 404
        assert client.get("/web/..%2Fmodel.onnx").status_code == 404


def test_mm_serve_has_no_browser_mode_unless_asked_and_at_hand(work, monkeypatch) -> None:
    from makemore.runtime.serve.factory import ServeConfig, build_app
    from starlette.testclient import TestClient

    with TestClient(build_app(ServeConfig(str(work / "model.onnx"), ort_dist=str(work / "dist")))) as client:
        assert '<nav id="where" hidden>' in client.get("/").text  # off unless asked for: it publishes the model
        assert client.get("/web/").status_code == 404
        assert client.get("/web/model.onnx").status_code == 404
    outcome = run_main(serve_main, work / "model.onnx", "--web", "--ort-dist", work / "no-node-modules", "--port", 0)
    assert is_usage_error(outcome) and "--ort-dist" in outcome.stderr, outcome
    monkeypatch.setattr(site, "CHECKOUT_DIST", work / "no-node-modules")
    outcome = run_main(serve_main, work / "model.onnx", "--web", "--port", 0)
    assert is_usage_error(outcome) and "make web" in outcome.stderr, outcome
    outcome = run_main(serve_main, work / "model.onnx", "--ort-dist", work / "dist", "--port", 0)
    assert is_usage_error(outcome) and "add --web" in outcome.stderr, outcome
