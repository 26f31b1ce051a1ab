"""Sequence models (transformer, rnn, gru, lstm): step agrees with forward, whole-word training, checkpoints."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from clirun import assert_usage_error, run
from makemore.data import Vocab, read_words, split_words
from makemore.data.tokens import tokenize_split
from makemore.train.checkpoint import load_checkpoint, load_model
from makemore.train.config import make_config, with_block_size
from makemore.train.config_types import TrainConfig
from makemore.train.evaluate import evaluate, make_sequences
from makemore.train.kinds import SEQUENCE_KINDS, ConfigError, build_model
from makemore.train.models import SequenceLengthError, cross_entropy, is_sequence
from makemore.train.run import TrainRequest, run_training
from makemore.train.trainer import learning_rate, train

TINY = {
    "transformer": {"block_size": 12, "n_layer": 2, "n_head": 2, "n_embd": 16, "dropout": 0.1},
    "rnn": {"n_embd": 8, "n_hidden": 16, "n_layer": 2, "dropout": 0.1},
    "gru": {"n_embd": 8, "n_hidden": 16, "n_layer": 2, "dropout": 0.1},
    "lstm": {"n_embd": 8, "n_hidden": 16, "n_layer": 2, "dropout": 0.1},
}
TRAINING = {"steps": 40, "batch_size": 32, "lr": 0.01, "warmup": 4}
V = 27


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(kind, V, make_config(kind, **TINY[kind])).eval()


@pytest.fixture(scope="module")
def small_data(names_path, tmp_path_factory):
    """The first 600 bundled names: their file, split and vocabulary."""
    words = read_words(names_path)[:600]
    path = tmp_path_factory.mktemp("seq") / "names600.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path, split_words(words, seed=42), Vocab.from_words(words)


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_step_matches_forward(kind) -> None:
    model = _model(kind)
    tokens = torch.randint(0, V, (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens)
        state, one_by_one = model.empty_state(3), []
        for t in range(tokens.shape[1]):
            logits, *state = model.step(tokens[:, t : t + 1], *state)
            one_by_one.append(logits)
        first, *state = model.step(tokens[:, :4], *model.empty_state(3))
        second, *_ = model.step(tokens[:, 4:], *state)
    assert full.shape == (3, 11, V)
    torch.testing.assert_close(torch.cat(one_by_one, dim=1), full, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_state_names_shapes_and_dtypes(kind) -> None:
    model = _model(kind)
    assert is_sequence(model) and not is_sequence(build_model("mlp", V, make_config("mlp")))
    names = {
        "transformer": ["past.0.key", "past.0.value", "past.1.key", "past.1.value"],
        "lstm": ["state.h", "state.c"],
    }.get(kind, ["state.h"])
    assert model.state_names() == names
    empty = model.empty_state(3)
    grown = model.step(torch.zeros(3, 5, dtype=torch.int64), *empty)[1:]
    assert len(empty) == len(grown) == len(names)
    for before, after in zip(empty, grown, strict=True):
        assert before.dtype == after.dtype == torch.float32
        if kind == "transformer":
            assert before.shape == (3, 2, 0, 8) and after.shape == (3, 2, 5, 8)  # [B, n_head, past, head_dim]
        else:
            assert before.shape == after.shape == (2, 3, 16)  # [n_layer, B, n_hidden]
            assert not before.any()


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_padding_does_not_change_a_words_loss(kind) -> None:
    model, vocab = _model(kind), Vocab("abcdefghijklmnopqrstuvwxyz")
    alone = evaluate(model, *map(torch.from_numpy, make_sequences(["bo"], vocab)))
    x, y = map(torch.from_numpy, make_sequences(["maximiliano", "bo"], vocab))  # "bo" sorted first, padded to 12
    assert x.shape == (2, 12) and (y[0] == -100).sum() == 9
    with torch.no_grad():
        padded = cross_entropy(model, x[:1], y[:1]).item()
        long_word = evaluate(model, x[1:], y[1:])
    assert padded == pytest.approx(alone, abs=1e-6)
    assert evaluate(model, x, y) == pytest.approx((3 * alone + 12 * long_word) / 15, abs=1e-6)  # per character


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_a_few_steps_lower_the_loss(kind, small_data) -> None:
    _, split, vocab = small_data
    config = make_config(kind, **{**TINY[kind], **TRAINING})
    start = evaluate(
        build_model(kind, vocab.size, with_block_size(kind, config, tokenize_split(split, vocab))), *_val(split, vocab)
    )
    result = train(kind, config, split, vocab)
    assert start == pytest.approx(math.log(vocab.size), abs=0.1)  # starts near uniform
    assert result.metrics["val_loss"] < start - 0.4
    assert len(result.history["val_loss"]) == 40


def _val(split, vocab) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(map(torch.from_numpy, make_sequences(split.val, vocab)))


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_checkpoint_round_trip(kind, small_data, tmp_path) -> None:
    path, split, vocab = small_data
    overrides = {key: value for key, value in {**TINY[kind], **TRAINING}.items() if key != "block_size"}
    out = tmp_path / f"{kind}.pt"
    assert run_training(TrainRequest(kind=kind, data=path, out=out, samples=3, quiet=True, overrides=overrides))
    checkpoint = load_checkpoint(out)
    longest = max(len(word) for word in read_words(path))
    assert checkpoint["kind"] == kind and checkpoint["config"].block_size == longest + 1
    model = load_model(checkpoint)
    assert evaluate(model, *_val(split, vocab)) == pytest.approx(checkpoint["metrics"]["val_loss"], abs=1e-6)


def test_resume_keeps_the_architecture_and_block_size(small_data, tmp_path) -> None:
    path, _, _ = small_data
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    overrides = {key: value for key, value in {**TINY["transformer"], **TRAINING}.items() if key != "block_size"}
    run_training(TrainRequest(kind="transformer", data=path, out=first, samples=0, quiet=True, overrides=overrides))
    resumed = TrainRequest(kind="transformer", data=path, out=second, resume=first, samples=0, quiet=True)
    assert run_training(resumed)
    before, after = load_checkpoint(first)["config"], load_checkpoint(second)["config"]
    assert after.steps_done == 2 * before.steps_done and after.block_size == before.block_size
    resumed.overrides = {"n_head": 4}
    with pytest.raises(ConfigError, match="n-head cannot change"):
        run_training(resumed)


def test_transformer_refuses_what_does_not_fit(small_data) -> None:
    _, words, vocab = small_data
    longest = max(len(word) for name in ("train", "val", "test") for word in words[name])
    split = tokenize_split(words, vocab)
    config = make_config("transformer", **TRAINING)
    assert config.block_size is None and with_block_size("transformer", config, split).block_size == longest + 1
    with pytest.raises(ConfigError, match="too short"):
        with_block_size("transformer", config.replace(block_size=longest), split)
    model = _model("transformer")  # block_size 12
    _, *state = model.step(torch.zeros(1, 10, dtype=torch.int64), *model.empty_state(1))
    with pytest.raises(SequenceLengthError, match="13 positions exceed"):
        model.step(torch.zeros(1, 3, dtype=torch.int64), *state)
    with pytest.raises(SequenceLengthError):
        model(torch.zeros(1, 13, dtype=torch.int64))


def test_mm_train_sequence_kind(small_data, tmp_path) -> None:
    path, _, _ = small_data
    args = ("--data", path, "--steps", 5, "--n-layer", 1, "--n-head", 2, "--n-embd", 8, "--samples", 3, "--threads", 1)
    result = run("mm-train", "transformer", *args, "--out", tmp_path / "t.pt")
    assert result.returncode == 0, result.stderr
    assert "samples: " in result.stderr
    assert torch.load(tmp_path / "t.pt", weights_only=True)["config"]["model"]["n_layer"] == 1
    refused = run("mm-train", "transformer", *args, "--block-size", 5, "--out", tmp_path / "short.pt")
    assert_usage_error(refused)
    assert "too short" in refused.stderr and not (tmp_path / "short.pt").exists()


@pytest.mark.parametrize(
    ("kind", "overrides", "message"),
    [
        ("transformer", {"n_embd": 30, "n_head": 4}, "divisible"),
        ("transformer", {"n_layer": 0}, "n-layer"),
        ("gru", {"n_layer": -1}, "n-layer"),
        ("lstm", {"warmup": -1}, "warmup"),
        ("rnn", {"grad_clip": 0.0}, "grad-clip"),
        ("transformer", {"block_size": 0}, "block-size"),
    ],
)
def test_nonsense_sequence_config_is_refused(kind, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(kind, **overrides)


def test_warmup_then_cosine() -> None:
    config = TrainConfig(steps=100, lr=1.0, optimizer="adamw", weight_decay=0.0, seed=0, warmup=10)
    rates = [learning_rate(config, step) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[10] == pytest.approx(1.0) and rates[99] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))


@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::UserWarning", "ignore::torch.jit.TracerWarning"
)  # the legacy exporter's notices; nn.RNN's own shape checks
@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_step_exports_with_a_dynamic_past(kind) -> None:
    """The TorchScript exporter traces `step` once; onnxruntime then runs it from the empty state, in pieces.

    The wrapper must be in eval mode too: exported in training mode, the graph keeps dropout active.
    """
    import onnxruntime as ort

    model, names = _model(kind), _model(kind).state_names()
    tokens = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(2))
    past = model.step(tokens[:, :3], *model.empty_state(2))[1:]
    axes = {0: "batch", 2: "past"} if kind == "transformer" else {1: "batch"}
    dynamic = {"tokens": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}}
    dynamic |= {name: axes for name in names} | {f"new.{name}": axes for name in names}
    buffer = io.BytesIO()
    torch.onnx.export(
        _Step(model).eval(), (tokens[:, 3:5], *past), buffer, input_names=["tokens", *names],
        output_names=["logits", *(f"new.{name}" for name in names)], dynamic_axes=dynamic, opset_version=17,
        dynamo=False,
    )  # fmt: skip
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    state, pieces = [s.numpy() for s in model.empty_state(1)], []
    for start, stop in ((0, 1), (1, 5), (5, 9)):
        feed = {"tokens": tokens[1:, start:stop].numpy(), **dict(zip(names, state, strict=True))}
        logits, *state = session.run(None, feed)
        pieces.append(logits)
    with torch.no_grad():
        np.testing.assert_allclose(np.concatenate(pieces, axis=1), model(tokens[1:]).numpy(), rtol=0, atol=1e-5)


class _Step(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.step(tokens, *state)


@pytest.mark.parametrize("p", [0.0, 0.001, 0.1, 0.5, 0.998, 0.998047, 0.999, 1 - 1e-12])
def test_byte_dropout_keeps_a_share_of_whole_256ths_for_any_rate_below_1(p) -> None:
    """p rounds to whole 256ths of dropped values, at most 255 (a rate that rounds to 256/256 divided by 0); the
    kept values are scaled so the mean is kept, and nothing is dropped in eval mode."""
    from makemore.train.models import ByteDropout

    dropout, x = ByteDropout(p), torch.ones(256, 1024)
    torch.manual_seed(0)
    y = dropout.train()(x)
    dropped = min(round(p * 256), 255)
    assert torch.isfinite(y).all() and set(y.unique().tolist()) <= {0.0, float(torch.tensor(256 / (256 - dropped)))}
    assert abs((y == 0).float().mean().item() - dropped / 256) < 0.01
    assert torch.equal(dropout.eval()(x), x)
