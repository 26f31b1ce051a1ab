"""Evaluation on bounded subsets: a fixed val subset at every log point, full val and test at the end, a bounded
train subset; the checkpoint's metrics say how many characters each loss was measured on; progress lines."""

from __future__ import annotations

import io
import time
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from makemore.data import Vocab, read_words, split_words
from makemore.data.rows import make_rows, subset
from makemore.data.tokens import distinct_pairs
from makemore.train import evaluate, progress, trainer
from makemore.train.config import make_config
from makemore.train.models import IGNORE
from rich.console import Console


@pytest.fixture(scope="module")
def names(names_path) -> list[str]:
    return read_words(names_path)


def _spy(monkeypatch) -> list[tuple[str, np.ndarray | None]]:
    """Record which rows every evaluate_rows call used (and of which split, by its number of rows)."""
    calls = []
    real = evaluate.evaluate_rows

    def spy(model, rows, chosen=None, chunk=65536):
        calls.append((rows, None if chosen is None else chosen.copy()))
        return real(model, rows, chosen, chunk)

    monkeypatch.setattr(trainer, "evaluate_rows", spy)  # the loop's val history
    monkeypatch.setattr(evaluate, "evaluate_rows", spy)  # the final losses
    return calls


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_val_subset_is_fixed_and_metrics_record_the_sizes(kind, names, monkeypatch) -> None:
    monkeypatch.setattr(trainer, "VAL_WORDS", 50)
    monkeypatch.setattr(evaluate, "TRAIN_EVAL_WORDS", 100)
    calls = _spy(monkeypatch)
    split = split_words(names[:2000], seed=0)  # 1,600 train, 200 val, 200 test words
    tiny = {"steps": 12, "n_embd": 8, "n_hidden": 16, "batch_size": 32}
    result = trainer.train(kind, make_config(kind, **tiny), split, Vocab.from_words(names))
    during, final = calls[:-3], calls[-3:]
    assert len(during) == len(result.history["val_loss"]) == 12
    first = during[0][1]
    assert first is not None and all(np.array_equal(chosen, first) for _, chosen in during)  # the same rows
    val_rows = during[0][0]
    words_seen = np.unique(
        np.searchsorted(val_rows.tokens.example_offsets, first, side="right") - 1 if kind == "mlp" else first
    )
    assert len(words_seen) == 50
    (train_rows, train_chosen), (final_val, val_chosen), (_, test_chosen) = final
    assert final_val is val_rows and val_chosen is None and test_chosen is None  # val and test: every word
    assert train_chosen is not None and len(train_chosen) < len(train_rows)
    metrics = result.metrics
    chars = {name: sum(len(word) + 1 for word in split[name]) for name in ("train", "val", "test")}
    assert metrics["val_loss_chars"] == chars["val"] and metrics["test_loss_chars"] == chars["test"]
    assert metrics["train_loss_chars"] < chars["train"]
    if kind == "mlp":  # window rows: one character each
        assert metrics["train_loss_chars"] == len(train_chosen) and metrics["history_val_chars"] == len(first)
    else:  # a word's row predicts its characters and its end
        lengths = train_rows.tokens.lengths[train_rows.tokens.by_length]
        assert metrics["train_loss_chars"] == int((lengths[train_chosen] + 1).sum())
    assert metrics["history_val_chars"] < chars["val"]
    assert result.history["val_loss"][-1] == evaluate.evaluate_rows(result.model, val_rows, first, 65536)[0]


def test_names_final_losses_are_on_every_word(names) -> None:
    """names.txt's train split fits the bound: its final train loss is on every word, as before the bounds;
    the history's val losses are on a subset of its 3,203 val words."""
    split = split_words(names, seed=42)
    vocab = Vocab.from_words(names)
    assert subset(make_rows(split.train, vocab, 4, IGNORE), evaluate.TRAIN_EVAL_WORDS) is None
    val = make_rows(split.val, vocab, 4, IGNORE)
    assert 0 < len(subset(val, evaluate.VAL_WORDS)) < len(val)


def test_a_phase_gets_a_line_only_when_it_takes_over_the_delay(monkeypatch) -> None:
    monkeypatch.setattr(progress, "PHASE_DELAY", 0.05)
    out = io.StringIO()
    reporter = progress.ConsoleReporter(Console(file=out, width=100), "mlp")
    with reporter.phase("quick"):
        pass
    with reporter.phase("tokenising"):
        time.sleep(0.2)
    lines = out.getvalue().splitlines()
    assert not any("quick" in line for line in lines)
    assert any(line.startswith("tokenising: 0.") for line in lines)


@settings(max_examples=150, deadline=None)
@given(
    block=st.integers(1, 20),
    radix=st.sampled_from([1, 2, 27, 300, 2**20]),
    rows=st.integers(0, 300),
    repeats=st.integers(1, 5),
    seed=st.integers(0, 2**32),
)
def test_distinct_pairs_hold_every_row_once(block, radix, rows, repeats, seed) -> None:
    """For any block and vocabulary (contexts in one int64 key or several), the pairs and their counts are the
    rows as a multiset, each context once, its pairs together."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, radix, (max(rows // repeats, 1), block))[rng.integers(0, max(rows // repeats, 1), rows)]
    y = rng.integers(0, radix, len(x))
    pairs = distinct_pairs(x, y)
    assert len({tuple(c) for c in pairs.contexts.tolist()}) == len(pairs.contexts)
    assert pairs.starts[0] == 0 and pairs.starts[-1] == len(pairs.targets) and (np.diff(pairs.starts) > 0).all()
    rebuilt = Counter()
    for u, context in enumerate(pairs.contexts.tolist()):
        targets = pairs.targets[pairs.starts[u] : pairs.starts[u + 1]].tolist()
        assert len(set(targets)) == len(targets)
        for target, count in zip(targets, pairs.counts[pairs.starts[u] : pairs.starts[u + 1]].tolist(), strict=True):
            rebuilt[(*context, target)] += count
    assert rebuilt == Counter((*context, target) for context, target in zip(x.tolist(), y.tolist(), strict=True))


@pytest.mark.parametrize("kind", ["bigram", "bigram-nn", "mlp", "wavenet"])
def test_window_losses_over_distinct_pairs_are_the_losses_over_every_row(kind, names, monkeypatch) -> None:
    """Evaluating each distinct context once (in pieces smaller than the split) gives every row's loss."""
    vocab, split = Vocab.from_words(names), split_words(names[:3000], 0)
    config = make_config(kind, steps=30, **({} if kind == "bigram" else {"batch_size": 32}))
    model = trainer.train(kind, config, split, vocab).model.eval()
    rows = make_rows(split.val, vocab, config.block_size, IGNORE)
    monkeypatch.setattr(evaluate, "PAIR_ROWS", 500)
    x, y = (torch.from_numpy(a) for a in rows.take(np.arange(len(rows))))
    loss, count = evaluate.evaluate_rows(model, rows, None, 64)
    assert loss == pytest.approx(evaluate.evaluate(model, x, y), abs=1e-6) and count == len(y)


def test_a_split_with_one_long_word_is_evaluated_in_chunks_as_wide_as_each_needs(names) -> None:
    """Evaluation calls are sized by their own width (memory.eval_chunk): 2,000 names and one word of 1,000
    characters ran one word a call (the chunk fitted the long word's width), now a few calls, each within the
    activations the estimate charges at block_size, with the loss of one call per word."""
    from makemore.train import memory
    from makemore.train.kinds import build_model

    words = names[:2000] + ["ab" * 500]
    vocab = Vocab.from_words(words)
    config = make_config("transformer", n_layer=1, n_head=2, n_embd=16).replace(block_size=1001)
    model = build_model("transformer", vocab.size, config).eval()
    rows = make_rows(words, vocab, None, IGNORE)
    chunk = memory.eval_chunk("transformer", vocab.size, config)
    budget = memory.eval_rows("transformer", vocab.size, config) * memory.activation_floats(
        "transformer", vocab.size, config
    )
    shapes: list[tuple[int, int]] = []
    hook = model.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    loss, count = evaluate.evaluate_rows(model, rows, None, chunk)
    hook.remove()
    assert len(shapes) <= 6, shapes  # 2,001 words: four of 512 or so, and the long one
    for n, width in shapes:
        assert n * memory.activation_floats("transformer", vocab.size, config.replace(block_size=width)) <= max(
            budget, memory.activation_floats("transformer", vocab.size, config.replace(block_size=width))
        )
    one_by_one, counted = evaluate.evaluate_rows(model, rows, None, 1)
    assert count == counted and loss == pytest.approx(one_by_one, rel=1e-6)
