"""Pictures of what a model learned: bigram counts, character embeddings, loss curves (PNG, headless).

Figures are drawn on matplotlib's Agg canvas without pyplot (no display, no global state) and
written atomically. A model.onnx is read without torch (onnxruntime for the metadata, the onnx
package for the embedding initializer); a model.pt needs torch, imported only then.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from makemore.contract import ModelInfo
from makemore.contract.graph import MOVES, every_node
from makemore.data import (
    BOUNDARY,
    UserError,
    Vocab,
    atomic_write,
    check_output_path,
    input_file_problem,
    make_examples,
)
from makemore.train.kinds import KINDS
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

BOUNDARY_LABEL = "."  # how the boundary token is printed in pictures (as in the lectures)
VOWELS = set("aeiouy")
FORMATS = ("png", "svg", "pdf")
GRID_CHARS = 64  # characters drawn in a bigram grid (the most frequent ones) or labelled among embeddings
LABELLED_CHARS = 32  # a bigram grid of at most this many characters gets a text label in every cell
MAX_DRAWN = 1e12  # the largest magnitude of a loss, step or embedding value drawn (matplotlib overflows near 1e308)


class PlotError(UserError):
    """A plot that cannot be drawn from this input; the message is one line meant for the user."""


def labels(vocab: Vocab) -> list[str]:
    """Printed label of every index: the boundary token, then the characters."""
    return [BOUNDARY_LABEL, *vocab.chars]


# --- reading models ---------------------------------------------------------------------------


def model_format(path: Path) -> str:
    """'pt' or 'onnx' from the file name; a missing file or another suffix is a PlotError."""
    if (problem := input_file_problem(path)) is not None:
        raise PlotError(problem)
    if path.suffix not in (".pt", ".onnx"):
        raise PlotError(f"{path}: expected a checkpoint (.pt) or an ONNX model (.onnx)")
    return path.suffix[1:]


def read_info(path: str | Path) -> ModelInfo:
    """The model's metadata (vocabulary, config, metrics with the loss history)."""
    path = Path(path)
    if model_format(path) == "onnx":
        from makemore.runtime.onnx_sampler import open_session, read_model_info

        return read_model_info(open_session(path), str(path))
    _need("torch", path)
    from makemore.train.checkpoint import load_checkpoint, model_info

    return model_info(load_checkpoint(path))


def embedding_table(kind: str) -> str | None:
    """The state_dict name of `kind`'s character embeddings (train/kinds.py); None for a kind without them, or
    one this release does not know."""
    spec = KINDS.get(kind)
    return None if spec is None else spec.embedding_table


def read_embeddings(path: str | Path) -> tuple[np.ndarray, ModelInfo]:
    """A model's character embedding table C [V, n_embd] (float64) and its metadata."""
    path = Path(path)
    if model_format(path) == "pt":
        _need("torch", path)
        from makemore.train.checkpoint import load_checkpoint, model_info

        checkpoint = load_checkpoint(path)
        info, weights = model_info(checkpoint), checkpoint["state_dict"]
        name = embedding_table(info.kind)
        table = weights[name].double().numpy() if name in weights else None
    else:
        info = read_info(path)
        table = None
    if embedding_table(info.kind) is None:
        raise PlotError(f"{path} is a {info.kind} model, which has no character embeddings")
    if table is None:
        table = onnx_embedding_table(_need("onnx", path), info.vocab.size)
    return check_drawable(table, "character embeddings", str(path)), info


def onnx_embedding_table(path: Path, vocab_size: int) -> np.ndarray:
    """The [V, d] table that the first Gather reads (torch's `embedding.weight`), dequantized if int8."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # onnx raises DecodeError and others for a bad file
        raise PlotError(f"{path} is not a readable ONNX model ({type(err).__name__})") from None
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = list(every_node(graph))
    made_by = {name: node for node in nodes for name in node.output}
    readers: dict[str, list[Any]] = {}  # a value -> the nodes whose first input it is (built once: a file may hold
    for node in nodes:  # any number of nodes, and a scan of them all per Gather was quadratic)
        if node.input:
            readers.setdefault(node.input[0], []).append(node)
    tables: dict[str, np.ndarray | None] = {}  # each value computed once, however many Gathers read it
    for node in nodes:
        if node.op_type != "Gather" or not node.input:
            continue
        if node.input[0] not in tables:
            tables[node.input[0]] = constant(node.input[0], initializers, made_by)
        table = tables[node.input[0]]
        if table is None or table.ndim != 2 or table.shape[0] != vocab_size:
            continue
        if table.dtype.kind == "f":
            return table.astype(np.float64)
        dequantize = dequantizers(readers, node.output[0])  # onnxruntime's dynamic quantization (0.2.0's int8)
        if dequantize and all(name in initializers for name in dequantize[0].input[1:]):
            scale, *zero = (initializers[name].astype(np.float64) for name in dequantize[0].input[1:])
            if scale.ndim == 0 and all(z.ndim == 0 for z in zero):  # per-tensor, as quantize_dynamic wrote it
                return (table.astype(np.float64) - (zero[0] if zero else 0.0)) * scale
    raise PlotError(f"{path} has no [{vocab_size}, n_embd] embedding table feeding a Gather")


def constant(name: str, initializers: dict[str, np.ndarray], made_by: dict[str, Any]) -> np.ndarray | None:
    """The value of `name` when it is an initializer or an int8 weight's dequantization (export/int8.py's exact
    pattern: Mul(Cast(int8 initializer), scale initializer), in float64, the scale broadcast to the weight's shape),
    else None. No other graph is evaluated: a file is untrusted, and its graph could ask for any work."""
    if name in initializers:
        return initializers[name]
    node = made_by.get(name)
    if node is None or node.op_type != "Mul" or len(node.input) != 2:
        return None
    cast, scale = made_by.get(node.input[0]), initializers.get(node.input[1])
    if cast is None or cast.op_type != "Cast" or len(cast.input) != 1 or scale is None:
        return None
    stored = initializers.get(cast.input[0])
    if stored is None or stored.dtype != np.int8 or not broadcasts_to(scale.shape, stored.shape):
        return None
    return stored.astype(np.float64) * scale.astype(np.float64)


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of `shape` broadcast against one of `target` keeps `target`'s shape."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def dequantizers(readers: dict[str, list[Any]], value: str) -> list[Any]:
    """The DequantizeLinear nodes that read `value` (first input: `readers`), or read it through ops that only move
    values (a recurrent model's int8 embedding is transposed to the time-major layout before it is dequantized);
    each value followed once (a hostile graph may loop)."""
    found, frontier, seen = [], [value], {value}
    while frontier:
        read = frontier.pop()
        found += [n for n in readers.get(read, []) if n.op_type == "DequantizeLinear"]
        for node in readers.get(read, []):
            if node.op_type in MOVES and node.output and node.output[0] not in seen:
                seen.add(node.output[0])
                frontier.append(node.output[0])
    return found


def loss_history(info: ModelInfo, source: str) -> dict[str, list]:
    """The loss history logged during training (steps, train loss, val steps, val loss)."""
    history = info.metrics.get("history") or {}
    if not history.get("step"):
        raise PlotError(f"{source} has no loss history (bigram models are counted, not trained)")
    for key in ("step", "train_loss", "val_step", "val_loss"):
        check_drawable(np.asarray(history.get(key, []), dtype=np.float64), f"loss history {key}", source)
    return history


def check_drawable(values: np.ndarray, what: str, source: str) -> np.ndarray:
    """`values`, when every one is finite and within +-MAX_DRAWN; PlotError otherwise (NaN and inf included)."""
    if not np.isfinite(values).all():
        raise PlotError(f"{source}: its {what} hold NaN or infinite values, which cannot be drawn")
    if values.size and np.abs(values).max() > MAX_DRAWN:
        raise PlotError(f"{source}: its {what} hold values beyond +-{MAX_DRAWN:g}, which cannot be drawn")
    return values


def _need(module: str, path: Path) -> Path:
    """`path`, after importing `module` (torch for .pt, onnx for embeddings in .onnx); PlotError naming the extra."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise PlotError(f"reading {path.name} needs {module}: pip install 'makemore-onnx[train]'") from None
    return path


# --- the numbers behind the pictures ----------------------------------------------------------


def bigram_counts(words: list[str], vocab: Vocab, indices: np.ndarray | None = None) -> np.ndarray:
    """N[i, j]: how often index indices[j] follows indices[i] in `words` (boundary token at both ends).

    `indices` defaults to the whole vocabulary; only the [k, k] grid asked for is ever allocated, so a
    vocabulary of thousands of characters costs no V x V matrix.
    """
    x, y = make_examples(words, vocab, block_size=1)
    indices = np.arange(vocab.size) if indices is None else np.asarray(indices, dtype=np.int64)
    position = np.full(vocab.size, -1, dtype=np.int64)
    position[indices] = np.arange(len(indices))
    prev, nxt = position[x[:, 0]], position[y]
    kept = (prev >= 0) & (nxt >= 0)
    counts = np.zeros((len(indices), len(indices)), dtype=np.int64)
    np.add.at(counts, (prev[kept], nxt[kept]), 1)
    return counts


def most_frequent(words: list[str], vocab: Vocab, limit: int = GRID_CHARS) -> np.ndarray:
    """The boundary index, then the `limit` most frequent characters' indices (in vocabulary order)."""
    frequency = np.bincount(make_examples(words, vocab, block_size=1)[1], minlength=vocab.size)
    order = np.argsort(-frequency[1:], kind="stable") + 1  # ties: vocabulary order
    return np.concatenate([[BOUNDARY], np.sort(order[:limit])])


def project_2d(table: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows of `table` in 2-D: as they are when n_embd <= 2, else on the top two principal components."""
    if table.shape[1] <= 2:
        points = np.zeros((len(table), 2))
        points[:, : table.shape[1]] = table
        return points, "embedding dimensions"
    centred = table - table.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    relative = singular / singular[0] if singular[0] > 0 else singular  # squares neither overflow nor underflow
    explained = relative[:2] ** 2 / max((relative**2).sum(), 1.0)
    return centred @ vt[:2].T, f"PCA of {table.shape[1]}-d embeddings ({100 * explained.sum():.0f}% of variance)"


def smooth(values: list[float], window: int) -> np.ndarray:
    """Trailing moving average (shorter windows at the start), same length as `values`."""
    array = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], array]))
    ends = np.arange(1, len(array) + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


# --- drawing ----------------------------------------------------------------------------------


@contextmanager
def quiet_glyphs() -> Iterator[None]:
    """Characters the font lacks are drawn as boxes, without one warning line per glyph."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        yield


def literal_text(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """`draw` with every text it makes literal (a `$` of the data or of a file name is no mathtext, which failed on
    `$$`) and its title's lone surrogates (a file name's undecodable bytes) as backslash escapes."""

    signature = inspect.signature(draw)

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Figure:
        bound = signature.bind(*args, **kwargs)
        bound.arguments["title"] = bound.arguments["title"].encode("utf-8", "backslashreplace").decode("utf-8")
        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*bound.args, **bound.kwargs)

    return drawn


@literal_text
def draw_bigram_counts(counts: np.ndarray, names: list[str], title: str) -> Figure:
    """The lecture's picture: a k x k grid; up to LABELLED_CHARS characters each cell shows its two characters
    and its count, beyond that the colour alone does (thousands of text labels take minutes to draw).
    """
    size = counts.shape[0]
    labelled = size <= LABELLED_CHARS + 1
    cell = 0.6 if labelled else 0.3
    fig = Figure(figsize=(cell * size + 1, cell * size + 1.5))
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues")
    dark = counts.max() * 0.6
    for i in range(size) if labelled else ():
        for j in range(size):
            color = "white" if counts[i, j] > dark else "#444444"
            ax.text(j, i, names[i] + names[j], ha="center", va="bottom", color=color, fontsize=9)
            ax.text(j, i, str(counts[i, j]), ha="center", va="top", color=color, fontsize=8)
    ax.set_xticks(range(size), names)
    ax.set_yticks(range(size), names)
    ax.set_xlabel("next character")
    ax.set_ylabel("previous character")
    ax.set_title(title)
    with quiet_glyphs():
        fig.tight_layout()
    return fig


@literal_text
def draw_embeddings(points: np.ndarray, vocab: Vocab, title: str, axes_label: str) -> Figure:
    """Each character's embedding as a dot: vowels, consonants and the boundary token in three colours.

    The first GRID_CHARS characters of the vocabulary (and '.') are labelled; beyond them, dots only.
    """
    fig = Figure(figsize=(8, 8))
    ax = fig.add_subplot()
    names = labels(vocab)
    colors = ["tab:gray" if i == BOUNDARY else "tab:orange" if n in VOWELS else "tab:blue" for i, n in enumerate(names)]
    few = len(names) <= GRID_CHARS + 1
    ax.scatter(points[:, 0], points[:, 1], s=320 if few else 20, c=colors)
    for (x, y), name in zip(points[: GRID_CHARS + 1], names, strict=False):
        ax.text(x, y, name, ha="center", va="center", color="white" if few else "black", fontsize=11, fontweight="bold")
    ax.grid(alpha=0.3)
    ax.set_xlabel(f"{axes_label}: 1")
    ax.set_ylabel(f"{axes_label}: 2")
    if not few:
        title += f"\n(labels on '.' and the first {GRID_CHARS} of {len(vocab.chars):,} characters)"
    ax.set_title(title + "\n(orange: vowels, blue: other characters, gray: '.' = start/end)")
    with quiet_glyphs():
        fig.tight_layout()
    return fig


@literal_text
def draw_loss(history: dict[str, list], title: str) -> Figure:
    """Train loss per logged step (raw, faint, and smoothed) and val loss at its evaluation points."""
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    steps, train_loss = history["step"], history["train_loss"]
    window = max(1, len(train_loss) // 25)
    ax.plot(steps, train_loss, color="tab:blue", alpha=0.2, linewidth=0.8)
    ax.plot(steps, smooth(train_loss, window), color="tab:blue", label=f"train (minibatch, mean of {window} logs)")
    if history.get("val_step"):
        ax.plot(history["val_step"], history["val_loss"], "o-", color="tab:orange", markersize=3, label="val")
    low = min(min(history.get("val_loss") or [np.inf]), float(np.min(smooth(train_loss, window))))
    ax.set_ylim(low - 0.1, max(train_loss[: max(1, len(train_loss) // 50)]) + 0.1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (NLL per character, nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    with quiet_glyphs():
        fig.tight_layout()
    return fig


def check_image_path(path: str | Path, inputs: tuple[str | Path, ...] = ()) -> Path:
    """An image path we may write: a known format, and a path check_output_path accepts (checked before drawing)."""
    path = Path(path)
    if path.suffix[1:].lower() not in FORMATS:
        raise PlotError(f"{path}: write a .png, .svg or .pdf file")
    check_output_path(path, inputs)
    return path


def save_figure(fig: Figure, path: str | Path, inputs: tuple[str | Path, ...] = (), dpi: int = 100) -> Path:
    """Render `fig` with Agg and write it atomically (a temporary file beside `path`, then rename)."""
    path = check_image_path(path, inputs)
    FigureCanvasAgg(fig)
    with quiet_glyphs():
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=dpi), inputs)
    return path


# --- one call per picture ---------------------------------------------------------------------


def bigram_figure(words: list[str], source: str = "data") -> Figure:
    """The bigram-count picture of all `words`; more than GRID_CHARS characters: the most frequent ones (and '.')."""
    vocab = Vocab.from_words(words)
    indices = most_frequent(words, vocab)
    title = f"bigram counts over all {len(words):,} words of {source}"
    if len(indices) < vocab.size:
        title += f"\n(the {GRID_CHARS} most frequent of {len(vocab.chars):,} characters)"
    every_label = labels(vocab)
    return draw_bigram_counts(bigram_counts(words, vocab, indices), [every_label[i] for i in indices], title)


def plot_bigram_counts(words: list[str], out: str | Path, source: str = "data", data: str | Path | None = None) -> Path:
    """Count matrix of all `words` (not a split: the whole file, as in the lecture); `data` is never overwritten."""
    inputs = (data,) if data is not None else ()
    check_image_path(out, inputs)
    return save_figure(bigram_figure(words, source), out, inputs)


def plot_embeddings(model: str | Path, out: str | Path) -> Path:
    check_image_path(out, (model,))
    table, info = read_embeddings(model)
    points, axes_label = project_2d(table)
    title = f"character embeddings of {Path(model).name} (n_embd {table.shape[1]}, block {info.block_size})"
    return save_figure(draw_embeddings(points, info.vocab, title, axes_label), out, (model,))


def plot_loss(model: str | Path, out: str | Path) -> Path:
    check_image_path(out, (model,))
    info = read_info(model)
    history = loss_history(info, str(model))
    val = info.metrics.get("val_loss")
    title = f"{info.kind} {Path(model).name}: loss" + (f" (final val {val:.4f})" if val is not None else "")
    return save_figure(draw_loss(history, title), out, (model,))
