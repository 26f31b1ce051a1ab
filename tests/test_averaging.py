"""Weight averaging (`--ema`): the moving average follows its recurrence, never feeds back into training, is
what evaluation sees and what the run keeps, and is checked, recorded and counted like every other setting."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from inprocess import is_usage_error, run_main
from makemore.data import Vocab, read_words, split_words
from makemore.train.averaging import WeightAverage
from makemore.train.cli import main as train_main
from makemore.train.config import make_config
from makemore.train.memory import estimate
from makemore.train.trainer import train
from torch import nn


@settings(max_examples=40, deadline=None)
@given(decay=st.floats(0, 0.9999), weights=st.lists(st.floats(-100, 100), min_size=1, max_size=20))
def test_the_average_follows_its_recurrence(decay, weights) -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(weights[0])
    average, expected = WeightAverage(model, decay), weights[0]
    for updates, value in enumerate(weights[1:]):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(model)
        warmed = min(decay, (1 + updates) / (10 + updates))  # early updates move the average most
        expected = warmed * expected + (1 - warmed) * value
    assert average.params[0].item() == pytest.approx(expected, rel=1e-5, abs=1e-4)


def test_a_short_run_under_a_long_decay_learns() -> None:
    """The transformer's default decay (0.9995) over 40 steps: the warmed decay follows the weights, where the
    plain recurrence would keep 98% of the initial ones."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, 0.9995)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(40):
        average.update(model)
    assert average.params[0].item() > 0.7


def test_applied_lends_the_average_and_gives_the_weights_back_even_on_error() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    average = WeightAverage(model, 0.5)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    own = [param.detach().clone() for param in model.parameters()]
    with pytest.raises(RuntimeError), average.applied(model):
        assert all(torch.equal(p, a) for p, a in zip(model.parameters(), average.params, strict=True))
        raise RuntimeError("evaluation failed")
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), own, strict=True))


@pytest.fixture(scope="module")
def small(names_path):
    words = read_words(names_path)[:3000]
    return split_words(words, seed=0), Vocab.from_words(words)  # val: 300 words, all in the history's subset


def _run(kind: str, small, ema: float):
    split, vocab = small
    overrides = {"steps": 40, "batch_size": 64, "seed": 3, "ema": ema}
    if kind == "wavenet":
        overrides |= {"n_embd": 8, "n_hidden": 16}
    return train(kind, make_config(kind, **overrides), split, vocab)


@pytest.mark.parametrize("kind", ["mlp", "wavenet"])
def test_the_average_is_kept_and_evaluated_and_never_steers_training(small, kind) -> None:
    plain, averaged, lagging = (_run(kind, small, ema) for ema in (0.0, 1e-12, 0.9))
    # training itself is untouched: the same steps, losses and buffers (a wavenet's batch-norm statistics)
    assert lagging.history["train_loss"] == plain.history["train_loss"]
    for name, buffer in plain.model.named_buffers():
        assert torch.equal(buffer, dict(lagging.model.named_buffers())[name]), name
    # a decay near 0 keeps the last weights; 0.9 keeps an average that lags them
    for name, param in plain.model.named_parameters():
        assert torch.allclose(param, dict(averaged.model.named_parameters())[name], atol=1e-6), name
    assert lagging.metrics["val_loss"] != pytest.approx(plain.metrics["val_loss"], abs=1e-6)
    # the history's last val loss (every val word here) is the kept model's: the average, not the weights
    assert lagging.history["val_loss"][-1] == pytest.approx(lagging.metrics["val_loss"], abs=1e-5)


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan", "x"])
def test_a_decay_out_of_range_is_one_error_line(tmp_path, value) -> None:
    outcome = run_main(train_main, "mlp", "--ema", value, "--steps", 2, "--out", tmp_path / "m.pt")
    assert is_usage_error(outcome), outcome
    assert not (tmp_path / "m.pt").exists()


def test_the_checkpoint_records_the_decay_and_the_memory_estimate_counts_the_average(tmp_path) -> None:
    out = tmp_path / "m.pt"
    outcome = run_main(train_main, "mlp", "--ema", 0.99, "--steps", 20, "-q", "--samples", 0, "--out", out)
    assert outcome.status == 0, outcome
    assert torch.load(out, weights_only=True)["config"]["train"]["ema"] == 0.99
    sizes = {"train": 1000, "val": 100, "test": 100}
    plain, averaged = (estimate("mlp", make_config("mlp", ema=ema), 27, sizes) for ema in (0.0, 0.99))
    assert averaged["model"] > plain["model"]
