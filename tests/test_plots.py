"""Plots: bigram counts, embeddings and loss curves render to real PNGs, from model.pt and model.onnx alike."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from clirun import assert_usage_error, run
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.data import BOUNDARY, Vocab, read_words
from makemore.train import plots
from makemore.train.kinds import KINDS


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


EMBEDDING_KINDS = sorted(name for name, spec in KINDS.items() if spec.embedding_table)


@pytest.mark.parametrize("kind", EMBEDDING_KINDS)
def test_onnx_embedding_table_is_the_torch_embedding(model_files, kind):
    pt, onnx_path = model_files[kind]
    from_pt, info = plots.read_embeddings(pt)
    from_onnx, _ = plots.read_embeddings(onnx_path)
    assert from_onnx.shape == (info.vocab.size, info.config["n_embd"])
    np.testing.assert_array_equal(from_onnx, from_pt)


def test_every_kind_with_an_embedding_table_has_one_named():
    from makemore.train.config import DEFAULTS
    from makemore.train.kinds import build_model

    for kind in EMBEDDING_KINDS:
        name = plots.embedding_table(kind)
        config = DEFAULTS[kind].replace(block_size=DEFAULTS[kind].block_size or 16)
        assert build_model(kind, 27, config).state_dict()[name].shape == (27, config.model.n_embd)


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_int8_onnx_embedding_table_is_dequantized(model_files, tmp_path, kind):
    from makemore.export.onnx_export import export_checkpoint

    pt, _ = model_files[kind]
    export_checkpoint(pt, tmp_path / "int8.onnx", quantize="int8")
    from_pt, _ = plots.read_embeddings(pt)
    from_int8, _ = plots.read_embeddings(tmp_path / "int8.onnx")
    step = np.abs(from_pt).max(axis=1, keepdims=True) / 127  # one int8 step of each token's scale
    assert (np.abs(from_int8 - from_pt) <= step / 2 + 1e-7).all()
    assert not np.array_equal(from_int8, from_pt)


@pytest.mark.parametrize("kind", ["mlp", "gru"])  # a recurrent model's int8 table was transposed, then dequantized
def test_an_int8_file_of_onnxruntimes_dynamic_quantization_still_plots(model_files, tmp_path, kind):
    """int8 files of 0.2.0 (onnxruntime's quantize_dynamic: an int8 table gathered, then dequantized)."""
    from makemore.export import onnx_export
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pt, _ = model_files[kind]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "Recurrent", type(None))  # a recurrent model's op alone, as 0.2.0 wrote it
        onnx_export.export_checkpoint(pt, tmp_path / "float.onnx")
    quantize_dynamic(tmp_path / "float.onnx", tmp_path / "int8.onnx", weight_type=QuantType.QInt8, reduce_range=True)
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


def test_any_character_of_the_data_or_a_file_name_is_drawn_as_it_is(model_files, tmp_path):
    """A `$` pair (mathtext to matplotlib) in the data or a file name, and a file name's undecodable byte: each
    picture is drawn, never a traceback."""
    import os
    import shutil

    pt, onnx_path = model_files["mlp"]
    odd = os.fsdecode(b"n\xff$x$")  # a lone surrogate in Python, and a pair of dollars
    data = tmp_path / f"{odd}.txt"
    data.write_text("a$b\ncd\n$$\nef\n", encoding="utf-8")
    shutil.copy(pt, tmp_path / f"{odd}.pt")
    shutil.copy(onnx_path, tmp_path / f"{odd}.onnx")
    for args in (
        ["bigram-counts", "--data", data],
        ["loss", tmp_path / f"{odd}.pt"],
        ["embeddings", tmp_path / f"{odd}.onnx"],
    ):
        out = tmp_path / f"{args[0]}.png"
        proc = run("mm-plot", *args, "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert_picture(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["loss", "missing.onnx"], "model file not found"),
        (["embeddings", "BIGRAM_PT"], "has no character embeddings"),
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


# --- bounded pictures of extreme data, missing packages ---------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.text(alphabet="abcé. ", min_size=1, max_size=8), min_size=1, max_size=20), data=st.data())
def test_bigram_counts_of_any_index_subset_are_the_pairs_counted(words, data):
    vocab = Vocab.from_words(words)
    subset = sorted(data.draw(st.sets(st.integers(0, vocab.size - 1))))
    pairs: Counter = Counter()
    for word in words:
        ids = [BOUNDARY, *vocab.encode(word), BOUNDARY]
        pairs.update(zip(ids[:-1], ids[1:], strict=True))
    expected = np.array([[pairs[(a, b)] for b in subset] for a in subset], dtype=np.int64)
    counts = plots.bigram_counts(words, vocab, np.array(subset, dtype=np.int64))
    np.testing.assert_array_equal(counts, expected.reshape(len(subset), len(subset)))


def test_most_frequent_keeps_the_boundary_and_the_top_characters():
    chars = [chr(0x100 + i) for i in range(100)]
    words = [ch * (i + 1) for i, ch in enumerate(chars)]  # character i occurs i + 1 times
    vocab = Vocab.from_words(words)
    kept = plots.most_frequent(words, vocab)
    assert kept[0] == BOUNDARY and len(kept) == plots.GRID_CHARS + 1
    assert [vocab.chars[i - 1] for i in kept[1:]] == chars[100 - plots.GRID_CHARS :]  # in vocabulary order
    np.testing.assert_array_equal(plots.most_frequent(["ab", "b"], Vocab("ab")), [0, 1, 2])


def _words_over(n_chars: int) -> list[str]:
    chars = [chr(ord("a") + i) if n_chars <= 26 else chr(0x4E00 + i) for i in range(n_chars)]
    return ["".join(chars[i : i + 3]) for i in range(n_chars)] + [chars[0] * 9]  # the first is the most frequent


@pytest.mark.parametrize("n_chars", [26, 40, 9000])
def test_bigram_figure_is_bounded_whatever_the_vocabulary(n_chars):
    fig = plots.bigram_figure(_words_over(n_chars), "words.txt")
    ax = fig.axes[0]
    shown = min(n_chars, plots.GRID_CHARS) + 1
    assert len(ax.get_xticks()) == len(ax.get_yticks()) == shown
    assert len(ax.texts) == (2 * shown**2 if shown <= plots.LABELLED_CHARS + 1 else 0)
    assert ax.get_images()[0].get_array().shape == (shown, shown)
    title = ax.get_title()
    assert ("the 64 most frequent of 9,000 characters" in title) == (n_chars == 9000)
    assert max(fig.get_size_inches()) <= 0.6 * (plots.LABELLED_CHARS + 1) + 1.5


def test_mm_plot_bigram_counts_of_thousands_of_characters_is_quick_and_quiet(tmp_path):
    data = tmp_path / "cjk.txt"
    data.write_text("\n".join(_words_over(3000)) + "\n", encoding="utf-8")
    proc = run("mm-plot", "bigram-counts", "--data", data, "-o", tmp_path / "counts.png", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no warning per glyph the font lacks
    assert_picture(tmp_path / "counts.png", 1000, 1000)


def test_embeddings_label_at_most_the_bound():
    points = np.random.default_rng(0).normal(size=(1000, 2))
    fig = plots.draw_embeddings(points, Vocab("".join(chr(0x100 + i) for i in range(999))), "title", "axis")
    assert len(fig.axes[0].texts) == plots.GRID_CHARS + 1
    assert "the first 64 of 999 characters" in fig.axes[0].get_title()
    small = plots.draw_embeddings(points[:27], Vocab("abcdefghijklmnopqrstuvwxyz"), "title", "axis")
    assert len(small.axes[0].texts) == 27 and "the first 64" not in small.axes[0].get_title()


@pytest.mark.parametrize(
    ("missing", "command", "which"), [("torch", "loss", 0), ("torch", "embeddings", 0), ("onnx", "embeddings", 1)]
)
def test_mm_plot_names_the_extra_of_a_missing_package(model_files, tmp_path, missing, command, which):
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # `import {missing}` now raises ImportError\n"
        "sys.argv = ['mm-plot', *sys.argv[1:]]\n"
        "from makemore.train.plot_cli import main\n"
        "main()\n"
    )
    model = model_files["mlp"][which]
    args = [sys.executable, "-c", code, command, str(model), "-o", str(tmp_path / "out.png")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert_usage_error(proc)
    assert f"reading {model.name} needs {missing}: pip install 'makemore-onnx[train]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", ["a chain of casts", "a doubling graph", "a broadcast scale"])
def test_a_hostile_graph_before_the_table_is_one_line_at_once(model_files, tmp_path, shape):
    """mm-plot reads a table computed by a graph only in int8's exact pattern: a chain of 3,000 Casts (a
    RecursionError), a graph whose evaluation doubles at each of 40 levels, or a scale that would broadcast the
    table to 27 x 10**6 floats are each one error line, at once."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_files["mlp"][1]))
    (table,) = [init for init in model.graph.initializer if init.name == "embedding.weight"]
    table.name = "E0"
    if shape == "a chain of casts":
        nodes = [helper.make_node("Cast", [f"E{k}"], [f"E{k + 1}"], to=TensorProto.FLOAT) for k in range(2999)]
        nodes.append(helper.make_node("Cast", ["E2999"], ["embedding.weight"], to=TensorProto.FLOAT))
    elif shape == "a doubling graph":
        model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "s0"))
        nodes = [helper.make_node("Mul", [f"s{k}", f"s{k}"], [f"s{k + 1}"]) for k in range(40)]
        nodes.append(helper.make_node("Mul", ["E0", "s40"], ["embedding.weight"]))
    else:
        quantized = numpy_helper.from_array(np.ones(numpy_helper.to_array(table).shape[:1] + (1,), np.int8), "q")
        scale = numpy_helper.from_array(np.ones((1, 10**6), np.float32), "scale")
        model.graph.initializer.extend([quantized, scale])
        nodes = [
            helper.make_node("Cast", ["q"], ["q.float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["q.float", "scale"], ["embedding.weight"]),  # int8's pattern, too wide a scale
        ]
    rest = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes + rest)
    path = tmp_path / "hostile.onnx"
    onnx.save(model, str(path))
    result = run("mm-plot", "embeddings", path, "--out", tmp_path / "e.png", timeout=30)
    assert_usage_error(result)
    assert not (tmp_path / "e.png").exists()


def test_an_onnx_files_embedding_table_is_found_in_time_linear_in_its_nodes(model_files, tmp_path) -> None:
    """mm-plot embeddings reads an untrusted file: 3,000 dead Gathers of an int8 [V, 2] table before the model's
    nodes (each scanned every node for its dequantizer: quadratic, 72 s for 16,000), and Transposes that read each
    other after such a Gather (followed for ever), still give the model's own table at once."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_files["mlp"][1]))
    from makemore.runtime.onnx_sampler import OnnxSampler

    graph, vocab_size = model.graph, OnnxSampler(model_files["mlp"][1]).vocab.size
    context = graph.input[0].name
    graph.initializer.append(numpy_helper.from_array(np.ones((vocab_size, 2), np.int8), "int8_table"))
    dead = [helper.make_node("Gather", ["int8_table", context], [f"dead{i}"]) for i in range(3000)]
    loop = [  # dead0 -> z -> y -> z -> ...: a file's graph may loop, whatever ONNX allows
        helper.make_node("Transpose", ["dead0"], ["z"]),
        helper.make_node("Transpose", ["z"], ["y"]),
        helper.make_node("Transpose", ["y"], ["z"]),
    ]
    nodes = dead + loop + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    path = tmp_path / "hostile.onnx"
    onnx.save(model, str(path))
    probe = (
        "import sys, numpy as np; from makemore.train.plots import onnx_embedding_table as t; "
        "a, b = t(sys.argv[1], int(sys.argv[3])), t(sys.argv[2], int(sys.argv[3])); print(np.array_equal(a, b))"
    )
    argv = [sys.executable, "-c", probe, str(path), str(model_files["mlp"][1]), str(vocab_size)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0 and result.stdout == "True\n", result.stderr[-1000:]
