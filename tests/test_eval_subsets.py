"""Evaluation on bounded subsets: a fixed val subset at every log point, full val and test at the end, a bounded
train subset; the checkpoint's metrics say how many characters each loss was measured on; progress lines."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from makemore.data import Vocab, read_words, split_words
from makemore.data.rows import make_rows, subset
from makemore.train import progress, trainer
from makemore.train.models import IGNORE
from rich.console import Console


@pytest.fixture(scope="module")
def names(names_path) -> list[str]:
    return read_words(names_path)


def _spy(monkeypatch) -> list[tuple[str, np.ndarray | None]]:
    """Record which rows every evaluate_rows call used (and of which split, by its number of rows)."""
    calls = []
    real = trainer.evaluate_rows

    def spy(model, rows, chosen=None, chunk=65536):
        calls.append((rows, None if chosen is None else chosen.copy()))
        return real(model, rows, chosen, chunk)

    monkeypatch.setattr(trainer, "evaluate_rows", spy)
    return calls


@pytest.mark.parametrize("kind", ["mlp", "gru"])
def test_val_subset_is_fixed_and_metrics_record_the_sizes(kind, names, monkeypatch) -> None:
    monkeypatch.setattr(trainer, "VAL_WORDS", 50)
    monkeypatch.setattr(trainer, "TRAIN_EVAL_WORDS", 100)
    calls = _spy(monkeypatch)
    split = split_words(names[:2000], seed=0)  # 1,600 train, 200 val, 200 test words
    tiny = {"steps": 12, "n_embd": 8, "n_hidden": 16, "batch_size": 32}
    result = trainer.train(kind, trainer.make_config(kind, **tiny), split, Vocab.from_words(names))
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
    assert result.history["val_loss"][-1] == trainer.evaluate_rows(result.model, val_rows, first, 65536)[0]


def test_names_final_losses_are_on_every_word(names) -> None:
    """names.txt's train split fits the bound: its final train loss is on every word, as before the bounds;
    the history's val losses are on a subset of its 3,203 val words."""
    split = split_words(names, seed=42)
    vocab = Vocab.from_words(names)
    assert subset(make_rows(split.train, vocab, 4, IGNORE), trainer.TRAIN_EVAL_WORDS) is None
    val = make_rows(split.val, vocab, 4, IGNORE)
    assert 0 < len(subset(val, trainer.VAL_WORDS)) < len(val)


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
