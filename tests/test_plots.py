"""Plots: bigram counts, embeddings and loss curves render to real PNGs, from model.pt and model.onnx alike."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clirun import assert_usage_error, run
from makemore.data import Vocab, read_words
from makemore.train import plots


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def assert_picture(path: Path, min_width: int = 400, min_height: int = 300) -> None:
    """A PNG of at least this size that is not one flat colour, with no temporary file left beside it."""
    from matplotlib.image import imread

    width, height = png_size(path)
    assert width >= min_width and height >= min_height
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0.05  # something is drawn
    assert path.stat().st_size > 10_000
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_bigram_counts_count_pairs_with_boundaries():
    words = ["ab", "b"]
    vocab = Vocab.from_words(words)  # . a b
    counts = plots.bigram_counts(words, vocab)
    expected = np.array([[0, 1, 1], [0, 0, 1], [2, 0, 0]])  # .a .b | ab | b. b.
    np.testing.assert_array_equal(counts, expected)


def distances(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


def test_project_2d_keeps_a_plane_intact():
    rng = np.random.default_rng(0)
    flat = rng.normal(size=(27, 2)) * [3.0, 1.0]
    basis, _ = np.linalg.qr(rng.normal(size=(4, 2)))  # a random plane in 4-d
    table = flat @ basis.T + 5.0
    points, label = plots.project_2d(table)
    assert points.shape == (27, 2)
    assert "PCA of 4-d" in label and "100% of variance" in label
    np.testing.assert_allclose(distances(points), distances(flat), atol=1e-9)  # only rotated/flipped
    assert points[:, 0].var() > points[:, 1].var()  # first axis: the most variance
    same, _ = plots.project_2d(table[:, :2])
    np.testing.assert_array_equal(same, table[:, :2])


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(plots.smooth([1, 3, 5, 7], 2), [1, 2, 4, 6])


def test_plot_bigram_counts_png(names_path, tmp_path):
    out = plots.plot_bigram_counts(read_words(names_path), tmp_path / "counts.png", source="names.txt")
    assert_picture(out, 1000, 1000)


@pytest.mark.parametrize("suffix", [0, 1], ids=["pt", "onnx"])
def test_plot_embeddings_png(model_files, tmp_path, suffix):
    assert_picture(plots.plot_embeddings(model_files["mlp"][suffix], tmp_path / "emb.png"))


@pytest.mark.parametrize("suffix", [0, 1], ids=["pt", "onnx"])
def test_plot_loss_png(model_files, tmp_path, suffix):
    assert_picture(plots.plot_loss(model_files["mlp"][suffix], tmp_path / "loss.png"))


def test_onnx_embedding_table_is_the_torch_embedding(model_files):
    pt, onnx_path = model_files["mlp"]
    from_pt, info = plots.read_embeddings(pt)
    from_onnx, _ = plots.read_embeddings(onnx_path)
    assert from_onnx.shape == (info.vocab.size, info.config["n_embd"])
    np.testing.assert_array_equal(from_onnx, from_pt)


def test_int8_onnx_embedding_table_is_dequantized(model_files, tmp_path):
    from makemore.export.onnx_export import export_checkpoint

    pt, _ = model_files["mlp"]
    export_checkpoint(pt, tmp_path / "int8.onnx", quantize="int8")
    from_pt, _ = plots.read_embeddings(pt)
    from_int8, _ = plots.read_embeddings(tmp_path / "int8.onnx")
    step = np.abs(from_pt).max() / 127  # one int8 step of a symmetric per-tensor scale
    assert np.abs(from_int8 - from_pt).max() <= step
    assert not np.array_equal(from_int8, from_pt)


def test_onnx_plots_need_no_torch(model_files, tmp_path):
    _, onnx_path = model_files["mlp"]
    code = (
        "import sys\nfrom makemore.train import plots\n"
        f"plots.plot_embeddings({str(onnx_path)!r}, {str(tmp_path / 'e.png')!r})\n"
        f"plots.plot_loss({str(onnx_path)!r}, {str(tmp_path / 'l.png')!r})\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert png_size(tmp_path / "e.png")[0] > 0 and png_size(tmp_path / "l.png")[0] > 0


def test_mm_plot_writes_each_picture(model_files, tmp_path):
    pt, onnx_path = model_files["mlp"]
    for args, name in [
        (["loss", pt], "loss.png"),
        (["embeddings", onnx_path], "emb.png"),
        (["bigram-counts"], "counts.png"),
    ]:
        proc = run("mm-plot", *args, "--out", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(tmp_path / name)
        assert_picture(tmp_path / name)


@pytest.mark.parametrize(
    "args, message",
    [
        (["loss", "missing.onnx"], "model file not found"),
        (["embeddings", "BIGRAM_PT"], "only mlp models have character embeddings"),
        (["loss", "BIGRAM_ONNX"], "has no loss history"),
        (["loss", "DATA"], "expected a checkpoint (.pt) or an ONNX model (.onnx)"),
        (["loss", "MLP_PT", "--out", "OUT/no/such/dir.png"], "output folder does not exist"),
        (["loss", "MLP_PT", "--out", "OUT/loss.jpg"], "write a .png, .svg or .pdf file"),
        (["bigram-counts", "--data", "OUT/none.txt"], "data file not found"),
    ],
)
def test_mm_plot_errors_are_one_line(model_files, names_path, tmp_path, args, message):
    where = {
        "BIGRAM_PT": model_files["bigram"][0],
        "BIGRAM_ONNX": model_files["bigram"][1],
        "MLP_PT": model_files["mlp"][0],
        "DATA": names_path,
    }
    args = [str(where.get(a, a)).replace("OUT", str(tmp_path)) for a in args]
    proc = run("mm-plot", *args)
    assert_usage_error(proc)
    assert message in proc.stderr
    assert list(tmp_path.iterdir()) == []
