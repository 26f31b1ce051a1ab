"""Training: the counts and neural bigrams meet, the MLP learns, a seed fixes a run."""

from __future__ import annotations

import math

import pytest
import torch
from makemore.data import Vocab, read_words, split_words
from makemore.train.config import make_config
from makemore.train.kinds import ConfigError
from makemore.train.trainer import train


@pytest.fixture(scope="module")
def names_split(names_path):
    words = read_words(names_path)
    return split_words(words, seed=42), Vocab.from_words(words)


def test_counts_and_neural_bigram_agree(names_split) -> None:
    split, vocab = names_split
    counts = train("bigram", make_config("bigram"), split, vocab)
    neural = train("bigram-nn", make_config("bigram-nn"), split, vocab)
    print(f"val NLL: bigram {counts.metrics['val_loss']:.4f}, bigram-nn {neural.metrics['val_loss']:.4f}")
    assert 2.4 < counts.metrics["val_loss"] < 2.5  # about 2.45 on the names
    assert abs(counts.metrics["val_loss"] - neural.metrics["val_loss"]) < 0.01


def test_short_mlp_run_learns(model_files) -> None:
    checkpoint = torch.load(model_files["mlp"][0], weights_only=True)
    metrics = checkpoint["metrics"]
    assert checkpoint["config"]["steps_done"] == checkpoint["config"]["train"]["steps"] > 0
    assert metrics["val_loss"] < 2.6 < math.log(27)  # uniform guessing is ln(27) = 3.30
    history = metrics["history"]
    assert history["train_loss"][0] > 3.0  # starts near uniform (careful init) ...
    assert history["val_loss"][-1] < history["val_loss"][0]  # ... and improves


def _short_mlp(split, vocab, seed: int):
    config = make_config("mlp", steps=30, n_hidden=32, batch_size=64, seed=seed)
    return train("mlp", config, split, vocab)


def test_same_seed_same_run(names_split) -> None:
    split, vocab = names_split
    small = split_words(split.train[:3000], seed=0)
    first, second, other = (_short_mlp(small, vocab, seed) for seed in (5, 5, 6))
    assert first.history["train_loss"] == second.history["train_loss"]
    timings = ("train_seconds", "eval_seconds")  # wall times: the rest of the metrics repeat exactly
    assert {k: v for k, v in first.metrics.items() if k not in timings} == {
        k: v for k, v in second.metrics.items() if k not in timings
    }
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    assert not torch.equal(first.model.state_dict()["hidden.weight"], other.model.state_dict()["hidden.weight"])


@pytest.mark.parametrize(
    ("kind", "overrides", "message"),
    [
        ("mlp", {"steps": 0}, "steps"),
        ("mlp", {"n_hidden": -5}, "n-hidden"),
        ("mlp", {"lr": 0.0}, "lr"),
        ("bigram", {"smoothing": -1.0}, "smoothing"),
        ("mlp", {"optimizer": "rmsprop"}, "optimizer"),
        ("nope", {}, "unknown model kind"),
    ],
)
def test_nonsense_config_is_refused(kind, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(kind, **overrides)
