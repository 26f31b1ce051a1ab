"""The pretrained model shipped in the package: what `make pretrained` builds, sampled when no model is given."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile

import pytest
from clirun import run
from conftest import ROOT
from makemore.data import bundled_names_path
from makemore.runtime.pretrained import pretrained_path


@pytest.fixture(scope="module")
def shipped():
    """The shipped file's runtime view (it must be in every checkout and install)."""
    from makemore.runtime.onnx_sampler import OnnxSampler

    path = pretrained_path()
    assert path.is_file(), f"{path} is missing: run make pretrained"
    return OnnxSampler(path).info


def test_the_shipped_model_is_the_best_transformer_of_the_bundled_names_as_int8_under_1_mb(shipped) -> None:
    """`make pretrained`: the transformer's `best` preset (the best test loss measured), int8 to fit 1 MB."""
    from makemore.train.config import make_config

    assert pretrained_path().stat().st_size < 1 << 20
    assert shipped.kind == "transformer"
    assert shipped.data_sha256 == hashlib.sha256(bundled_names_path().read_bytes()).hexdigest()
    best = make_config("transformer", "best").flat()
    assert {key: shipped.config[key] for key in best} == best  # seed 1337 included: rebuildable
    assert shipped.config["steps_done"] == best["steps"] and shipped.config["quantize"] == "int8"


def test_its_test_loss_through_mm_eval_is_the_one_it_records(shipped) -> None:
    result = run("mm-eval", pretrained_path(), "--split", "test")
    assert result.returncode == 0, result.stderr
    measured, recorded = float(result.stdout), shipped.metrics["test_loss"]  # recorded: the float32 model's
    assert abs(measured - recorded) < 2e-3, (measured, recorded)  # int8 cost the best preset 0.0007
    assert measured < 2.0  # far below a bigram's 2.45: a trained model, not a placeholder


def test_mm_gen_without_a_model_samples_it_from_the_wheel_with_torch_unimportable(tmp_path) -> None:
    """The README's first command after `pip install .`: the wheel pip builds from this checkout holds the model,
    and mm-gen with no model argument samples it from the wheel's own files (unpacked: what an install puts in
    site-packages), in an install without torch (here a `torch` module that cannot be imported stands first)."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", wheels]
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    (wheel,) = wheels.glob("makemore_onnx-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    shipped = site / "makemore" / "runtime" / "pretrained" / "names.onnx"
    assert shipped.read_bytes() == pretrained_path().read_bytes()
    (tmp_path / "torch.py").write_text("raise ImportError('torch is not installed')\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE_")}  # the unpacked copy
    # is not measured: line coverage would count its files beside the checkout's as other modules
    env.update(PYTHONPATH=os.pathsep.join(map(str, [tmp_path, site])), ORT_DISABLE_TELEMETRY="1")
    from_wheel = (  # the console script's entry point (pyproject.toml), imported from the unpacked wheel
        "import sys, makemore.runtime.cli as cli; "
        f"assert cli.__file__.startswith({str(site)!r}), cli.__file__; sys.exit(cli.gen_main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", from_wheel, "--n", "20", "--seed", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert len(names) == 20 and len(set(names)) > 10
    assert names == run("mm-gen", pretrained_path(), "--n", 20, "--seed", 1).stdout.split()


def test_mm_web_without_a_model_writes_a_site_of_it(tmp_path) -> None:
    from makemore.runtime.web.site import CHECKOUT_DIST

    if not CHECKOUT_DIST.is_dir():
        pytest.fail(f"{CHECKOUT_DIST} is missing: make web")
    result = run("mm-web", "-o", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "model.onnx").read_bytes() == pretrained_path().read_bytes()


def test_mm_serve_without_a_model_serves_it(monkeypatch) -> None:
    """mm-serve with no model builds its app on the shipped file (uvicorn.run stands in for serving it)."""
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(app))
    result = run("mm-serve", "--port", "0")
    assert result.returncode == 0, result.stderr
    from starlette.testclient import TestClient

    (app,) = served
    with TestClient(app) as client:
        model = client.get("/v1/model").json()
        names = client.post("/v1/generate", json={"n": 5, "seed": 1}).json()["names"]
    assert model["kind"] == "transformer"
    assert names == run("mm-gen", pretrained_path(), "--n", 5, "--seed", 1).stdout.split()


def test_no_pretrained_model_is_one_error_line(monkeypatch, tmp_path) -> None:
    from makemore.runtime import pretrained

    monkeypatch.setattr(pretrained, "pretrained_path", lambda: tmp_path / "missing.onnx")
    result = run("mm-gen", "--n", 3)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no pretrained model" in result.stderr and result.stdout == ""
